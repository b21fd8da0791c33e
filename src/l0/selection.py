"""Learned selection of rows and columns: ``SampleGate``, ``FeatureGate``, ``HybridGate``.

Selections respect their budget (never more than ``target_samples`` / ``max_features``: when
more gates are open, the largest gates win, ties broken by the larger logit). The selected data
are multiplied by their gate values, which carries the gradient to the gate logits (in eval mode
trained gates are exactly 0 or 1; use ``data[indices]`` for the raw rows). Each gate can be
trained with its ``fit`` method; randomness comes from local generators only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as TF
from torch import Tensor, nn

from ._random import local_generator
from ._validation import check_choice, check_int, check_real
from .nn.gates import HardConcrete, L0Gate
from .nn.schedules import SparsityController, anneal

__all__ = ["SampleGate", "FeatureGate", "HybridGate"]


def _as_tensor(name: str, data: Any, rows: int | None = None, dim: int = 0) -> Tensor:
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(np.ascontiguousarray(data))
    if not isinstance(data, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor or numpy array; got {type(data).__name__}.")
    if data.dim() == 0 or (rows is not None and data.shape[dim] != rows):
        raise ValueError(
            f"`{name}` must have {rows} entries along dim {dim}; got shape {tuple(data.shape)}."
        )
    return data


def _top_open(gates: Tensor, log_alpha: Tensor, budget: int, threshold: float) -> Tensor:
    """Sorted indices of at most ``budget`` gates above ``threshold``: largest gates, then logits."""
    idx = torch.nonzero(gates > threshold).squeeze(1)
    if idx.numel() > budget:
        idx = idx[torch.argsort(log_alpha[idx].detach(), descending=True, stable=True)]
        idx = idx[torch.argsort(gates[idx].detach(), descending=True, stable=True)][:budget]
    return idx.sort().values


def _train(gates: HardConcrete, optimizer: torch.optim.Optimizer,
           controller: SparsityController, epochs: int, generator: torch.Generator,
           loss: Callable[[Tensor, Tensor], Tensor], *,
           before_epoch: Callable[[int], None] | None = None,
           after_epoch: Callable[[int], None] | None = None) -> None:
    """The one training loop of the selection gates: each epoch a sample of the gates, the task
    ``loss(sample, expected open count)`` plus the controller's penalty, one optimiser step and
    one controller step (``before_epoch``/``after_epoch``: a schedule, the best-so-far)."""
    for epoch in range(epochs):
        if before_epoch is not None:
            before_epoch(epoch)
        z = gates.sample(generator)
        expected = gates.get_penalty()
        total = loss(z, expected) + controller.penalty(expected)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        controller.step(expected)
        if after_epoch is not None:
            after_epoch(epoch)


def _broadcast(values: Tensor, like: Tensor, dim: int) -> Tensor:
    shape = [1] * like.dim()
    shape[dim] = -1
    return values.view(shape).to(like.dtype)


class SampleGate(L0Gate):
    """L0 gate over the rows (samples) of a data set, with a budget of ``target_samples`` rows.

    Parameters
    ----------
    n_samples : int
        Number of rows (>= 1).
    target_samples : int
        Budget: selections never return more rows (``0 <= target_samples <= n_samples``).
    temperature : float, default 0.25
        Gate temperature.
    generator : torch.Generator, optional
        Source of the gates' sampling noise in training mode.

    Examples
    --------
    >>> import torch
    >>> gate = SampleGate(n_samples=100, target_samples=10).eval()
    >>> _, idx = gate.select_samples(torch.randn(100, 3))
    >>> len(idx) <= 10
    True
    """

    def __init__(
        self,
        n_samples: int,
        target_samples: int,
        temperature: float = 0.25,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        n = check_int("n_samples", n_samples, low=1)
        k = check_int("target_samples", target_samples, low=0, high=n)
        super().__init__(n, temperature=temperature, init_mean=k / n, generator=generator)
        self.n_samples = n
        self.target_samples = k

    def _selected(self, threshold: float) -> tuple[Tensor, Tensor]:
        gates = self.get_gates()
        return gates, _top_open(gates, self.gates.log_alpha, self.target_samples, threshold)

    def select_samples(self, data: Tensor, threshold: float = 0.5) -> tuple[Tensor, Tensor]:
        """Rows whose gate exceeds ``threshold`` (at most ``target_samples``).

        Returns ``(data[indices] * gates[indices], indices)``; differentiable in the gates.
        """
        data = _as_tensor("data", data, self.n_samples)
        check_real("threshold", threshold, low=0.0, high=1.0)
        gates, idx = self._selected(threshold)
        return data[idx] * _broadcast(gates[idx], data[idx], 0), idx

    def select_weighted_samples(
        self, data: Tensor, weights: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Rows with a non-zero gate (at most ``target_samples``) and their gated weights.

        Returns ``(data[indices], weights[indices] * gates[indices], indices)``.
        """
        data = _as_tensor("data", data, self.n_samples)
        weights = _as_tensor("weights", weights, self.n_samples)
        gates, idx = self._selected(0.0)
        return data[idx], weights[idx] * gates[idx], idx

    def fit(
        self,
        data: Tensor | np.ndarray,
        weights: Tensor | np.ndarray | None = None,
        *,
        epochs: int = 800,
        lr: float = 0.5,
        seed: int | None = 0,
    ) -> SampleGate:
        """Train the gates so that the selected rows' weighted column means match the full data's.

        The loss is the mean squared relative error of the gate-weighted column means (columns
        with a zero mean are scaled by their standard deviation); a
        :class:`~l0.nn.schedules.SparsityController` holds the expected number of open gates at
        ``target_samples``. Training continues from the current logits; the module is left in
        eval mode.

        Parameters
        ----------
        data : Tensor or ndarray, shape (n_samples, n_columns)
            Finite values.
        weights : Tensor or ndarray, shape (n_samples,), optional
            Positive design weights (default all ones).
        epochs : int, default 800
        lr : float, default 0.5
            Initial Adam step size on the gate logits (cosine-decayed to zero). From the second
            half of training on, the logits whose *published* selection fits best are kept.
        seed : int or None, default 0
            Seed of the local generator of the sampling noise.
        """
        x = _as_tensor("data", data, self.n_samples).to(torch.float64).reshape(self.n_samples, -1)
        if weights is None:
            w = torch.ones(self.n_samples, dtype=torch.float64)
        else:
            w = _as_tensor("weights", weights, self.n_samples).to(torch.float64)
            if not bool((w > 0).all()) or not bool(torch.isfinite(w).all()):
                raise ValueError("`weights` must be finite and > 0; got a non-positive weight.")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("`data` must be finite; got NaN or inf.")
        epochs = check_int("epochs", epochs, low=1)
        lr = check_real("lr", lr, low=0.0, low_open=True)
        target = (w @ x) / w.sum()
        # a column's scale: its mean, else its spread, else 1 (a column of zeros, a single row)
        spread = x.std(0, correction=0)
        scale = torch.where(target.abs() > 0, target.abs(),
                            torch.where(spread > 0, spread, torch.ones_like(spread)))

        def mean_error(z: Tensor) -> Tensor:
            zw = z.to(torch.float64) * w
            return (((zw @ x) / zw.sum().clamp(min=1e-12) - target) / scale) ** 2

        controller = SparsityController(self.target_samples, self.n_samples)
        log_alpha = self.gates.log_alpha
        optimizer = torch.optim.Adam([log_alpha], lr=lr)
        decay = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
        best = (float("inf"), log_alpha.detach().clone())

        def keep_best(epoch: int) -> None:
            nonlocal best
            decay.step()
            if epoch >= epochs // 2:  # keep the best *published* selection, not the last
                with torch.no_grad():
                    z = torch.zeros_like(log_alpha)
                    gates, idx = self.eval()._selected(0.0)
                    z[idx] = gates[idx]
                    error = float(mean_error(z).max()) if len(idx) else float("inf")
                    if error < best[0]:
                        best = (error, log_alpha.detach().clone())

        _train(self.gates, optimizer, controller, epochs, local_generator(seed),
               lambda z, expected: mean_error(z).mean(), after_epoch=keep_best)
        with torch.no_grad():
            if best[0] < float("inf"):
                log_alpha.copy_(best[1])
        return self.eval()


