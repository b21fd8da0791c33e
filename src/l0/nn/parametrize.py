"""Gate any parameter of any module: ``l0_gate`` / ``remove_gates``, on ``torch.nn.utils.parametrize``.

``l0_gate(module, "weight", dim=1)`` registers a parametrization that returns
``weight * z`` with Hard Concrete gates ``z``: one per element (``dim=None``) or one per slice along
``dim`` (``dim=1`` of a linear weight gates input units, ``dim=0`` output units or conv output
channels). The gate module is a :class:`~l0.nn.gates.HardConcrete` living inside the parametrization,
so :func:`l0.compute_l0_penalty`, :func:`l0.update_temperatures` and the statistics find it like any
other gate; a structured gate counts every parameter it covers (``cost``).

In training mode every access to the parameter draws fresh gates (wrap a forward pass in
``torch.nn.utils.parametrize.cached()`` to share one draw between several accesses); in eval
mode the gates are the deterministic test-time gates. :func:`remove_gates` bakes the test-time
gates into plain parameters and removes the parametrizations.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .._validation import check_int, check_real, fail
from .gates import HardConcrete
from .sites import GateSite, plain_tensor

__all__ = ["L0Parametrization", "ParametrizedSite", "l0_gate", "remove_gates"]


class L0Parametrization(nn.Module):
    """``X -> X * z``: Hard Concrete gates on a tensor, per element or per slice along ``dim``.

    Parameters
    ----------
    shape : tuple of int
        Shape of the gated tensor.
    dim : int or None
        ``None``: a gate per element; an int: a gate per index along that dimension.
    temperature, init_mean, rule, generator :
        Passed to :class:`~l0.nn.gates.HardConcrete`.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        dim: int | None = None,
        *,
        temperature: float = 2 / 3,
        init_mean: float = 0.9,
        rule: str = "median",
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.dim = None if dim is None else dim % len(self.shape)
        numel = int(torch.Size(self.shape).numel())
        n_gates = self.shape[self.dim] if self.dim is not None else numel
        covered = numel // n_gates
        self.gate = HardConcrete(n_gates, temperature=temperature, init_mean=init_mean, rule=rule,
                                 cost=covered, generator=generator, device=device)

    def gates(self) -> Tensor:
        """The gates shaped to broadcast against the gated tensor."""
        return self.broadcast(self.gate())

    def broadcast(self, values: Tensor) -> Tensor:
        """One value per gate, reshaped to broadcast against the gated tensor."""
        if self.dim is None:
            return values.reshape(self.shape)
        view = [1] * len(self.shape)
        view[self.dim] = self.shape[self.dim]
        return values.reshape(view)

    def forward(self, X: Tensor) -> Tensor:  # noqa: N803 - parametrize's name
        return X * self.gates().to(X.dtype)

    def site(self, module: nn.Module, name: str) -> ParametrizedSite:
        """This parametrization as the gate site of ``module.<name>``."""
        return ParametrizedSite(module, name, self)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, dim={self.dim}"


class ParametrizedSite(GateSite):
    """The :class:`~l0.nn.sites.GateSite` of a tensor gated by :func:`l0_gate`: ``module.<name>``
    under an :class:`L0Parametrization` (the bias of a gated weight is not gated)."""

    def __init__(self, module: nn.Module, name: str, parametrization: L0Parametrization) -> None:
        self._module, self.tensor_name, self._parametrization = module, name, parametrization
        self.unit_dim = parametrization.dim
        self.dense = isinstance(module, nn.Linear) or (
            isinstance(module, nn.Conv2d) and module.groups == 1)

    @property
    def gate(self) -> HardConcrete:
        return self._parametrization.gate

    @property
    def module(self) -> nn.Module:
        return self._module

    @property
    def gated_weight(self) -> Tensor:
        return self._module.parametrizations[self.tensor_name].original

    @property
    def gated_bias(self) -> Tensor | None:
        return plain_tensor(self._module, "bias") if self.tensor_name == "weight" else None

    def masks(self, values: Tensor) -> tuple[Tensor, Tensor | None]:
        return self._parametrization.broadcast(values), None

    def to_plain(self) -> nn.Module:
        return remove_gates(copy.deepcopy(self._module))


