"""method="exact": the HiGHS vertex against linprog, the rank bound, bounds, the elastic closest fit."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from l0.calibration import build_problem, calibrate
from l0.calibration._solvers.exact import lp_vertex
from l0.datasets import load_api_targets


def planted(q=15, n=200, seed=0):
    rng = np.random.default_rng(seed)
    M = sp.random_array((q, n), density=0.3, rng=rng, format="csr")
    M.data = rng.uniform(1, 50, M.nnz)
    d = rng.uniform(1, 4, n)
    return M, M @ (d * rng.uniform(0.5, 2.0, n)), d


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vertex_is_exact_has_at_most_rank_records_and_the_linprog_optimum(seed):
    M, y, d = planted(seed=seed)
    result = calibrate(M, y, init_weights=d, method="exact", refit=False)
    assert result.status == "exact" and result.max_error <= 1e-9
    assert result.n_active <= np.linalg.matrix_rank(M.toarray()) == result.info["rank"]
    # the oracle: the same LP (minimum total weight) solved by scipy directly, unscaled
    oracle = linprog(np.ones(M.shape[1]), A_eq=M.toarray(), b_eq=y, bounds=(0, None),
                     method="highs")
    assert result.weights.sum() == pytest.approx(oracle.fun, rel=1e-9)


def test_refit_keeps_the_vertex_records_and_evens_their_weights():
    M, y, d = planted(seed=3)
    vertex = calibrate(M, y, init_weights=d, method="exact", refit=False)
    refit = calibrate(M, y, init_weights=d, method="exact")
    assert set(refit.support) <= set(vertex.support)
    assert refit.max_error <= 1e-10 and refit.ess >= vertex.ess - 1e-9


def test_schools_vertex_keeps_at_most_rank_records_exactly():
    M, y, names = load_api_targets()
    result = calibrate(M, y, method="exact", target_names=names)
    assert result.info["rank"] == 236
    assert result.n_active <= 236 and result.max_error <= 1e-9


@pytest.mark.parametrize("bounds", [(0.0, 3.0), (0.5, 3.0), (0.8, np.inf)])
def test_bounds_hold_on_every_kept_record(bounds):
    M, y, d = planted(seed=4)
    result = calibrate(M, y, init_weights=d, method="exact", bounds=bounds)
    g = result.g_weights[result.support]
    assert result.status == "exact" and result.max_error <= 1e-9
    assert g.min() >= bounds[0] - 1e-12 and g.max() <= bounds[1] + 1e-12


def test_a_positive_lower_bound_is_semicontinuous_and_matches_the_milp_optimum():
    from scipy.optimize import Bounds, LinearConstraint, milp

    M, y, d = planted(q=6, n=40, seed=5)
    low, high = 0.5, 3.0
    result = calibrate(M, y, init_weights=d, method="exact", bounds=(low, high), refit=False)
    A = M.toarray() * d
    oracle = milp(d, constraints=LinearConstraint(A, y, y), integrality=np.full(40, 2),
                  bounds=Bounds(low, high))
    assert result.status == "exact"
    assert result.weights.sum() == pytest.approx(oracle.fun, rel=1e-7)
    assert result.g_weights[result.support].min() >= low - 1e-12


def test_no_exact_solution_gives_the_closest_in_weighted_l1_with_the_slack_named():
    M = sp.csr_array(np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    y = np.array([10.0, 20.0, 5.0])  # rows 0 and 1 conflict
    with pytest.warns(UserWarning, match="conflict"):
        result = calibrate(M, y, method="exact", target_names=["a", "b", "c"])
    assert result.status == "closest" and not result.converged
    # the L1 optimum of relative errors: |t - 10|/10 + |t - 20|/20, minimised at t = 10
    assert result.estimates[:2] == pytest.approx([10.0, 10.0], abs=1e-7)
    assert result.estimates[2] == pytest.approx(5.0, abs=1e-7)
    assert result.info["slack_targets"] == ["b"]
    # the oracle: min sum |relative error| as an LP in (w, p, n)
    oracle = linprog(np.r_[np.zeros(3), np.ones(6)],
                     A_eq=np.hstack([M.toarray() / y[:, None], np.eye(3), -np.eye(3)]),
                     b_eq=np.ones(3), bounds=(0, None), method="highs")
    assert np.abs(result.relative_errors).sum() == pytest.approx(oracle.fun, abs=1e-9)


def test_an_unreachable_target_is_closest_and_marked_not_achievable():
    M = sp.csr_array(np.array([[1.0, 1.0], [0.0, 0.0]]))
    with pytest.warns(UserWarning, match="cannot be reached"):
        result = calibrate(M, [4.0, 3.0], method="exact")
    assert result.status == "closest"
    table = result.per_target()
    assert table["achievable"].tolist() == [True, False]
    assert table["within_tolerance"].tolist() == [True, False]


def test_tolerance_bands_are_honoured_and_need_fewer_records():
    M, y, d = planted(q=30, n=300, seed=6)
    exact = calibrate(M, y, init_weights=d, method="exact", refit=False)
    banded = calibrate(M, y, init_weights=d, method="exact", tolerance=0.05, refit=False)
    assert banded.status == "exact"
    assert np.abs(banded.relative_errors).max() <= 0.05 + 1e-9
    assert banded.n_active <= exact.n_active


def test_lp_vertex_elastic_false_reports_failure():
    M = sp.csr_array(np.array([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.warns(UserWarning):
        problem = build_problem(M, [1.0, 2.0])
    vertex = lp_vertex(problem, elastic=False)
    assert vertex.status == "failed" and len(vertex.support) == 0


def test_warm_capped_vertices_are_optimal_like_cold_linprog_and_print_nothing(capfd):
    import subprocess
    import sys

    from l0.calibration._solvers.capped_vertex import CappedVertexSearch

    M, y, d = planted(q=20, n=300, seed=7)
    problem = build_problem(M, y, init_weights=d)
    search = CappedVertexSearch(problem)
    A = M.toarray() * d / np.maximum(np.abs(y), 1.0)[:, None]
    b = y / np.maximum(np.abs(y), 1.0)
    for cap in (np.inf, 4.0, 3.0, 2.5, 3.5):  # tighter and looser: warm in both directions
        vertex = search.vertex(cap)
        cold = linprog(d / d.sum(), A_eq=A, b_eq=b, bounds=(0, None if np.isinf(cap) else cap),
                       method="highs")
        assert vertex.status == "exact"
        assert (d / d.sum()) @ vertex.ratios == pytest.approx(cold.fun, rel=1e-9)
        assert vertex.ratios.max() <= cap + 1e-12
        np.testing.assert_allclose(A @ vertex.ratios, b, atol=1e-9)
    fits = search.fit(120, candidates=3)
    assert fits and all(len(v.support) <= 120 for v in fits)
    assert [len(v.support) for v in fits] == sorted((len(v.support) for v in fits), reverse=True)
    # HiGHS's banner is printed from C++ on its first model in a process: never on ours
    code = ("import numpy as np; from l0.calibration import calibrate; "
            "calibrate(np.eye(3), [1.0, 2.0, 3.0], max_records=3, progress=False)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == ""


def test_loss_max_gives_the_smallest_largest_error_when_nothing_is_exact():
    M = sp.csr_array(np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    y = np.array([10.0, 20.0, 5.0])
    with pytest.warns(UserWarning, match="conflict"):
        result = calibrate(M, y, method="exact", loss="max")
    # min over t of max(|t - 10|/10, |t - 20|/20) is at t = 40/3: both errors 1/3
    assert result.status == "closest"
    assert result.max_error == pytest.approx(1 / 3, abs=1e-9)
    assert result.relative_errors[2] == pytest.approx(0.0, abs=1e-9)


def test_exact_options_reach_highs():
    from l0.calibration import ExactOptions

    M, y, d = planted(seed=8)
    with pytest.raises(ValueError, match="`time_limit` must be a float > 0.0"):
        ExactOptions(time_limit=0)
    result = calibrate(M, y, init_weights=d, method="exact",
                       options=ExactOptions(time_limit=30.0, refit=False))
    assert result.status == "exact" and "refit" not in result.info
