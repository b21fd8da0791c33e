"""Layers with Hard Concrete gates: ``L0Linear``, ``L0Conv2d``, ``L0DepthwiseConv2d``, ``SparseMLP``.

Every layer holds one :class:`~l0.nn.gates.HardConcrete` and multiplies its weight (and, for gates
on output units or channels, its bias) by the gates. A gate that covers several parameters counts
all of them in the L0 penalty (the paper's group penalty), and a closed output unit or channel
closes its bias too, so a closed channel outputs exactly zero.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as TF
from torch import Tensor, nn

from .._validation import check_choice, check_device, check_int, check_real
from .gates import HardConcrete
from .sites import GateSite

__all__ = ["L0Linear", "L0Conv2d", "L0DepthwiseConv2d", "SparseMLP", "prune_model"]

LINEAR_STRUCTURES = ("weight", "input", "output")


def _pair(name: str, value: int | tuple[int, int], low: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each >= ``low`` (1 for sizes, strides and dilations, 0 for
    padding): geometry is checked here, not by the convolution kernel at forward."""
    if isinstance(value, tuple) and len(value) == 2:
        return (check_int(name, value[0], low=low), check_int(name, value[1], low=low))
    v = check_int(name, value, low=low)
    return (v, v)


class _GatedLayer(GateSite, nn.Module):
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
    def prune_(self, threshold: float = 0.05) -> _GatedLayer:
        """Zero (in place) every parameter whose gate has ``P(z != 0) <= threshold``."""
        check_real("threshold", threshold, low=0.0, high=1.0)
        keep = (self.gate.get_active_prob() > threshold).to(self.weight.dtype)
        weight_mask, bias_mask = self.masks(keep)
        self.weight.mul_(weight_mask)
        if self.bias is not None and bias_mask is not None:
            self.bias.mul_(bias_mask)
        return self


class L0Linear(_GatedLayer):
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


class L0Conv2d(_GatedLayer):
    """2-D convolution with Hard Concrete gates.

    ``structured=True`` puts one gate on each output channel (attribute ``channel_gates``): a
    closed channel zeroes its filter *and* its bias, and counts ``in_channels * kh * kw (+1)``
    parameters in the penalty. ``structured=False`` (default, 0.6.x) gates single weights
    (``weight_gates``). Other arguments as in 0.6.x and :class:`L0Linear`.

    Examples
    --------
    >>> import torch
    >>> conv = L0Conv2d(2, 3, 3, padding=1, structured=True).eval()
    >>> conv(torch.zeros(1, 2, 5, 5)).shape
    torch.Size([1, 3, 5, 5])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        temperature: float = 0.5,
        init_sparsity: float = 0.5,
        structured: bool = False,
        use_l2: bool = False,
        *,
        dilation: int | tuple[int, int] = 1,
        stretch: float = 0.1,
        rule: str = "median",
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, low=1)
        self.out_channels = check_int("out_channels", out_channels, low=1)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.stride = _pair("stride", stride)
        self.padding = _pair("padding", padding, low=0)
        self.dilation = _pair("dilation", dilation)
        self.structured = bool(structured)
        self.use_l2 = bool(use_l2)
        factory = {"device": check_device("device", device), "dtype": dtype}
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels, *self.kernel_size, **factory)
        )
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        fan_in = in_channels * self.kernel_size[0] * self.kernel_size[1]
        if self.structured:
            self._gate_name, shape, cost = "channel_gates", (out_channels,), fan_in + int(bias)
        else:
            self._gate_name, shape, cost = "weight_gates", (out_channels, fan_in), 1
        self.unit_dim = 0 if self.structured else None
        gate_kwargs = dict(stretch=stretch, rule=rule, generator=generator, **factory)
        self.add_module(
            self._gate_name,
            self._make_gate(shape, temperature, init_sparsity, float(cost), gate_kwargs),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        self.gate.reset_parameters()

    def masks(self, gates: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.structured:
            return gates.view(-1, 1, 1, 1), gates
        return gates.view(self.weight.shape), None

    def to_plain(self) -> nn.Conv2d:
        return self._into(nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size,
                                    self.stride, self.padding, self.dilation,
                                    bias=self.bias is not None))

    def forward(self, input: Tensor) -> Tensor:
        weight, bias = self.gated_parameters()
        return TF.conv2d(input, weight, bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, structured={self.structured}"
        )


class L0DepthwiseConv2d(_GatedLayer):
    """Depthwise 2-D convolution with one Hard Concrete gate per channel (``channel_gates``).

    The convolution itself is the submodule ``depthwise_conv`` (as in 0.6.x). The gate multiplies
    the channel's filter and its bias, so a closed channel outputs exactly zero (0.6.x gated the
    input and let the bias through).

    Examples
    --------
    >>> import torch
    >>> conv = L0DepthwiseConv2d(3, 3, padding=1).eval()
    >>> conv(torch.zeros(1, 3, 4, 4)).shape
    torch.Size([1, 3, 4, 4])
    """

    _gate_name = "channel_gates"
    unit_dim = 0
    dense = False  # one filter per channel: export and the MAC count treat it as per-unit

    def __init__(
        self,
        in_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        temperature: float = 0.5,
        init_sparsity: float = 0.5,
        *,
        stretch: float = 0.1,
        rule: str = "median",
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, low=1)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.stride = _pair("stride", stride)
        self.padding = _pair("padding", padding, low=0)
        self.use_l2 = False
        factory = {"device": check_device("device", device), "dtype": dtype}
        self.depthwise_conv = nn.Conv2d(
            in_channels, in_channels, self.kernel_size, self.stride, self.padding,
            groups=in_channels, bias=bias, **factory,
        )
        cost = float(self.kernel_size[0] * self.kernel_size[1] + int(bias))
        gate_kwargs = dict(stretch=stretch, rule=rule, generator=generator, **factory)
        self.channel_gates = self._make_gate(
            (in_channels,), temperature, init_sparsity, cost, gate_kwargs
        )

    @property
    def weight(self) -> Tensor:
        return self.depthwise_conv.weight

    @property
    def bias(self) -> Tensor | None:
        return self.depthwise_conv.bias

    def reset_parameters(self) -> None:
        self.depthwise_conv.reset_parameters()
        self.gate.reset_parameters()

    def masks(self, gates: Tensor) -> tuple[Tensor, Tensor | None]:
        return gates.view(-1, 1, 1, 1), gates

    def to_plain(self) -> nn.Conv2d:
        return self._into(copy.deepcopy(self.depthwise_conv))

    def forward(self, input: Tensor) -> Tensor:
        weight, bias = self.gated_parameters()
        conv = self.depthwise_conv
        return TF.conv2d(input, weight, bias, conv.stride, conv.padding, conv.dilation,
                         conv.groups)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, kernel_size={self.kernel_size}, stride={self.stride}"


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
        if isinstance(module, _GatedLayer):
            module.prune_(threshold)
    return model
