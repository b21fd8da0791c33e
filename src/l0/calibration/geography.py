"""Geography cloning: every record cloned into every area it may belong to, calibrated at once.

Microsimulation teams calibrate national, state and district totals together by cloning each
household into each area (with an assignment probability, or only into areas it is eligible
for) and letting the calibration choose which clones carry weight. :func:`clone_into_areas`
builds that block-structured matrix directly in CSR — one pass over the areas, each a
vectorised copy of the base rows into preallocated arrays, no dense or COO intermediate — and
maps the clones' weights back to (record, area).

Columns are the clones in area-major order: all clones of area 0, then of area 1, ... Rows are
the targets of a long table: at the area level, at any aggregate level (a column of ``areas``,
e.g. a state), or over all areas (``level="all"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._validation import check_choice, fail, plain
from .margins import Count, Total, blank, build_targets, check_frame
from .targets import Targets

__all__ = ["ClonedTargets", "clone_into_areas", "ALL_AREAS", "TARGET_COLUMNS"]

ALL_AREAS = "all"
"""The ``level`` of a target over every area (a national total)."""

TARGET_COLUMNS = ("level", "unit", "target", "value", "name", "group")
"""Columns of the targets table of :func:`clone_into_areas` (``name``/``group`` optional)."""


@dataclass
class ClonedTargets(Targets):
    """Targets over clones; :attr:`records` is a (record, area) MultiIndex, one per clone.

    Beyond those of :class:`~l0.calibration.targets.Targets`:

    Attributes
    ----------
    clone_record : ndarray of int
        The position (in ``records``) of each clone's record.
    clone_area : ndarray of int
        The position (in ``areas``) of each clone's area.
    init_weights : ndarray
        Each clone's design weight: the record's weight times its assignment probability.
    """

    clone_record: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    clone_area: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    def weights_frame(self, weights: Any) -> Any:
        """The clones with non-zero weight: a DataFrame of record, area and weight."""
        series = self.weights_series(weights)
        return series[series.to_numpy() != 0].reset_index()

    def record_weights(self, weights: Any) -> Any:
        """Each record's weight summed over its clones (a Series on the records' index)."""
        import pandas as pd

        series = self.weights_series(weights)
        totals = np.bincount(self.clone_record, weights=series.to_numpy(),
                             minlength=len(self.records.levels[0]))
        return pd.Series(totals, index=self.records.levels[0], name="weight")


def clone_into_areas(
    records: Any,
    areas: Any,
    margins: Sequence[Count | Total] = (),
    *,
    targets: Any,
    base_table: Any = None,
    assignment: Any = None,
    init_weights: Any = None,
    unmatched: str = "raise",
    missing: str = "raise",
) -> ClonedTargets:
    """Clone every record into the areas and build the area and aggregate targets over clones.

    Parameters
    ----------
    records : pandas.DataFrame
        One row per record (e.g. a household); the index labels the clones' records.
    areas : sequence or pandas.DataFrame
        The areas: a sequence of ids (a named pandas Index names the area level), or a
        DataFrame indexed by area id whose columns are the aggregate levels (e.g. ``state``).
        The area level's name is the index name (default ``"area"``).
    margins : sequence of Count or Total
        The base targets of one area, without totals (e.g. ``Count()``, ``Total("income")``,
        ``Count(by="age_band")``); their names (``count``, ``income``, ``count[age_band=0-17]``)
        are what ``targets["target"]`` refers to.
    targets : pandas.DataFrame
        One row per target: ``level`` (the area level's name, a column of ``areas``, or
        ``"all"``), ``unit`` (the area or aggregate id; ignored for ``"all"``), ``target`` (a
        base target name), ``value``; optional ``name`` and ``group``.
    base_table : pandas.DataFrame, optional
        More base targets as a long table (``filter``, ``variable``, ``name``; no values).
    assignment : array-like or scipy sparse, shape (n_records, n_areas), optional
        Which areas each record may be cloned into: booleans (eligible areas, equally likely)
        or probabilities. A clone's design weight is the record's weight times the
        probability; clones with probability 0 are not built. Default: every area, 1/n_areas.
    init_weights : str or array-like, optional
        The records' design weights (a column of ``records`` or one per record); default 1.
    unmatched : {"raise", "drop"}, default "raise"
        A target whose unit, or base target, does not exist, or whose unit has no clone.
    missing : {"raise", "zero"}, default "raise"
        Missing values in a summed column.

    Returns
    -------
    ClonedTargets
        ``matrix`` of shape (n_targets, n_clones), totals, names (``"state=CA: income"``),
        groups (``"state: income"``), the clones' design weights and the map back to
        (record, area).

    Examples
    --------
    >>> import pandas as pd
    >>> homes = pd.DataFrame({"income": [10.0, 30.0]})
    >>> areas = pd.DataFrame({"state": ["A", "A", "B"]}, index=pd.Index([1, 2, 3], name="district"))
    >>> targets = pd.DataFrame({"level": ["district", "state", "all"], "unit": [1, "B", None],
    ...                         "target": ["income", "count", "count"], "value": [20.0, 1.0, 2.0]})
    >>> cloned = clone_into_areas(homes, areas, [Count(), Total("income")], targets=targets)
    >>> cloned.names
    ['district=1: income', 'state=B: count', 'all: count']
    >>> cloned.matrix.toarray().tolist()
    [[10.0, 30.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]
    """
    import pandas as pd

    check_choice("unmatched", unmatched, ("raise", "drop"))
    for position, margin in enumerate(margins):
        if getattr(margin, "totals", None) is not None:
            raise ValueError(f"`margins[{position}]` has totals; the totals of cloned targets "
                             "come from `targets` — give the base margins without totals.")
    if base_table is not None and "value" not in getattr(base_table, "columns", ()):
        base_table = base_table.assign(value=0.0)
    base = build_targets(records, margins, table=base_table, population=records,
                         init_weights=init_weights, missing=missing)
    B = base.matrix.copy()
    B.eliminate_zeros()
    area_frame = _areas(areas)
    P = _assignment(assignment, len(records), len(area_frame))
    table = _target_table(targets)
    rows = _resolve(table.reset_index(drop=True), area_frame, base.names, P)
    if len(rows.dropped) and unmatched == "raise":
        pairs = list(zip(rows.dropped["name"], rows.dropped["reason"], strict=True))
        shown = "; ".join(f"{n!r}: {r}" for n, r in pairs[:5])
        more = f" (and {len(pairs) - 5} more)" if len(pairs) > 5 else ""
        raise ValueError(f"{len(pairs)} targets match no clone — {shown}{more}. Fix the "
                         "targets, or pass unmatched='drop' to leave them out.")
    M, clone_record, clone_area, clone_p = _assemble(B, P, rows)
    design = base.init_weights if base.init_weights is not None else np.ones(len(records))
    index = pd.MultiIndex(levels=[_unique_labels(records.index), area_frame.index],
                          codes=[clone_record, clone_area],
                          names=[records.index.name or "record", area_frame.index.name],
                          verify_integrity=False)
    groups = np.asarray([f"{lvl}: {base.groups[k]}" if g is None else g
                         for lvl, k, g in zip(rows.level, rows.base, rows.group, strict=True)],
                        dtype=str)
    return ClonedTargets(M, rows.value, rows.names, groups, rows.dropped, index,
                         design[clone_record] * clone_p, clone_record, clone_area)


# ---------------------------------------------------------------------------- inputs
def _areas(areas: Any) -> Any:
    import pandas as pd

    if isinstance(areas, pd.DataFrame):
        frame = areas
    elif isinstance(areas, (str, bytes)) or not hasattr(areas, "__len__"):
        raise fail("areas", "a sequence of area ids or a DataFrame indexed by area", areas,
                   TypeError)
    else:
        frame = pd.DataFrame(index=areas if isinstance(areas, pd.Index) else pd.Index(list(areas)))
    if len(frame) == 0:
        raise fail("areas", "at least one area", "none")
    if frame.index.has_duplicates:
        raise ValueError(f"`areas` lists area {plain(frame.index[frame.index.duplicated()][0])!r} "
                         "twice; area ids must be unique.")
    if frame.index.name is None:
        frame = frame.rename_axis("area")
    return frame


def _assignment(assignment: Any, n_records: int, n_areas: int) -> Any:
    """Probabilities as CSC (n_records × n_areas), or None for 'every area, 1/n_areas'."""
    if assignment is None:
        return None
    if sp.issparse(assignment):
        P = sp.csc_array(assignment)
    else:
        P = np.asarray(getattr(assignment, "to_numpy", lambda: assignment)())
        if P.dtype == object:
            raise fail("assignment", "booleans or probabilities", f"dtype {P.dtype}", TypeError)
        P = sp.csc_array(P)
    if P.shape != (n_records, n_areas):
        raise fail("assignment", f"shape ({n_records}, {n_areas}) (records × areas)",
                   f"shape {P.shape}")
    if P.dtype == bool:
        P = sp.csc_array(P, dtype=np.float64)
        counts = np.asarray(P.sum(axis=1)).ravel()
        P = sp.csc_array(sp.diags_array(1.0 / np.maximum(counts, 1.0)) @ P)
    P = P.astype(np.float64)
    if not np.isfinite(P.data).all() or (P.data < 0).any():
        raise fail("assignment", "finite probabilities >= 0", "negative or non-finite values")
    P.eliminate_zeros()
    P.sort_indices()
    return P


def _target_table(targets: Any) -> Any:
    check_frame("targets", targets, "a pandas DataFrame (level, unit, target, value)")
    required = ("level", "unit", "target", "value")
    unknown = [c for c in targets.columns if c not in TARGET_COLUMNS]
    if unknown or any(c not in targets.columns for c in required):
        raise ValueError(f"`targets` must have the columns {list(required)} (and optionally "
                         f"'name', 'group'); got columns {list(targets.columns)}.")
    return targets


def _unique_labels(index: Any) -> Any:
    import pandas as pd

    return index if index.is_unique else pd.RangeIndex(len(index), name=index.name)


@dataclass
class _RequestedRows:
    """The kept targets resolved to (level, unit code, base row), with their labels."""

    level: np.ndarray
    unit: np.ndarray
    base: np.ndarray
    names: list[str]
    group: list[str | None]
    value: np.ndarray
    unit_of_area: dict[str, np.ndarray]
    dropped: Any  # DataFrame: name, value, reason of every target left out


def _level_units(level: str, area_frame: Any, position: int) -> tuple[np.ndarray, Any]:
    """For one level: the unit code of every area, and the unit labels."""
    import pandas as pd

    if level == area_frame.index.name:
        return np.arange(len(area_frame)), area_frame.index
    if level in area_frame.columns:
        return pd.factorize(area_frame[level])
    if level == ALL_AREAS:
        return np.zeros(len(area_frame), dtype=np.int64), pd.Index([None])
    raise ValueError(
        f"`targets` row {position} has level {level!r}, which is neither the area level "
        f"{area_frame.index.name!r}, a column of `areas` {list(area_frame.columns)}, nor "
        f"{ALL_AREAS!r}.")


def _resolve(table: Any, area_frame: Any, base_names: list[str], P: Any) -> _RequestedRows:
    import pandas as pd

    base_index = pd.Index(base_names)
    if base_index.has_duplicates:
        raise ValueError(f"Two base targets share the name "
                         f"{base_index[base_index.duplicated()][0]!r}; name the margins apart.")
    n = len(table)
    levels = table["level"].astype(str).to_numpy()
    unit_labels = table["unit"].to_numpy(dtype=object, copy=True)
    targets = table["target"].astype(str).to_numpy()
    values = np.asarray([_value(v, i) for i, v in enumerate(table["value"].to_numpy())])
    has_clones = np.ones(len(area_frame), dtype=bool) if P is None else np.diff(P.indptr) > 0
    unit, unit_of_area, reasons, level_labels = _match_units(levels, unit_labels, area_frame,
                                                             has_clones)
    base = base_index.get_indexer(targets)
    for i in np.flatnonzero((base < 0) & (reasons == None)):  # noqa: E711 - object array
        reasons[i] = f"no base target {targets[i]!r} (base targets: {base_names[:6]})"
    given = table["name"].to_numpy(dtype=object) if "name" in table else np.full(n, None)
    for level, (_, labels) in level_labels.items():  # matched units by their canonical label
        at = np.flatnonzero((levels == level) & (unit >= 0))
        unit_labels[at] = [plain(label) for label in labels[unit[at]]]
    names = [str(given[i]) if not blank(given[i]) else
             (f"{ALL_AREAS}: " if levels[i] == ALL_AREAS else f"{levels[i]}={unit_labels[i]}: ")
             + targets[i] for i in range(n)]
    groups = table["group"].to_numpy(dtype=object) if "group" in table else np.full(n, None)
    keep = np.asarray([r is None for r in reasons])
    if not keep.any():
        raise ValueError("No targets left: every row of `targets` matches no clone.")
    dropped = pd.DataFrame({"name": [names[i] for i in np.flatnonzero(~keep)],
                            "value": values[~keep], "reason": reasons[~keep].tolist()})
    kept = np.flatnonzero(keep)
    return _RequestedRows(
        level=levels[kept], unit=unit[kept], base=base[kept],
        names=[names[i] for i in kept],
        group=[None if blank(groups[i]) else str(groups[i]) for i in kept],
        value=values[kept], unit_of_area={lv: unit_of_area[lv] for lv in dict.fromkeys(levels[kept])},
        dropped=dropped)


def _match_units(levels: np.ndarray, unit_labels: np.ndarray, area_frame: Any,
                 has_clones: np.ndarray) -> tuple[np.ndarray, dict, np.ndarray, dict]:
    """Each row's unit (its code among its level's units), each level's unit of every area, why
    a row matches no clone (None where it does), and each level's (codes, labels)."""
    n = len(levels)
    unit = np.zeros(n, dtype=np.int64)
    unit_of_area: dict[str, np.ndarray] = {}
    reasons = np.full(n, None, dtype=object)
    level_labels = {}
    for level in dict.fromkeys(levels):
        at = np.flatnonzero(levels == level)
        codes, labels = level_labels[level] = _level_units(level, area_frame, int(at[0]))
        unit_of_area[level] = codes
        if level != ALL_AREAS:
            unit[at] = labels.get_indexer(unit_labels[at])
        populated = np.bincount(codes[has_clones], minlength=len(labels)) > 0
        for i in at:
            if unit[i] < 0:
                reasons[i] = f"no {level} {plain(unit_labels[i])!r} among the areas"
            elif not populated[unit[i]]:
                reasons[i] = f"no record may be cloned into {level} {plain(unit_labels[i])!r}"
    return unit, unit_of_area, reasons, level_labels


