"""Labels win over positions: a problem given as pandas objects is aligned by label.

Where ``M`` is a DataFrame whose rows (targets) or columns (records) carry labels — anything but
the default ``0, 1, ...`` — every per-target argument given as a Series (``y``, ``tolerance``,
``target_weights``, ``target_groups``) is taken in the order of ``M``'s rows, and
``init_weights`` as a Series in the order of its columns. A Series whose labels are not exactly
those of ``M`` is an error that names the labels missing and those left over; the row labels
become the target names unless ``target_names`` is given.
"""

from __future__ import annotations

from typing import Any

from .._validation import fail

__all__ = ["align_to_labels"]

_PER_TARGET = ("y", "tolerance", "target_weights", "target_groups")


def _labelled(index: Any) -> bool:
    """Whether a pandas index carries labels (the default ``RangeIndex(n)`` does not)."""
    import pandas as pd

    return not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1)


def _aligned(name: str, values: Any, labels: Any, side: str) -> Any:
    import pandas as pd

    if not isinstance(values, pd.Series):
        return values
    if values.index.has_duplicates:
        dup = values.index[values.index.duplicated()].unique().tolist()[:5]
        raise fail(name, f"a Series with one value per {side} label", f"duplicate labels {dup}")
    if labels.has_duplicates:
        dup = labels[labels.duplicated()].unique().tolist()[:5]
        raise fail("M", f"unique {side} labels to align `{name}` by",
                   f"duplicate labels {dup}")
    missing = labels.difference(values.index, sort=False).tolist()
    extra = values.index.difference(labels, sort=False).tolist()
    if missing or extra:
        raise ValueError(
            f"`{name}` must be labelled by the {side} labels of M; got {len(missing)} missing "
            f"{missing[:5]} and {len(extra)} that are not {side} labels of M {extra[:5]}.")
    return values.reindex(labels).to_numpy()


def align_to_labels(M: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """``arguments`` (the problem's, ``y`` included) with every Series aligned to the labels of
    ``M`` when ``M`` is a labelled DataFrame; otherwise unchanged."""
    import sys

    pd = sys.modules.get("pandas")
    if pd is None or not isinstance(M, pd.DataFrame):
        return arguments
    out = dict(arguments)
    if _labelled(M.index):
        for name in _PER_TARGET:
            out[name] = _aligned(name, out.get(name), M.index, "row")
        if out.get("target_names") is None:
            out["target_names"] = [str(label) for label in M.index]
    if _labelled(M.columns):
        out["init_weights"] = _aligned("init_weights", out.get("init_weights"), M.columns,
                                       "column")
    return out
