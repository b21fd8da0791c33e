"""The shared base of the gated layers: a :class:`~l0.nn.sites.GateSite` that is its own module.

:class:`GatedLayer` holds the layer's one :class:`~l0.nn.gates.HardConcrete` and implements the
penalties, counts, pruning and plain form every gated layer shares; a layer class adds its
parameters, ``masks`` and ``to_plain``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .._validation import check_int, check_real
from .gates import HardConcrete
from .sites import GateSite

__all__ = ["GatedLayer", "pair"]


def pair(name: str, value: int | tuple[int, int], low: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each >= ``low`` (1 for sizes, strides and dilations, 0 for
    padding): geometry is checked here, not by the convolution kernel at forward."""
    if isinstance(value, tuple) and len(value) == 2:
        return (check_int(name, value[0], low=low), check_int(name, value[1], low=low))
    v = check_int(name, value, low=low)
    return (v, v)


class GatedLayer(GateSite, nn.Module):
    """Shared behaviour of the gated layers: a :class:`~l0.nn.sites.GateSite` whose module is
    itself. Subclasses set ``_gate_name``, ``unit_dim`` and implement ``masks``/``to_plain``."""

    _gate_name: str
    use_l2: bool

    @property
    def gate(self) -> HardConcrete:
        """The layer's :class:`~l0.nn.gates.HardConcrete` (also reachable by its 0.6.x name)."""
        return getattr(self, self._gate_name)

    @property
    def module(self) -> nn.Module:
        return self

    @property
    def gated_weight(self) -> Tensor:
        return self.weight

    @property
    def gated_bias(self) -> Tensor | None:
        return self.bias

    def _make_gate(self, shape: tuple[int, ...], temperature: float, init_sparsity: float,
                   cost: float, kwargs: dict[str, Any]) -> HardConcrete:
        init_sparsity = check_real("init_sparsity", init_sparsity, low=0.0, high=1.0)
        return HardConcrete(*shape, temperature=temperature, init_mean=1.0 - init_sparsity,
                            cost=cost, **kwargs)

    def gated_parameters(self) -> tuple[Tensor, Tensor | None]:
        """Weight and bias multiplied by the current gates (sampled in training mode)."""
        weight_mask, bias_mask = self.masks(self.gate())
        weight = self.weight * weight_mask
        bias = self.bias
        if bias is not None and bias_mask is not None:
            bias = bias * bias_mask
        return weight, bias

    def get_l0_penalty(self) -> Tensor:
        """Expected number of non-zero parameters (differentiable)."""
        return self.gate.get_penalty()

    def get_l2_penalty(self) -> Tensor:
        """Sum of squared weights if the layer was built with ``use_l2=True``, else 0."""
        if not self.use_l2:
            return self.weight.new_zeros(())
        return (self.weight**2).sum()

    def get_sparsity(self) -> float:
        """Expected fraction of closed gates."""
        return self.gate.get_sparsity()

    @torch.no_grad()
    def _into(self, plain: nn.Module) -> nn.Module:
        """``plain`` on this layer's device and dtype, holding the test-time parameters."""
        weight, bias = self.test_time_parameters()
        plain = plain.to(device=weight.device, dtype=weight.dtype)
        plain.weight.copy_(weight)
        if bias is not None:
            plain.bias.copy_(bias)
        return plain

    @torch.no_grad()
    def prune_(self, threshold: float = 0.05) -> GatedLayer:
        """Zero (in place) every parameter whose gate has ``P(z != 0) <= threshold``."""
        check_real("threshold", threshold, low=0.0, high=1.0)
        keep = (self.gate.get_active_prob() > threshold).to(self.weight.dtype)
        weight_mask, bias_mask = self.masks(keep)
        self.weight.mul_(weight_mask)
        if self.bias is not None and bias_mask is not None:
            self.bias.mul_(bias_mask)
        return self
