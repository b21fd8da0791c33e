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
from torch.nn.utils import parametrize

from .._validation import fail
from .layers import _GatedLayer
from .parametrize import L0Parametrization

__all__ = ["layer_costs", "gate_probabilities"]


def gate_probabilities(module: nn.Module) -> Tensor:
    """P(open) of the layer's gates, shaped to broadcast against its weight: (out, 1, ...) for
    output-unit or channel gates, (1, in, ...) for input-unit gates, the weight's shape for
    per-weight gates, a scalar 1 for an ungated layer."""
    if isinstance(module, _GatedLayer):
        return module._masks(module.gate.get_active_prob())[0]
    if parametrize.is_parametrized(module, "weight"):
        gated = [p for p in module.parametrizations.weight if isinstance(p, L0Parametrization)]
        if gated:
            return gated[0].broadcast(gated[0].gate.get_active_prob())
    return torch.ones((), dtype=module.weight.dtype, device=module.weight.device)


def _weight_probabilities(module: nn.Module) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """(P(open), test-time open) for the weight, and the same for the bias (None if ungated)."""
    if isinstance(module, _GatedLayer):
        gate = module.gate
        w_prob, b_prob = module._masks(gate.get_active_prob())
        w_open, b_open = module._masks((gate.deterministic() != 0).to(w_prob.dtype))
        shape = module.weight.shape
        return (w_prob.expand(shape), w_open.expand(shape),
                None if b_prob is None else b_prob, None if b_open is None else b_open)
    weight = module.weight
    ones = torch.ones_like(weight)
    if parametrize.is_parametrized(module, "weight"):
        gated = [p for p in module.parametrizations.weight if isinstance(p, L0Parametrization)]
        if gated:
            opened = gated[0].broadcast((gated[0].gate.deterministic() != 0).to(weight.dtype))
            return gate_probabilities(module) * ones, opened * ones, None, None
    return ones, ones, None, None


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
    if not isinstance(example_input, Tensor):
        raise fail("example_input", "a tensor the model accepts", example_input, TypeError)
    gated = [name for name, m in model.named_modules() if isinstance(m, _GatedLayer)]
    layers = {name: m for name, m in model.named_modules()
              if isinstance(m, (_GatedLayer, nn.Linear, nn.Conv2d))
              and not any(name.startswith(g + ".") for g in gated if g)}
    positions: dict[str, int] = {}

    def record(name: str, module: nn.Module, out: Tensor) -> None:
        # output positions per example: a linear layer's leading dims, a conv's H x W; an
        # unbatched input (a vector into a linear layer, C x H x W into a convolution) is one
        # example
        unbatched = out.dim() == (3 if module.weight.dim() == 4 else 1)
        example = out if unbatched else out[0]
        positions[name] = int(example.numel()) // int(module.weight.shape[0])

    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: record(name, mod, out))
             for name, m in layers.items()]
    was_training = model.training
    model.eval()
    try:
        model(example_input)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    report: dict[str, dict[str, Any]] = {}
    total = dict.fromkeys(("params_total", "params_expected", "params_active", "macs_total",
                           "macs_expected", "macs_active"), 0)
    for name, m in layers.items():
        if name not in positions:
            continue  # not reached by the forward pass
        w_prob, w_open, b_prob, b_open = _weight_probabilities(m)
        bias = m.bias
        n_bias = 0 if bias is None else bias.numel()
        row = {
            "params_total": m.weight.numel() + n_bias,
            "params_expected": float(w_prob.sum()) + (
                n_bias if b_prob is None else float(b_prob.sum())),
            "params_active": int(w_open.sum()) + (n_bias if b_open is None else int(b_open.sum())),
            "macs_total": m.weight.numel() * positions[name],
            "macs_expected": float(w_prob.sum()) * positions[name],
            "macs_active": int(w_open.sum()) * positions[name],
        }
        report[name] = row
        for key in total:
            total[key] += row[key]
    report["total"] = total
    return report
