"""The capped LP by column generation: the whole LP's optimum from a working set of records."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from l0.calibration import build_problem, calibrate
from l0.calibration._solvers import l0 as l0_solver
from l0.calibration._solvers._column_generation import ColumnGenerationLP


def _problem(n=3000, q=40, seed=0):
    rng = np.random.default_rng(seed)
    M = sp.random_array((q, n), density=0.1, rng=rng, format="csr")
    M.data = rng.uniform(0.5, 2.0, M.nnz)
    y = M @ rng.uniform(0.5, 2.0, n)
    return M, y


@pytest.mark.parametrize("cap", [np.inf, 8.0, 3.0, 2.2])
def test_its_optimum_is_the_whole_lps_and_no_record_prices_in_at_the_end(cap):
    M, y = _problem()
    p = build_problem(M, y)
    A, b, tol = p.ratio_system()
    cost = p.design / p.design.sum()
    lp = ColumnGenerationLP(A, b - tol, b + tol, cost, initial=60, batch=40)
    optimal, x, status = lp.solve(cap)
    whole = linprog(cost, A_eq=A.toarray(), b_eq=b, bounds=(0, None if np.isinf(cap) else cap),
                    method="highs")
    assert optimal and whole.status == 0, (status, whole.message)
    assert abs(cost @ x - whole.fun) <= 1e-9 * abs(whole.fun)
    assert np.abs(A @ x - b).max() <= 1e-9 and x.min() >= 0 and x.max() <= cap * (1 + 1e-12)
    assert lp.rounds > 1 and lp.priced > 0  # it had to price records in
    # the certificate: with the final duals no record outside the working set prices in
    _, _, duals, elastic = lp._master()
    reduced = cost - lp.AT @ duals
    outside = ~lp._in
    assert elastic <= 1e-9 and reduced[outside].min() >= -1e-9 * cost.max()


def test_a_cap_that_no_weights_meet_is_not_optimal():
    M, y = _problem()
    p = build_problem(M, y)
    A, b, tol = p.ratio_system()
    lp = ColumnGenerationLP(A, b - tol, b + tol, p.design / p.design.sum())
    # the planted ratios lie in [0.5, 2]: a cap of 0.1 leaves every target out of reach
    optimal, x, status = lp.solve(0.1)
    assert not optimal and status == "Infeasible" and not x.any()
    assert lp.solve(np.inf)[0]  # the same model recovers at a looser cap


def test_calibrate_above_the_whole_matrix_limit_takes_the_column_generated_vertex(monkeypatch):
    M, y = _problem(n=4000, q=60, seed=1)
    whole = calibrate(M, y, max_records=400, progress=False)
    monkeypatch.setattr(l0_solver, "VERTEX_UP_TO_NNZ", 0)  # as if M were too large for HiGHS
    columns = calibrate(M, y, max_records=400, progress=False)
    assert whole.info["selection"] == columns.info["selection"] == "capped vertex"
    assert columns.status == "exact" and columns.n_active <= 400 and columns.max_error < 1e-9
    assert columns.ess >= 0.98 * whole.ess


def test_the_vertex_search_reports_progress_in_a_few_log_lines_off_a_terminal(caplog, monkeypatch):
    import logging

    M, y = _problem(n=4000, q=60, seed=1)
    monkeypatch.setattr(l0_solver, "VERTEX_UP_TO_NNZ", 0)
    with caplog.at_level(logging.INFO, logger="l0"):
        result = calibrate(M, y, max_records=400, progress=None)  # pytest's stderr: no terminal
    lines = [r.getMessage() for r in caplog.records if "capped vertex" in r.getMessage()]
    assert lines[0] == "l0 capped vertex for 400 records: started"
    assert lines[-1].startswith("l0 capped vertex for 400 records: cap ")
    assert f"{result.n_active:,} records, {result.info['lp_solves']} LP solves in " in lines[-1]
    assert len(lines) <= 2 + result.info["lp_solves"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="l0"):
        calibrate(M, y, max_records=400, progress=False)
    assert not caplog.records
