"""Every gate of a model sampled as one tensor: :func:`fuse_gates`.

A model with gates on several layers draws, in each training forward pass, one noise tensor,
one Hard Concrete sample and one autograd node *per gated layer* — on a small network the fixed
cost of those small operations is most of what the gates cost. ``fuse_gates(model)`` replaces
them by one noise draw, one fused sample (:func:`l0.functional.sample_with_gradient` over the
concatenated logits) and one autograd node for the whole model, made by a forward pre-hook on the
model; each gate module then returns its slice of that sample. The gate parameters stay where
they are (``qz_logits`` of every :class:`~l0.nn.gates.HardConcrete`, the same state-dict keys), so
optimisers, checkpoints, :func:`l0.export` and every statistic work unchanged. The same node
also outputs the model's L0 penalty, which :func:`l0.compute_l0_penalty` hands out for that
forward pass: its gradient is one product more in the node's backward pass. Like any output of a
shared node, it is backpropagated together with the loss (added to it, as usual), or the first
of two separate backward passes keeps the graph (``retain_graph=True``); once the node's
backward pass has run, :func:`~l0.compute_l0_penalty` builds a new penalty node.

The samples are the unfused ones: gates drawing from the same generator get their noise in
module order from one draw (torch's CPU generators produce the same stream in one draw as in
several), so a model whose gates run in module order — a ``Sequential``, the usual layer stack —
trains as without fusing, up to the last bit (torch's vectorised and scalar elementwise kernels
round differently, and a gate's place in the concatenation decides which it meets). Gates with
their own generators are drawn per generator; gates of different dtypes or devices are sampled
per dtype and device.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .. import _kernels as K
from ._penalty_node import expected_open, one_node_coefficients, open_gradient, open_value, per_gate
from .gates import HardConcrete

__all__ = ["FusedGates", "fuse_gates"]


def fuse_gates(model: nn.Module) -> FusedGates:
    """Sample every Hard Concrete gate of ``model`` as one tensor in each training forward pass.

    Parameters
    ----------
    model : torch.nn.Module
        A model holding gates (gated layers, :func:`l0.l0_gate` parametrizations, selection
        gates, bare :class:`~l0.nn.gates.HardConcrete` modules). The gates found now are fused; call
        :meth:`FusedGates.remove` (or fuse again after removing) when the model changes.

    Returns
    -------
    FusedGates
        The handle: :meth:`~FusedGates.remove` undoes the fusing.

    Raises
    ------
    TypeError
        If ``model`` is not a module.
    ValueError
        If ``model`` holds no gate, or one of its gates is already fused by another handle.

    Notes
    -----
    The sample is drawn when ``model`` itself is called (a forward pre-hook). A gate called
    outside ``model``'s forward pass (a submodule called alone, a gated parameter read
    afterwards) samples on its own as before, and a gate used twice in one forward pass gets the
    same sample both times. Gates in eval mode keep their test-time values.
    :func:`l0.compute_l0_penalty` of the model after its forward pass is an output of the
    sample's autograd node: add it to the loss, or pass ``retain_graph=True`` to the first of
    two separate backward passes (either one frees the node they share). That needs one draw to
    cover every fused gate (all share a generator, dtype and device); gates with their own
    generators are drawn per generator and the penalty gets its own node, as without fusing.

    Examples
    --------
    >>> import torch
    >>> from l0 import L0Linear, compute_l0_penalty
    >>> model = torch.nn.Sequential(L0Linear(8, 4, structure="input"), torch.nn.ReLU(),
    ...                             L0Linear(4, 2, structure="input"))
    >>> fused = fuse_gates(model)
    >>> model(torch.ones(3, 8)).shape
    torch.Size([3, 2])
    >>> round(compute_l0_penalty(model).item(), 2)
    30.73
    >>> fused.remove()
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module; got {type(model).__name__}.")
    return FusedGates(model)


