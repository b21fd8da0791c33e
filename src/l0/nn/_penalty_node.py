"""The L0 penalty as one autograd node: ``sum cost * P(z != 0)`` over many gate tensors.

Shared by the gate modules (:meth:`~l0.nn.gates.HardConcrete.get_penalty`), the model-wide
penalty (:func:`~l0.nn.penalties.compute_l0_penalty`) and fused sampling (:mod:`l0.nn.fused`),
with the cached per-gate vectors of per-tensor settings.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .. import _kernels as K

__all__ = ["ExpectedOpen", "expected_open", "open_value", "open_gradient", "per_gate",
           "one_node_coefficients", "VECTOR_GATES"]

class ExpectedOpen(torch.autograd.Function):
    """``sum cost * P(z != 0)`` over the gates of one or more tensors, as *one* autograd node.

    ``shift`` and ``cost`` are floats (one tensor) or per-gate vectors matching the concatenated
    logits (several tensors; see :func:`expected_open`). The value is :func:`prob_nonzero`
    (logits clamped as everywhere); the gradient is written out, ``cost * p * (1 - p)``
    strictly inside the clamp and 0 outside. A network's penalty otherwise records half a dozen
    tiny operations per gate tensor, whose bookkeeping costs more than their arithmetic in a
    small model's training step.
    """

    @staticmethod
    def forward(ctx, shift: float | Tensor, cost: float | Tensor, *log_alphas: Tensor) -> Tensor:  # type: ignore[override]
        flat = torch.cat([la.reshape(-1) for la in log_alphas])
        p, value = open_value(flat, shift, cost)
        ctx.shapes = [la.shape for la in log_alphas]
        ctx.cost = cost
        ctx.save_for_backward(flat, p)
        return value

    @staticmethod
    @once_differentiable  # a second derivative raises instead of silently coming out wrong
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        flat, p = ctx.saved_tensors
        g = open_gradient(p, ctx.cost, grad)
        g = K.clamp_gradient(g, flat)
        parts = g.split([shape.numel() for shape in ctx.shapes])
        return (None, None, *(part.view(shape) for part, shape in zip(parts, ctx.shapes)))


def open_value(flat: Tensor, shift: float | Tensor, cost: float | Tensor, clamp: bool = True
                ) -> tuple[Tensor, Tensor]:
    """``(P(z != 0), sum cost * P(z != 0))`` of concatenated logits, the value of
    :class:`ExpectedOpen` (``clamp=False``: ``flat`` is clamped already)."""
    p = K.prob_nonzero_shifted(flat, shift, clamp)
    return p, torch.dot(p, cost) if isinstance(cost, Tensor) else p.sum() * cost


def open_gradient(p: Tensor, cost: float | Tensor, grad: Tensor) -> Tensor:
    """``grad * cost * p * (1 - p)``: the gradient of :func:`open_value` before the clamp's
    mask, for the incoming gradient ``grad`` of the value."""
    return torch.addcmul(p, p, p, value=-1.0).mul_(grad).mul_(cost)


VECTOR_GATES = 1 << 16
"""Up to this many gates, several gate tensors share one :class:`ExpectedOpen` node through
cached per-gate coefficient vectors (:func:`per_gate`; the per-operation overhead matters);
above it each tensor gets its own node (the arithmetic dominates, and the vectors would cost
memory)."""


@functools.lru_cache(maxsize=16)
def per_gate(counts: tuple[int, ...], values: tuple[tuple[float, ...], ...],
              dtype: torch.dtype, device: torch.device) -> tuple[Tensor, ...]:
    """Per-gate vectors from per-tensor numbers: ``values[i]`` holds tensor ``i``'s numbers
    (shift and cost of :class:`ExpectedOpen`, or a fused sample's temperature and stretch), each
    repeated over its ``counts[i]`` gates; one vector per number. Cached: a model asks for the
    same ones every step until a setting changes. Made outside inference mode whatever the
    caller's mode: a cached inference tensor could never be saved for a later backward pass."""
    with torch.inference_mode(False):
        repeats = torch.tensor(counts, device=device)
        return tuple(torch.tensor(column, dtype=dtype, device=device).repeat_interleave(repeats)
                     for column in zip(*values))


def one_node_coefficients(terms: list[tuple[Tensor, float, float]]
                           ) -> tuple[float | Tensor, float | Tensor] | None:
    """The ``(shift, cost)`` of the one :class:`ExpectedOpen` node that :func:`expected_open`
    makes for ``terms`` of one dtype and device — floats for one tensor, cached vectors for
    several up to ``VECTOR_GATES`` gates — or None when it makes one node per tensor."""
    if len(terms) == 1:
        return float(terms[0][1]), float(terms[0][2])
    counts = tuple(la.numel() for la, _, _ in terms)
    if sum(counts) > VECTOR_GATES:
        return None
    first = terms[0][0]
    shift, cost = per_gate(counts, tuple((float(s), float(c)) for _, s, c in terms),
                            first.dtype, first.device)
    return shift, cost


def expected_open(terms: list[tuple[Tensor, float, float]]) -> Tensor:
    """``sum cost * P(z != 0)`` for ``terms`` of ``(log_alpha, shift, cost)`` (see
    :class:`ExpectedOpen`); ``shift`` from :func:`K.open_shift`. ``terms`` must not be empty."""
    groups: dict[tuple[torch.dtype, torch.device], list[tuple[Tensor, float, float]]] = {}
    for term in terms:
        groups.setdefault((term[0].dtype, term[0].device), []).append(term)
    parts = []
    for group in groups.values():
        coefficients = one_node_coefficients(group)
        if coefficients is not None:
            parts.append(ExpectedOpen.apply(*coefficients, *(la for la, _, _ in group)))
        else:
            parts.extend(ExpectedOpen.apply(float(s), float(c), la) for la, s, c in group)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total
