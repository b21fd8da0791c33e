"""Argument checks with one error template: "`name` must be <expected>; got <value>."

Depends on nothing else in the package. Every public entry point validates through here so that
bad input fails early, names the argument, and never surfaces as a NaN or a torch traceback.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for messages: ``1``, not ``np.int64(1)``)."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", None) == 0 else value


def fail(name: str, expected: str, value: Any, error: type[Exception] = ValueError) -> Exception:
    """Build (not raise) the standard error for argument ``name``."""
    return error(f"`{name}` must be {expected}; got {_show(value)}.")


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float within the given bounds, or raise."""
    if type(value) is not float:  # the hot path (a float) skips the slower ABC check
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise fail(name, _range_text("a float", low, high, low_open, high_open), value,
                       TypeError)
        value = float(value)
    if (
        not math.isfinite(value)
        or (low is not None and (value < low or (low_open and value == low)))
        or (high is not None and (value > high or (high_open and value == high)))
    ):
        raise fail(name, _range_text("a float", low, high, low_open, high_open), value)
    return value


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int within ``[low, high]``, or raise (bools are rejected)."""
    expected = _range_text("an int", low, high, False, False)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise fail(name, expected, value, TypeError)
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise fail(name, expected, value)
    return value


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, or raise."""
    choices = tuple(choices)
    expected = "one of " + ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise fail(name, expected, value, TypeError)
    if value not in choices:
        raise fail(name, expected, value)
    return value


def check_device(name: str, value: Any) -> Any:
    """Return ``value`` as a ``torch.device`` (``None`` stays ``None``), or raise."""
    if value is None:
        return None
    import torch

    try:
        return torch.device(value)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise fail(name, "a torch device such as 'cpu' or 'cuda:0'", value) from exc


def check_hard_concrete(temperature: Any, gamma: Any, zeta: Any) -> tuple[float, float, float]:
    """Validate the Hard Concrete parameters: temperature > 0, gamma < 0, zeta > 1."""
    return (
        check_real("temperature", temperature, low=0.0, low_open=True),
        check_real("gamma", gamma, high=0.0, high_open=True),
        check_real("zeta", zeta, low=1.0, low_open=True),
    )


def _range_text(kind: str, low: Any, high: Any, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        return f"{kind} in {left}{low}, {high}{right}"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {high}"
    return f"a finite {kind.split()[-1]}"
