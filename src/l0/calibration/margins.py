"""Margins → a calibration problem: the targets × records matrix built from a records DataFrame.

Survey users describe targets, not matrices: *the number of schools of each county × type*, *the
enrolment of each county*, *the sum of api00 by type*, or a long table of totals with a filter and
a variable each. :func:`build_targets` turns such a description into ``(M, y, names, groups)``,
one row per target, with a clear error for any column, category or filter that matches no record
(or, with ``unmatched="drop"``, the target dropped and reported).

Margins: :class:`Count` (records, optionally by one or more crossed categorical columns) and
:class:`Total` (a numeric column summed, overall or by category). Totals come with the margin
(a scalar, a dict, a pandas Series or a DataFrame with a ``value`` column) or from a
``population`` DataFrame with the same columns. Geography cloning builds on the same margins
(:mod:`l0.calibration.geography`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._validation import check_choice, fail, plain
from ._filters import evaluate_filter
from .targets import Targets

__all__ = ["Count", "Total", "Targets", "build_targets", "TABLE_COLUMNS"]

log = logging.getLogger("l0")

TABLE_COLUMNS = ("value", "filter", "variable", "name", "group")
"""Columns a long-format targets table may have (``value`` is required)."""


@dataclass(frozen=True)
class Count:
    """The weighted number of records, overall or in each category of ``by``.

    Parameters
    ----------
    by : str or sequence of str, optional
        Categorical columns; several are crossed (one target per combination in ``totals``).
    totals : scalar, dict, pandas.Series or pandas.DataFrame, optional
        The population totals: a number (``by=None``); a mapping or Series from category (a
        tuple for crossed columns) to total; or a DataFrame with the ``by`` columns and a
        ``value`` column. ``None``: counted on the ``population`` given to
        :func:`build_targets`.
    name : str, optional
        The label in target names (default ``"count"``): ``count[cname=Alameda,stype=E]``.
    """

    by: str | Sequence[str] | None = None
    totals: Any = None
    name: str | None = None


@dataclass(frozen=True)
class Total:
    """The sum of the numeric column ``column``, overall or in each category of ``by``.

    Parameters are those of :class:`Count`, with ``column`` the variable summed; ``name``
    defaults to the column: ``enroll[cname=Alameda]``, ``api00``.
    """

    column: str
    by: str | Sequence[str] | None = None
    totals: Any = None
    name: str | None = None


@dataclass
class _Rows:
    """Target rows under construction: one sparse block per margin, with labels and totals."""

    n_records: int
    blocks: list[Any] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)

    def add(self, block: Any, names: list[str], groups: str | list[str], values: Any,
            reasons: list[str | None]) -> None:
        self.blocks.append(block)
        self.names.extend(names)
        self.groups.extend([groups] * len(names) if isinstance(groups, str) else groups)
        self.values.extend(np.asarray(values, dtype=np.float64).tolist())
        self.reasons.extend(reasons)


def build_targets(
    records: Any,
    margins: Sequence[Count | Total] = (),
    *,
    table: Any = None,
    population: Any = None,
    population_weights: Any = None,
    init_weights: Any = None,
    unmatched: str = "raise",
    missing: str = "raise",
) -> Targets:
    """Build ``(M, y, names, groups)`` from records and a description of the targets.

    Parameters
    ----------
    records : pandas.DataFrame
        One row per record (a column of ``M``), in the order of the weights.
    margins : sequence of Count or Total
        Counts and sums, overall or by (crossed) categories; their totals are given with the
        margin or computed on ``population``.
    table : pandas.DataFrame, optional
        A long-format targets table, one row per target: ``value`` (required); ``filter`` (a
        condition on the records' columns, e.g. ``"stype == 'E' and enroll > 500"``: columns,
        constants, comparisons, ``in``, ``and``/``or``/``not`` and arithmetic only — no
        ``@variables``, calls or attributes, refused by name; empty: every record);
        ``variable`` (the column summed; empty: a count); ``name`` and ``group`` (labels;
        defaults derived from the filter and variable).
    population : pandas.DataFrame, optional
        The population the totals of margins without ``totals`` are computed on.
    population_weights : str or array-like, optional
        A column of ``population`` (or one weight per population row) for those totals.
    init_weights : str or array-like, optional
        The records' design weights: a column of ``records`` or one value per record; kept in
        ``Targets.init_weights`` for :meth:`Targets.calibrate`.
    unmatched : {"raise", "drop"}, default "raise"
        A category, filter or total that matches no record: a ``ValueError`` naming it, or the
        target dropped and listed in ``Targets.dropped``.
    missing : {"raise", "zero"}, default "raise"
        Missing values in a summed column: a ``ValueError`` naming the column, or counted as 0.

    Returns
    -------
    Targets
        Unpacks as ``M, y, names, groups``; ``Targets.calibrate(...)`` runs a calibration.

    Examples
    --------
    >>> import pandas as pd
    >>> records = pd.DataFrame({"region": ["N", "N", "S"], "income": [10.0, 20.0, 30.0]})
    >>> M, y, names, groups = build_targets(
    ...     records, [Count(by="region", totals={"N": 50, "S": 40}), Total("income", totals=900)])
    >>> names
    ['count[region=N]', 'count[region=S]', 'income']
    >>> M.toarray().tolist(), y.tolist()
    ([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [10.0, 20.0, 30.0]], [50.0, 40.0, 900.0])
    """
    check_choice("unmatched", unmatched, ("raise", "drop"))
    check_choice("missing", missing, ("raise", "zero"))
    check_frame("records", records)
    if population is not None:
        check_frame("population", population)
    if isinstance(margins, (Count, Total)):
        margins = [margins]
    rows = _Rows(len(records))
    pop_w = _weights(population, population_weights, "population_weights", "population")
    if population is not None and pop_w is None:
        pop_w = np.ones(len(population))
    design = _weights(records, init_weights, "init_weights", "records")
    for position, margin in enumerate(margins):
        if not isinstance(margin, (Count, Total)):
            raise fail(f"margins[{position}]", "a Count or a Total", margin, TypeError)
        _add_margin(rows, records, margin, population, pop_w, missing)
    if table is not None:
        _add_table(rows, records, table, missing)
    if not rows.names:
        raise ValueError("No targets: give `margins` and/or a `table`; got neither.")
    targets = _finish(rows, records, unmatched)
    targets.init_weights = design
    return targets


# ---------------------------------------------------------------------------- margins
def check_frame(name: str, frame: Any, expected: str = "a pandas DataFrame") -> None:
    """``frame`` must be a pandas DataFrame (a ``TypeError`` naming ``name`` otherwise)."""
    if not type(frame).__module__.startswith("pandas") or not hasattr(frame, "columns"):
        raise fail(name, expected, frame, TypeError)


def _columns(records: Any, by: Any, what: str) -> list[str]:
    if by is None:
        return []
    columns = [by] if isinstance(by, str) else list(by)
    for column in columns:
        if column not in records.columns:
            raise ValueError(f"`{what}` names column {column!r}, which the records do not have "
                             f"(columns: {list(records.columns)[:12]}).")
    return columns


def _numeric(frame: Any, column: str, where: str, missing: str) -> np.ndarray:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    series = frame[column]
    if is_bool_dtype(series.dtype) or not is_numeric_dtype(series.dtype):
        raise TypeError(f"`{where}` sums column {column!r}, which is not numeric (dtype "
                        f"{series.dtype}).")
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        if missing == "raise" or np.isinf(values[bad]).any():
            raise ValueError(
                f"Column {column!r} summed by `{where}` has {int(bad.sum())} missing or infinite "
                f"values (first at row {plain(frame.index[np.flatnonzero(bad)[0]])!r}); pass "
                "missing='zero' to count missing values as 0, or fill them first.")
        values = np.where(bad, 0.0, values)
    return values


def _key_index(frame: Any, columns: list[str]) -> Any:
    import pandas as pd

    if len(columns) == 1:
        return pd.Index(frame[columns[0]])
    return pd.MultiIndex.from_frame(frame[columns])


def _margin_totals(margin: Count | Total, columns: list[str], population: Any, pop_w: Any,
                   missing: str, where: str) -> Any:
    """The margin's totals as a pandas Series (index: categories; scalar index 0 if overall)."""
    import pandas as pd

    totals = margin.totals
    if totals is None:
        if population is None:
            raise ValueError(f"`{where}` has no totals: give `totals=` or a `population`.")
        _columns(population, columns, f"{where}.by")
        values = pop_w.copy()
        if isinstance(margin, Total):
            if margin.column not in population.columns:
                raise ValueError(f"`{where}` sums column {margin.column!r}, which the "
                                 "population does not have.")
            values = values * _numeric(population, margin.column, where, missing)
        if not columns:
            return pd.Series([values.sum()])
        keys = [population[c] for c in columns]
        return pd.Series(values, index=population.index).groupby(keys, sort=True).sum()
    if not columns:
        if isinstance(totals, (pd.Series, dict, list, tuple, np.ndarray, pd.DataFrame)):
            raise fail(f"{where}.totals", "a number (the margin has no `by`)", totals, TypeError)
        return pd.Series([totals])
    if isinstance(totals, pd.DataFrame):
        if "value" not in totals.columns:
            raise ValueError(f"`{where}.totals` must have a 'value' column and the columns "
                             f"{columns}; got columns {list(totals.columns)}.")
        missing_cols = [c for c in columns if c not in totals.columns]
        if missing_cols:
            raise ValueError(f"`{where}.totals` lacks the `by` columns {missing_cols}.")
        return pd.Series(totals["value"].to_numpy(), index=_key_index(totals, columns))
    if isinstance(totals, dict):
        if len(columns) > 1:
            return pd.Series(list(totals.values()),
                             index=pd.MultiIndex.from_tuples(list(totals.keys())))
        return pd.Series(list(totals.values()), index=list(totals.keys()))
    if isinstance(totals, pd.Series):
        return totals
    raise fail(f"{where}.totals", "a dict, a pandas Series or a DataFrame with a 'value' column",
               totals, TypeError)


