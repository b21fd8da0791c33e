"""Convolutions with Hard Concrete gates: ``L0Conv2d`` (per-weight or channel gates) and
``L0DepthwiseConv2d`` (channel gates). A closed channel closes its filter and its bias, so it
outputs exactly zero; a channel gate counts every parameter it covers in the L0 penalty.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as TF
from torch import Tensor, nn

from .._validation import check_device, check_int
from ._layer_base import GatedLayer, pair

__all__ = ["L0Conv2d", "L0DepthwiseConv2d"]


class L0Conv2d(GatedLayer):
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
        self.kernel_size = pair("kernel_size", kernel_size)
        self.stride = pair("stride", stride)
        self.padding = pair("padding", padding, low=0)
        self.dilation = pair("dilation", dilation)
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


class L0DepthwiseConv2d(GatedLayer):
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
        self.kernel_size = pair("kernel_size", kernel_size)
        self.stride = pair("stride", stride)
        self.padding = pair("padding", padding, low=0)
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
