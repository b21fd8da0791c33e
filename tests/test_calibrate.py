"""calibrate(): exact fits, budgets, bounds, reproducibility, checkpoints, bad input."""

import time
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from l0.calibration import CalibrationResult, DivergenceError, calibrate
from l0.datasets import load_api_targets


def planted(q=20, n=300, seed=0, density=0.3):
    rng = np.random.default_rng(seed)
    M = sp.random_array((q, n), density=density, rng=rng, format="csr")
    M.data = rng.uniform(1, 100, M.nnz)
    d = rng.uniform(1, 5, n)
    w = d * rng.uniform(0.5, 2.0, n)
    return M, M @ w, d


def schools():
    M, y, _ = load_api_targets()
    return M, y


def test_lambda_zero_on_a_feasible_problem_fits_exactly():
    M, y, d = planted()
    result = calibrate(M, y, init_weights=d, lambda_l0=0.0, progress=False)
    assert result.max_error <= 1e-6
    assert isinstance(result, CalibrationResult)
    np.testing.assert_allclose(result.estimates, M @ result.weights)
    assert result.weights.dtype == np.float64 and (result.weights >= 0).all()


def test_infeasible_totals_far_from_the_design_weights_reach_the_nnls_optimum():
    """l0-python's README situation: d = 1 while totals are in the millions."""
    from scipy.optimize import nnls

    rng = np.random.default_rng(0)
    M = sp.random_array((60, 40), density=0.3, format="csr", rng=rng)
    y = rng.uniform(1e6, 1e8, 60)  # more targets than records: no exact fit
    result = calibrate(M, y, lambda_l0=0.0, progress=False)
    A = M.toarray() / y[:, None]
    best, _ = nnls(A, np.ones(60))
    best_loss = np.mean((A @ best - 1) ** 2)
    assert np.mean(result.relative_errors**2) == pytest.approx(best_loss, rel=1e-6)
    sparse = calibrate(M, y, progress=False)  # default lambda_l0: as good, fewer records
    assert np.mean(sparse.relative_errors**2) <= best_loss * 1.05


def test_a_lambda_that_closes_every_gate_warns():
    M, y, d = planted(q=5, n=30, seed=6)
    with pytest.warns(UserWarning, match="every gate closed"):
        result = calibrate(M, y, init_weights=d, lambda_l0=1e6, progress=False, max_epochs=300)
    assert result.n_active == 0 and result.max_error == 1.0


def test_default_on_california_schools_fits_within_1e_3_in_seconds():
    M, y = schools()
    start = time.perf_counter()
    result = calibrate(M, y, progress=False)
    seconds = time.perf_counter() - start
    assert result.max_error <= 1e-3
    assert result.n_active < M.shape[1]  # some records dropped
    assert seconds < 60  # generous: "within seconds" is measured in the benchmark


def test_max_records_drives_the_kept_count_to_the_budget():
    M, y = schools()
    result = calibrate(M, y, max_records=1000, progress=False)
    assert 900 <= result.n_active <= 1000
    assert result.max_error <= 1e-8 and result.status == "exact"
    gates = calibrate(M, y, max_records=1000, selection="gates", progress=False)
    assert 900 <= gates.n_active <= 1000 and gates.info["selection"] == "gates"
    assert gates.max_error <= 1e-8


def test_result_diagnostics_match_their_definitions():
    M, y, d = planted()
    r = calibrate(M, y, init_weights=d, progress=False, max_epochs=200)
    w = r.weights
    assert r.ess == pytest.approx(w.sum() ** 2 / (w @ w))
    assert r.design_effect == pytest.approx(np.count_nonzero(w) * (w @ w) / w.sum() ** 2)
    np.testing.assert_array_equal(r.support, np.flatnonzero(w))
    assert r.n_active == len(r.support)
    table = r.per_target()
    assert list(table.columns) == ["group", "target", "estimate", "error", "relative_error",
                                   "tolerance", "achievable", "within_tolerance"]
    assert len(table) == M.shape[0]
    assert {"epoch", "objective", "mean_error", "max_error", "n_open"} <= set(r.history.columns)
    assert "records kept" in r.summary()


def test_bounds_hold_for_every_kept_record():
    M, y, d = planted(seed=1)
    r = calibrate(M, y, init_weights=d, bounds=(0.8, 1.5), progress=False, max_epochs=300)
    g = r.weights[r.support] / d[r.support]
    assert g.min() >= 0.8 - 1e-12 and g.max() <= 1.5 + 1e-12


def test_tolerance_band_stops_when_every_target_is_inside():
    M, y, d = planted(seed=2)
    r = calibrate(M, y, init_weights=d, tolerance=0.05, lambda_l0=0.0, init_keep_prob=1.0,
                  progress=False)
    assert r.message == "all targets within tolerance"
    assert r.converged and r.max_error <= 0.05 + 1e-9


