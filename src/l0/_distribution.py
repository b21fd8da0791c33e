"""The Hard Concrete distribution as a :class:`torch.distributions.Distribution`.

For users who want a distribution object (``rsample``, ``cdf``, ``prob_nonzero``, ``expand``);
public as :class:`l0.HardConcreteDistribution` and ``l0.distributions.HardConcreteDistribution``.
The gate *module* of l0-python 0.6.x, which was also called ``HardConcrete``, is
:class:`l0.nn.HardConcrete`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.distributions.utils import broadcast_all

from . import functional as F
from ._validation import check_hard_concrete

__all__ = ["HardConcreteDistribution"]


class HardConcreteDistribution(Distribution):
    """Hard Concrete distribution: a stretched, clamped binary Concrete (Relaxed Bernoulli).

    Parameters
    ----------
    log_alpha : Tensor or float
        Location logits :math:`\\log\\alpha`.
    temperature : float, default 2/3
        :math:`\\beta > 0`.
    low, high : float, default -0.1, 1.1
        Stretch interval :math:`\\gamma < 0`, :math:`\\zeta > 1`.
    validate_args : bool, optional
        Passed to :class:`torch.distributions.Distribution`.

    Raises
    ------
    ValueError
        If ``temperature <= 0``, ``low >= 0`` or ``high <= 1``.

    Examples
    --------
    >>> import torch
    >>> d = HardConcreteDistribution(torch.zeros(3), temperature=0.5)
    >>> g = torch.Generator().manual_seed(0)
    >>> d.rsample((4,), generator=g).shape
    torch.Size([4, 3])
    >>> d.median
    tensor([0.5000, 0.5000, 0.5000])
    """

    arg_constraints = {"log_alpha": constraints.real}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(
        self,
        log_alpha: Tensor | float,
        temperature: float = 2 / 3,
        low: float = F.GAMMA,
        high: float = F.ZETA,
        validate_args: bool | None = None,
    ) -> None:
        self.temperature, self.low, self.high = check_hard_concrete(temperature, low, high)
        (self.log_alpha,) = broadcast_all(log_alpha)
        super().__init__(self.log_alpha.shape, validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> HardConcreteDistribution:
        new = self._get_checked_instance(HardConcreteDistribution, _instance)
        new.temperature, new.low, new.high = self.temperature, self.low, self.high
        new.log_alpha = self.log_alpha.expand(torch.Size(batch_shape))
        super(HardConcreteDistribution, new).__init__(torch.Size(batch_shape), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(
        self, sample_shape: Any = torch.Size(), generator: torch.Generator | None = None
    ) -> Tensor:
        """Reparameterised sample; ``generator`` makes it independent of the global RNG."""
        shape = self._extended_shape(torch.Size(sample_shape))
        noise = F.uniform_noise(
            shape, generator=generator, device=self.log_alpha.device, dtype=self.log_alpha.dtype
        )
        return F.sample_hard_concrete(
            self.log_alpha.expand(shape), noise, self.temperature, self.low, self.high
        )

    def sample(
        self, sample_shape: Any = torch.Size(), generator: torch.Generator | None = None
    ) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)

    @property
    def prob_nonzero(self) -> Tensor:
        """:math:`P(z \\neq 0)`, the expected L0 contribution of each gate."""
        return F.prob_nonzero(self.log_alpha, self.temperature, self.low, self.high)

    @property
    def prob_one(self) -> Tensor:
        """:math:`P(z = 1)`, the mass of the atom at one."""
        return F.prob_one(self.log_alpha, self.temperature, self.low, self.high)

    @property
    def median(self) -> Tensor:
        """The median, which is the default (``rule="median"``) test-time gate."""
        return F.deterministic_gate(self.log_alpha, self.temperature, self.low, self.high)

    def cdf(self, value: Tensor) -> Tensor:
        return F.hard_concrete_cdf(value, self.log_alpha, self.temperature, self.low, self.high)

    def log_prob(self, value: Tensor) -> Tensor:
        raise NotImplementedError(
            "HardConcreteDistribution is a mixture of two atoms and a density; it has no single "
            "log_prob. Use cdf, prob_nonzero or prob_one."
        )