def _weights(frame: Any, weights: Any, name: str, frame_name: str) -> np.ndarray | None:
    """A weight per row of ``frame``: a column name, or values; None → ones (or None)."""
    if frame is None:
        if weights is not None:
            raise ValueError(f"`{name}` needs a `{frame_name}`; got {frame_name}=None.")
        return None
    if weights is None:
        return None
    if isinstance(weights, str):
        if weights not in frame.columns:
            raise ValueError(f"`{name}` names column {weights!r}, which `{frame_name}` does "
                             "not have.")
        values = _numeric(frame, weights, name, "raise")
    else:
        from ._matrix import as_vector

        values = as_vector(weights, name, len(frame))
    if (values < 0).any():
        raise fail(name, "non-negative", f"minimum {values.min()}")
    return values


def _label(columns: list[str], key: Any) -> str:
    if not columns:
        return ""
    parts = key if isinstance(key, tuple) else (key,)
    return "[" + ",".join(f"{c}={v}" for c, v in zip(columns, parts, strict=True)) + "]"


def _add_margin(rows: _Rows, records: Any, margin: Count | Total, population: Any, pop_w: Any,
                missing: str) -> None:
    kind = "Count" if isinstance(margin, Count) else "Total"
    where = f"{kind}({margin.column!r})" if isinstance(margin, Total) else "Count"
    columns = _columns(records, margin.by, f"{where}.by")
    if isinstance(margin, Total) and margin.column not in records.columns:
        raise ValueError(f"`{where}` sums column {margin.column!r}, which the records do not "
                         f"have (columns: {list(records.columns)[:12]}).")
    values = (np.ones(len(records)) if isinstance(margin, Count)
              else _numeric(records, margin.column, where, missing))
    totals = _margin_totals(margin, columns, population, pop_w, missing, where)
    if totals.index.has_duplicates:
        raise ValueError(f"`{where}.totals` lists a category twice: "
                         f"{plain(totals.index[totals.index.duplicated()][0])!r}.")
    label = margin.name or ("count" if isinstance(margin, Count) else margin.column)
    group = label + (f" by {','.join(columns)}" if columns else "")
    if columns:
        row_of = totals.index.get_indexer(_key_index(records, columns))
    else:
        row_of = np.zeros(len(records), dtype=np.int64)
    keep = row_of >= 0
    block = sp.csr_array((values[keep], (row_of[keep], np.flatnonzero(keep))),
                         shape=(len(totals), len(records)))
    matched = np.bincount(row_of[keep], minlength=len(totals))
    names = [label + _label(columns, key) for key in totals.index]
    reasons = [None if m else f"no record has {_label(columns, key)[1:-1] or 'any value'}"
               for m, key in zip(matched, totals.index, strict=True)]
    rows.add(block, names, group, totals.to_numpy(dtype=np.float64, na_value=np.nan), reasons)


