"""Weight diagnostics in plain numpy: effective sample size, design effect, g-weights, errors.

Depends on nothing else in the package, so any weights (ours or another tool's) can be checked
the same way.

Examples
--------
>>> import numpy as np
>>> w = np.array([1.0, 1.0, 2.0, 0.0])
>>> effective_sample_size(w), round(design_effect(w), 4)
(2.6666666666666665, 1.125)
"""

from __future__ import annotations

import numpy as np

__all__ = ["effective_sample_size", "design_effect", "g_weights", "relative_errors", "top_share"]


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size :math:`(\\sum w)^2 / \\sum w^2` (0 for all-zero weights)."""
    w = np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    squares = float(w @ w)
    return total * total / squares if squares > 0 else 0.0


def design_effect(weights: np.ndarray) -> float:
    """Kish's design effect of weighting, :math:`n\\sum w^2/(\\sum w)^2` over the kept records.

    Equals ``1 + CV²`` of the non-zero weights: 1 for equal weights, larger as they spread.
    """
    w = np.asarray(weights, dtype=np.float64)
    kept = int(np.count_nonzero(w))
    ess = effective_sample_size(w)
    return kept / ess if ess > 0 else float("nan")


def top_share(weights: np.ndarray, fraction: float = 0.01) -> float:
    """Share of the total weight held by the heaviest ``fraction`` of the non-zero weights
    (at least one record; 0 for all-zero weights).

    >>> top_share(np.array([1.0] * 99 + [101.0]), 0.01)
    0.505
    """
    w = np.asarray(weights, dtype=np.float64)
    w = w[w != 0]
    total = float(w.sum())
    if len(w) == 0 or total == 0:
        return 0.0
    k = max(1, int(np.ceil(fraction * len(w))))
    return float(np.partition(w, len(w) - k)[len(w) - k:].sum() / total)


def g_weights(weights: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Calibration factors :math:`g = w/d` (how far each weight moved from its design weight)."""
    return np.asarray(weights, dtype=np.float64) / np.asarray(design, dtype=np.float64)


def relative_errors(estimates: np.ndarray, targets: np.ndarray, floor: float = 1.0) -> np.ndarray:
    """Signed relative errors :math:`(\\hat y - y)/\\max(|y|, \\mathrm{floor})`.

    >>> relative_errors(np.array([11.0, 0.5]), np.array([10.0, 0.0]))
    array([0.1, 0.5])
    """
    y = np.asarray(targets, dtype=np.float64)
    return (np.asarray(estimates, dtype=np.float64) - y) / np.maximum(np.abs(y), floor)
