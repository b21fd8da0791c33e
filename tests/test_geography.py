"""Geography cloning against a brute-force construction, scipy's kron, and every bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from l0.calibration.geography import ALL_AREAS, clone_into_areas
from l0.calibration.margins import Count, Total

HOMES = pd.DataFrame({"income": [10.0, 0.0, 30.0, 5.0], "size": [1, 2, 3, 4]},
                     index=pd.Index(["h1", "h2", "h3", "h4"], name="home"))
AREAS = pd.DataFrame({"state": ["A", "A", "B"]}, index=pd.Index([11, 12, 21], name="district"))
BASE = [Count(), Total("income"), Total("size")]


def brute_force(B: np.ndarray, areas: pd.DataFrame, P: np.ndarray, rows: list[tuple]):
    """Loops: clones (i, a) with P > 0 in area-major order; each row sums its unit's clones."""
    clones = [(i, a) for a in range(P.shape[1]) for i in range(P.shape[0]) if P[i, a] > 0]
    M = np.zeros((len(rows), len(clones)))
    for r, (level, unit, k) in enumerate(rows):
        for j, (i, a) in enumerate(clones):
            if level == ALL_AREAS:
                inside = True
            elif level == areas.index.name:
                inside = areas.index[a] == unit
            else:
                inside = areas[level].iloc[a] == unit
            if inside:
                M[r, j] = B[k, i]
    return M, clones


def table(rows: list[tuple], values=None) -> pd.DataFrame:
    names = {0: "count", 1: "income", 2: "size"}
    return pd.DataFrame({"level": [r[0] for r in rows], "unit": [r[1] for r in rows],
                         "target": [names[r[2]] for r in rows],
                         "value": values if values is not None else np.ones(len(rows))})


ROWS = [("district", 11, 1), ("district", 21, 0), ("state", "A", 2), ("state", "B", 1),
        (ALL_AREAS, None, 0), ("district", 12, 2)]


def test_every_area_equals_kron_of_the_base_rows():
    B = np.vstack([np.ones(4), HOMES["income"], HOMES["size"]])
    rows = [("district", d, k) for d in AREAS.index for k in range(3)] + \
        [(ALL_AREAS, None, k) for k in range(3)]
    cloned = clone_into_areas(HOMES, AREAS, BASE, targets=table(rows))
    expected = sp.vstack([sp.kron(sp.eye_array(3), B), sp.kron(np.ones((1, 3)), B)]).toarray()
    np.testing.assert_array_equal(cloned.matrix.toarray(), expected)
    assert cloned.matrix.has_sorted_indices and cloned.matrix.nnz == np.count_nonzero(expected)
    np.testing.assert_allclose(cloned.init_weights, 1 / 3)
    assert cloned.names[:2] == ["district=11: count", "district=11: income"]
    assert cloned.names[-1] == "all: size"
    assert cloned.groups[0] == "district: count" and cloned.groups[-1] == "all: size"


def test_eligibility_and_probabilities_against_brute_force():
    P = np.array([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 0.0]])
    cloned = clone_into_areas(HOMES, AREAS, BASE, targets=table(ROWS), assignment=P,
                              init_weights=[2.0, 4.0, 6.0, 8.0])
    B = np.vstack([np.ones(4), HOMES["income"], HOMES["size"]])
    expected, clones = brute_force(B, AREAS, P, ROWS)
    np.testing.assert_array_equal(cloned.matrix.toarray(), expected)
    assert list(zip(cloned.clone_record, cloned.clone_area, strict=True)) == clones
    np.testing.assert_allclose(cloned.init_weights,
                               [[2.0, 4.0, 6.0, 8.0][i] * P[i, a] for i, a in clones])
    assert cloned.records.tolist() == [(HOMES.index[i], AREAS.index[a]) for i, a in clones]
    # booleans: eligible areas, equally likely
    flags = P > 0
    again = clone_into_areas(HOMES, AREAS, BASE, targets=table(ROWS), assignment=flags)
    np.testing.assert_array_equal(again.matrix.toarray(), expected)
    np.testing.assert_allclose(again.init_weights, [1 / flags[i].sum() for i, _ in clones])
    # a sparse assignment is the same
    sparse = clone_into_areas(HOMES, AREAS, BASE, targets=table(ROWS), assignment=sp.csr_array(P))
    assert (sparse.matrix != cloned.matrix).nnz == 0


def test_weights_map_back_to_records_and_areas():
    rows = [("district", d, 0) for d in AREAS.index] + [(ALL_AREAS, None, 1)]
    cloned = clone_into_areas(HOMES, AREAS, BASE, targets=table(rows, [1.0, 2.0, 1.0, 45.0]))
    result = cloned.calibrate(method="exact")
    assert result.status == "exact"
    frame = cloned.weights_frame(result)
    assert list(frame.columns) == ["home", "district", "weight"]
    np.testing.assert_allclose(frame.groupby("district")["weight"].sum(), [1.0, 2.0, 1.0])
    per_record = cloned.record_weights(result)
    assert per_record.index.equals(HOMES.index)
    np.testing.assert_allclose(per_record @ HOMES["income"], 45.0)
    np.testing.assert_allclose(per_record.sum(), 4.0)