class FeatureGate(L0Gate):
    """L0 gate over the columns (features) of a data set, with a budget of ``max_features``.

    Parameters
    ----------
    n_features : int
        Number of columns (>= 1).
    max_features : int
        Budget: selections never return more columns (``1 <= max_features <= n_features``;
        0.6.x ignored it).
    temperature : float, default 0.1
        Gate temperature.
    generator : torch.Generator, optional
        Source of the gates' sampling noise in training mode.

    Examples
    --------
    >>> import torch
    >>> gate = FeatureGate(n_features=10, max_features=3).eval()
    >>> _, names = gate.select_features_with_names(torch.randn(5, 10), list("abcdefghij"))
    >>> len(names) <= 3
    True
    """

    def __init__(
        self,
        n_features: int,
        max_features: int,
        temperature: float = 0.1,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        n = check_int("n_features", n_features, low=1)
        k = check_int("max_features", max_features, low=1, high=n)
        super().__init__(n, temperature=temperature, init_mean=min(k / n, 0.99),
                         generator=generator)
        self.n_features = n
        self.max_features = k

    def select_features(self, data: Tensor, threshold: float = 0.5) -> tuple[Tensor, Tensor]:
        """Columns (last dimension) whose gate exceeds ``threshold``, at most ``max_features``.

        Returns ``(data[..., indices] * gates[indices], indices)``; differentiable in the gates.
        """
        data = _as_tensor("data", data, self.n_features, dim=-1)
        check_real("threshold", threshold, low=0.0, high=1.0)
        gates = self.get_gates()
        idx = _top_open(gates, self.gates.log_alpha, self.max_features, threshold)
        return data[..., idx] * gates[idx].to(data.dtype), idx

    def select_features_with_names(
        self, data: Tensor, feature_names: list[str]
    ) -> tuple[Tensor, list[str]]:
        """Like :meth:`select_features`, returning the selected columns' names."""
        if len(feature_names) != self.n_features:
            raise ValueError(
                f"`feature_names` must have {self.n_features} names; got {len(feature_names)}."
            )
        selected, idx = self.select_features(data)
        return selected, [feature_names[i] for i in idx.tolist()]

    def get_feature_importance(self) -> Tensor:
        """:math:`P(z \\neq 0)` of each feature's gate."""
        with torch.no_grad():
            return self.gates.get_active_prob()

    def fit(
        self,
        X: Tensor | np.ndarray,
        y: Tensor | np.ndarray,
        *,
        task: str = "regression",
        epochs: int = 500,
        lr: float = 0.05,
        lambda_l0: float = 0.5,
        seed: int | None = 0,
    ) -> FeatureGate:
        """Train the gates with a linear (``task="regression"``) or logistic
        (``task="classification"``, binary 0/1 labels) model on the gated, standardised columns.

        The loss is the model's mean squared error (on standardised ``y``) or mean binary
        cross-entropy, plus ``lambda_l0`` times the expected fraction of open gates (so a column
        must lower the loss by about ``lambda_l0 / n_features`` to stay); a
        :class:`~l0.nn.schedules.SparsityController` keeps the expected count at most
        ``max_features``. The fitted model is kept as ``coef_`` and ``intercept_`` (on the
        standardised scale, see ``x_mean_`` and ``x_scale_``). The temperature is annealed from
        ``max(temperature, 2/3)`` down to the gate's own over the first half of the epochs, to
        explore before committing. Training continues from the current
        logits; the module is left in eval mode.
        """
        task = check_choice("task", task, ("regression", "classification"))
        x = _as_tensor("X", X).to(torch.float64)
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ValueError(
                f"`X` must have shape (n_samples, {self.n_features}); got {tuple(x.shape)}."
            )
        if x.shape[0] < 2:
            raise ValueError(f"`X` must have at least 2 samples (rows) to select features on; "
                             f"got {x.shape[0]}.")
        t = _as_tensor("y", y, x.shape[0]).to(torch.float64).reshape(-1)
        if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(t).all())):
            raise ValueError("`X` and `y` must be finite; got NaN or inf.")
        if task == "classification" and not bool(((t == 0) | (t == 1)).all()):
            raise ValueError("`y` must hold 0/1 labels for task='classification'; got others.")
        epochs = check_int("epochs", epochs, low=1)
        lr = check_real("lr", lr, low=0.0, low_open=True)
        lambda_l0 = check_real("lambda_l0", lambda_l0, low=0.0)
        self.x_mean_, self.x_scale_ = x.mean(0), x.std(0).clamp(min=1e-12)
        x = (x - self.x_mean_) / self.x_scale_
        self.y_mean_, self.y_scale_ = 0.0, 1.0
        if task == "regression":
            self.y_mean_, self.y_scale_ = float(t.mean()), max(float(t.std()), 1e-12)
            t = (t - self.y_mean_) / self.y_scale_
        coef = torch.zeros(self.n_features, dtype=torch.float64, requires_grad=True)
        intercept = torch.zeros((), dtype=torch.float64, requires_grad=True)
        controller = SparsityController(self.max_features, self.n_features, mode="at_most")
        optimizer = torch.optim.Adam([self.gates.log_alpha, coef, intercept], lr=lr)
        final_temperature = self.gates.temperature
        fit_loss = TF.mse_loss if task == "regression" else TF.binary_cross_entropy_with_logits

        def explore(epoch: int) -> None:  # a higher temperature first, then the gate's own
            self.gates.temperature = anneal(2 * epoch / epochs, max(final_temperature, 2 / 3),
                                            final_temperature)

        def loss(z: Tensor, expected: Tensor) -> Tensor:
            pred = x @ (coef * z.to(torch.float64)) + intercept
            return fit_loss(pred, t) + lambda_l0 * expected / self.n_features

        self.train()
        _train(self.gates, optimizer, controller, epochs, local_generator(seed), loss,
               before_epoch=explore)
        self.gates.temperature = final_temperature
        self.coef_, self.intercept_, self.task_ = coef.detach(), intercept.detach(), task
        return self.eval()

    def predict(self, X: Tensor | np.ndarray) -> Tensor:
        """Predictions of the model trained by :meth:`fit` with the test-time gates: values for
        ``task="regression"``, 0/1 labels for ``task="classification"``."""
        if not hasattr(self, "coef_"):
            raise RuntimeError("FeatureGate.predict needs a fitted model: call fit first.")
        x = _as_tensor("X", X, self.n_features, dim=-1).to(torch.float64)
        with torch.no_grad():
            gates = self.gates.deterministic().to(torch.float64)
            score = ((x - self.x_mean_) / self.x_scale_) @ (self.coef_ * gates) + self.intercept_
        if self.task_ == "classification":
            return (score > 0).to(torch.int64)
        return score * self.y_scale_ + self.y_mean_


