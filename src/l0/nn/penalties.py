"""Penalties and sparsity statistics over whole models.

The L0 penalty is the sum of :meth:`HardConcrete.get_penalty` over *every* gate module in the
model, each counted once, wherever it lives (inside a layer, standalone, nested). The L2 penalty
squares the model's weights and never the gate logits.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._validation import check_real
from ._penalty_node import expected_open
from .gates import HardConcrete
from .sites import gate_sites

__all__ = [
    "compute_l0_penalty",
    "compute_l2_penalty",
    "compute_l0l2_penalty",
    "get_sparsity_stats",
    "get_active_parameter_count",
    "PenaltyTracker",
]


def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module; got {type(model).__name__}.")
    return model


def _zero(model: nn.Module) -> Tensor:
    param = next(model.parameters(), None)
    return torch.zeros(()) if param is None else param.new_zeros(())


def compute_l0_penalty(model: nn.Module) -> Tensor:
    """Expected number of non-zero parameters: every gate in ``model``, counted once.

    Structured gates count the parameters they cover (see :class:`~l0.nn.gates.HardConcrete`
    ``cost``). Differentiable. For a model fused by :func:`l0.fuse_gates`, after a training
    forward pass this is an output of that pass's sample node (see
    :meth:`l0.FusedGates.penalty`): add it to the loss, or keep the graph for a second backward
    pass (``retain_graph=True``).

    Examples
    --------
    >>> from l0 import L0Linear
    >>> round(compute_l0_penalty(L0Linear(10, 10, init_sparsity=0.5)).item(), 2)
    76.83
    """
    _check_model(model)
    gates = [m for m in model.modules() if isinstance(m, HardConcrete)]
    if not gates:
        return _zero(model)
    fused = gates[0]._fused_by
    if fused is not None and len(fused.gates) == len(gates) and all(
            a is b for a, b in zip(fused.gates, gates)):  # its sample may have computed it
        return fused.penalty()
    return expected_open([m._penalty_term() for m in gates])


def _gate_parameter_ids(model: nn.Module) -> set[int]:
    return {
        id(p) for m in model.modules() if isinstance(m, HardConcrete) for p in m.parameters()
    }


def _tensor_name(name: str) -> str:
    """``"fc.weight"`` → ``"weight"``; a parametrized ``"fc.parametrizations.weight.original"``
    (e.g. by :func:`l0.l0_gate`) → ``"weight"`` too."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[-1] == "original" and parts[-3] == "parametrizations":
        return parts[-2]
    return parts[-1]


def compute_l2_penalty(model: nn.Module) -> Tensor:
    """Sum of squares of every trainable parameter whose name contains ``"weight"``.

    For a parametrized tensor (:func:`l0.l0_gate`) the original (ungated) weight counts.

    Gate logits are never included (0.6.x squared ``weight_gates.qz_logits`` too).

    Examples
    --------
    >>> import torch
    >>> from l0 import L0Linear
    >>> layer = L0Linear(2, 1)
    >>> bool(compute_l2_penalty(layer) == (layer.weight ** 2).sum())
    True
    """
    _check_model(model)
    gate_ids = _gate_parameter_ids(model)
    total = _zero(model)
    for name, param in model.named_parameters():
        if param.requires_grad and "weight" in _tensor_name(name) and id(param) not in gate_ids:
            total = total + (param**2).sum()
    return total


def compute_l0l2_penalty(
    model: nn.Module, l0_lambda: float = 1e-3, l2_lambda: float = 1e-4
) -> Tensor:
    """``l0_lambda * compute_l0_penalty(model) + l2_lambda * compute_l2_penalty(model)``.

    Examples
    --------
    >>> from l0 import L0Linear
    >>> layer = L0Linear(4, 4)
    >>> expected = 1e-3 * compute_l0_penalty(layer) + 1e-4 * compute_l2_penalty(layer)
    >>> bool(compute_l0l2_penalty(layer) == expected)
    True
    """
    l0_lambda = check_real("l0_lambda", l0_lambda, low=0.0)
    l2_lambda = check_real("l2_lambda", l2_lambda, low=0.0)
    return l0_lambda * compute_l0_penalty(model) + l2_lambda * compute_l2_penalty(model)