# ---------------------------------------------------------------------------- long table
def blank(value: Any) -> bool:
    """An empty cell of a table: None, NaN or a blank string."""
    return value is None or (isinstance(value, float) and np.isnan(value)) or (
        isinstance(value, str) and not value.strip())


def _add_table(rows: _Rows, records: Any, table: Any, missing: str) -> None:
    check_frame("table", table)
    unknown = [c for c in table.columns if c not in TABLE_COLUMNS]
    if unknown or "value" not in table.columns:
        raise ValueError(f"`table` must have a 'value' column and only the columns "
                         f"{list(TABLE_COLUMNS)}; got columns {list(table.columns)}.")
    if len(table) == 0:
        return
    masks: dict[str, np.ndarray] = {}
    variables: dict[str, np.ndarray] = {}
    n = len(records)
    everyone = np.arange(n)
    cols, vals, names, groups, totals, reasons = [], [], [], [], [], []
    for position, row in enumerate(table.itertuples(index=False)):
        entry = row._asdict()
        expr = None if blank(entry.get("filter")) else str(entry["filter"])
        variable = None if blank(entry.get("variable")) else str(entry["variable"])
        name = None if blank(entry.get("name")) else str(entry["name"])
        where = f"table row {position}" + ("" if name is None else f" ({name!r})")
        if expr is not None and expr not in masks:
            masks[expr] = np.flatnonzero(_evaluate_filter(records, expr, where))
        if variable is not None and variable not in variables:
            if variable not in records.columns:
                raise ValueError(f"`{where}` sums column {variable!r}, which the records do "
                                 f"not have (columns: {list(records.columns)[:12]}).")
            variables[variable] = _numeric(records, variable, where, missing)
        matched = masks[expr] if expr is not None else everyone
        cols.append(matched)
        vals.append(variables[variable][matched] if variable is not None
                    else np.ones(len(matched)))
        names.append(name or (variable or "count") + (f"[{expr}]" if expr else ""))
        groups.append((variable or "count") if blank(entry.get("group"))
                      else str(entry["group"]))
        totals.append(_table_value(entry["value"], where))
        reasons.append(None if len(matched) else f"filter {expr!r} matches no record")
    lengths = [len(c) for c in cols]
    block = sp.csr_array(
        (np.concatenate(vals), np.concatenate(cols), np.concatenate([[0], np.cumsum(lengths)])),
        shape=(len(names), n))
    rows.add(block, names, groups, totals, reasons)


