"""Gate sites: the one protocol through which every consumer sees what a gate masks.

A *gate site* is a module whose weight (and perhaps bias) Hard Concrete gates multiply: the gated
layers, and every tensor gated by :func:`l0.l0_gate`. A site says

* ``gate`` — its :class:`~l0.nn.gates.HardConcrete`;
* ``masks(values)`` — one value per gate → ``(weight_mask, bias_mask)``, each broadcasting
  against the weight and the bias (``bias_mask`` is None when the bias is not gated);
* ``unit_dim`` — which units of the weight one gate covers: ``None`` one entry, ``0`` one output
  unit or channel (a row, with its bias), ``1`` one input unit (a column) — descriptive: the
  consumers read the masks, whose shapes say the same;
* ``gated_weight``, ``gated_bias`` — the weight and bias before the gates (reading them draws
  no gates);
* ``module`` — the module that computes with the gated weight (hooks see its output);
* ``dense`` — whether that module is a dense linear map of its inputs (a linear layer or an
  ungrouped convolution, weight ``(out, in, *kernel)``), which export and the MAC count follow;
* ``to_plain()`` — a plain torch module with the test-time gates baked in (a copy).

Penalties, statistics, :func:`~l0.nn.costs.layer_costs`, :class:`~l0.nn.compute.ComputeCost`
and :func:`~l0.nn.export.export` read nothing else, as every consumer of
``torch.nn.utils.prune`` reads ``weight_mask``: a new gate structure is one subclass of
:class:`GateSite` (and, for a parametrization, a ``site(module, name)`` method that returns one).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .gates import HardConcrete

__all__ = ["GateSite", "gate_sites", "site_of", "plain_tensor", "weight_and_bias",
           "open_probabilities"]


class GateSite:
    """The gate-site protocol (see the module docstring); subclasses implement the abstract
    members, the counts and masks below follow from them."""

    unit_dim: int | None = None
    dense: bool = True
    tensor_name: str = "weight"
    """The name of the gated tensor on :attr:`module`."""

    @property
    def gate(self) -> HardConcrete:
        raise NotImplementedError

    @property
    def module(self) -> nn.Module:
        raise NotImplementedError

    @property
    def gated_weight(self) -> Tensor:
        """The weight before the gates multiply it."""
        raise NotImplementedError

    @property
    def gated_bias(self) -> Tensor | None:
        """The bias before the gates (if any) multiply it."""
        raise NotImplementedError

    def masks(self, values: Tensor) -> tuple[Tensor, Tensor | None]:
        """One value per gate, broadcast to the weight and (if gated) the bias."""
        raise NotImplementedError

    def to_plain(self) -> nn.Module:
        """A plain torch module computing what the site computes in eval mode."""
        raise NotImplementedError

    @torch.no_grad()
    def test_time_parameters(self) -> tuple[Tensor, Tensor | None]:
        """The weight and bias with the test-time gates baked in (detached copies)."""
        weight_mask, bias_mask = self.test_time_masks()
        bias = self.gated_bias
        if bias is not None and bias_mask is not None:
            bias = bias * bias_mask
        return (self.gated_weight * weight_mask).detach(), None if bias is None else bias.detach()

    @torch.no_grad()
    def test_time_masks(self) -> tuple[Tensor, Tensor | None]:
        """:meth:`masks` of the test-time gates."""
        return self.masks(self.gate.deterministic())

    @torch.no_grad()
    def count_parameters(self, gated_only: bool = False) -> tuple[int, int]:
        """``(active, total)`` weight and bias entries; active = test-time gate non-zero.

        With ``gated_only`` an ungated bias is left out of both counts."""
        weight, bias = self.gated_weight, self.gated_bias
        weight_mask, bias_mask = self.test_time_masks()
        active = int((weight_mask.expand_as(weight) != 0).sum())
        total = weight.numel()
        if bias is not None and not (gated_only and bias_mask is None):
            total += bias.numel()
            if bias_mask is None:
                active += bias.numel()
            else:
                active += int((bias_mask.expand_as(bias) != 0).sum())
        return active, total


def _parametrized_sites(module: nn.Module) -> Iterator[GateSite]:
    """The sites of ``module``'s parametrized tensors (parametrizations with ``site()``)."""
    if not parametrize.is_parametrized(module):
        return
    for name, chain in module.parametrizations.items():
        for p in chain:
            if hasattr(p, "site"):
                yield p.site(module, name)


def gate_sites(model: nn.Module) -> list[tuple[str, GateSite]]:
    """Every gate site of ``model`` with the name of its module, in module order (a gated layer
    nested inside another gated layer's module is its own site; the gate modules themselves
    are not sites)."""
    found: list[tuple[str, GateSite]] = []
    for name, module in model.named_modules():
        if isinstance(module, GateSite):
            found.append((name, module))
        found.extend((name, site) for site in _parametrized_sites(module))
    return found


def site_of(module: nn.Module) -> GateSite | None:
    """The site that gates ``module``'s weight: the module itself, the site of a gated
    ``weight`` parametrization, or None."""
    if isinstance(module, GateSite):
        return module
    for site in _parametrized_sites(module):
        if site.tensor_name == "weight":
            return site
    return None


def plain_tensor(module: nn.Module, name: str) -> Tensor | None:
    """``module.<name>`` before any parametrization (reading it draws no gates), or None."""
    if parametrize.is_parametrized(module, name):
        original = getattr(module.parametrizations[name], "original", None)
        if original is not None:  # one original (not weight_norm's original0/original1)
            return original
    return getattr(module, name, None)


def weight_and_bias(module: nn.Module) -> tuple[Tensor, Tensor | None]:
    """The weight and bias of a layer before its gates (a site's ``gated_weight`` and
    ``gated_bias``, a plain layer's own): reading them draws no gates."""
    site = site_of(module)
    if site is not None:
        return site.gated_weight, site.gated_bias
    return plain_tensor(module, "weight"), plain_tensor(module, "bias")


def open_probabilities(module: nn.Module) -> Tensor:
    """P(open) of the gates on ``module``'s weight, shaped to broadcast against it: (out, 1, ...)
    for output-unit or channel gates, (1, in, ...) for input-unit gates, the weight's shape for
    per-weight gates, a scalar 1 for an ungated module (differentiable)."""
    site = site_of(module)
    if site is None:
        weight = plain_tensor(module, "weight")
        return torch.ones((), dtype=weight.dtype, device=weight.device)
    return site.masks(site.gate.get_active_prob())[0]