def get_sparsity_stats(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Per gated layer and per standalone gate: ``sparsity``, ``active_params``, ``total_params``.

    ``sparsity`` is the expected fraction of closed gates, ``active_params`` the expected number
    of non-zero parameters (the L0 penalty), ``total_params`` the number of gated parameters
    (weights, plus biases where gated) or of gates for a standalone gate. Layers also report
    ``test_time_active``: the gated parameters whose test-time gate is non-zero (so at most
    ``total_params``; an ungated bias counts in neither).

    Examples
    --------
    >>> import torch
    >>> from l0 import L0Linear
    >>> stats = get_sparsity_stats(torch.nn.Sequential(L0Linear(4, 2)))
    >>> stats["0"]["total_params"]
    8
    """
    _check_model(model)
    stats: dict[str, dict[str, Any]] = {}
    inside_layers: set[int] = set()
    for name, site in gate_sites(model):
        if site.module is not site:
            continue  # a gated tensor's gate is reported as a gate of its own, below
        inside_layers.add(id(site.gate))
        stats[name] = {
            "sparsity": site.gate.get_sparsity(),
            "active_params": site.gate.get_penalty().item(),
            "total_params": int(round(site.gate.qz_logits.numel() * site.gate.cost)),
            # over the gated parameters, as total_params: an ungated bias counts in neither
            "test_time_active": site.count_parameters(gated_only=True)[0],
        }
    for name, module in model.named_modules():
        if isinstance(module, HardConcrete) and id(module) not in inside_layers:
            stats[name] = {
                "sparsity": module.get_sparsity(),
                "active_params": module.get_penalty().item(),
                "total_params": int(round(module.qz_logits.numel() * module.cost)),
            }
    return stats


def get_active_parameter_count(model: nn.Module) -> int:
    """Number of gated parameters of the L0 layers whose test-time gate is non-zero.

    Only gated parameters count, as in 0.6.x: plain layers and ungated biases do not (a bias
    counts when an output-unit or channel gate covers it). 0.6.x returned the rounded
    *expected* count; that is ``compute_l0_penalty``.

    Examples
    --------
    >>> from l0 import L0Linear
    >>> get_active_parameter_count(L0Linear(3, 2, init_sparsity=0.0))
    6
    """
    _check_model(model)
    return sum(site.count_parameters(gated_only=True)[0] for _, site in gate_sites(model)
               if site.module is site)


class PenaltyTracker:
    """Record named metrics during training; summarise, export or plot them.

    Examples
    --------
    >>> t = PenaltyTracker()
    >>> for v in (3.0, 1.0, 2.0):
    ...     t.log("l0", v)
    >>> t.get_stats("l0")["min"], t.get_history("l0")
    (1.0, [3.0, 1.0, 2.0])
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = defaultdict(list)

    def log(self, name: str, value: float | Tensor) -> None:
        """Append ``value`` (a number or a one-element tensor) to metric ``name``."""
        if isinstance(value, Tensor):
            value = value.detach().item()
        self.history[name].append(float(value))

    def get_history(self, name: str) -> list[float]:
        return list(self.history.get(name, []))

    def get_stats(self, name: str) -> dict[str, float]:
        """``mean``, ``std``, ``min``, ``max`` and ``last`` of a metric (empty dict if unknown)."""
        values = self.history.get(name, [])
        if not values:
            return {}
        arr = np.asarray(values)
        return {
            "mean": float(arr.mean()),
            "std": float(arr.std()),
            "min": float(arr.min()),
            "max": float(arr.max()),
            "last": float(arr[-1]),
        }

    def clear(self) -> None:
        self.history.clear()

    def to_frame(self) -> Any:
        """The history as a pandas DataFrame (metrics of unequal length are NaN-padded)."""
        import pandas as pd

        return pd.DataFrame({k: pd.Series(v, dtype=float) for k, v in self.history.items()})

    def save_to_csv(self, filepath: str) -> None:
        self.to_frame().to_csv(filepath, index=False)

    def plot_history(self, metrics: list[str] | None = None, save_path: str | None = None) -> Any:
        """Plot metrics (needs the ``plot`` extra, matplotlib); returns the figure."""
        import matplotlib.pyplot as plt

        metrics = metrics or list(self.history)
        fig, axes = plt.subplots(len(metrics), 1, figsize=(8, 3 * len(metrics)), squeeze=False)
        for ax, metric in zip(axes[:, 0], metrics):
            ax.plot(self.history[metric])
            ax.set_title(metric)
            ax.set_xlabel("step")
            ax.grid(True)
        fig.tight_layout()
        if save_path:
            fig.savefig(save_path)
        return fig
