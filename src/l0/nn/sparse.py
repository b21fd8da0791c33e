"""``SparseL0Linear``: L0-regularised linear regression on scipy sparse (or dense) inputs."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from .. import functional as F
from .._random import generator_or_global
from .._state_keys import LegacyGateNames, keep_log_alpha_key
from .._validation import check_device, check_hard_concrete, check_int, check_real, fail
from .gates import HardConcrete

__all__ = ["SparseL0Linear"]


def _to_torch_matrix(X: Any, n_features: int, device: torch.device) -> Tensor:
    """A float32 torch matrix (sparse CSR for scipy input), converted afresh on every call."""
    if sp.issparse(X):
        csr = sp.csr_matrix(X, dtype=np.float32)
        with warnings.catch_warnings():  # torch flags its CSR support as beta
            warnings.simplefilter("ignore", UserWarning)
            out = torch.sparse_csr_tensor(
                torch.from_numpy(csr.indptr.astype(np.int64)),
                torch.from_numpy(csr.indices.astype(np.int64)),
                torch.from_numpy(csr.data),
                size=csr.shape,
                device=device,
            )
        finite = np.isfinite(csr.data).all()
    elif isinstance(X, Tensor) and X.layout != torch.strided:  # COO, CSC, ...: rows as CSR
        with warnings.catch_warnings():  # torch flags its CSR support as beta
            warnings.simplefilter("ignore", UserWarning)
            out = X.to_sparse_csr().to(device=device, dtype=torch.float32)
        finite = bool(torch.isfinite(out.values()).all())
    elif isinstance(X, (np.ndarray, Tensor)):
        out = torch.as_tensor(X, dtype=torch.float32, device=device)
        finite = bool(torch.isfinite(out).all())
    else:
        raise TypeError(
            f"`X` must be a scipy sparse matrix, numpy array or torch tensor; got {type(X).__name__}."
        )
    if out.dim() != 2 or out.shape[1] != n_features:
        raise ValueError(f"`X` must have shape (n_samples, {n_features}); got {tuple(out.shape)}.")
    if not finite:
        raise ValueError("`X` must be finite; got NaN or inf.")
    return out


class SparseL0Linear(LegacyGateNames, nn.Module):
    """Linear regression with one Hard Concrete gate per coefficient, for sparse design matrices.

    Parameters
    ----------
    n_features : int
        Number of columns of ``X``.
    fit_intercept : bool, default True
    beta, gamma, zeta : float, default 2/3, -0.1, 1.1
        Hard Concrete temperature and stretch interval.
    init_keep_prob : float, default 0.5
        Initial gate logits are ``logit(init_keep_prob)`` plus ``N(0, 0.01)`` jitter.
    device : str or torch.device, default "cpu"
    seed : int, optional
        Seed of the local generator (init jitter, gate noise during ``fit``). ``None`` draws
        from torch's global generator, as 0.6.x does (``torch.manual_seed`` makes it
        reproducible).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rng = np.random.default_rng(0)
    >>> X = sp.random(300, 6, density=0.5, format="csr", random_state=0)
    >>> y = X @ np.array([2.0, 0, 0, -3.0, 0, 0])
    >>> model = SparseL0Linear(6, fit_intercept=False, seed=0).fit(X, y, lambda_reg=0.01,
    ...                                                            lr=0.05, epochs=1500)
    >>> model.get_selected_features().tolist()
    [0, 3]
    """

    LOG_ALPHA_BOUND: float = F.LOG_ALPHA_BOUND

    def __init__(
        self,
        n_features: int,
        fit_intercept: bool = True,
        beta: float = 2 / 3,
        gamma: float = -0.1,
        zeta: float = 1.1,
        init_keep_prob: float = 0.5,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.n_features = check_int("n_features", n_features, low=1)
        beta, gamma, zeta = check_hard_concrete(beta, gamma, zeta)
        p = check_real("init_keep_prob", init_keep_prob, low=0.0, high=1.0, low_open=True,
                       high_open=True)
        self.fit_intercept = bool(fit_intercept)
        self.device = check_device("device", device)
        self.seed = seed
        self._generator = generator_or_global(seed, device=self.device)
        self.weight = nn.Parameter(torch.zeros(self.n_features, device=self.device))
        self.bias = nn.Parameter(torch.zeros(1, device=self.device)) if fit_intercept else None
        jitter = torch.randn(self.n_features, generator=self._generator, device=self.device)
        # the package's gate module, so model-wide tools see these gates; 0.6.x names kept
        self.gates = HardConcrete(self.n_features, temperature=beta, init_mean=None,
                                  gamma=gamma, zeta=zeta, generator=self._generator,
                                  device=self.device)
        with torch.no_grad():
            self.gates.qz_logits.copy_(float(np.log(p / (1 - p))) + 0.01 * jitter)
        keep_log_alpha_key(self)

    def _sample_gates(self) -> Tensor:
        return self.gates.sample(self._generator)

    def get_deterministic_gates(self) -> Tensor:
        """Test-time gates (median rule)."""
        return self.gates.deterministic()

    def forward(self, X: Any, deterministic: bool = False) -> Tensor:
        """Predictions ``X @ (weight * gates) + bias``."""
        return self._predict(_to_torch_matrix(X, self.n_features, self.device), deterministic)

    def _predict(self, X: Tensor, deterministic: bool) -> Tensor:
        gates = self.get_deterministic_gates() if deterministic else self._sample_gates()
        y = (X @ (self.weight * gates).unsqueeze(1)).squeeze(1)
        return y + self.bias if self.bias is not None else y

    def get_l0_penalty(self) -> Tensor:
        """Expected number of non-zero coefficients."""
        return self.gates.get_active_prob().sum()

    def get_sparsity(self) -> float:
        """Fraction of coefficients whose gate is closed at test time
        (:func:`l0.functional.is_open`)."""
        with torch.no_grad():
            return 1.0 - float(self._open().double().mean())

    def _open(self) -> Tensor:
        return self.gates.is_open()

    def get_selected_features(self, threshold: float = 0.01) -> Tensor:
        """Indices of coefficients whose test-time gate exceeds ``threshold``."""
        with torch.no_grad():
            return torch.where(self.get_deterministic_gates() > threshold)[0]

    def get_coefficients(self, threshold: float = 0.01) -> np.ndarray:
        """Gated coefficients as numpy; gates at or below ``threshold`` give exact zeros."""
        with torch.no_grad():
            gates = self.get_deterministic_gates()
            gates = torch.where(gates > threshold, gates, torch.zeros_like(gates))
            return (self.weight * gates).cpu().numpy()

    def fit(
        self,
        X_sparse: Any,
        y: Tensor | np.ndarray,
        lambda_reg: float = 0.01,
        lr: float = 0.01,
        epochs: int = 1000,
        verbose: bool = False,
        verbose_freq: int = 100,
    ) -> SparseL0Linear:
        """Fit by Adam on mean squared error plus ``lambda_reg`` times the expected L0 norm.

        As in 0.6.x, the coefficients are re-initialised (``N(0, 0.1)``, from the local
        generator) and the intercept set to ``mean(y)`` at the start of every call.
        """
        X = _to_torch_matrix(X_sparse, self.n_features, self.device)
        if X.shape[0] == 0:
            raise ValueError("`X_sparse` must have at least one row (sample); got 0 rows.")
        values = y.detach().cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
        try:  # numbers of any dtype (object arrays of numbers too, as 0.6.x took them)
            if values.dtype.kind in "USV":
                raise ValueError
            values = values.astype(np.float32)
        except (TypeError, ValueError):
            raise fail("y", "numeric targets (one per row of X_sparse)", f"dtype {values.dtype}",
                       TypeError) from None
        y = torch.as_tensor(values, device=self.device).reshape(-1)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"`y` must have {X.shape[0]} entries; got {y.shape[0]}.")
        if not bool(torch.isfinite(y).all()):
            raise ValueError("`y` must be finite; got NaN or inf.")
        lambda_reg = check_real("lambda_reg", lambda_reg, low=0.0)
        lr = check_real("lr", lr, low=0.0, low_open=True)
        epochs = check_int("epochs", epochs, low=0)
        verbose_freq = check_int("verbose_freq", verbose_freq, low=1)
        with torch.no_grad():
            self.weight.copy_(0.1 * torch.randn(self.n_features, generator=self._generator,
                                                device=self.device))
            if self.bias is not None:
                self.bias.fill_(float(y.mean()))
        optimizer = torch.optim.Adam([p for p in self.parameters()], lr=lr)
        for epoch in range(epochs):
            mse = (y - self._predict(X, deterministic=False)).pow(2).mean()
            l0 = self.get_l0_penalty()
            loss = mse + lambda_reg * l0
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if verbose and (epoch + 1) % verbose_freq == 0:
                active = int(self._open().sum())
                print(f"Epoch {epoch + 1:4d}: loss={loss.item():.4f}, mse={mse.item():.4f}, "
                      f"l0={l0.item():.2f}, active={active}")
        return self

    def predict(self, X_sparse: Any) -> Tensor:
        """Predictions with test-time gates."""
        with torch.no_grad():
            return self.forward(X_sparse, deterministic=True)
