"""Parameters and FLOPs per layer: dense, expected under the gates, and open at test time.

``layer_costs(model, example_input)`` runs one eval-mode forward pass (to learn each layer's
output size) and reports, for every linear or convolution layer — L0 layers, layers gated by
:func:`l0.l0_gate` and plain ones — the number of parameters (weights and biases) and of
multiply-accumulates per example (a weight entry costs one MAC per output position; biases are
not counted as MACs), each three ways: ``total`` (dense), ``expected`` (every weight weighted by
the probability that its gate is non-zero) and ``active`` (gates open at test time).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .._validation import fail
from ._chain import output_positions
from .sites import GateSite, site_of, weight_and_bias

__all__ = ["layer_costs"]

_TOTALS = ("params_total", "params_expected", "params_active", "macs_total", "macs_expected",
           "macs_active")


def _weight_probabilities(module: nn.Module) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """(P(open), test-time open) for the weight, and the same for the bias (None if ungated)."""
    site = site_of(module)
    if site is None:
        ones = torch.ones_like(weight_and_bias(module)[0])
        return ones, ones, None, None
    ones = torch.ones_like(site.gated_weight)
    w_prob, b_prob = site.masks(site.gate.get_active_prob())
    w_open, b_open = site.masks((site.gate.deterministic() != 0).to(w_prob.dtype))
    return w_prob * ones, w_open * ones, b_prob, b_open


def _layers(model: nn.Module) -> dict[str, nn.Module]:
    """The linear and convolution layers of ``model``, gated or not (not the plain modules
    inside a gated layer, such as a depthwise layer's convolution)."""
    inside = [name for name, m in model.named_modules() if isinstance(m, GateSite) and name]
    return {name: m for name, m in model.named_modules()
            if isinstance(m, (GateSite, nn.Linear, nn.Conv2d))
            and not any(name.startswith(g + ".") for g in inside)}


def _layer_row(module: nn.Module, positions: int) -> dict[str, Any]:
    w_prob, w_open, b_prob, b_open = _weight_probabilities(module)
    n_weights = w_prob.numel()  # not module.weight: a gated tensor would draw its gates
    bias = weight_and_bias(module)[1]
    n_bias = 0 if bias is None else bias.numel()
    return {
        "params_total": n_weights + n_bias,
        "params_expected": float(w_prob.sum()) + (
            n_bias if b_prob is None else float(b_prob.sum())),
        "params_active": int(w_open.sum()) + (n_bias if b_open is None else int(b_open.sum())),
        "macs_total": n_weights * positions,
        "macs_expected": float(w_prob.sum()) * positions,
        "macs_active": int(w_open.sum()) * positions,
    }


@torch.no_grad()
def layer_costs(model: nn.Module, example_input: Tensor) -> dict[str, dict[str, Any]]:
    """Per-layer parameter and MAC counts: dense, expected under the gates, open at test time.

    Parameters
    ----------
    model : torch.nn.Module
    example_input : Tensor
        One batch the model accepts (its batch size does not matter: counts are per example),
        or one unbatched example (a vector for linear layers, C × H × W for convolutions).

    Returns
    -------
    dict
        ``{layer name: {"params_total", "params_expected", "params_active", "macs_total",
        "macs_expected", "macs_active"}}``, plus a ``"total"`` entry summing them.

    Examples
    --------
    >>> import torch
    >>> from l0 import L0Linear
    >>> model = torch.nn.Sequential(L0Linear(4, 3, structure="input"))
    >>> with torch.no_grad():
    ...     model[0].input_gates.qz_logits[:2] = -10.0   # close 2 of 4 inputs
    >>> costs = layer_costs(model, torch.zeros(1, 4))
    >>> costs["0"]["macs_total"], costs["0"]["macs_active"], costs["0"]["params_active"]
    (12, 6, 9)
    """
    if not isinstance(model, nn.Module):
        raise fail("model", "a torch.nn.Module", model, TypeError)
    layers = _layers(model)
    positions = output_positions(model, layers, example_input)
    report: dict[str, dict[str, Any]] = {}
    total = dict.fromkeys(_TOTALS, 0)
    for name, m in layers.items():
        if name not in positions:
            continue  # not reached by the forward pass
        report[name] = row = _layer_row(m, positions[name])
        for key in total:
            total[key] += row[key]
    report["total"] = total
    return report
