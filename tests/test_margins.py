"""Margins → problem: against hand-built matrices, the schools' own problem, and every bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l0.calibration import calibrate
from l0.calibration.margins import Count, Targets, Total, build_targets
from l0.datasets import load_api, load_api_targets

RECORDS = pd.DataFrame({
    "region": ["N", "N", "S", "S", "S"],
    "tenure": ["own", "rent", "own", "own", "rent"],
    "income": [10.0, 20.0, 30.0, 40.0, 50.0],
    "size": [1, 2, 3, 1, 2],
}, index=pd.Index(list("abcde"), name="home"))


def test_counts_crossed_and_totals_by_category_match_a_hand_built_matrix():
    targets = build_targets(RECORDS, [
        Count(by=["region", "tenure"], totals={("S", "own"): 7, ("N", "rent"): 3}),
        Total("income", by="region", totals=pd.Series({"S": 900.0, "N": 100.0})),
        Total("size", totals=20, name="people"),
    ])
    assert targets.names == ["count[region=S,tenure=own]", "count[region=N,tenure=rent]",
                             "income[region=S]", "income[region=N]", "people"]
    expected = np.array([
        [0, 0, 1, 1, 0],
        [0, 1, 0, 0, 0],
        [0, 0, 30, 40, 50],
        [10, 20, 0, 0, 0],
        [1, 2, 3, 1, 2],
    ], dtype=float)
    np.testing.assert_array_equal(targets.matrix.toarray(), expected)
    np.testing.assert_array_equal(targets.totals, [7, 3, 900, 100, 20])
    assert targets.groups.tolist() == ["count by region,tenure"] * 2 + ["income by region"] * 2 \
        + ["people"]
    M, y, names, groups = targets  # unpacks as the four problem arguments
    assert M is targets.matrix and names is targets.names
    assert len(targets) == 5 and targets.dropped.empty


def test_totals_as_a_frame_with_a_value_column():
    totals = pd.DataFrame({"tenure": ["rent", "own"], "value": [2.0, 3.0]})
    targets = build_targets(RECORDS, [Count(by="tenure", totals=totals)])
    assert targets.names == ["count[tenure=rent]", "count[tenure=own]"]
    np.testing.assert_array_equal(targets.matrix.toarray(), [[0, 1, 0, 0, 1], [1, 0, 1, 1, 0]])


def test_the_schools_margins_equal_the_hand_built_problem():
    pop = load_api("pop")
    margins = [Count(by=["cname", "stype"]), Total("enroll", by="cname")]
    margins += [Total(column, by="stype") for column in ("api00", "api99", "meals", "ell")]
    targets = build_targets(pop, margins, population=pop, missing="zero")
    M, y, names = load_api_targets()
    hand = {}
    for i, name in enumerate(names):
        label, key = name.split(" ", 1)
        if label == "schools":
            county, stype = key.split(":")
            hand[f"count[cname={county},stype={stype}]"] = i
        elif label == "enroll":
            hand[f"enroll[cname={key}]"] = i
        else:
            hand[f"{label}[stype={key}]"] = i
    order = [hand[name] for name in targets.names]
    assert sorted(order) == list(range(len(names)))
    assert (targets.matrix != M[order]).nnz == 0
    np.testing.assert_array_equal(targets.totals, y[order])


def test_population_totals_with_population_weights():
    population = pd.DataFrame({"region": ["N", "S", "S"], "income": [5.0, 6.0, 7.0],
                               "wt": [10.0, 20.0, 30.0]})
    targets = build_targets(RECORDS, [Count(by="region"), Total("income")],
                            population=population, population_weights="wt")
    assert targets.names == ["count[region=N]", "count[region=S]", "income"]
    np.testing.assert_array_equal(targets.totals, [10.0, 50.0, 50 + 120 + 210])


def test_a_long_table_with_filters_and_variables():
    table = pd.DataFrame({
        "value": [4.0, 60.0, 5.0],
        "filter": ["region == 'S' and size >= 2", "tenure == 'own'", None],
        "variable": [None, "income", ""],
        "name": ["big southern homes", None, None],
    })
    targets = build_targets(RECORDS, table=table)
    assert targets.names == ["big southern homes", "income[tenure == 'own']", "count"]
    assert targets.groups.tolist() == ["count", "income", "count"]
    np.testing.assert_array_equal(targets.matrix.toarray(),
                                  [[0, 0, 1, 0, 1], [10, 0, 30, 40, 0], [1, 1, 1, 1, 1]])


def test_names_groups_and_design_weights_flow_into_the_result():
    targets = build_targets(RECORDS, [Count(by="region", totals={"N": 4.0, "S": 6.0}),
                                      Total("income", totals=300.0)], init_weights=[2.0] * 5)
    np.testing.assert_array_equal(targets.init_weights, 2.0)
    result = targets.calibrate(method="linear")
    table = result.per_target()
    assert list(table.index) == targets.names
    assert table["group"].tolist() == ["count by region", "count by region", "income"]
    np.testing.assert_allclose(result.estimates, targets.totals, rtol=1e-12)
    assert targets.weights_series(result).index.equals(RECORDS.index)
    # string group labels work with group multipliers in the new API too
    again = calibrate(**targets.problem_arguments(), method="exact",
                      group_multipliers={"income": 2.0})
    assert again.status == "exact" and again.per_target()["group"].iloc[-1] == "income"


def test_unmatched_categories_raise_by_name_or_drop_with_a_report():
    margin = Count(by="region", totals={"N": 1.0, "W": 2.0, "E": 3.0})
    with pytest.raises(ValueError, match=r"2 targets match no record — 'count\[region=W\]': no "
                                         r"record has region=W; 'count\[region=E\]'"):
        build_targets(RECORDS, [margin])
    targets = build_targets(RECORDS, [margin, Total("income", totals=1.0)], unmatched="drop")
    assert targets.names == ["count[region=N]", "income"]
    assert targets.matrix.shape == (2, 5)
    assert targets.dropped.to_dict("list") == {
        "name": ["count[region=W]", "count[region=E]"],
        "group": ["count by region"] * 2, "value": [2.0, 3.0],
        "reason": ["no record has region=W", "no record has region=E"]}
    empty = pd.DataFrame({"value": [1.0], "filter": ["size > 10"]})
    with pytest.raises(ValueError, match=r"filter 'size > 10' matches no record"):
        build_targets(RECORDS, table=empty)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: build_targets(RECORDS, [Count(by="county", totals={"x": 1})]), ValueError,
         "`Count.by` names column 'county', which the records do not have"),
        (lambda: build_targets(RECORDS, [Total("wage", totals=1)]), ValueError,
         r"`Total\('wage'\)` sums column 'wage', which the records do not have"),
        (lambda: build_targets(RECORDS, [Total("region", totals=1)]), TypeError,
         "sums column 'region', which is not numeric"),
        (lambda: build_targets(RECORDS.assign(income=[1.0, None, 3.0, 4.0, 5.0]),
                               [Total("income", totals=1)]), ValueError,
         r"Column 'income' summed by `Total\('income'\)` has 1 missing or infinite values "
         r"\(first at row 'b'\); pass missing='zero'"),
        (lambda: build_targets(RECORDS, [Count(by="region", totals=5)]), TypeError,
         "`Count.totals` must be a dict, a pandas Series or a DataFrame"),
        (lambda: build_targets(RECORDS, [Count(totals={"N": 1})]), TypeError,
         r"`Count.totals` must be a number \(the margin has no `by`\)"),
        (lambda: build_targets(RECORDS, [Count(by="region")]), ValueError,
         "`Count` has no totals: give `totals=` or a `population`"),
        (lambda: build_targets(RECORDS, [Count(by="region", totals=pd.Series([1, 2], ["N", "N"]))]),
         ValueError, "`Count.totals` lists a category twice: 'N'"),
        (lambda: build_targets(RECORDS, [Count(totals=float("nan"))]), ValueError,
         "The total of target 'count' is nan; every total must be finite"),
        (lambda: build_targets(RECORDS, [Count(by="region", totals=pd.DataFrame({"region": ["N"]}))]),
         ValueError, "`Count.totals` must have a 'value' column"),
        (lambda: build_targets(RECORDS, table=pd.DataFrame({"value": [1], "filtr": ["x"]})),
         ValueError, r"`table` must have a 'value' column and only the columns"),
        (lambda: build_targets(RECORDS, table=pd.DataFrame({"value": [1], "filter": ["size >"]})),
         ValueError, r"`table row 0` has filter 'size >', which pandas cannot evaluate"),
        (lambda: build_targets(RECORDS, table=pd.DataFrame({"value": [1], "filter": ["size + 1"]})),
         ValueError, "which is not a true/false condition per record"),
        (lambda: build_targets(RECORDS, table=pd.DataFrame({"value": ["many"]})), TypeError,
         "`table row 0.value` must be a number"),
        (lambda: build_targets(RECORDS), ValueError, "No targets: give `margins` and/or a `table`"),
        (lambda: build_targets(RECORDS, table=pd.DataFrame({"value": []})), ValueError,
         "No targets: give `margins` and/or a `table`"),
        (lambda: build_targets(RECORDS.to_numpy(), [Count(totals=1)]), TypeError,
         "`records` must be a pandas DataFrame"),
        (lambda: build_targets(RECORDS, ["count"]), TypeError, "`margins\\[0\\]` must be a Count or a Total"),
        (lambda: build_targets(RECORDS, [Count(totals=1)], unmatched="ignore"), ValueError,
         "`unmatched` must be one of"),
        (lambda: build_targets(RECORDS, [Count(totals=1)], init_weights="pw"), ValueError,
         "`init_weights` names column 'pw', which `records` does not have"),
        (lambda: build_targets(RECORDS, [Count(totals=1)], init_weights=[1.0, -1, 1, 1, 1]),
         ValueError, "`init_weights` must be non-negative"),
        (lambda: build_targets(RECORDS, [Count(totals=1)], population_weights="w"), ValueError,
         "`population_weights` needs a `population`"),
    ],
)
def test_bad_specifications_name_what_is_wrong(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_missing_values_may_count_as_zero():
    records = RECORDS.assign(income=[1.0, None, 3.0, 4.0, 5.0])
    targets = build_targets(records, [Total("income", totals=1)], missing="zero")
    np.testing.assert_array_equal(targets.matrix.toarray(), [[1, 0, 3, 4, 5]])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("xy"),
                          st.floats(0.0, 100.0)), min_size=1, max_size=30))
def test_population_margins_are_met_by_the_population_itself(rows):
    frame = pd.DataFrame(rows, columns=["one", "two", "value"])
    targets = build_targets(frame, [Count(by=["one", "two"]), Total("value", by="one")],
                            population=frame)
    assert isinstance(targets, Targets)
    np.testing.assert_allclose(targets.matrix @ np.ones(len(frame)), targets.totals, rtol=1e-12)
    # every record sits in exactly one cell of the crossed count
    counts = targets.matrix[: sum(g.startswith("count") for g in targets.groups)]
    np.testing.assert_array_equal(counts.sum(axis=0), 1.0)


@pytest.mark.parametrize("expr, refusal", [
    ("@np.ones(3) > 0", r"got a reference to a variable \('@'\)"),
    ("enroll.to_csv('{path}') == 0", r"got a call \(filters may not call"),
    ("enroll.values > 1", r"got an attribute \('values'"),
    ("__import__('os').system('true') == 0", r"got a call \(filters may not call"),
    ("enroll[0] > 1", r"got an index"),
    ("lambda: 1", r"got a Lambda expression"),
    ("secret > 1", r"names 'secret': not a column of the records"),
])
def test_a_filter_reaches_nothing_but_the_records_columns(tmp_path, expr, refusal):
    records = pd.DataFrame({"stype": ["E", "H", "M"], "enroll": [100.0, 600.0, 300.0],
                            "api score": [500.0, 700.0, 650.0]})
    path = tmp_path / "written.csv"
    table = pd.DataFrame({"value": [1.0], "filter": [expr.format(path=path)]})
    with pytest.raises(ValueError, match=refusal):
        build_targets(records, table=table)
    assert not path.exists()


def test_ordinary_filters_still_work():
    records = pd.DataFrame({"stype": ["E", "H", "M"], "enroll": [100.0, 600.0, 300.0],
                            "api score": [500.0, 700.0, 650.0]})
    table = pd.DataFrame({"value": [2.0, 1.0, 1.0], "filter": [
        "stype in ['E', 'M']", "enroll > 500 and not (stype == 'E')", "`api score` >= 650 & ~(enroll < 200) & (enroll > -1)"]})
    M, y, names, _ = build_targets(records, table=table)
    assert M.toarray().tolist() == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]]
