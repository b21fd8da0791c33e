"""method="l0": select, then refit — exactness under budgets, bounds, scales, the frontier, results."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from l0.calibration import L0Options, build_problem, calibrate, frontier
from l0.calibration._solvers.gate_selection import starting_log_ratios
from l0.datasets import load_api_targets
from l0.diagnostics import effective_sample_size


def planted(q=12, n=150, seed=0, density=0.4):
    rng = np.random.default_rng(seed)
    M = sp.random_array((q, n), density=density, rng=rng, format="csr")
    M.data = rng.uniform(1, 20, M.nnz)
    d = rng.uniform(1, 3, n)
    return M, M @ (d * rng.uniform(0.5, 2.0, n)), d


@pytest.fixture(scope="module")
def schools():
    M, y, names = load_api_targets()
    return M, y, names


@pytest.mark.parametrize("selection", ["auto", "gates"])
def test_totals_one_and_ten_thousand_are_both_reached(selection):
    result = calibrate([[1, 1, 0, 0], [0, 0, 1, 1]], [1, 1e4], selection=selection,
                       progress=False)
    assert result.status == "exact" and result.max_error <= 1e-12
    budget = calibrate([[1, 1, 0, 0], [0, 0, 1, 1]], [1, 1e4], max_records=2,
                       selection=selection, progress=False)
    assert budget.n_active == 2 and budget.max_error <= 1e-12


def test_starting_ratios_follow_each_records_targets():
    problem = build_problem([[1, 1, 0, 0], [0, 0, 1, 1]], [1, 1e4])
    np.testing.assert_allclose(np.exp(starting_log_ratios(problem)), [0.5, 0.5, 5e3, 5e3])
    wide = build_problem(np.eye(3), [1.0, 1e6, 1e12])
    np.testing.assert_allclose(np.exp(starting_log_ratios(wide)), [1.0, 1e6, 1e12], rtol=1e-12)


def test_every_budget_at_or_above_the_capped_vertex_is_exact_and_as_even(schools):
    M, y, _ = schools
    for k in (300, 800):
        result = calibrate(M, y, max_records=k, progress=False)
        assert result.status == "exact" and result.max_error <= 1e-8
        assert result.n_active <= k
    for k, low, high in ((800, 5.0, 20.0),):
        # the oracle: bisect the cap U of the HiGHS vertex until it fits in k records
        for _ in range(7):
            cap = np.sqrt(low * high)
            x = linprog(np.ones(M.shape[1]), A_eq=M, b_eq=y, bounds=(0, cap), method="highs").x
            if x is not None and np.count_nonzero(x > 1e-9) <= k:
                best, high = x, cap
            else:
                low = cap
        assert result.ess >= effective_sample_size(best)


def test_bounds_hold_on_every_published_weight_with_and_without_refit(schools):
    M, y, _ = schools
    for kwargs in ({"refit": True}, {"refit": False}, {"refit": False, "selection": "gates"}):
        result = calibrate(M, y, max_records=1400, bounds=(0.5, 5.0), progress=False,
                           max_epochs=300, **kwargs)
        g = result.g_weights[result.support]
        assert g.min() >= 0.5 - 1e-12 and g.max() <= 5.0 + 1e-12, kwargs
        assert result.n_active <= 1400
    exact = calibrate(M, y, max_records=1400, bounds=(0, 5), progress=False)
    assert exact.status == "exact" and exact.max_error <= 1e-8  # the U = 5 vertex fits


def test_gates_that_miss_fall_back_to_the_vertex_when_it_fits():
    M, y, d = planted(seed=1)
    result = calibrate(M, y, init_weights=d, max_records=40, selection="gates",
                       max_epochs=30, progress=False)  # far too short a training
    assert result.status == "exact" and result.n_active <= 40
    assert result.info["selection"] in ("gates", "capped vertex")


def test_below_the_rank_the_better_of_gates_and_pruned_vertex_is_published(schools):
    M, y, _ = schools
    result = calibrate(M, y, max_records=200, progress=False)
    assert result.status == "closest" and result.n_active <= 200
    losses = result.info["losses"]
    assert result.info["selection"] == min(losses, key=losses.get)
    assert result.max_error < 0.3 and result.mean_error < 0.02
    # 169 disjoint school-count cells: with 150 records some cell must stay empty
    tight = calibrate(M, y, max_records=150, progress=False)
    assert tight.n_active <= 150 and tight.max_error == pytest.approx(1.0)


def test_target_error_keeps_few_records_within_the_band():
    M, y, d = planted(q=30, n=400, seed=2)
    exact = calibrate(M, y, init_weights=d, method="exact", refit=False)
    result = calibrate(M, y, init_weights=d, target_error=0.05, progress=False)
    assert result.max_error <= 0.05 + 1e-8 and result.status == "exact"
    assert result.n_active <= exact.n_active
    assert result.within_tolerance.all()


def test_options_object_and_keywords_agree():
    M, y, d = planted(seed=3)
    a = calibrate(M, y, init_weights=d, options=L0Options(max_records=30, progress=False))
    b = calibrate(M, y, init_weights=d, max_records=30, progress=False)
    np.testing.assert_array_equal(a.weights, b.weights)
    c = calibrate(M, y, init_weights=d, options=L0Options(max_records=20), max_records=30,
                  progress=False)
    np.testing.assert_array_equal(a.weights, c.weights)  # keywords override the object


def test_result_diagnostics_table_and_json(schools):
    M, y, names = schools
    result = calibrate(M, y, max_records=800, progress=False, target_names=names,
                       target_groups=np.repeat([0, 1, 2], [171, 57, 10]))
    table = result.per_target()
    assert table.index[0] == names[0] and table["group"].tolist()[-1] == 2
    assert table["within_tolerance"].all() and table["achievable"].all()
    d = result.diagnostics()
    w = result.weights[result.support]
    assert d["max_ratio"] == pytest.approx(w.max()) and d["min_ratio"] == pytest.approx(w.min())
    k = int(np.ceil(0.01 * len(w)))
    assert d["top1_share"] == pytest.approx(np.sort(w)[-k:].sum() / w.sum())
    assert sum(d["ratio_histogram"]["counts"]) == result.n_active
    text = json.dumps(result.to_dict())  # JSON-serialisable as it is
    back = json.loads(text)
    assert back["status"] == "exact" and len(back["weights"]) == M.shape[1]
    assert back["targets"]["name"][0] == names[0]
    assert "records kept" in result.summary() and "(exact)" in result.summary()


def test_frontier_tabulates_budgets_in_the_order_given(schools):
    M, y, _ = schools
    table = frontier(M, y, budgets=[800, 300, 1400], progress=False)
    assert table["budget"].tolist() == [800, 300, 1400]
    assert (table["records"] <= table["budget"]).all()
    assert (table["status"] == "exact").all() and (table["max_error"] <= 1e-8).all()
    assert table.loc[2, "ess"] > table.loc[0, "ess"] > table.loc[1, "ess"]
    assert len(table.attrs["results"]) == 3
    with pytest.raises(ValueError, match="`max_records` is set by `budgets`"):
        frontier(M, y, budgets=[10], max_records=5)
    with pytest.raises(TypeError, match="`budgets` must be a sequence of ints"):
        frontier(M, y, budgets=5)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), budget=st.integers(5, 60),
       bounded=st.booleans(), refit=st.booleans())
def test_random_planted_problems_honour_budgets_bounds_and_seeds(seed, budget, bounded, refit):
    M, y, d = planted(q=6, n=60, seed=seed)
    bounds = (0.2, 6.0) if bounded else None
    M_before, y_before = M.copy(), y.copy()
    kwargs = dict(init_weights=d, max_records=budget, bounds=bounds, refit=refit,
                  max_epochs=80, progress=False, seed=seed % 7)
    a = calibrate(M, y, **kwargs)
    b = calibrate(M, y, **kwargs)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert np.isfinite(a.weights).all() and (a.weights >= 0).all()
    assert a.n_active <= budget
    if bounded and a.n_active:
        g = a.g_weights[a.support]
        assert g.min() >= 0.2 - 1e-12 and g.max() <= 6.0 + 1e-12
    assert (M != M_before).nnz == 0 and np.array_equal(y, y_before)


def test_loss_max_below_every_exact_support_is_the_minimax_of_its_support():
    M, y, d = planted(q=40, n=300, seed=9)
    result = calibrate(M, y, init_weights=d, max_records=15, loss="max", progress=False)
    assert result.status == "closest" and result.n_active <= 15
    relative = calibrate(M, y, init_weights=d, max_records=15, progress=False)
    assert result.max_error <= relative.max_error + 1e-9
    # the oracle: min t s.t. |A_S x - b| <= t on the published support, dense linprog
    S = result.support
    s = np.maximum(np.abs(y), 1.0)
    A = (M.toarray() / s[:, None])[:, S] * d[S]
    q, m = A.shape
    ones = np.ones((q, 1))
    oracle = linprog(np.r_[np.zeros(m), 1.0], A_ub=np.block([[A, -ones], [-A, -ones]]),
                     b_ub=np.r_[y / s, -y / s], bounds=(0, None), method="highs")
    assert result.max_error == pytest.approx(oracle.fun, rel=1e-7, abs=1e-10)


@pytest.mark.parametrize("y", [[1.0, 1e12], [1e200, 1e300], [1.0, 1e300], [1e160] * 3])
def test_totals_up_to_1e300_start_in_reach_and_are_met_without_overflow(y):
    # pytest turns RuntimeWarnings (overflow, invalid) into errors: none may occur
    result = calibrate(np.eye(len(y)), y, progress=False)
    assert result.status == "exact" and result.max_error <= 1e-12
    assert np.isfinite(result.weights).all()


def test_raking_refit_distance_is_exact_with_positive_weights_within_bounds():
    M, y, d = planted(seed=11)
    result = calibrate(M, y, init_weights=d, max_records=40, bounds=(0.1, 8.0),
                       refit_distance="raking", progress=False)
    assert result.status == "exact" and result.n_active <= 40
    g = result.g_weights[result.support]
    assert g.min() >= 0.1 - 1e-12 and g.max() <= 8.0 + 1e-12