def l0_gate(
    module: nn.Module,
    name: str = "weight",
    dim: int | None = None,
    *,
    temperature: float = 2 / 3,
    init_mean: float = 0.9,
    rule: str = "median",
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Put Hard Concrete gates on ``module.<name>`` and return ``module``.

    Parameters
    ----------
    module : torch.nn.Module
    name : str, default "weight"
        A parameter (or buffer) of ``module``.
    dim : int, optional
        Gate whole slices along this dimension (``dim=1`` of a ``Linear`` weight: input units;
        ``dim=0``: output units, or output channels of a ``Conv2d``); ``None``: every element.
    temperature : float, default 2/3
    init_mean : float, default 0.9
        Initial ``sigmoid(log_alpha)`` of every gate.
    rule : {"median", "paper"}, default "median"
        Test-time gate.
    generator : torch.Generator, optional
        Source of the gate noise.

    Returns
    -------
    torch.nn.Module
        ``module``, with ``module.parametrizations[name][0]`` the :class:`L0Parametrization`.

    Raises
    ------
    TypeError, ValueError
        If ``module`` is not a module, has no tensor ``name``, or ``dim`` is out of range.

    Examples
    --------
    >>> import torch
    >>> from l0 import compute_l0_penalty
    >>> layer = l0_gate(torch.nn.Linear(4, 3), "weight", dim=1)   # one gate per input unit
    >>> layer.parametrizations.weight[0].gate.gate_size, round(compute_l0_penalty(layer).item(), 2)
    ((4,), 11.74)
    """
    if not isinstance(module, nn.Module):
        raise fail("module", "a torch.nn.Module", module, TypeError)
    if not isinstance(name, str):
        raise fail("name", "the name of a parameter of the module", name, TypeError)
    tensor = getattr(module, name, None)
    if not isinstance(tensor, Tensor):
        names = [n for n, _ in module.named_parameters(recurse=False)]
        raise fail("name", f"a tensor of {type(module).__name__} (one of {names})", name)
    if dim is not None:
        dim = check_int("dim", dim, low=-tensor.dim(), high=tensor.dim() - 1)
    check_real("temperature", temperature, low=0.0, low_open=True)
    parametrize.register_parametrization(
        module, name,
        L0Parametrization(tuple(tensor.shape), dim, temperature=temperature, init_mean=init_mean,
                          rule=rule, generator=generator, device=tensor.device),
    )
    return module


def _own_class(module: nn.Module) -> None:
    """Give a parametrized module a class of its own before removing a parametrization.

    torch builds one ``Parametrized<Name>`` class per parametrized module, and ``copy.deepcopy``
    shares it between the original and the copy; removing a parametrization deletes the
    property from that class, which would strip the tensor from the original too.
    """
    shared = type(module)
    if shared.__dict__.get("_l0_own_class"):
        return
    body = {k: v for k, v in shared.__dict__.items() if k not in ("__dict__", "__weakref__")}
    body["_l0_own_class"] = True
    module.__class__ = type(shared.__name__, shared.__bases__, body)


def remove_gates(model: nn.Module) -> nn.Module:
    """Bake the test-time gates of every :func:`l0_gate` into plain parameters; return ``model``.

    Each gated parameter becomes ``original * z`` with the deterministic gates (whatever the
    model's training mode), and its parametrization is removed; other parametrizations stay.

    Examples
    --------
    >>> import torch
    >>> layer = l0_gate(torch.nn.Linear(4, 3)).eval()
    >>> before = layer(torch.ones(1, 4))
    >>> plain = remove_gates(layer)
    >>> hasattr(plain, "parametrizations"), bool(torch.equal(plain(torch.ones(1, 4)), before))
    (False, True)
    """
    if not isinstance(model, nn.Module):
        raise fail("model", "a torch.nn.Module", model, TypeError)
    for module in list(model.modules()):
        if not parametrize.is_parametrized(module):
            continue
        for name in list(module.parametrizations.keys()):
            chain = module.parametrizations[name]
            if not any(isinstance(p, L0Parametrization) for p in chain):
                continue
            if len(chain) > 1:
                raise ValueError(
                    f"`model` must have l0 gates as the only parametrization of a tensor; "
                    f"got {len(chain)} on {type(module).__name__}.{name}."
                )
            _own_class(module)
            was_training = chain.training
            chain.eval()
            with torch.no_grad():
                baked = getattr(module, name).detach().clone()
            chain.train(was_training)
            parametrize.remove_parametrizations(module, name, leave_parametrized=False)
            with torch.no_grad():
                getattr(module, name).copy_(baked)
    return model