def test_seed_makes_a_fit_bitwise_reproducible_whatever_the_global_rng():
    M, y, d = planted(seed=3)
    torch.manual_seed(1)
    a = calibrate(M, y, init_weights=d, seed=7, progress=False, max_epochs=150)
    state = torch.get_rng_state()
    torch.manual_seed(999)
    np.random.seed(5)  # noqa: NPY002 - the legacy global RNG must not matter either
    b = calibrate(M, y, init_weights=d, seed=7, progress=False, max_epochs=150)
    np.testing.assert_array_equal(a.weights, b.weights)
    torch.manual_seed(1)
    calibrate(M, y, init_weights=d, seed=7, progress=False, max_epochs=10)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG was not touched
    c = calibrate(M, y, init_weights=d, seed=8, progress=False, max_epochs=150)
    assert not a.history.equals(c.history)  # other gate noise (the refit may still agree)


def test_checkpoint_and_resume_are_bit_identical_to_an_uninterrupted_run(tmp_path):
    M, y, d = planted(seed=4)
    kwargs = dict(init_weights=d, progress=False, max_epochs=300, rtol=0.0)
    full = calibrate(M, y, **kwargs)
    path = tmp_path / "fit.pt"
    calibrate(M, y, checkpoint=path, checkpoint_every=100, **{**kwargs, "max_epochs": 100})
    with pytest.raises(ValueError, match="`resume` must be a checkpoint of this problem"):
        calibrate(M, y * 2, resume=path, **kwargs)
    resumed = calibrate(M, y, resume=path, **kwargs)
    np.testing.assert_array_equal(full.weights, resumed.weights)
    pd.testing.assert_frame_equal(full.history, resumed.history)


def test_torch_backend_on_cpu_gives_the_same_weights_within_tolerance():
    M, y, d = planted(seed=5)
    a = calibrate(M, y, init_weights=d, progress=False, max_epochs=200)
    b = calibrate(M, y, init_weights=d, progress=False, max_epochs=200, backend="torch")
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("make", [np.asarray, pd.DataFrame, torch.tensor, sp.coo_array, sp.csc_matrix])
def test_every_matrix_type_gives_the_same_result(make):
    M, y, d = planted(q=5, n=30, seed=6)
    dense = M.toarray()
    ref = calibrate(M, y, init_weights=d, progress=False, max_epochs=50)
    other = calibrate(make(dense), y, init_weights=d, progress=False, max_epochs=50)
    np.testing.assert_allclose(ref.weights, other.weights, rtol=1e-12)


def test_divergence_stops_with_a_clear_error_and_no_nan():
    M = sp.csr_array(np.array([[1e200, 1e200]]))
    with pytest.raises(DivergenceError, match="became inf at epoch 0"):
        calibrate(M, [1e200], loss="absolute", progress=False)


def test_unreachable_and_conflicting_targets_warn():
    M = sp.csr_array(np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0, 0, 1.0]]))
    with pytest.warns(UserWarning) as record:
        calibrate(M, [2.0, 5.0, 3.0, 1.0], progress=False, max_epochs=20)
    messages = [str(w.message) for w in record]
    assert any(m.startswith("1 target(s) cannot be reached") and "rows [1]" in m for m in messages)
    assert any("targets 0 and 2 have identical rows of M but different totals (2.0 and 3.0)" in m
               for m in messages)


