"""The chains that export and the MAC count follow: a model as a flat sequence of modules, the
per-unit modules allowed between two layers, and what counts as a layer."""

from __future__ import annotations

from torch import nn

from .._validation import fail
from .layers import SparseMLP
from .sites import GateSite

__all__ = ["PER_UNIT", "sequence", "is_layer", "is_dense_layer"]

# modules that act on each unit / channel separately and map a constant to a constant
PER_UNIT = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.BatchNorm1d, nn.BatchNorm2d,
    nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten,
)


def sequence(model: nn.Module) -> list[nn.Module]:
    """``model`` as a flat list of modules (nested sequences unrolled; a SparseMLP as its
    flatten, layers and ReLUs; any other module as itself)."""
    if isinstance(model, SparseMLP):
        return [nn.Flatten(), model.fc1, nn.ReLU(), model.fc2, nn.ReLU(), model.fc3]
    if isinstance(model, nn.Sequential):
        flat: list[nn.Module] = []
        for child in model:
            flat.extend(sequence(child) if isinstance(child, nn.Sequential) else [child])
        return flat
    if isinstance(model, nn.Module):
        return [model]
    raise fail("model", "an nn.Sequential, a SparseMLP or a layer", model, TypeError)


def is_layer(m: nn.Module) -> bool:
    """A linear or convolution layer (plain, :func:`l0.l0_gate`-gated, or a dense gate site)."""
    return isinstance(m, (nn.Linear, nn.Conv2d)) or (isinstance(m, GateSite) and m.dense)


def is_dense_layer(m: nn.Module) -> bool:
    """A plain linear layer or ungrouped convolution (what export shrinks)."""
    return isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1)