class FusedGates:
    """Handle of a model whose gates are sampled as one tensor (see :func:`fuse_gates`).

    Attributes
    ----------
    gates : tuple of HardConcrete
        The fused gate modules, in module order.

    Examples
    --------
    >>> import torch
    >>> from l0 import L0Linear
    >>> model = torch.nn.Sequential(L0Linear(4, 3), L0Linear(3, 2, structure="output"))
    >>> handle = fuse_gates(model)
    >>> handle
    FusedGates(2 gate modules, 14 gates)
    >>> handle.gates[1] is model[1].output_gates
    True
    >>> handle.remove()
    """

    def __init__(self, model: nn.Module) -> None:
        named = [(name, m) for name, m in model.named_modules() if isinstance(m, HardConcrete)]
        if not named:
            raise ValueError("`model` must hold at least one HardConcrete gate to fuse; got none.")
        for name, gate in named:
            if gate._fused_by is not None:
                raise ValueError(
                    f"`model` must not hold gates fused by another fuse_gates() call; got "
                    f"{name or 'the model'!r} already fused (call .remove() on that handle first)."
                )
        self.gates: tuple[HardConcrete, ...] = tuple(m for _, m in named)
        self._model = model
        for gate in self.gates:
            gate._fused_by = self
        self._hooks = [
            model.register_forward_pre_hook(self._before_forward),
            model.register_forward_hook(self._after_forward, always_call=True),
        ]
        self._sampled: list[HardConcrete] = []
        self._draw: _Draw | None = None
        self._plan: _Plan | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> FusedGates | None:
        # copying the whole model (its hooks lead here): the copy is fused by a copy of this
        # handle; copying a part alone (a gate leads here): the copied gate is not fused
        model = memo.get(id(self._model))
        if model is None:
            return None
        new = object.__new__(FusedGates)
        memo[id(self)] = new
        new._model = model
        new.gates = tuple(copy.deepcopy(gate, memo) for gate in self.gates)
        new._hooks = copy.deepcopy(self._hooks, memo)
        new._sampled = []
        new._draw = None
        new._plan = None
        return new

    def remove(self) -> None:
        """Undo the fusing: every gate samples on its own again."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self._clear()
        self._draw = self._plan = None
        for gate in self.gates:
            if gate._fused_by is self:
                gate._fused_by = None

    def sample(self) -> None:
        """Draw this step's sample of every gate in training mode (the pre-hook calls it)."""
        self._clear()
        self._draw = None
        plan = self._current_plan()
        for group in plan.groups:
            draw = _Draw(plan, group) if group.coefficients is not None else None
            out = _FusedSample.apply(
                torch.rand(group.numel, generator=group.generator, device=group.device,
                           dtype=group.dtype),
                group.temperature, group.low, group.high, group, draw, *group.logits)
            for gate, sample in zip(group.gates, out):
                gate.__dict__["_fused_sample"] = sample
            self._sampled.extend(group.gates)
            if draw is not None:
                draw.penalty = out[-1]
                self._draw = draw

    def penalty(self) -> Tensor:
        """The expected L0 penalty of the fused gates — :func:`l0.compute_l0_penalty` of the
        model. After a training forward pass it is an output of that pass's sample node (its
        gradient one product more in the node's backward pass); otherwise, or when a logit or a
        setting changed since, the sample was drawn without gradients and they are wanted now,
        or the node's backward pass has run, it is computed anew."""
        sampled = self._sampled_penalty()
        if sampled is not None:
            return sampled
        return expected_open([gate._penalty_term() for gate in self.gates])

    def _sampled_penalty(self) -> Tensor | None:
        draw = self._draw
        if draw is None or draw.consumed:
            return None
        if (draw.with_grad < torch.is_grad_enabled() or draw.plan.signature != self._signature()
                or any(la._version != v for la, v in zip(draw.group.logits, draw.versions))):
            return None
        return draw.penalty

    def _signature(self) -> tuple[Any, ...]:
        # ids are safe: the plan holds the logits and generators, so nothing else can take
        # their ids; dtype, device and shape too, since .to() changes a parameter in place
        return tuple((g.training, id(g.qz_logits), g.qz_logits.dtype, g.qz_logits.device,
                      g.qz_logits.shape, id(g.generator), g.temperature, g.gamma, g.zeta, g.cost)
                     for g in self.gates)

    def _current_plan(self) -> _Plan:
        signature = self._signature()
        if self._plan is None or self._plan.signature != signature:
            self._plan = _Plan(self.gates, signature)
        return self._plan

    def _clear(self) -> None:
        for gate in self._sampled:
            gate.__dict__["_fused_sample"] = None
        self._sampled = []

    def _before_forward(self, module: nn.Module, args: Any) -> None:
        self.sample()

    def _after_forward(self, module: nn.Module, args: Any, output: Any) -> None:
        self._clear()

    def __repr__(self) -> str:
        count = sum(g.qz_logits.numel() for g in self.gates)
        return f"FusedGates({len(self.gates)} gate modules, {count} gates)"


