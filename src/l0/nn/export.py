"""``export(model)``: a plain, physically smaller torch model with the closed units removed.

The gated layers (:class:`~l0.nn.layers.L0Linear`, :class:`~l0.nn.conv.L0Conv2d`,
:class:`~l0.nn.conv.L0DepthwiseConv2d`, and any tensor gated by :func:`l0.l0_gate`) become plain
``nn.Linear``/``nn.Conv2d`` layers with their test-time gates baked in. Then, between each pair of
consecutive layers (a *producer* and the next *consumer*, separated only by per-unit modules:
activations, dropout, batch norm, pooling, flatten), every unit or channel the consumer no longer
reads is cut from both, and every unit whose output is a constant (its weights all closed) is
cut after folding the constant into the consumer's bias. The result computes what the gated
model computes in eval mode, with fewer parameters and FLOPs.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ._chain import PER_UNIT, is_dense_layer, sequence
from .gates import HardConcrete
from .parametrize import remove_gates
from .sites import GateSite

__all__ = ["export"]

@torch.no_grad()
def _plain(module: nn.Module) -> nn.Module:
    """A plain copy of ``module`` with its test-time gates baked into the parameters."""
    if isinstance(module, GateSite):
        return module.to_plain()
    return remove_gates(copy.deepcopy(module))


def _refuse_hidden_gates(position: int, layer: nn.Module) -> None:
    """A gated layer nested inside another module (a residual block, say) cannot be baked or
    shrunk by following a sequence: refuse rather than return a model that still holds gates."""
    for name, sub in layer.named_modules():
        if isinstance(sub, (HardConcrete, GateSite)):
            where = f"{type(layer).__name__} at position {position}"
            raise TypeError(
                f"`model` must be a sequence of layers that export can shrink; the "
                f"{where} holds the gated module {name or type(sub).__name__!r} "
                f"({type(sub).__name__}) inside it. Export such blocks yourself, or bake their "
                "gates with remove_gates / the layers' test-time weights."
            )


@torch.no_grad()
def _constant_outputs(producer: nn.Module, between: list[nn.Module]) -> tuple[Tensor, Tensor]:
    """Which output units are constant (all weights zero) and the value the consumer then sees."""
    w = producer.weight
    constant = (w.reshape(w.shape[0], -1) == 0).all(dim=1)
    value = producer.bias.clone() if producer.bias is not None else w.new_zeros(w.shape[0])
    x = value.reshape(1, -1, 1, 1) if isinstance(producer, nn.Conv2d) else value.reshape(1, -1)
    for m in between:
        if isinstance(m, nn.Flatten) or isinstance(m, (nn.MaxPool2d, nn.AdaptiveAvgPool2d,
                                                         nn.AdaptiveMaxPool2d)):
            continue  # a constant map stays the same constant
        x = m(x)
    return constant, x.reshape(-1)


def _columns(consumer: nn.Module, n_units: int) -> tuple[Tensor, bool] | None:
    """The consumer's weight as (out, unit, positions per unit) and whether it pads its input
    (a padded convolution sees zeros, not a folded constant, at the border); None when it does
    not read ``n_units`` units one to one."""
    if isinstance(consumer, nn.Linear):
        if consumer.in_features % n_units:
            return None
        block = consumer.in_features // n_units  # flattened channels: H*W inputs per channel
        return consumer.weight.reshape(consumer.out_features, n_units, block), False
    if consumer.in_channels != n_units:
        return None
    columns = consumer.weight.transpose(0, 1).reshape(n_units, consumer.out_channels, -1)
    padding = consumer.padding
    padded = padding != "valid" if isinstance(padding, str) else any(p != 0 for p in padding)
    return columns.transpose(0, 1), padded  # (out, unit, kernel positions)


def _keep_outputs(producer: nn.Module, between: list[nn.Module], idx: Tensor) -> None:
    """Keep only the output units ``idx`` of ``producer`` and of the batch norms after it."""
    producer.weight = nn.Parameter(producer.weight[idx].clone())
    if producer.bias is not None:
        producer.bias = nn.Parameter(producer.bias[idx].clone())
    if isinstance(producer, nn.Linear):
        producer.out_features = len(idx)
    else:
        producer.out_channels = len(idx)
    for m in between:
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            for name in ("weight", "bias"):
                if getattr(m, name) is not None:
                    setattr(m, name, nn.Parameter(getattr(m, name)[idx].clone()))
            for name in ("running_mean", "running_var"):
                if getattr(m, name) is not None:
                    setattr(m, name, getattr(m, name)[idx].clone())
            m.num_features = len(idx)


def _keep_inputs(consumer: nn.Module, columns: Tensor, idx: Tensor) -> None:
    """Keep only the input units ``idx`` of ``consumer`` (``columns`` from :func:`_columns`)."""
    new = columns[:, idx, :]
    if isinstance(consumer, nn.Linear):
        consumer.weight = nn.Parameter(new.reshape(consumer.out_features, -1).clone())
        consumer.in_features = consumer.weight.shape[1]
    else:
        k = consumer.weight.shape[2:]
        consumer.weight = nn.Parameter(new.reshape(consumer.out_channels, len(idx), *k).clone())
        consumer.in_channels = len(idx)


@torch.no_grad()
def _shrink(producer: nn.Module, between: list[nn.Module], consumer: nn.Module) -> None:
    """Cut the units between ``producer`` and ``consumer`` that the consumer no longer reads, or
    whose output is a constant (folded into the consumer's bias first)."""
    found = _columns(consumer, producer.weight.shape[0])
    if found is None:
        return  # not a plain unit-to-input map: leave the pair alone
    columns, padded = found
    unread = (columns == 0).all(dim=(0, 2))
    constant, value = _constant_outputs(producer, between)
    foldable = constant & ((value == 0) | (not padded))
    drop = unread | foldable
    if drop.all():  # keep one unit: a layer (or a batch norm) with no units cannot run
        drop[0] = False
    if not drop.any():
        return
    fold = foldable & ~unread & (value != 0) & drop
    if fold.any():  # the constant's contribution moves into the consumer's bias
        contribution = (columns[:, fold, :].sum(dim=2) * value[fold]).sum(dim=1)
        if consumer.bias is None:
            consumer.bias = nn.Parameter(contribution.clone())
        else:
            consumer.bias.add_(contribution)
    idx = (~drop).nonzero().flatten()
    _keep_outputs(producer, between, idx)
    _keep_inputs(consumer, columns, idx)


def export(model: nn.Module) -> nn.Sequential:
    """A plain ``nn.Sequential`` equal to ``model`` in eval mode, with closed units removed.

    Parameters
    ----------
    model : nn.Sequential, SparseMLP or a single layer
        Gated layers (L0 layers or :func:`l0.l0_gate`) with per-unit modules between them.
        ``model`` itself is not modified.

    Returns
    -------
    nn.Sequential
        Only torch modules, in eval mode. Input and output sizes are those of ``model``; inner
        layers lose every unit or channel that is closed or no longer read.

    Raises
    ------
    TypeError
        If ``model`` is not a module, or holds gated layers inside a block that is not a plain
        sequence (a residual block, say), naming the block.

    Examples
    --------
    >>> import torch
    >>> from l0 import L0Linear
    >>> model = torch.nn.Sequential(L0Linear(4, 8), torch.nn.ReLU(),
    ...                             L0Linear(8, 2, structure="input"))
    >>> with torch.no_grad():
    ...     model[2].input_gates.qz_logits[:5] = -10.0   # close 5 of the 8 hidden units
    >>> small = export(model)
    >>> small[0], small[2]
    (Linear(in_features=4, out_features=3, bias=True), Linear(in_features=3, out_features=2, bias=True))
    >>> x = torch.randn(3, 4)
    >>> bool(torch.allclose(small(x), model.eval()(x), atol=1e-6))
    True
    """
    layers = [_plain(m).eval() for m in sequence(model)]
    for i, layer in enumerate(layers):
        _refuse_hidden_gates(i, layer)
    dense = [i for i, m in enumerate(layers) if is_dense_layer(m)]
    for a, b in zip(dense, dense[1:]):
        between = layers[a + 1:b]
        if all(isinstance(m, PER_UNIT) for m in between):
            _shrink(layers[a], between, layers[b])
    return nn.Sequential(*layers).eval()