def test_unmatched_targets_raise_by_name_or_drop_with_a_report():
    P = np.ones((4, 3), dtype=bool)
    P[:, 2] = False  # nobody may live in district 21 (state B)
    rows = pd.DataFrame({"level": ["district", "state", "district", "all"],
                         "unit": [99, "B", 11, None], "target": ["count", "count", "wealth",
                                                                  "count"],
                         "value": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ValueError, match=r"3 targets match no clone — 'district=99: count': no "
                                         r"district 99 among the areas; 'state=B: count': no "
                                         r"record may be cloned into state 'B'; 'district=11: "
                                         r"wealth': no base target 'wealth'"):
        clone_into_areas(HOMES, AREAS, BASE, targets=rows, assignment=P)
    cloned = clone_into_areas(HOMES, AREAS, BASE, targets=rows, assignment=P, unmatched="drop")
    assert cloned.names == ["all: count"]
    assert cloned.dropped["name"].tolist() == ["district=99: count", "state=B: count",
                                               "district=11: wealth"]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"targets": table([("county", 1, 0)])}, ValueError,
         "`targets` row 0 has level 'county', which is neither the area level 'district'"),
        ({"targets": table(ROWS).drop(columns="unit")}, ValueError,
         r"`targets` must have the columns \['level', 'unit', 'target', 'value'\]"),
        ({"targets": table(ROWS).assign(value="x")}, TypeError, r"`targets.value\[0\]` must be a number"),
        ({"targets": table(ROWS).assign(value=np.inf)}, ValueError, "must be a finite number"),
        ({"targets": [("district", 11, "count", 1.0)]}, TypeError, "`targets` must be a pandas DataFrame"),
        ({"targets": table(ROWS), "assignment": np.ones((3, 3))}, ValueError,
         r"`assignment` must be shape \(4, 3\) \(records × areas\)"),
        ({"targets": table(ROWS), "assignment": -np.ones((4, 3))}, ValueError,
         "`assignment` must be finite probabilities >= 0"),
        ({"targets": table(ROWS), "margins": [Count(totals=5)]}, ValueError,
         r"`margins\[0\]` has totals; the totals of cloned targets come from `targets`"),
        ({"targets": table(ROWS), "margins": [Count(), Count()]}, ValueError,
         "Two base targets share the name 'count'"),
        ({"targets": table(ROWS), "areas": [1, 1]}, ValueError, "`areas` lists area 1 twice"),
        ({"targets": table(ROWS), "areas": "district"}, TypeError,
         "`areas` must be a sequence of area ids or a DataFrame"),
    ],
)
def test_bad_input_names_what_is_wrong(kwargs, error, message):
    arguments = {"records": HOMES, "areas": AREAS, "margins": BASE, **kwargs}
    with pytest.raises(error, match=message):
        clone_into_areas(**arguments)


def test_a_plain_list_of_areas_and_a_base_table():
    base = pd.DataFrame({"filter": ["size >= 2"], "variable": ["income"], "name": ["rich"]})
    rows = pd.DataFrame({"level": ["area", "all"], "unit": ["x", None], "target": ["rich", "rich"],
                         "value": [1.0, 2.0]})
    cloned = clone_into_areas(HOMES, ["x", "y"], [], targets=rows, base_table=base)
    np.testing.assert_array_equal(cloned.matrix.toarray(),
                                  [[0, 0, 30, 5, 0, 0, 0, 0], [0, 0, 30, 5, 0, 0, 30, 5]])
    assert cloned.records.names == ["home", "area"]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 10_000))
def test_random_assignments_match_brute_force(n_records, n_areas, seed):
    rng = np.random.default_rng(seed)
    homes = pd.DataFrame({"income": rng.integers(0, 3, n_records).astype(float),
                          "size": rng.integers(1, 4, n_records)})
    areas = pd.DataFrame({"state": rng.choice(["A", "B"], n_areas)},
                         index=pd.Index(range(n_areas), name="district"))
    P = rng.random((n_records, n_areas)) * (rng.random((n_records, n_areas)) < 0.6)
    P[0, 0] = 0.5  # at least one clone
    units = {"district": list(range(n_areas)), "state": sorted(set(areas["state"])),
             ALL_AREAS: [None]}
    rows = [(level, unit, k) for level, us in units.items() for unit in us for k in range(3)]
    cloned = clone_into_areas(homes, areas, BASE, targets=table(rows), assignment=P,
                              unmatched="drop")
    B = np.vstack([np.ones(n_records), homes["income"], homes["size"]])
    def populated(level, unit):
        inside = {"district": areas.index == unit, "state": areas["state"].to_numpy() == unit,
                  ALL_AREAS: np.ones(n_areas, dtype=bool)}[level]
        return bool((P[:, inside] > 0).any())

    kept = [r for r in rows if populated(r[0], r[1])]
    assert len(cloned.names) == len(kept) and len(cloned.dropped) == len(rows) - len(kept)
    expected, _ = brute_force(B, areas, P, kept)
    np.testing.assert_array_equal(cloned.matrix.toarray(), expected)
