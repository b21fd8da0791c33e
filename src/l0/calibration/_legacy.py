"""``SparseCalibrationWeights``: the l0-python 0.6.x estimator, drop-in, on the new engine.

Same constructor, ``fit`` arguments, defaults and methods; same parameterisation
(``w = exp(log_weight) * z``) and the same loss scale (a sum over targets, ``lambda_l0`` per
expected open gate, ``lambda_l2`` on ``sum(exp(log_weight)**2)``), so tuned settings carry over.
What changed is listed in ``docs/changes-from-0.6.md``: the relative loss has no ``+1`` bias, bad
input raises instead of producing NaN, ``seed`` makes fits reproducible, a second ``fit``
continues the first, and an epoch costs two sparse products instead of an autograd graph.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from .._random import generator_or_global
from .._state_keys import LegacyGateNames, keep_log_alpha_key
from .._validation import check_choice, check_device, check_int, check_real, fail
from ..nn.gates import HardConcrete
from ._backends import make_backend
from ._matrix import as_csr, as_vector
from ._solvers._engine import EngineSettings, GradientEngine
from ._spec import build_problem

__all__ = ["SparseCalibrationWeights"]

_LOSS_TYPES = {"mse": "absolute", "relative": "relative"}


def _per_feature(name: str, value: Any, n: int, low: float, high: float) -> np.ndarray:
    if np.isscalar(value) and not isinstance(value, str):
        return np.full(n, check_real(name, value, low=low, high=high))
    shape = np.shape(value)
    if shape != (n,):  # 0.6.x's wording, which callers match
        raise ValueError(f"`{name}` array must have shape ({n},); got shape {shape}.")
    array = as_vector(value, name, n)
    if (array < low).any() or (array > high).any():
        raise fail(name, f"values in [{low}, {high}]", f"range [{array.min()}, {array.max()}]")
    return array


class SparseCalibrationWeights(LegacyGateNames, nn.Module):
    """L0-regularised non-negative calibration weights (the l0-python 0.6.x estimator).

    Each record has a weight ``exp(log_weight) * z`` with a Hard Concrete gate ``z``; :meth:`fit`
    trains both by Adam so that ``M @ w`` matches ``y`` while few gates stay open. For new code,
    :func:`l0.calibration.calibrate` adds design weights, bounds, a record budget, a stopping
    rule and a refit of the published weights.

    Parameters
    ----------
    n_features : int
        Number of records (columns of ``M``).
    beta : float, default 2/3
        Hard Concrete temperature.
    gamma, zeta : float, default -0.1, 1.1
        Stretch interval, ``gamma < 0``, ``zeta > 1``.
    init_keep_prob : float or array-like, default 0.5
        Initial ``sigmoid(log_alpha)`` (clipped to ``[1e-6, 1 - 1e-6]``).
    init_weights : float or array-like, optional
        Initial weights (default 1); ``log_weight = log(init_weights + 1e-8)``.
    log_weight_jitter_sd : float, default 0
        Noise added to ``log_weight`` at the *first* ``fit`` only.
    log_alpha_jitter_sd : float, default 0.01
        Noise added to the initial ``log_alpha``.
    device : str or torch.device, default "cpu"
    use_gates : bool, default True
        Without gates the weights are just ``exp(log_weight)`` (no sparsity).
    dtype : torch.dtype, default torch.float32
        Dtype of the public parameters ``log_weight`` and ``log_alpha`` and of what
        :meth:`get_weights`, :meth:`forward` and :meth:`predict` return: float32 as in 0.6.x (so
        they compare with ``torch.ones(n)``), or ``torch.float64`` to keep the fit's full
        precision. :meth:`fit` always computes in float64 (its Adam state too) and writes the
        parameters back in ``dtype`` at its end.
    seed : int, optional
        Seed of the module's own generator (jitter and gate noise). ``None`` (the default) draws
        from torch's global generator, as 0.6.x does: ``torch.manual_seed`` then makes it
        reproducible.
        With a seed, fits are bitwise reproducible on CPU.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> M = sp.csr_array(np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]]))
    >>> model = SparseCalibrationWeights(3, seed=0, init_keep_prob=0.9)
    >>> _ = model.fit(M, np.array([30.0, 60.0]), lambda_l0=0.0, lr=0.1, epochs=300,
    ...               loss_type="relative")
    >>> model.predict(M).shape
    torch.Size([2])
    """

    def __init__(
        self,
        n_features: int,
        beta: float = 2 / 3,
        gamma: float = -0.1,
        zeta: float = 1.1,
        init_keep_prob: float | np.ndarray = 0.5,
        init_weights: float | np.ndarray | None = None,
        log_weight_jitter_sd: float = 0.0,
        log_alpha_jitter_sd: float = 0.01,
        device: str | torch.device = "cpu",
        use_gates: bool = True,
        seed: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.n_features = check_int("n_features", n_features, low=1)
        beta = check_real("beta", beta, low=0.0, low_open=True)
        gamma = check_real("gamma", gamma, high=0.0, high_open=True)
        zeta = check_real("zeta", zeta, low=1.0, low_open=True)
        self.log_weight_jitter_sd = check_real("log_weight_jitter_sd", log_weight_jitter_sd, low=0.0)
        self.log_alpha_jitter_sd = check_real("log_alpha_jitter_sd", log_alpha_jitter_sd, low=0.0)
        self.device = check_device("device", device)
        self.use_gates = bool(use_gates)
        self.seed = seed
        self._generator = generator_or_global(seed, device=self.device)
        n = self.n_features
        weights = np.ones(n) if init_weights is None else _per_feature(
            "init_weights", init_weights, n, 0.0, math.inf
        )
        keep = np.clip(_per_feature("init_keep_prob", init_keep_prob, n, 0.0, 1.0), 1e-6, 1 - 1e-6)
        if dtype not in (torch.float32, torch.float64):
            raise fail("dtype", "torch.float32 or torch.float64", dtype, TypeError)
        self.dtype = dtype
        factory = {"dtype": torch.float64, "device": self.device}
        log_weight = torch.log(torch.tensor(weights, **factory) + 1e-8)
        log_alpha = torch.logit(torch.tensor(keep, **factory))
        if self.log_alpha_jitter_sd > 0:
            log_alpha += self.log_alpha_jitter_sd * torch.randn(
                n, generator=self._generator, **factory
            )
        self.log_weight = nn.Parameter(log_weight.to(dtype))
        # the package's gate module, so model-wide tools see these gates; 0.6.x names kept
        self.gates = HardConcrete(n, temperature=beta, init_mean=None, gamma=gamma, zeta=zeta,
                                  generator=self._generator, device=self.device, dtype=dtype)
        with torch.no_grad():
            self.gates.qz_logits.copy_(log_alpha)
        keep_log_alpha_key(self)
        self._optimizer_state: dict[str, Any] | None = None
        self._masters: tuple[Tensor, Tensor] | None = None  # float64 values of the last fit

    # ------------------------------------------------------------------ gates and weights
    def _settings(self, **kwargs: Any) -> EngineSettings:
        return EngineSettings(temperature=self.beta, gamma=self.gamma, zeta=self.zeta,
                              use_gates=self.use_gates, **kwargs)

    def get_deterministic_gates(self) -> Tensor:
        """Test-time gates (the median of each gate, in ``[0, 1]``)."""
        return self.gates.deterministic()

    def _sample_gates(self) -> Tensor:
        noise = torch.rand(self.n_features, generator=self._generator, dtype=torch.float32,
                           device=self.device)  # the same draws as an epoch of fit
        return self.gates.sample_from(noise)

    def get_weights(self, deterministic: bool = False) -> Tensor:
        """Weights ``exp(log_weight) * z`` with sampled (or test-time) gates; differentiable."""
        weights = torch.exp(self.log_weight)
        if not self.use_gates:
            return weights
        gates = self.get_deterministic_gates() if deterministic else self._sample_gates()
        return weights * gates

    def _matrix(self, M: Any) -> sp.csr_array:
        M = as_csr(M, "M")
        if M.shape[1] != self.n_features:
            raise fail("M", f"a matrix with {self.n_features} columns (n_features)",
                       f"shape {M.shape}")
        return M

    def forward(self, M: Any, deterministic: bool = False) -> Tensor:
        """``M @ w`` as a differentiable tensor (``M`` is converted afresh on every call)."""
        M = self._matrix(M).tocoo()
        indices = torch.from_numpy(np.vstack([M.row, M.col]).astype(np.int64))
        matrix = torch.sparse_coo_tensor(indices, torch.from_numpy(M.data), M.shape,
                                         device=self.device, dtype=self.log_weight.dtype,
                                         check_invariants=False)
        return torch.sparse.mm(matrix, self.get_weights(deterministic).unsqueeze(1)).squeeze(1)

    def predict(self, M: Any) -> Tensor:
        """Estimates ``M @ w`` with the test-time weights."""
        with torch.no_grad():
            return self.forward(M, deterministic=True)

    def get_l0_penalty(self) -> Tensor:
        """Expected number of open gates, :math:`\\sum_j P(z_j \\ne 0)`."""
        return self.gates.get_active_prob().sum()

    def get_l2_penalty(self) -> Tensor:
        """:math:`\\sum_j \\exp(\\text{log\\_weight}_j)^2` (the legacy absolute L2)."""
        return (torch.exp(self.log_weight) ** 2).sum()

    def get_sparsity(self) -> float:
        """Fraction of records whose test-time weight is exactly zero."""
        with torch.no_grad():
            return float((self.get_weights(deterministic=True) == 0).double().mean())

    def get_active_weights(self) -> dict[str, Any]:
        """``{"indices", "values", "count"}`` of the records with a non-zero test-time weight."""
        with torch.no_grad():
            weights = self.get_weights(deterministic=True)
            active = weights > 0
            return {"indices": torch.where(active)[0], "values": weights[active],
                    "count": int(active.sum())}

    # ------------------------------------------------------------------ training
    def fit(
        self,
        M: Any,
        y: Any,
        lambda_l0: float = 0.01,
        lambda_l2: float = 0.0,
        lr: float = 0.01,
        epochs: int = 1000,
        loss_type: str = "mse",
        verbose: bool = False,
        verbose_freq: int = 100,
        target_groups: Any = None,
        normalize_groups: bool = True,
        group_multipliers: dict[int, float] | None = None,
    ) -> SparseCalibrationWeights:
        """Train weights and gates for ``epochs`` epochs of Adam; a second call continues.

        Parameters
        ----------
        M : scipy sparse matrix, ndarray, DataFrame or torch tensor, shape (n_targets, n_features)
        y : array-like, shape (n_targets,)
        lambda_l0 : float, default 0.01
            Strength of the expected number of open gates in the loss.
        lambda_l2 : float, default 0
            Strength of :meth:`get_l2_penalty`.
        lr : float, default 0.01
            Adam step size.
        epochs : int, default 1000
        loss_type : {"mse", "relative"}, default "mse"
            ``"mse"``: squared errors; ``"relative"``: squared ``(ŷ - y)/max(|y|, 1)``.
        verbose : bool, default False
            Print the fit every ``verbose_freq`` epochs.
        verbose_freq : int, default 100
        target_groups : array-like of int, optional
            Group id per target; with ``normalize_groups`` each group weighs the same.
        normalize_groups : bool, default True
        group_multipliers : dict {group id: float}, optional
            Extra weight of each group's targets (requires ``target_groups``).

        Returns
        -------
        self

        Raises
        ------
        TypeError, ValueError
            On bad input, naming the argument.
        l0.calibration.DivergenceError
            If the loss stops being finite (the parameters of the last finite epoch are kept).
        """
        loss = _LOSS_TYPES[check_choice("loss_type", loss_type, tuple(_LOSS_TYPES))]
        if target_groups is not None and not isinstance(target_groups, str) and \
                np.asarray(target_groups).dtype.kind in "UO":  # 0.6.x: integer ids only
            raise fail("target_groups", "integer group ids (as in 0.6.x; calibrate() also "
                       "takes string labels)", target_groups, TypeError)
        problem = build_problem(
            self._matrix(M), y, loss=loss, target_groups=target_groups,
            normalize_groups=normalize_groups, group_multipliers=group_multipliers,
            normalize_loss=False,
        )
        settings = self._settings(
            lr=check_real("lr", lr, low=0.0, low_open=True),
            l0_weight=check_real("lambda_l0", lambda_l0, low=0.0),
            l2_weight=check_real("lambda_l2", lambda_l2, low=0.0),
        )
        epochs = check_int("epochs", epochs, low=0)
        verbose_freq = check_int("verbose_freq", verbose_freq, low=1)
        theta, log_alpha = self._float64_leaves()
        if self._optimizer_state is None and self.log_weight_jitter_sd > 0:
            with torch.no_grad():  # jitter once: a second fit continues the first
                theta += self.log_weight_jitter_sd * torch.randn(
                    self.n_features, generator=self._generator, dtype=torch.float64,
                    device=self.device,
                )
        engine = GradientEngine(problem, make_backend(problem.M, self.device), theta,
                                log_alpha, self._generator, settings)
        if self._optimizer_state is not None:
            engine.optimizer.load_state_dict(self._optimizer_state)
        if verbose:
            self._print_groups(target_groups, normalize_groups, group_multipliers)
        try:
            for epoch in range(1, epochs + 1):
                loss_value, expected = engine.step()
                if verbose and epoch % verbose_freq == 0:
                    self._report(engine, epoch, loss_value, expected, settings, target_groups)
        finally:
            self._optimizer_state = engine.optimizer.state_dict()
            with torch.no_grad():
                for param, trained in ((self.log_weight, theta), (self.log_alpha, log_alpha)):
                    if trained is not param:
                        param.copy_(trained)
            if theta is not self.log_weight:
                self._masters = (theta.detach(), log_alpha.detach())
            self.log_weight.grad = None
            self.log_alpha.grad = None
        return self

    def _float64_leaves(self) -> tuple[Tensor, Tensor]:
        """The float64 leaves the engine trains: the parameters themselves (dtype float64), the
        float64 values the last fit ended with (while the parameters still round to them, so a
        second fit continues the first bit for bit), or float64 copies of the parameters."""
        params = (self.log_weight, self.log_alpha)
        if self.dtype == torch.float64:
            return params
        masters = self._masters
        if masters is not None and all(torch.equal(m.to(p.dtype), p.detach())
                                       for m, p in zip(masters, params)):
            return tuple(m.clone().requires_grad_() for m in masters)
        return tuple(p.detach().to(torch.float64).requires_grad_() for p in params)

    def _print_groups(self, target_groups: Any, normalize: bool, multipliers: Any) -> None:
        if target_groups is None:
            print("Groups: none (uniform weights)")
            return
        parts = [f"{len(np.unique(np.asarray(target_groups)))} groups",
                 f"normalize={'on' if normalize else 'off'}"]
        if multipliers is not None:
            parts.append(f"multipliers={multipliers}")
        print(f"Groups: {', '.join(parts)}")

    def _report(
        self, engine: GradientEngine, epoch: int, data_loss: float, expected: float,
        settings: EngineSettings, target_groups: Any,
    ) -> None:
        problem = engine.problem
        weights = (engine.open_weights() * engine.deterministic_gates()).cpu().numpy()
        errors = np.abs(problem.relative_errors(problem.M @ weights))
        active = weights[weights > 0]
        total = data_loss + settings.l0_weight * expected
        if settings.l2_weight:
            total += settings.l2_weight * float((engine.open_weights() ** 2).sum())
        if target_groups is not None:
            codes = np.unique(np.asarray(target_groups), return_inverse=True)[1]
            mean = float(np.mean(np.bincount(codes, errors) / np.bincount(codes)))
            label = "mean_group_mare"
        else:
            mean, label = float(errors.mean()), "mean_error"
        edges = [0.0, 0.01, 0.1, 1.0, 10.0, 1000.0, math.inf]
        names = ["<0.01", "0.01-0.1", "0.1-1", "1-10", "10-1000", ">1000"]
        if len(active):
            counts = np.histogram(active, bins=edges)[0] / len(active)
            dist = "[" + ", ".join(f"{n}: {100 * c:.1f}%" for n, c in zip(names, counts)) + "]"
        else:
            dist = "[no active weights]"
        sparsity = 100 * (1 - len(active) / self.n_features)
        print(
            f"Epoch {epoch:4d}: {label}={mean:.4%}, max_error={errors.max():.1%}, "
            f"total_loss={total:.3f}, active={len(active):4d}/{self.n_features} "
            f"({sparsity:.1f}% sparse)\n         Weight dist: {dist}"
        )

    def extra_repr(self) -> str:
        return (f"n_features={self.n_features}, beta={self.beta:.4g}, gamma={self.gamma}, "
                f"zeta={self.zeta}, use_gates={self.use_gates}, dtype={self.dtype}")