def _split_budget(total: int, l0_fraction: float, random_fraction: float) -> tuple[int, int]:
    """Rows for the L0 and the random part: ``round(total * (l0 + random))`` in all (at least one
    when either fraction is positive), shared in proportion — never a budget that rounds to 0."""
    share = l0_fraction + random_fraction
    if share <= 0:
        return 0, 0
    rows = min(total, max(1, int(total * share + 0.5)))
    n_l0 = min(rows, int(rows * l0_fraction / share + 0.5))
    return n_l0, rows - n_l0


class HybridGate(nn.Module):
    """Selection mixing learned (L0) and uniformly random rows.

    Parameters
    ----------
    n_items : int
        Number of rows (>= 1).
    l0_fraction, random_fraction : float, default 0.25, 0.75
        Shares of ``target_items`` selected by the L0 gate and at random (each in ``[0, 1]``,
        summing to at most 1).
    target_items : int, optional
        Total budget, ``1 <= target_items <= n_items``; default ``max(1, int(0.2 * n_items))``.
    temperature : float, default 0.25
        Temperature of the L0 gate (a :class:`SampleGate`, attribute ``l0_gate``).

    Examples
    --------
    >>> import torch
    >>> hybrid = HybridGate(n_items=10).eval()
    >>> _, idx, kinds = hybrid.select(torch.arange(10.0), random_seed=0)
    >>> hybrid.n_l0, hybrid.n_random, kinds.tolist()  # the untrained L0 gate keeps nothing yet
    (1, 1, ['random', 'random'])
    """

    def __init__(
        self,
        n_items: int,
        l0_fraction: float = 0.25,
        random_fraction: float = 0.75,
        target_items: int | None = None,
        temperature: float = 0.25,
    ) -> None:
        super().__init__()
        self.n_items = check_int("n_items", n_items, low=1)
        self.l0_fraction = check_real("l0_fraction", l0_fraction, low=0.0, high=1.0)
        self.random_fraction = check_real("random_fraction", random_fraction, low=0.0, high=1.0)
        if self.l0_fraction + self.random_fraction > 1.0 + 1e-12:
            raise ValueError(
                "`l0_fraction + random_fraction` must be <= 1; "
                f"got {self.l0_fraction} + {self.random_fraction}."
            )
        if target_items is None:
            target_items = max(1, int(self.n_items * 0.2))
        self.target_items = check_int("target_items", target_items, low=1, high=self.n_items)
        self.n_l0, self.n_random = _split_budget(self.target_items, self.l0_fraction,
                                                 self.random_fraction)
        self.l0_gate = SampleGate(self.n_items, self.n_l0, temperature=temperature)

    def select(
        self, data: Tensor, random_seed: int | None = None
    ) -> tuple[Tensor, Tensor, np.ndarray]:
        """L0-selected rows plus random others, ``target_items`` in all, sorted by index.

        The L0 gate contributes its open rows (at most ``n_l0``); the rest of the budget —
        ``n_random`` plus what the gate left unused — is drawn uniformly from the other rows.

        Returns ``(data[indices], indices, kinds)`` with ``kinds[i]`` ``"l0"`` or ``"random"``.
        ``random_seed`` seeds a local generator that draws both the L0 gate's noise (training
        mode) and the random rows, so the same seed gives the same rows and the global RNG is
        not touched; with ``None`` both come from the gate's generator or torch's global one,
        as in 0.6.x.
        """
        data = _as_tensor("data", data, self.n_items)
        # one stream for both parts: the gate noise (training mode) and the random rows
        gen = None if random_seed is None else local_generator(random_seed, name="random_seed")
        gate = self.l0_gate.gates
        with torch.no_grad():
            gates = gate.sample(generator=gen) if self.l0_gate.training else gate.deterministic()
            l0_idx = _top_open(gates, gate.log_alpha, self.n_l0, 0.5)
        available = torch.ones(self.n_items, dtype=torch.bool)
        available[l0_idx] = False
        pool = torch.nonzero(available).squeeze(1)
        # rows the L0 gate leaves unused (an untrained gate keeps few) go to the random part:
        # the selection always holds the whole budget
        take = min(self.n_random + self.n_l0 - l0_idx.numel(), pool.numel())
        perm = torch.randperm(pool.numel(), generator=gen)[:take]
        random_idx = pool[perm]
        indices = torch.cat([l0_idx, random_idx])
        is_l0 = torch.cat([torch.ones_like(l0_idx, dtype=torch.bool),
                           torch.zeros_like(random_idx, dtype=torch.bool)])
        order = torch.argsort(indices)
        indices, is_l0 = indices[order], is_l0[order]
        kinds = np.where(is_l0.numpy(), "l0", "random").astype("<U6")
        return data[indices], indices, kinds

    def get_penalty(self) -> Tensor:
        """Expected number of rows open in the L0 gate."""
        return self.l0_gate.get_penalty()

    def extra_repr(self) -> str:
        return f"n_items={self.n_items}, n_l0={self.n_l0}, n_random={self.n_random}"
