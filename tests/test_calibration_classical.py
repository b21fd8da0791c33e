"""Classical calibration: GREG closed form, calibration equations, bounds, infeasibility, distances."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from l0.calibration import calibrate
from l0.calibration._solvers.distances import DISTANCES
from l0.datasets import load_api


def apistrat_problem():
    """apistrat (200 schools, design weights pw) against apipop totals: school counts by type,
    enrolment, api99 (the textbook example)."""
    pop, strat = load_api("pop"), load_api("strat")

    def columns(df):
        return np.column_stack([(df.stype == t).astype(float) for t in "EHM"]
                               + [df.enroll.fillna(0), df.api99])

    X = columns(strat)
    return X, columns(pop).sum(0), strat.pw.to_numpy()


def test_linear_equals_the_greg_closed_form():
    X, t, d = apistrat_problem()
    result = calibrate(X.T, t, method="linear", init_weights=d)
    greg = 1.0 + X @ np.linalg.solve(X.T @ (d[:, None] * X), t - X.T @ d)
    np.testing.assert_allclose(result.g_weights, greg, rtol=0, atol=1e-10)
    assert result.status == "exact"


@pytest.mark.parametrize("method, bounds", [("linear", None), ("raking", None),
                                            ("logit", (0.5, 2.0)), ("linear", (0.8, 1.3)),
                                            ("raking", (0.8, 1.3)), ("logit", (0.7, 1.5))])
def test_calibration_equations_hold_to_1e_10_on_apistrat(method, bounds):
    X, t, d = apistrat_problem()
    result = calibrate(X.T, t, method=method, init_weights=d, bounds=bounds)
    assert result.status == "exact"
    np.testing.assert_allclose(X.T @ result.weights, t, rtol=1e-10)
    if bounds is not None:
        g = result.g_weights
        assert g.min() >= bounds[0] - 1e-12 and g.max() <= bounds[1] + 1e-12


def test_raking_has_the_multiplicative_form_and_logit_stays_strictly_inside():
    X, t, d = apistrat_problem()
    raking = calibrate(X.T, t, method="raking", init_weights=d)
    # g = exp(x' lambda): log g is linear in the auxiliaries
    coef, *_ = np.linalg.lstsq(X, np.log(raking.g_weights), rcond=None)
    np.testing.assert_allclose(X @ coef, np.log(raking.g_weights), atol=1e-10)
    logit = calibrate(X.T, t, method="logit", init_weights=d, bounds=(0.9, 1.2))
    assert logit.status == "exact"
    assert 0.9 < logit.g_weights.min() and logit.g_weights.max() < 1.2


def test_bounds_that_cannot_meet_the_totals_give_the_infeasible_status():
    X, t, d = apistrat_problem()
    result = calibrate(X.T, t, method="linear", init_weights=d, bounds=(0.99, 1.01))
    assert result.status == "infeasible" and not result.converged
    assert "no weights with w/d within the bounds" in result.message
    g = result.g_weights
    assert g.min() >= 0.99 - 1e-12 and g.max() <= 1.01 + 1e-12  # bounds still hold


def test_redundant_targets_are_handled_and_conflicting_ones_are_infeasible():
    X, t, d = apistrat_problem()
    redundant = np.column_stack([X, X[:, :3].sum(1)])  # the number of schools, again
    result = calibrate(redundant.T, np.r_[t, t[:3].sum()], method="raking", init_weights=d)
    assert result.status == "exact" and result.max_error <= 1e-10
    with pytest.warns(UserWarning, match="conflict"):
        bad = calibrate(np.column_stack([X, X[:, 0]]).T, np.r_[t, t[0] + 5], method="raking",
                        init_weights=d)
    assert bad.status == "infeasible"


def test_a_sparse_matrix_with_many_records_calibrates():
    rng = np.random.default_rng(0)
    n, q = 50_000, 40
    rows = rng.integers(0, q, n)
    M = sp.csr_array((np.ones(n), (rows, np.arange(n))), shape=(q, n))  # strata counts
    M = sp.csr_array(sp.vstack([M, sp.csr_array(rng.uniform(0, 10, (1, n)))]))
    d = rng.uniform(1, 3, n)
    y = M @ (d * rng.uniform(0.8, 1.2, n))
    result = calibrate(M, y, method="raking", init_weights=d)
    assert result.status == "exact" and result.max_error <= 1e-10


@pytest.mark.parametrize("kind, low, high", [("linear", 0.2, 3.0), ("raking", 0.2, 3.0),
                                             ("logit", 0.2, 3.0), ("linear", -np.inf, np.inf),
                                             ("raking", 0.0, np.inf)])
def test_distance_phi_is_the_integral_of_g_and_g_is_clipped(kind, low, high):
    u = np.linspace(-3, 3, 2001)
    dist = DISTANCES[kind](np.full_like(u, low), np.full_like(u, high))
    g = dist.g(u)
    assert g.min() >= low and g.max() <= high
    # trapezoid integral of g from 0 equals phi
    zero = 1000
    integral = np.concatenate([
        -np.cumsum(((g[1:zero + 1] + g[:zero]) / 2 * np.diff(u[:zero + 1]))[::-1])[::-1],
        [0.0], np.cumsum((g[zero + 1:] + g[zero:-1]) / 2 * np.diff(u[zero:]))])
    np.testing.assert_allclose(dist.phi(u), integral, atol=2e-5)
    # the slope is the derivative of g where g is not clipped
    inner = (g > low + 1e-6) & (g < high - 1e-6)
    np.testing.assert_allclose(dist.slope(u)[inner][1:-1],
                               np.gradient(g, u)[inner][1:-1], rtol=1e-3, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), method=st.sampled_from(["linear", "raking", "logit"]))
def test_feasible_planted_problems_meet_the_equations_within_bounds(seed, method):
    rng = np.random.default_rng(seed)
    q, n = rng.integers(2, 8), rng.integers(20, 80)
    X = rng.uniform(0, 5, (n, q))
    d = rng.uniform(1, 3, n)
    g_true = rng.uniform(0.7, 1.4, n)
    t = X.T @ (d * g_true)
    X_before = X.copy()
    result = calibrate(X.T, t, method=method, init_weights=d, bounds=(0.5, 2.0))
    np.testing.assert_array_equal(X, X_before)  # input not mutated
    assert result.status == "exact"
    np.testing.assert_allclose(X.T @ result.weights, t, rtol=1e-9)
    assert result.g_weights.min() >= 0.5 - 1e-12 and result.g_weights.max() <= 2.0 + 1e-12


def test_a_newton_step_cap_that_stops_early_says_not_converged():
    X, t, d = apistrat_problem()
    result = calibrate(X.T, t, method="raking", init_weights=d, max_iter=1)
    assert result.status == "not_converged" and "after 1 steps" in result.message
    assert result.max_error > 1e-10
