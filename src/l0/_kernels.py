"""The unchecked Hard Concrete kernels, shared by :mod:`l0.functional`, the gate modules, fused
sampling and the calibration engine.

The public, checked forms are in :mod:`l0.functional`; these take settings already validated and
may skip the clamp of the logits (``clamp=False``: the caller keeps them within the bound), so
hot loops pay for neither. The logits are clamped here, and only here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["LOG_ALPHA_BOUND", "clamp_logits", "clamp_gradient", "sample_with_gradient", "open_shift",
           "prob_nonzero", "prob_nonzero_shifted"]

LOG_ALPHA_BOUND: float = 30.0
"""Gate logits are clamped to ``[-LOG_ALPHA_BOUND, LOG_ALPHA_BOUND]`` by :func:`clamp_logits`, and
only there.

At this bound a gate is closed or open with probability ``1 - 1e-13`` at any temperature up to 1,
so the clamp changes no sample in float32; it keeps ``exp``/``log`` finite in half precision.
"""


def clamp_logits(log_alpha: Tensor) -> Tensor:
    return log_alpha.clamp(-LOG_ALPHA_BOUND, LOG_ALPHA_BOUND)


def clamp_gradient(grad: Tensor, log_alpha: Tensor) -> Tensor:
    """``grad`` through :func:`clamp_logits`: zero where ``log_alpha`` is at or beyond the bounds (the
    clamped logits give the same mask as the raw ones), in one fused pass."""
    return torch.ops.aten.hardtanh_backward(grad, log_alpha, -LOG_ALPHA_BOUND, LOG_ALPHA_BOUND)


def sample_with_gradient(
    log_alpha: Tensor, noise: Tensor, temperature: float, low: float, high: float,
    clamp: bool = True,
) -> tuple[Tensor, Tensor]:
    # clamp=False: the caller keeps its logits within +-LOG_ALPHA_BOUND (one pass saved)
    eps = torch.finfo(noise.dtype).eps
    logits = clamp_logits(log_alpha) if clamp else log_alpha
    # out of place: float32 noise plus float64 logits is float64
    s = (logits + torch.logit(noise, eps=eps)).div_(temperature).sigmoid_()
    slope = torch.addcmul(s, s, s, value=-1.0).mul_((high - low) / temperature)
    stretched = s.mul_(high - low).add_(low)  # in place: one vector fewer at a million records
    # zero where the gate is clamped: the clamp's own backward, one fused pass (not a mask)
    slope = torch.ops.aten.hardtanh_backward(slope, stretched, 0.0, 1.0)
    return stretched.clamp_(0.0, 1.0), slope


def open_shift(temperature: float, low: float, high: float) -> float:
    """:math:`\\beta \\log(-\\gamma/\\zeta)`: P(z != 0) is ``sigmoid(log_alpha - shift)``."""
    return temperature * math.log(-low / high)


def prob_nonzero(
    log_alpha: Tensor, temperature: float, low: float, high: float, clamp: bool = True
) -> Tensor:
    return prob_nonzero_shifted(log_alpha, open_shift(temperature, low, high), clamp)


def prob_nonzero_shifted(log_alpha: Tensor, shift: float | Tensor, clamp: bool = True) -> Tensor:
    """P(z != 0) = ``sigmoid(log_alpha - shift)``, ``shift`` from :func:`open_shift` (a float,
    or per-gate values broadcasting against ``log_alpha``)."""
    logits = clamp_logits(log_alpha) if clamp else log_alpha
    return torch.sigmoid(logits - shift)
