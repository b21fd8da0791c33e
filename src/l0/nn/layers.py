"""Linear layers with Hard Concrete gates: ``L0Linear`` and the 0.6.x ``SparseMLP``; ``prune_model``
for every gated layer (the convolutions are in :mod:`l0.nn.conv`).

Every layer holds one :class:`~l0.nn.gates.HardConcrete` and multiplies its weight (and, for gates
on output units or channels, its bias) by the gates. A gate that covers several parameters counts
all of them in the L0 penalty (the paper's group penalty), and a closed output unit or channel
closes its bias too, so a closed channel outputs exactly zero.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as TF
from torch import Tensor, nn

from .._validation import check_choice, check_device, check_int, check_real
from ._layer_base import GatedLayer

__all__ = ["L0Linear", "SparseMLP", "prune_model"]

LINEAR_STRUCTURES = ("weight", "input", "output")


class L0Linear(GatedLayer):
    """Linear layer with Hard Concrete gates.

    Parameters
    ----------
    in_features, out_features : int
        Sizes as in :class:`torch.nn.Linear`.
    bias : bool, default True
        Whether to learn a bias.
    temperature : float, default 0.5
        Gate temperature :math:`\\beta`.
    init_sparsity : float, default 0.5
        Initial gate logits are ``logit(1 - init_sparsity)``.
    use_l2 : bool, default False
        Whether :meth:`get_l2_penalty` returns the squared weight norm.
    structure : {"weight", "input", "output"}, default "weight"
        What one gate closes: one weight (0.6.x behaviour, gate attribute ``weight_gates``), one
        input unit (a column of the weight, ``input_gates``: the paper's LeNet-300-100 result) or
        one output unit (a row and its bias, ``output_gates``).
    stretch, rule, generator, device, dtype
        Passed to :class:`~l0.nn.gates.HardConcrete` (``device``/``dtype`` also to the weights).

    Examples
    --------
    >>> import torch
    >>> layer = L0Linear(4, 3, structure="input", init_sparsity=0.0).eval()
    >>> dense = torch.nn.functional.linear(torch.ones(2, 4), layer.weight, layer.bias)
    >>> bool(torch.allclose(layer(torch.ones(2, 4)), dense))
    True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        temperature: float = 0.5,
        init_sparsity: float = 0.5,
        use_l2: bool = False,
        *,
        structure: str = "weight",
        stretch: float = 0.1,
        rule: str = "median",
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features, low=1)
        self.out_features = check_int("out_features", out_features, low=1)
        self.structure = check_choice("structure", structure, LINEAR_STRUCTURES)
        self.use_l2 = bool(use_l2)
        factory = {"device": check_device("device", device), "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **factory))
        self.bias = nn.Parameter(torch.empty(out_features, **factory)) if bias else None
        shape, cost = {
            "weight": ((out_features, in_features), 1.0),
            "input": ((in_features,), float(out_features)),
            "output": ((out_features,), float(in_features + int(bias))),
        }[structure]
        self._gate_name = f"{structure}_gates"
        self.unit_dim = {"weight": None, "input": 1, "output": 0}[structure]
        gate_kwargs = dict(stretch=stretch, rule=rule, generator=generator, **factory)
        self.add_module(
            self._gate_name, self._make_gate(shape, temperature, init_sparsity, cost, gate_kwargs)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal weights (fan-out, as 0.6.x), zero bias, gates at their initial logit."""
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        self.gate.reset_parameters()

    def masks(self, gates: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.structure == "weight":
            return gates, None
        if self.structure == "input":
            return gates.unsqueeze(0), None
        return gates.unsqueeze(1), gates

    def to_plain(self) -> nn.Linear:
        return self._into(nn.Linear(self.in_features, self.out_features,
                                    bias=self.bias is not None))

    def forward(self, input: Tensor) -> Tensor:
        # Unit gates act on the (smaller) activations, not on the weight matrix: the same
        # function, one batch-by-units product instead of a weight-sized one per step. The
        # exception is an input that needs no gradient (a first layer): gating the weight's
        # columns there spares backward the input-gradient product (a full matmul) that gated
        # activations would require to reach the gates.
        if self.structure == "input":
            if torch.is_grad_enabled() and not input.requires_grad:
                return TF.linear(input, self.weight * self.gate(), self.bias)
            return TF.linear(input * self.gate(), self.weight, self.bias)
        if self.structure == "output":
            return TF.linear(input, self.weight, self.bias) * self.gate()
        weight, bias = self.gated_parameters()
        return TF.linear(input, weight, bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, structure={self.structure!r}"
        )


class SparseMLP(nn.Module):
    """Three-layer perceptron of :class:`L0Linear` layers (the 0.6.x example network).

    Parameters
    ----------
    input_dim, hidden_dim, output_dim : int, default 784, 256, 10
        Layer sizes.
    init_sparsity, temperature, use_l2
        Passed to every :class:`L0Linear`.
    structure : {"weight", "input", "output"}, default "weight"
        Gate structure of every layer.

    Examples
    --------
    >>> import torch
    >>> SparseMLP(8, 4, 2)(torch.zeros(3, 8)).shape
    torch.Size([3, 2])
    """

    def __init__(
        self,
        input_dim: int = 784,
        hidden_dim: int = 256,
        output_dim: int = 10,
        init_sparsity: float = 0.5,
        temperature: float = 0.5,
        use_l2: bool = False,
        *,
        structure: str = "weight",
    ) -> None:
        super().__init__()
        kw = dict(init_sparsity=init_sparsity, temperature=temperature, use_l2=use_l2,
                  structure=structure)
        self.fc1 = L0Linear(input_dim, hidden_dim, **kw)
        self.fc2 = L0Linear(hidden_dim, hidden_dim, **kw)
        self.fc3 = L0Linear(hidden_dim, output_dim, **kw)
        self.use_l2 = bool(use_l2)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.size(0), -1)
        x = TF.relu(self.fc1(x))
        x = TF.relu(self.fc2(x))
        return self.fc3(x)

    def _layers(self) -> tuple[L0Linear, L0Linear, L0Linear]:
        return (self.fc1, self.fc2, self.fc3)

    def get_l0_loss(self) -> Tensor:
        """Expected number of non-zero parameters over the three layers."""
        return sum((m.get_l0_penalty() for m in self._layers()), self.fc1.weight.new_zeros(()))

    def get_l2_loss(self) -> Tensor:
        """Sum of the layers' L2 penalties (zero unless ``use_l2``)."""
        return sum((m.get_l2_penalty() for m in self._layers()), self.fc1.weight.new_zeros(()))

    def get_sparsity_stats(self) -> dict[str, dict[str, Any]]:
        """``{layer name: {"sparsity", "active_params"}}``; see also :func:`l0.get_sparsity_stats`."""
        return {
            name: {"sparsity": m.get_sparsity(), "active_params": m.get_l0_penalty().item()}
            for name, m in zip(("fc1", "fc2", "fc3"), self._layers())
        }


def prune_model(model: nn.Module, threshold: float = 0.05) -> nn.Module:
    """Zero, in place, every parameter of every L0 layer whose gate has ``P(z != 0) <= threshold``.

    Works on all L0 layers (including :class:`L0DepthwiseConv2d`); zeroes the bias of closed
    output units and channels. Puts the model in eval mode and returns it.

    Examples
    --------
    >>> import torch
    >>> layer = L0Linear(3, 2, init_sparsity=0.999)
    >>> bool(prune_model(layer).weight.eq(0).all())
    True
    """
    check_real("threshold", threshold, low=0.0, high=1.0)
    model.eval()
    for module in model.modules():
        if isinstance(module, GatedLayer):
            module.prune_(threshold)
    return model