class _Group:
    """Gates drawn together — one dtype, device and generator — and what their fused sample
    needs: sizes, shapes, the Hard Concrete settings (numbers, or per-gate vectors when the
    gates' settings differ) and, when the group is every fused gate, the penalty coefficients."""

    def __init__(self, gates: list[HardConcrete], with_penalty: bool) -> None:
        first = gates[0].qz_logits
        self.gates = tuple(gates)
        self.logits = tuple(g.qz_logits for g in gates)
        self.generators = tuple(g.generator for g in gates)  # held: their ids stay unique
        self.sizes = tuple(la.numel() for la in self.logits)
        self.shapes = tuple(la.shape for la in self.logits)
        self.numel = sum(self.sizes)
        self.generator, self.dtype, self.device = gates[0].generator, first.dtype, first.device
        settings = tuple((g.temperature, g.gamma, g.zeta) for g in gates)
        if all(s == settings[0] for s in settings):
            self.temperature, self.low, self.high = settings[0]
        else:  # per-gate values repeated over each tensor's gates
            self.temperature, self.low, self.high = per_gate(
                self.sizes, settings, first.dtype, first.device)
        self.coefficients = (one_node_coefficients([g._penalty_term() for g in gates])
                             if with_penalty else None)


class _Draw:
    """One fused sample of a group that covers every fused gate: its penalty output, and what
    decides whether :meth:`FusedGates.penalty` may hand it out."""

    def __init__(self, plan: _Plan, group: _Group) -> None:
        self.plan, self.group = plan, group
        self.versions = tuple(la._version for la in group.logits)
        self.with_grad = torch.is_grad_enabled()
        self.consumed = False  # set by the backward pass, which frees the node
        self.penalty: Tensor | None = None


class _Plan:
    """How one step samples: the gates in training mode grouped into :class:`_Group` s, for one
    signature (training flags, logits, settings and costs of every fused gate)."""

    def __init__(self, gates: tuple[HardConcrete, ...], signature: tuple[Any, ...]) -> None:
        self.signature = signature
        groups: dict[tuple[Any, ...], list[HardConcrete]] = {}
        for gate in gates:
            if gate.training:
                logits = gate.qz_logits
                groups.setdefault((logits.dtype, logits.device, id(gate.generator)), []).append(gate)
        # the penalty pieces only when one draw covers every fused gate
        self.groups = [_Group(group, with_penalty=len(group) == len(gates))
                       for group in groups.values()]


class _FusedSample(torch.autograd.Function):
    """Hard Concrete samples of several logit tensors as one autograd node: the logits are
    concatenated and clamped once, sampled with their derivative in one pass, and split back;
    backward is one product and the clamp's mask over the concatenated gradient.

    With a ``draw`` (the group is every fused gate) the node also outputs their L0 penalty
    ``sum cost * P(z != 0)`` from the same clamped logits: its gradient joins the samples' in
    the same backward pass (one product more), instead of a second node concatenating the logits
    again and a second gradient accumulated into every logit tensor.
    """

    @staticmethod
    def forward(ctx, noise: Tensor, temperature: float | Tensor, low: float | Tensor,  # type: ignore[override]
                high: float | Tensor, group: _Group, draw: _Draw | None,
                *logits: Tensor) -> tuple[Tensor, ...]:
        ctx.set_materialize_grads(False)
        flat = K.clamp_logits(torch.cat([la.reshape(-1) for la in logits]) if len(logits) > 1
                        else logits[0].reshape(-1))
        gate, slope = K.sample_with_gradient(flat, noise, temperature, low, high, clamp=False)
        samples = tuple(part.view(shape) for part, shape in zip(gate.split(group.sizes),
                                                                 group.shapes))
        ctx.group, ctx.draw = group, draw
        if draw is None:  # the clamped logits serve the clamp's gradient (K.clamp_gradient)
            ctx.save_for_backward(flat, slope)
            return samples
        p, value = open_value(flat, *group.coefficients, clamp=False)
        ctx.save_for_backward(flat, slope, p)
        return samples + (value,)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        group, draw = ctx.group, ctx.draw
        flat, slope, *p = ctx.saved_tensors
        if draw is not None:
            draw.consumed = True
        sizes = group.sizes
        parts = grads[:len(sizes)]
        grad = None
        if any(g is not None for g in parts):  # a gate unused in the pass has no gradient
            grad = (parts[0].reshape(-1) * slope if len(parts) == 1 else torch.cat(
                [g.reshape(-1) if g is not None else slope.new_zeros(n)
                 for g, n in zip(parts, sizes)]).mul_(slope))
        if p and grads[-1] is not None:  # the penalty's gradient
            penalty = open_gradient(p[0], group.coefficients[1], grads[-1])
            grad = penalty if grad is None else grad.add_(penalty)
        if grad is None:
            return (None,) * (6 + len(sizes))
        grad = K.clamp_gradient(grad, flat)
        return (None,) * 6 + tuple(part.view(shape)
                                   for part, shape in zip(grad.split(sizes), group.shapes))
