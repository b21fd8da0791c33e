"""The 0.6.x path ``l0.distributions``: a re-export file.

``HardConcreteDistribution`` (a :class:`torch.distributions.Distribution`) lives in
``l0._distribution``; ``HardConcrete`` is, as in 0.6.x, the gate *module*
(:class:`l0.nn.HardConcrete`).
"""

from ._distribution import HardConcreteDistribution
from .nn.gates import HardConcrete

__all__ = ["HardConcreteDistribution", "HardConcrete"]