def _value(value: Any, position: int) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise fail(f"targets.value[{position}]", "a number", value, TypeError) from None
    if not np.isfinite(value):
        raise fail(f"targets.value[{position}]", "a finite number", value)
    return value


# ---------------------------------------------------------------------------- assembly
def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + n)`` for each (s, n), vectorised."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))


def _assemble(B: Any, P: Any, rows: _RequestedRows) -> tuple[Any, ...]:
    """The clones' CSR matrix, written area by area into preallocated arrays."""
    n_records, n_areas = B.shape[1], len(next(iter(rows.unit_of_area.values())))
    members, sizes, row_nnz = _blocks(B, P, n_areas)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    lengths, by_area_level = _rows_by_area(rows, row_nnz, n_areas)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    nnz, n_clones = int(indptr[-1]), int(offsets[-1])
    index_dtype = np.int32 if max(nnz, n_clones) < np.iinfo(np.int32).max else np.int64
    indices = np.empty(nnz, dtype=index_dtype)
    data = np.empty(nnz, dtype=np.float64)
    fill = indptr[:-1].copy()
    base = rows.base
    for a in range(n_areas):
        block = B if members[a] is None else sp.csr_array(B[:, members[a]])
        for name in rows.unit_of_area:
            mine = by_area_level.get((a, name))
            if mine is None:
                continue
            starts = block.indptr[base[mine]]
            counts = block.indptr[base[mine] + 1] - starts
            source = _ranges(starts, counts)
            target = _ranges(fill[mine], counts)
            indices[target] = block.indices[source] + offsets[a]
            data[target] = block.data[source]
            fill[mine] += counts
    M = sp.csr_array((data, indices, indptr.astype(index_dtype)), shape=(len(rows.unit), n_clones))
    M.has_sorted_indices = True
    if P is None:
        clone_record = np.tile(np.arange(n_records), n_areas)
        clone_p = np.full(n_clones, 1.0 / n_areas)
    else:
        clone_record, clone_p = P.indices.astype(np.int64), P.data
    clone_area = np.repeat(np.arange(n_areas), sizes)
    return M, clone_record, clone_area, clone_p


