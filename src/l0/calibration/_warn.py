"""Warnings of calibration, pointed at the user's own line (the first frame outside the package),
however deep in the package they are raised (as pandas' ``find_stack_level``)."""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["warn_user"]

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the l0 package


def warn_user(message: str) -> None:
    """Issue a ``UserWarning`` attributed to the first caller outside the ``l0`` package."""
    frame, level = sys._getframe(1), 2  # level 2: the caller of warn_user
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            _PACKAGE + os.sep):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)
