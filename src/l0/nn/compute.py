"""``ComputeCost``: the expected MACs and parameters of a gated network *after export*, differentiably.

A budget on compute is a budget on what :func:`l0.export` leaves: a unit (or channel) between two
layers survives when its producer still writes it (some weight of its row is open) and its
consumer still reads it (some weight of its column is open). With every gate open independently
with probability P(z ≠ 0), the expected number of live units at each interface is the sum of
``P(written) · P(read)`` — each side's probability from its own gates — and a layer's expected
MACs are its output positions × kernel area × E[live inputs] × E[live outputs] (the two
interfaces hold different gates, so the expectation factorises). The model's own inputs and
outputs always stay. Everything is a torch expression of the gate logits, so
``SparsityController(budget=macs, total=cost.dense_macs)`` can hold a budget in MACs::

    cost = ComputeCost(model, example_input)
    controller = SparsityController(0.17 * cost.dense_macs, cost.dense_macs, ...)
    loss = task_loss + controller.penalty(cost.expected_macs())
    ...
    controller.step(cost.expected_macs().detach())

Not modelled: a layer whose every input closes (export folds its then-constant outputs into the
next bias); such an event has probability Π(1 − p) over a whole layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._validation import fail
from ._chain import PER_UNIT, is_layer, output_positions, sequence
from .export import export
from .sites import open_probabilities, weight_and_bias

__all__ = ["ComputeCost"]


def _never_open(p: Tensor, dims: tuple[int, ...]) -> Tensor:
    """Π (1 − p) over ``dims`` (distinct, independent gates), in log space."""
    if not dims:
        return 1.0 - p
    top = 1.0 - torch.finfo(p.dtype).eps  # log1p(-1) would send an infinite gradient back
    return torch.exp(torch.log1p(-p.clamp(max=top)).sum(dim=dims))


def _written_and_read(p: Tensor, shape: torch.Size) -> tuple[Tensor, Tensor]:
    """P(output unit j has an open weight) and P(input unit i has an open weight), for gates of
    broadcast shape ``p`` on a weight of ``shape``: weights that share a gate are open together."""
    out_shared = p.dim() > 0 and p.shape[0] == shape[0] and p[0].numel() == 1
    in_shared = p.dim() > 1 and p.shape[0] == 1 and p.shape[1] == shape[1] and \
        p[0, 0].numel() == 1
    n_out, n_in = shape[0], shape[1]
    if p.dim() == 0:  # ungated: every unit written and read
        return p.expand(n_out), p.expand(n_in)
    if out_shared:  # one gate per output unit: it writes iff open; an input is read iff any is
        g = p.reshape(n_out)
        return g, (1.0 - _never_open(g, (0,))).expand(n_in)
    if in_shared:  # one gate per input unit
        g = p.reshape(n_in)
        return (1.0 - _never_open(g, (0,))).expand(n_out), g
    full = p.expand(shape)  # per weight: independent
    rest = tuple(range(2, full.dim()))
    pair = 1.0 - _never_open(full, rest) if rest else full  # (out, in): any kernel tap open
    return 1.0 - _never_open(pair, (1,)), 1.0 - _never_open(pair, (0,))


class ComputeCost:
    """Expected MACs and parameters per example of ``model`` after :func:`l0.export`.

    Parameters
    ----------
    model : nn.Sequential or SparseMLP
        Linear and convolution layers (L0 layers, :func:`l0.l0_gate`-gated or plain) with
        per-unit modules between them (activations, dropout, batch norm, pooling, flatten).
    example_input : Tensor
        One batch the model accepts (to learn each layer's output positions).

    Examples
    --------
    >>> import torch
    >>> from l0 import L0Linear
    >>> model = torch.nn.Sequential(L0Linear(4, 3), torch.nn.ReLU(),
    ...                             L0Linear(3, 2, structure="input"))
    >>> cost = ComputeCost(model, torch.zeros(1, 4))
    >>> cost.dense_macs, float(cost.expected_macs().detach()) < cost.dense_macs
    (18, True)
    """

    def __init__(self, model: nn.Module, example_input: Tensor) -> None:
        if not isinstance(model, nn.Module):
            raise fail("model", "a torch.nn.Module", model, TypeError)
        chain = sequence(model)
        self.layers = [m for m in chain if is_layer(m)]
        for position, m in enumerate(chain):
            if not (is_layer(m) or isinstance(m, PER_UNIT)):
                raise TypeError(f"`model` must be linear/convolution layers with per-unit "
                                f"modules between them; got {type(m).__name__} at position "
                                f"{position}.")
            if isinstance(m, nn.Conv2d) and m.groups != 1:
                raise TypeError(f"`model` holds a grouped convolution at position {position}; "
                                "ComputeCost counts dense convolutions only.")
        if not self.layers:
            raise fail("model", "a model with at least one linear or convolution layer", model)
        # shapes before the gates: reading a gated tensor in training mode would draw its gates
        tensors = [weight_and_bias(m) for m in self.layers]
        self._shapes = [weight.shape for weight, _ in tensors]
        self._biased = [bias is not None for _, bias in tensors]
        self.model, self.example_input = model, example_input
        self.positions = self._positions(model, example_input)
        self.dense_macs = sum(self._size(i, None)[0] for i in range(len(self.layers)))
        self.dense_params = sum(self._size(i, None)[1] for i in range(len(self.layers)))

    def _positions(self, model: nn.Module, example_input: Tensor) -> list[int]:
        seen = output_positions(model, {str(i): m for i, m in enumerate(self.layers)},
                                example_input)
        missing = [i for i in range(len(self.layers)) if str(i) not in seen]
        if missing:
            raise ValueError(f"layer {missing[0]} of `model` is not reached by a forward pass "
                             "of `example_input`.")
        return [seen[str(i)] for i in range(len(self.layers))]

    def _size(self, i: int, live: list[tuple[Tensor, Tensor]] | None
              ) -> tuple[Tensor | int, Tensor | int]:
        """(MACs, parameters) of layer ``i`` given the live counts at every interface."""
        shape = self._shapes[i]
        kernel = shape[2:].numel()
        n_out, n_in = shape[0], shape[1]
        if live is not None:
            n_in, n_out = live[i][1], live[i + 1][0]
        macs = self.positions[i] * kernel * n_in * n_out
        params = kernel * n_in * n_out + (n_out if self._biased[i] else 0)
        return macs, params

    def live_units(self) -> list[tuple[Tensor, Tensor]]:
        """Expected live units at each interface — the inputs of layer 0 (all of them), between
        every pair of layers, the outputs of the last layer (all of them) — as (units, input
        features of the next layer): they differ when a linear layer reads a flattened
        convolution (features = channels × positions)."""
        sides = [_written_and_read(open_probabilities(m), shape)
                 for m, shape in zip(self.layers, self._shapes)]
        first = torch.as_tensor(float(self._shapes[0][1]))
        live = [(first, first)]
        for i in range(len(self.layers) - 1):
            written, read = sides[i][0], sides[i + 1][1]
            n_units, n_features = len(written), len(read)
            if n_features % n_units:
                raise TypeError(f"layer {i + 1} reads {n_features} inputs from {n_units} units "
                                f"of layer {i}: not a unit-to-input map ComputeCost can follow.")
            block = n_features // n_units  # a flattened channel: its positions
            unread = _never_open(read.reshape(n_units, block), (1,))
            alive = (written * (1.0 - unread)).sum()
            live.append((alive, alive * block))
        last = torch.as_tensor(float(self._shapes[-1][0]))
        live.append((last, last))
        return live

    def expected_macs(self) -> Tensor:
        """E[multiply-accumulates per example] of the exported model (differentiable)."""
        live = self.live_units()
        return sum(self._size(i, live)[0] for i in range(len(self.layers)))

    def expected_params(self) -> Tensor:
        """E[parameters] of the exported model (differentiable)."""
        live = self.live_units()
        return sum(self._size(i, live)[1] for i in range(len(self.layers)))

    def test_time_macs(self) -> int:
        """Multiply-accumulates per example of the model :func:`l0.export` makes now (it exports
        a copy and counts it: exact, not differentiable). Three counts, three names:
        ``dense_macs`` (no gate closed), :meth:`expected_macs` (the expectation under the gates'
        distribution: what a budget holds during training) and this one (what the exported model
        costs)."""
        return self._exported().dense_macs

    def test_time_params(self) -> int:
        """Parameters of the model :func:`l0.export` makes now (see :meth:`test_time_macs`)."""
        return self._exported().dense_params

    def _exported(self) -> ComputeCost:
        return ComputeCost(export(self.model), self.example_input)
