"""The chains that export and the MAC count follow: a model as a flat sequence of modules, the
per-unit modules allowed between two layers, and what counts as a layer."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._validation import fail
from .layers import SparseMLP
from .sites import GateSite, weight_and_bias

__all__ = ["PER_UNIT", "sequence", "is_layer", "is_dense_layer", "output_positions"]

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


def output_positions(model: nn.Module, layers: dict[str, nn.Module], example_input: Tensor
                     ) -> dict[str, int]:
    """Output positions per example of each of ``layers`` (a linear layer's leading dims, a
    convolution's H × W) that one eval-mode, gradient-free forward pass of ``example_input``
    reaches. An unbatched input (a vector into a linear layer, C × H × W into a convolution)
    is one example."""
    if not isinstance(example_input, Tensor):
        raise fail("example_input", "a tensor the model accepts", example_input, TypeError)
    if example_input.dim() == 0 or example_input.numel() == 0:
        raise fail("example_input", "a batch of at least one example (or one example)",
                   f"shape {tuple(example_input.shape)}")
    positions: dict[str, int] = {}

    shapes = {name: weight_and_bias(m)[0].shape for name, m in layers.items()}

    def record(name: str, module: nn.Module, out: Tensor) -> None:
        n_out = int(shapes[name][0])
        unbatched = out.dim() == (3 if len(shapes[name]) == 4 else 1)
        positions[name] = int((out if unbatched else out[0]).numel()) // n_out

    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: record(name, mod, out))
             for name, m in layers.items()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input)
    except RuntimeError as exc:  # a shape the model does not take: say which input, not where
        raise ValueError(f"`example_input` must be an input the model accepts; got shape "
                         f"{tuple(example_input.shape)}, on which it fails: {exc}") from exc
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return positions