def test_valid_input_does_not_warn():
    M, y, d = planted(q=5, n=30, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calibrate(M, y, init_weights=d, progress=False, max_epochs=20)


M0 = sp.csr_array(np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]]))
Y0 = np.array([3.0, 2.0])


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        (("M", Y0), {}, TypeError, "`M` must be a 2-D scipy sparse matrix"),
        ((np.ones(3), Y0), {}, ValueError, "`M` must be a 2-D"),
        ((np.array([[np.nan, 1.0]]), [1.0]), {}, ValueError, "`M` must be finite"),
        ((sp.csr_array(np.array([[np.inf, 1.0]])), [1.0]), {}, ValueError, "`M` must be finite"),
        ((M0, [1.0, 2.0, 3.0]), {}, ValueError, "`y` must be of length 2"),
        ((M0, [np.nan, 2.0]), {}, ValueError, "`y` must be finite"),
        ((M0, ["a", "b"]), {}, TypeError, "`y` must be a 1-D array of numbers"),
        ((M0, Y0), {"init_weights": [1.0, 0.0, 1.0]}, ValueError, "`init_weights` must be design weights > 0"),
        ((M0, Y0), {"init_weights": [1.0, -1.0, 1.0]}, ValueError, "`init_weights`"),
        ((M0, Y0), {"init_weights": [1.0, 1.0]}, ValueError, "`init_weights` must be of length 3"),
        ((M0, Y0), {"loss": "mse"}, ValueError, "`loss` must be one of 'relative', 'absolute', 'capped'"),
        ((M0, Y0), {"method": "magic"}, ValueError, "`method` must be one of 'l0', 'exact'"),
        ((M0, Y0), {"method": "raking", "lr": 0.1}, ValueError,
         "`lr` is not a setting of method='raking'; its settings are max_iter, tol"),
        ((M0, Y0), {"method": "exact", "max_records": 2}, ValueError,
         "`max_records` is not a setting of method='exact'"),
        ((M0, Y0), {"method": "linear", "tolerance": 0.1}, ValueError,
         "`tolerance` does not apply to method='linear'"),
        ((M0, Y0), {"method": "logit"}, ValueError, "`bounds` must be \\(low, high\\) with 0 <= low < 1"),
        ((M0, Y0), {"options": 3}, TypeError, "`options` must be a L0Options"),
        ((M0, Y0), {"selection": "best"}, ValueError, "`selection` must be one of 'auto', 'gates'"),
        ((M0, Y0), {"refit_distance": "logit"}, ValueError, "`refit_distance` must be one of"),
        ((M0, Y0), {"target_error": -1.0}, ValueError, "`target_error` must be a float >= 0.0"),
        ((M0, Y0), {"device": "cdu"}, ValueError, "`device` must be a torch device"),
        ((M0, Y0), {"target_names": "ABC"}, TypeError, "`target_names` must be a sequence of names"),
        ((M0, Y0), {"lr": 0.0}, ValueError, "`lr` must be a float > 0.0; got 0.0"),
        ((M0, Y0), {"lambda_l0": -1.0}, ValueError, "`lambda_l0` must be a float >= 0.0"),
        ((M0, Y0), {"temperature": -1.0}, ValueError, "`temperature` must be a float > 0.0"),
        ((M0, Y0), {"max_records": 0}, ValueError, "`max_records` must be an int >= 1; got 0"),
        ((M0, Y0), {"max_records": 4}, ValueError, "`max_records` must be an int in \\[1, 3\\]"),
        ((M0, Y0), {"max_records": 2.5}, TypeError, "`max_records`"),
        ((M0, Y0), {"bounds": (2.0, 1.0)}, ValueError, "`bounds` must be \\(low, high\\) with low < high"),
        ((M0, Y0), {"bounds": 3.0}, TypeError, "`bounds` must be a pair"),
        ((M0, Y0), {"tolerance": -0.1}, ValueError, "`tolerance` must be a float >= 0.0"),
        ((M0, Y0), {"tolerance": [0.1]}, ValueError, "`tolerance` must be of length 2"),
        ((M0, Y0), {"target_groups": [0]}, ValueError, "`target_groups` must be a 1-D array of length 2"),
        ((M0, Y0), {"target_groups": [1.5, 2.0]}, TypeError, "`target_groups` must be integer group ids or string labels"),
        ((M0, Y0), {"group_multipliers": {0: 2.0}}, ValueError, "`group_multipliers` requires `target_groups`"),
        ((M0, Y0), {"target_groups": [0, 1], "group_multipliers": {5: 2.0}}, ValueError,
         "`group_multipliers` must be keyed by ids in target_groups"),
        ((M0, Y0), {"target_weights": [-1.0, 1.0]}, ValueError, "`target_weights` must be non-negative"),
        ((M0, Y0), {"target_names": ["a"]}, ValueError, "`target_names` must be 2 names"),
        ((M0, Y0), {"seed": -1}, ValueError, "`seed` must be an int >= 0"),
        ((M0, Y0), {"backend": "cuda"}, ValueError, "`backend` must be one of"),
    ],
)
def test_bad_input_raises_a_clear_error(args, kwargs, error, message):
    if kwargs.get("method", "l0") == "l0":
        kwargs = {"progress": False, **kwargs}
    with pytest.raises(error, match=message):
        calibrate(*args, **kwargs)


def test_budget_run_resumes_bit_identically_with_its_controller(tmp_path):
    M, y = schools()
    kwargs = dict(max_records=800, progress=False, max_epochs=400, rtol=0.0, refit=False,
                  selection="gates")
    full = calibrate(M, y, **kwargs)
    path = tmp_path / "budget.pt"
    calibrate(M, y, checkpoint=path, **{**kwargs, "max_epochs": 150})
    resumed = calibrate(M, y, resume=path, **kwargs)
    np.testing.assert_array_equal(full.weights, resumed.weights)
    assert full.history["l0_multiplier"].tolist() == resumed.history["l0_multiplier"].tolist()