def _blocks(B: Any, P: Any, n_areas: int) -> tuple[list, np.ndarray, np.ndarray]:
    """Each area's records (None: every record), its number of clones, and the non-zeros of
    each base row in each area's block (K × A)."""
    if P is None:
        members = [None] * n_areas
        sizes = np.full(n_areas, B.shape[1], dtype=np.int64)
        row_nnz = np.repeat(np.diff(B.indptr)[:, None], n_areas, axis=1)
        return members, sizes, row_nnz
    members = [P.indices[P.indptr[a]:P.indptr[a + 1]] for a in range(n_areas)]
    sizes = np.diff(P.indptr).astype(np.int64)
    pattern = sp.csr_array((np.ones(B.nnz), B.indices, B.indptr), shape=B.shape)
    support = sp.csc_array((np.ones(P.nnz), P.indices, P.indptr), shape=P.shape)
    row_nnz = (pattern @ support).toarray().astype(np.int64)  # K × A non-zeros per block
    return members, sizes, row_nnz


def _rows_by_area(rows: _RequestedRows, row_nnz: np.ndarray,
                  n_areas: int) -> tuple[np.ndarray, dict[tuple[int, str], np.ndarray]]:
    """The non-zeros of each requested row, and the rows each (area, level) block feeds."""
    unit, base = rows.unit, rows.base
    lengths = np.zeros(len(unit), dtype=np.int64)
    by_area_level = {}
    for name, unit_of_area in rows.unit_of_area.items():
        at = np.flatnonzero(rows.level == name)
        at = at[np.argsort(unit[at], kind="stable")]
        bounds = np.searchsorted(unit[at], np.arange(unit_of_area.max() + 2))
        for a in range(n_areas):
            u = unit_of_area[a]
            mine = at[bounds[u]:bounds[u + 1]]
            if len(mine):
                by_area_level[a, name] = mine
                lengths[mine] += row_nnz[base[mine], a]
    return lengths, by_area_level
