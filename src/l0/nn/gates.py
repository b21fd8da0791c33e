"""Gate modules: a tensor of Hard Concrete gates with learnable logits.

:class:`HardConcrete` is the one gate module; every layer, parametrization and selection gate in
the package holds one and calls :mod:`l0.functional` through it. :class:`L0Gate` is the 0.6.x
generic item gate (a ``HardConcrete`` plus helpers to gate a tensor along one dimension).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .. import _kernels as K
from .. import functional as F
from .._validation import check_choice, check_device, check_int, check_real, fail
from ._penalty_node import expected_open

__all__ = ["HardConcrete", "L0Gate", "gate_parameters", "split_parameters"]


def _check_init_mean(value: float | None) -> float | None:
    if value is None:
        return None
    return check_real("init_mean", value, low=0.0, high=1.0)


class HardConcrete(nn.Module):
    """A tensor of Hard Concrete gates with learnable logits (``qz_logits``).

    In training mode ``forward()`` draws reparameterised samples; in eval mode it returns the
    test-time gate (``rule="median"`` by default, see :func:`l0.functional.deterministic_gate`).

    Parameters
    ----------
    input_dim : int
        Size of the first gate dimension.
    output_dim : int, optional
        Size of the second gate dimension (2-D gates), e.g. per-weight gates of a linear layer.
    temperature : float, default 0.5
        :math:`\\beta > 0`; change it during training with :func:`l0.update_temperatures`.
    stretch : float, default 0.1
        Stretch :math:`s > 0`; the interval is :math:`(\\gamma, \\zeta) = (-s, 1 + s)`.
    init_mean : float or None, default 0.5
        Initial logits are ``logit(init_mean)`` (as in 0.6.x); ``0`` and ``1`` are clamped to
        ``1e-6`` and ``1 - 1e-6``. ``None`` leaves the logits at zero.
    rule : {"median", "paper"}, default "median"
        Test-time gate rule.
    cost : float, default 1.0
        Number of parameters each gate covers; :meth:`get_penalty` counts ``cost`` per open gate
        (the paper's group penalty for structured gates).
    generator : torch.Generator, optional
        Source of the sampling noise; ``None`` uses torch's default generator.
    device, dtype : optional
        Factory arguments for the logits.
    gamma, zeta : float, optional
        An asymmetric stretch interval (``gamma < 0``, ``zeta > 1``) in place of ``stretch``.

    Raises
    ------
    ValueError, TypeError
        On a non-positive size, temperature or stretch, an ``init_mean`` outside ``[0, 1]`` or an
        unknown ``rule``.

    Examples
    --------
    >>> import torch
    >>> gate = HardConcrete(4, temperature=0.5, init_mean=0.9)
    >>> gate.eval()().tolist(), round(gate.get_penalty().item(), 4)
    ([1.0, 1.0, 1.0, 1.0], 3.8703)
    """

    _fused_by: Any = None
    """The :class:`~l0.nn.fused.FusedGates` handle that samples this gate with its model's others."""
    _fused_sample: Tensor | None = None
    """This forward pass's sample, drawn by that handle (None outside a fused forward pass)."""

    def __init__(
        self,
        input_dim: int,
        output_dim: int | None = None,
        temperature: float = 0.5,
        stretch: float = 0.1,
        init_mean: float | None = 0.5,
        *,
        rule: str = "median",
        cost: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        gamma: float | None = None,
        zeta: float | None = None,
    ) -> None:
        super().__init__()
        check_int("input_dim", input_dim, low=1)
        if output_dim is None:
            self.gate_size: tuple[int, ...] = (int(input_dim),)
        else:
            self.gate_size = (int(input_dim), check_int("output_dim", output_dim, low=1))
        self.stretch = check_real("stretch", stretch, low=0.0, low_open=True)
        # an asymmetric interval (gamma, zeta), as the 0.6.x estimators allow, overrides stretch
        self.gamma = -self.stretch if gamma is None else check_real("gamma", gamma, high=0.0,
                                                                     high_open=True)
        self.zeta = 1.0 + self.stretch if zeta is None else check_real("zeta", zeta, low=1.0,
                                                                        low_open=True)
        self.temperature = temperature
        self.init_mean = _check_init_mean(init_mean)
        self.rule = check_choice("rule", rule, F.TEST_TIME_RULES)
        self.cost = check_real("cost", cost, low=0.0)
        self.generator = generator
        self.qz_logits = nn.Parameter(torch.zeros(self.gate_size,
                                                  device=check_device("device", device),
                                                  dtype=dtype))
        self.reset_parameters()

    @property
    def temperature(self) -> float:
        """:math:`\\beta`; assignment is validated (must be a float > 0)."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self._temperature = check_real("temperature", value, low=0.0, low_open=True)

    @property
    def logits(self) -> Tensor:
        """The gate logits :math:`\\log\\alpha` (the parameter ``qz_logits``, its 0.6.x name,
        which state dicts keep; ``log_alpha`` is another alias)."""
        return self.qz_logits

    @property
    def log_alpha(self) -> Tensor:
        """The gate logits (the same tensor as ``qz_logits``)."""
        return self.qz_logits

    @property
    def low(self) -> float:
        """The lower end of the stretch interval (0.6.x name: ``gamma``)."""
        return self.gamma

    @property
    def high(self) -> float:
        """The upper end of the stretch interval (0.6.x name: ``zeta``)."""
        return self.zeta

    def reset_parameters(self) -> None:
        """Set every logit to ``logit(init_mean)`` (zero when ``init_mean`` is None)."""
        with torch.no_grad():
            if self.init_mean is None:
                self.qz_logits.zero_()
            else:
                p = min(max(self.init_mean, 1e-6), 1 - 1e-6)
                self.qz_logits.fill_(float(torch.logit(torch.tensor(p, dtype=torch.float64))))

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """One reparameterised sample of every gate (uses ``generator`` or ``self.generator``)."""
        noise = F.uniform_noise(
            self.gate_size,
            generator=generator if generator is not None else self.generator,
            device=self.qz_logits.device,
            dtype=self.qz_logits.dtype,
        )
        return self.sample_from(noise)

    def sample_from(self, noise: Tensor) -> Tensor:
        """The reparameterised sample of every gate for the given uniform ``noise``."""
        return F.sample_hard_concrete(
            self.qz_logits, noise, self.temperature, self.gamma, self.zeta
        )

    def deterministic(self) -> Tensor:
        """The test-time gates under ``self.rule``."""
        return F.deterministic_gate(
            self.qz_logits, self.temperature, self.gamma, self.zeta, rule=self.rule
        )

    def forward(self, input_shape: tuple[int, ...] | None = None) -> Tensor:
        """Sampled gates in training mode, test-time gates in eval mode.

        ``input_shape`` (0.6.x) appends singleton dimensions so the gates broadcast over it.
        """
        if self.training:
            gates = self._fused_sample
            if gates is None:
                gates = self.sample()
        else:
            gates = self.deterministic()
        if input_shape is not None and len(input_shape) > gates.dim():
            gates = gates.reshape(gates.shape + (1,) * (len(input_shape) - gates.dim()))
        return gates

    def get_active_prob(self) -> Tensor:
        """:math:`P(z \\neq 0)` of each gate (differentiable)."""
        return F.prob_nonzero(self.qz_logits, self.temperature, self.gamma, self.zeta)

    prob_nonzero = get_active_prob

    def get_penalty(self) -> Tensor:
        """Expected L0 norm: ``cost * sum(P(z != 0))`` (differentiable)."""
        return expected_open([self._penalty_term()])

    def _penalty_term(self) -> tuple[Tensor, float, float]:
        """``(logits, shift, cost)`` for :func:`l0.nn._penalty_node.expected_open`, which sums many
        gates' penalties as one autograd node (see :func:`l0.compute_l0_penalty`)."""
        shift = K.open_shift(self.temperature, self.gamma, self.zeta)
        return self.qz_logits, shift, self.cost

    def get_sparsity(self) -> float:
        """Expected fraction of closed gates, ``1 - mean(P(z != 0))``."""
        with torch.no_grad():
            return 1.0 - float(self.get_active_prob().mean())

    @torch.no_grad()
    def is_open(self) -> Tensor:
        """Whether each gate is open at test time (:func:`l0.functional.is_open` under ``rule``)."""
        return F.is_open(self.qz_logits, self.temperature, self.gamma, self.zeta, self.rule)

    def get_num_active(self) -> int:
        """Number of gates open at test time."""
        return int(self.is_open().sum())

    def extra_repr(self) -> str:
        return (
            f"gate_size={self.gate_size}, temperature={self.temperature}, "
            f"stretch={self.stretch}, init_mean={self.init_mean}, rule={self.rule!r}"
        )


class L0Gate(nn.Module):
    """Generic L0 gate over ``size`` items (samples, features, ...), as in 0.6.x.

    Parameters
    ----------
    size : int
        Number of items.
    temperature : float, default 0.5
        Gate temperature.
    init_mean : float, default 0.5
        Initial logit is ``logit(init_mean)``.
    generator : torch.Generator, optional
        Source of sampling noise.

    Examples
    --------
    >>> import torch
    >>> gate = L0Gate(3, init_mean=0.99).eval()
    >>> gate.apply_gates(torch.ones(2, 3), dim=1).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    def __init__(
        self,
        size: int,
        temperature: float = 0.5,
        init_mean: float = 0.5,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.gates = HardConcrete(
            size, temperature=temperature, init_mean=init_mean, generator=generator
        )
        self.size = self.gates.gate_size[0]
        self.init_mean = init_mean

    @property
    def temperature(self) -> float:
        return self.gates.temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self.gates.temperature = value

    def get_gates(self) -> Tensor:
        """Sampled (training) or test-time (eval) gate values."""
        return self.gates()

    def forward(self, x: Tensor | None = None, dim: int = 0) -> Tensor:
        """Gate values, or ``x`` multiplied by them along ``dim`` when ``x`` is given."""
        return self.get_gates() if x is None else self.apply_gates(x, dim)

    def apply_gates(self, x: Tensor, dim: int = 0) -> Tensor:
        """Multiply ``x`` by the gates along dimension ``dim`` (which must have ``size`` entries)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"`x` must be a torch.Tensor; got {type(x).__name__}.")
        if x.dim() == 0 or not -x.dim() <= dim < x.dim() or x.shape[dim] != self.size:
            raise ValueError(
                f"`x` must have {self.size} entries along dim {dim}; got shape {tuple(x.shape)}."
            )
        shape = [1] * x.dim()
        shape[dim] = -1
        return x * self.get_gates().view(shape)

    def get_penalty(self) -> Tensor:
        """Expected number of open gates (differentiable)."""
        return self.gates.get_penalty()

    penalty = get_penalty

    def get_active_indices(self, threshold: float = 0.5) -> Tensor:
        """Indices of items whose current gate value exceeds ``threshold``."""
        check_real("threshold", threshold, low=0.0, high=1.0)
        with torch.no_grad():
            return torch.where(self.get_gates() > threshold)[0]

    def extra_repr(self) -> str:
        return f"size={self.size}"


def gate_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The gate logits of every :class:`HardConcrete` in ``model``, each once, in module order.

    Examples
    --------
    >>> from l0 import L0Linear
    >>> [p.shape for p in gate_parameters(torch.nn.Sequential(L0Linear(3, 2, structure="input")))]
    [torch.Size([3])]
    """
    if not isinstance(model, nn.Module):
        raise fail("model", "a torch.nn.Module", model, TypeError)
    seen: set[int] = set()
    out = []
    for module in model.modules():
        if isinstance(module, HardConcrete):
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
    return out


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(gate logits, every other parameter)`` of ``model``: the two groups of the networks
    recipe, whose gates learn at a rate of their own.

    Examples
    --------
    >>> from l0 import L0Linear
    >>> model = torch.nn.Sequential(L0Linear(3, 2, structure="input"))
    >>> gates, weights = split_parameters(model)
    >>> optimizer = torch.optim.Adam([{"params": weights}, {"params": gates, "lr": 2e-2}],
    ...                              lr=3e-3)
    >>> len(gates), len(weights)
    (1, 2)
    """
    gates = gate_parameters(model)
    ids = {id(p) for p in gates}
    return gates, [p for p in model.parameters() if id(p) not in ids]