def _evaluate_filter(records: Any, expr: str, where: str) -> np.ndarray:
    try:
        mask = evaluate_filter(records, expr, where)  # columns and constants only, checked first
    except ValueError as exc:
        if str(exc).startswith(f"`{where}` has filter"):
            raise
        raise ValueError(f"`{where}` has filter {expr!r}, which pandas cannot evaluate on the "
                         f"records: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # pandas raises many types for a bad expression
        raise ValueError(f"`{where}` has filter {expr!r}, which pandas cannot evaluate on the "
                         f"records: {type(exc).__name__}: {exc}") from None
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != (len(records),):
        raise ValueError(f"`{where}` has filter {expr!r}, which is not a true/false condition "
                         f"per record (got {mask.dtype}, shape {mask.shape}).")
    return mask


def _table_value(value: Any, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise fail(f"{where}.value", "a number", value, TypeError) from None


# ---------------------------------------------------------------------------- assembly
def _finish(rows: _Rows, records: Any, unmatched: str) -> Targets:
    import pandas as pd

    values = np.asarray(rows.values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"The total of target {rows.names[first]!r} is {float(values[first])}; "
                         f"every total must be finite ({int(bad.sum())} are not).")
    unmatched_at = [i for i, reason in enumerate(rows.reasons) if reason is not None]
    if unmatched_at and unmatched == "raise":
        shown = "; ".join(f"{rows.names[i]!r}: {rows.reasons[i]}" for i in unmatched_at[:5])
        more = f" (and {len(unmatched_at) - 5} more)" if len(unmatched_at) > 5 else ""
        raise ValueError(f"{len(unmatched_at)} targets match no record — {shown}{more}. Fix "
                         "the margins, or pass unmatched='drop' to leave them out.")
    keep = np.ones(len(values), dtype=bool)
    keep[unmatched_at] = False
    M = sp.csr_array(sp.vstack(rows.blocks, format="csr"))
    if unmatched_at:
        M = M[np.flatnonzero(keep)]
        log.info("margins: %d targets matching no record dropped (see Targets.dropped)",
                 len(unmatched_at))
    M.sort_indices()
    dropped = pd.DataFrame({
        "name": [rows.names[i] for i in unmatched_at],
        "group": [rows.groups[i] for i in unmatched_at],
        "value": values[unmatched_at],
        "reason": [rows.reasons[i] for i in unmatched_at],
    })
    names = [name for name, k in zip(rows.names, keep, strict=True) if k]
    groups = np.asarray([g for g, k in zip(rows.groups, keep, strict=True) if k], dtype=str)
    return Targets(M, values[keep], names, groups, dropped, records.index)
