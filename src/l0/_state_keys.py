"""State-dict keys of the 0.6.x estimators, kept while their logits live in a gate module.

``SparseCalibrationWeights`` and ``SparseL0Linear`` keep their gate logits in a
:class:`~l0.nn.gates.HardConcrete` module (attribute ``gates``), so that model-wide tools see them;
0.6.x saved those logits as the parameter ``log_alpha``. :func:`keep_log_alpha_key` makes
``state_dict()`` write ``log_alpha`` and ``load_state_dict()`` read it (and the new key too).
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["keep_log_alpha_key", "LegacyGateNames"]

_NEW, _OLD = "gates.qz_logits", "log_alpha"


def _write_old_key(module: nn.Module, state: dict[str, Any], prefix: str, _meta: Any) -> None:
    if prefix + _NEW in state:
        state[prefix + _OLD] = state.pop(prefix + _NEW)


def _read_old_key(module: nn.Module, state: dict[str, Any], prefix: str, *_: Any) -> None:
    if prefix + _OLD in state and prefix + _NEW not in state:
        state[prefix + _NEW] = state.pop(prefix + _OLD)


def keep_log_alpha_key(module: nn.Module) -> None:
    """Register the two hooks on ``module`` (whose gate module is ``module.gates``)."""
    module.register_state_dict_post_hook(_write_old_key)
    module.register_load_state_dict_pre_hook(_read_old_key)


class LegacyGateNames:
    """0.6.x attribute names of an estimator's gate module ``self.gates``: ``log_alpha`` (the
    logits, an ``nn.Parameter``), ``beta`` (its temperature: :func:`l0.update_temperatures`
    moves it), ``gamma`` and ``zeta`` (its stretch interval)."""

    gates: Any

    @property
    def log_alpha(self) -> nn.Parameter:
        return self.gates.qz_logits

    @property
    def beta(self) -> float:
        return self.gates.temperature

    @beta.setter
    def beta(self, value: float) -> None:
        self.gates.temperature = value

    @property
    def gamma(self) -> float:
        return self.gates.gamma

    @property
    def zeta(self) -> float:
        return self.gates.zeta
