"""Adam for the engine: torch's own functional Adam (fused kernel) with state we own.

``torch.optim.Adam.step`` spends as long on Python bookkeeping per call (hooks, profiling, state
initialisation) as both sparse products of a small problem (figures in ``docs/benchmarks.md``).
Calling the functional ``torch.optim.adam.adam`` with ``fused=True`` runs the same kernel without
it; the state (first and second moments, step count) lives here and is checkpointed with the
engine.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.optim.adam import adam

__all__ = ["Adam"]


class Adam:
    """Adam on a fixed list of tensors; :meth:`step` takes their gradients."""

    def __init__(self, params: list[Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params = params
        self._data = [p.detach() for p in params]  # views: updated in place, no autograd
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in params]
        self.fused: bool | None = True

    def step(self, grads: list[Tensor] | None = None) -> None:
        """One update with ``grads`` (default: each parameter's ``.grad``)."""
        grads = [p.grad for p in self.params] if grads is None else grads
        with torch.no_grad():
            try:
                self._run(grads, self.fused)
            except RuntimeError:  # pragma: no cover - a torch or device without the fused kernel
                if not self.fused:
                    raise
                self.fused = None
                self._run(grads, None)

    def _run(self, grads: list[Tensor], fused: bool | None) -> None:
        adam(
            self._data, grads, self.exp_avg, self.exp_avg_sq, [],
            self.steps, foreach=False if fused else None, fused=fused, amsgrad=False,
            beta1=self.betas[0], beta2=self.betas[1], lr=self.lr, weight_decay=0.0,
            eps=self.eps, maximize=False,
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "exp_avg": [t.clone() for t in self.exp_avg],
            "exp_avg_sq": [t.clone() for t in self.exp_avg_sq],
            "steps": [t.clone() for t in self.steps],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for mine, saved in zip(self.exp_avg + self.exp_avg_sq + self.steps,
                               state["exp_avg"] + state["exp_avg_sq"] + state["steps"]):
            mine.copy_(saved)