def test_a_group_multiplier_moves_the_error_to_the_other_group():
    # two groups of contradictory targets on the same records: each wants a different scale
    M = sp.csr_array(np.vstack([np.ones((3, 50)), np.ones((3, 50))]))
    y = np.array([50.0] * 3 + [100.0] * 3)
    groups = np.array([0, 0, 0, 1, 1, 1])
    kwargs = dict(target_groups=groups, lambda_l0=0.0, progress=False)
    with pytest.warns(UserWarning, match="conflict"):
        even = calibrate(M, y, **kwargs)
    with pytest.warns(UserWarning, match="conflict"):
        favour_0 = calibrate(M, y, group_multipliers={0: 9.0}, **kwargs)
    # the optimum of 9 (e/50)^2 + (e'/100)^2 with e' = total - 100, e = total - 50
    assert favour_0.estimates[0] == pytest.approx((9 / 50**2 * 50 + 100 / 100**2) /
                                                  (9 / 50**2 + 1 / 100**2), rel=1e-6)
    assert np.abs(favour_0.relative_errors[:3]).max() < np.abs(even.relative_errors[:3]).max()


def test_absolute_loss_and_capped_loss_fit_a_feasible_problem():
    M, y, d = planted(seed=7)
    for loss in ("absolute", "capped"):
        r = calibrate(M, y, init_weights=d, loss=loss, lambda_l0=0.0, progress=False)
        assert r.max_error <= 1e-6, loss


def test_capped_loss_is_not_dragged_by_an_impossible_target():
    M, y, d = planted(q=10, n=200, seed=8)
    bad = y.copy()
    bad[0] = -1e6  # impossible with non-negative weights and a positive row
    with pytest.warns(UserWarning, match="cannot be reached"):
        capped = calibrate(M, bad, init_weights=d, loss="capped", cap=0.1, lambda_l0=0.0,
                           progress=False)
    assert np.abs(capped.relative_errors[1:]).max() <= 1e-6


def test_progress_bar_appears_on_long_fits(capsys, monkeypatch):
    import tqdm.auto

    real = tqdm.auto.tqdm
    monkeypatch.setattr(tqdm.auto, "tqdm", lambda *a, **k: real(*a, **{**k, "delay": 0.0}))
    M, y, d = planted(q=5, n=30, seed=6)
    calibrate(M, y, init_weights=d, max_epochs=30, progress=True)
    assert "l0 calibration" in capsys.readouterr().err


def test_resume_reads_only_checkpoints_and_says_so_for_anything_else(tmp_path):
    import os

    M, y, d = planted(q=5, n=30, seed=6)
    kwargs = dict(init_weights=d, progress=False, max_epochs=30)
    good = tmp_path / "good.pt"
    calibrate(M, y, checkpoint=good, **kwargs)

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "ran"),))

    torch.save({"engine": Payload()}, tmp_path / "evil.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[:200])
    torch.save({"weights": torch.ones(3)}, tmp_path / "foreign.pt")
    for name in ("evil.pt", "garbage.pt", "truncated.pt", "foreign.pt"):
        with pytest.raises(ValueError, match="`resume` must be a checkpoint written by calibrate"):
            calibrate(M, y, resume=tmp_path / name, **kwargs)
    assert not (tmp_path / "ran").exists()  # the crafted file ran no code
    with pytest.raises(ValueError, match="`resume` must be an existing checkpoint file"):
        calibrate(M, y, resume=tmp_path / "missing.pt", **kwargs)


def test_a_checkpoint_in_a_missing_folder_fails_before_training(tmp_path, monkeypatch):
    from l0.calibration._solvers import _loop

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(_loop.TrainingLoop, "run", no_training)
    M, y, d = planted(q=5, n=30, seed=6)
    with pytest.raises(ValueError, match="`checkpoint` must be a path in an existing folder"):
        calibrate(M, y, init_weights=d, checkpoint=tmp_path / "nope" / "fit.pt", progress=False)


def test_a_vertex_selection_says_that_no_checkpoint_was_written(tmp_path):
    M, y, d = planted(q=5, n=30, seed=6)
    with pytest.warns(UserWarning, match="no gate training ran"):
        calibrate(M, y, init_weights=d, max_records=20, checkpoint=tmp_path / "fit.pt",
                  progress=False)
    assert not (tmp_path / "fit.pt").exists()


def test_target_warnings_see_the_last_rows_and_stored_zeros():
    # the last non-empty row's only positive entry is its last stored entry; empty rows follow
    M = sp.csr_array((np.array([-1.0, 2.0]), (np.array([0, 0]), np.array([0, 1]))), shape=(3, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calibrate(M, [1.0, 0.0, 0.0], method="exact")
    # identical rows but for an explicitly stored zero still conflict
    M = sp.csr_array((np.array([1.0, 1.0, 0.0, 1.0, 1.0]), np.array([0, 1, 2, 0, 1]),
                      np.array([0, 3, 5])), shape=(2, 3))
    with pytest.warns(UserWarning, match="targets 0 and 1 have identical rows"):
        calibrate(M, [1.0, 2.0], method="exact")
