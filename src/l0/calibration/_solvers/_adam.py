"""Adam for the engine: torch's own functional Adam (fused kernel) with state we own.

``torch.optim.Adam.step`` spends as long on Python bookkeeping per call (hooks, profiling, state
initialisation) as both sparse products of a small problem (figures in ``docs/benchmarks.md``).
Calling the functional ``torch.optim.adam.adam`` with ``fused=True`` runs the same kernel without
it; the state (first and second moments, step count) lives here and is checkpointed with the
engine.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor
from torch.optim.adam import adam

__all__ = ["Adam"]


def _run(params: list[Tensor], grads: list[Tensor], exp_avg: list[Tensor],
         exp_avg_sq: list[Tensor], steps: list[Tensor], fused: bool | None, lr: float,
         betas: tuple[float, float], eps: float) -> None:
    adam(
        params, grads, exp_avg, exp_avg_sq, [], steps,
        foreach=False if fused else None, fused=fused, amsgrad=False,
        beta1=betas[0], beta2=betas[1], lr=lr, weight_decay=0.0, eps=eps, maximize=False,
    )


@functools.cache
def _has_fused_kernel(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether torch's fused Adam runs on ``device`` for ``dtype``, tried on scratch tensors.

    A failed fused call may already have counted its step (torch increments the step counts
    before the kernel checks its arguments), so it is never tried on the real state: a retry
    without the kernel would then run a second step count, and a wrong bias correction.
    """
    scratch = [torch.zeros(1, dtype=dtype, device=device) for _ in range(4)]
    step = [torch.zeros((), dtype=torch.float32, device=device)]
    try:
        with torch.no_grad():
            _run(scratch[:1], scratch[1:2], scratch[2:3], scratch[3:], step, True, 0.1,
                 (0.9, 0.999), 1e-8)
    except RuntimeError:  # pragma: no cover - a torch or device without the fused kernel
        return False
    return True


class Adam:
    """Adam on a fixed list of tensors; :meth:`step` takes their gradients."""

    def __init__(self, params: list[Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params = params
        self._data = [p.detach() for p in params]  # views: updated in place, no autograd
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        # the step counts live with the parameters: the fused kernel on a GPU reads them there
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in params]
        self.fused: bool | None = all(_has_fused_kernel(p.device, p.dtype) for p in params) or None

    def step(self, grads: list[Tensor] | None = None) -> None:
        """One update with ``grads`` (default: each parameter's ``.grad``)."""
        grads = [p.grad for p in self.params] if grads is None else grads
        with torch.no_grad():
            _run(self._data, grads, self.exp_avg, self.exp_avg_sq, self.steps, self.fused,
                 self.lr, self.betas, self.eps)

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
