"""Sharded calibration: 2 gloo processes give the 1-process answer; files, failures, checkpoints.

The processes are spawned by the test (``torch.multiprocessing``, spawn), join with a timeout
and are killed if they overrun, so a failure never hangs the suite.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _ranks import free_port, spawn_ranks

from l0.calibration import calibrate
from l0.calibration._comm import Communicator
from l0.calibration._solvers._noise import BlockNoise
from l0.calibration.shards import ColumnShards, _file_runs

TIMEOUT = 120  # seconds for a whole 2-process run
SETTINGS = {"max_records": 120, "max_epochs": 300, "progress": False, "seed": 3}
# bounds the gates' support cannot meet exactly: the least-loss refit runs (sharded: the same
# L-BFGS-B on every rank over the gathered support vector)
REPAIR = {**SETTINGS, "max_records": 300, "bounds": (0.0, 1.6)}


def problem(seed: int = 0, n: int = 1500, q: int = 25):
    rng = np.random.default_rng(seed)
    M = sp.random_array((q, n), density=0.15, rng=rng, format="csr")
    M.data = rng.uniform(1.0, 5.0, M.nnz)
    return M, M @ rng.uniform(0.5, 2.0, n), rng.uniform(1.0, 3.0, n)


def _worker(rank: int, world: int, port: int, folder: str, jobs: list) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=60))
    try:
        M, y, d = problem()
        for name, source, kwargs in jobs:
            if source == "files":
                shards = ColumnShards.from_files(sorted(Path(folder).glob("block-*.npz")))
            elif source == "one-file":  # one rank gets every record, the other none
                shards = ColumnShards.from_files([Path(folder, "whole.npz")])
            elif source == "bad-rank-1":
                shards = ColumnShards.from_callable(
                    lambda r, w: np.full((2, 3), np.nan if r == 1 else 1.0))
            else:
                shards = ColumnShards.from_matrix(M)
            try:
                result = calibrate(shards, y, init_weights=d, **kwargs)
            except Exception as exc:  # reported, so that the test sees every rank's error
                Path(folder, f"{name}-{rank}.err").write_text(f"{type(exc).__name__}: {exc}")
                continue
            if result is None:
                Path(folder, f"{name}-{rank}.none").write_text("")
                continue
            np.save(Path(folder, f"{name}-{rank}.npy"), result.weights)
            Path(folder, f"{name}-{rank}.json").write_text(json.dumps(
                {"epochs": result.epochs, "info": result.info}, default=str))
    finally:
        dist.destroy_process_group()


def run_ranks(folder: Path, jobs: list, world: int = 2) -> None:
    spawn_ranks(_worker, world, str(folder), jobs, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """One 2-process run of every job (spawning costs seconds: once for the module)."""
    folder = tmp_path_factory.mktemp("ranks")
    M, _, _ = problem()
    cuts = [0, 400, 401, 1100, 1500]  # uneven blocks, one of a single record; mixed formats
    for i, fmt in enumerate(["coo", "csr", "csc", "csr"]):
        sp.save_npz(folder / f"block-{i}.npz", M[:, cuts[i]: cuts[i + 1]].asformat(fmt))
    sp.save_npz(folder / "whole.npz", M)
    half = {**SETTINGS, "max_epochs": 150, "checkpoint": str(folder / "ck.pt")}
    resumed = {**SETTINGS, "resume": str(folder / "ck.pt")}
    jobs = [("matrix", "matrix", SETTINGS), ("files", "files", SETTINGS),
            ("one-file", "one-file", SETTINGS),
            ("half", "matrix", half), ("resumed", "matrix", resumed),
            ("root", "matrix", {**SETTINGS, "result_on": "root"}),
            ("bad", "bad-rank-1", SETTINGS),
            ("repair", "matrix", REPAIR),
            ("exact", "matrix", {"method": "exact"})]
    run_ranks(folder, jobs)
    return folder


def single_process(**kwargs):
    M, y, d = problem()
    return calibrate(ColumnShards.from_matrix(M), y, init_weights=d, **{**SETTINGS, **kwargs})


def test_two_ranks_give_the_one_process_answer(two_ranks):
    one = single_process()
    assert one.info["ranks"] == 1 and one.status == "exact"
    for rank in range(2):
        w = np.load(two_ranks / f"matrix-{rank}.npy")
        assert np.array_equal(np.flatnonzero(w), one.support)  # the same support
        kept = one.support
        assert np.abs(w[kept] - one.weights[kept]).max() / one.weights[kept].min() <= 1e-12
    info = json.loads((two_ranks / "matrix-0.json").read_text())["info"]
    assert "'ranks': 2" in str(info) or info["ranks"] == 2


def test_four_ranks_give_the_same_answer_too(tmp_path, two_ranks):
    run_ranks(tmp_path, [("matrix", "matrix", SETTINGS)], world=4)
    two = np.load(two_ranks / "matrix-0.npy")
    for rank in range(4):
        w = np.load(tmp_path / f"matrix-{rank}.npy")
        assert np.array_equal(np.flatnonzero(w), np.flatnonzero(two))
        kept = np.flatnonzero(two)
        assert np.abs(w[kept] - two[kept]).max() / two[kept].min() <= 1e-12


def test_the_least_loss_refit_runs_sharded_and_agrees(two_ranks):
    one = single_process(**REPAIR)
    assert one.info["refit"] == "least loss" and one.status == "closest"
    info = json.loads((two_ranks / "repair-0.json").read_text())["info"]
    assert info["refit"] == "least loss"
    for rank in range(2):
        w = np.load(two_ranks / f"repair-{rank}.npy")
        assert np.array_equal(np.flatnonzero(w), one.support)
        assert (w[one.support] <= 1.6 * problem()[2][one.support] * (1 + 1e-12)).all()
        kept = one.support
        assert np.abs(w[kept] - one.weights[kept]).max() / one.weights[kept].min() <= 1e-12


def test_column_block_files_load_shard_by_shard(two_ranks):
    matrix, files = (np.load(two_ranks / f"{name}-0.npy") for name in ("matrix", "files"))
    assert np.array_equal(np.flatnonzero(files), np.flatnonzero(matrix))
    np.testing.assert_allclose(files, matrix, rtol=1e-12, atol=0)
    np.testing.assert_allclose(np.load(two_ranks / "one-file-1.npy"), matrix, rtol=1e-12, atol=0)
    one = calibrate(ColumnShards.from_files(sorted(two_ranks.glob("block-*.npz"))),
                    problem()[1], init_weights=problem()[2], **SETTINGS)
    np.testing.assert_allclose(one.weights, matrix, rtol=1e-12, atol=0)


def test_resume_per_rank_is_bit_identical_to_the_uninterrupted_run(two_ranks):
    assert sorted(p.name for p in two_ranks.glob("ck.pt.rank*")) == [
        "ck.pt.rank0-of-2", "ck.pt.rank1-of-2"]
    for rank in range(2):
        assert np.array_equal(np.load(two_ranks / f"resumed-{rank}.npy"),
                              np.load(two_ranks / f"matrix-{rank}.npy"))


def test_the_result_on_rank_zero_only(two_ranks):
    assert (two_ranks / "root-1.none").exists()
    np.testing.assert_array_equal(np.load(two_ranks / "root-0.npy"),
                                  np.load(two_ranks / "matrix-0.npy"))


def test_a_bad_block_on_one_rank_fails_every_rank_without_a_hang(two_ranks):
    own = (two_ranks / "bad-1.err").read_text()
    other = (two_ranks / "bad-0.err").read_text()
    assert own.startswith("ValueError: `loader(1, 2)` must be finite")
    assert other.startswith("ValueError: rank 1 of 2 failed: ValueError: `loader(1, 2)` must be")


def test_the_exact_method_refuses_shards(two_ranks):
    for rank in range(2):
        text = (two_ranks / f"exact-{rank}.err").read_text()
        assert "`method` must be 'l0' for a matrix in ColumnShards; got 'exact'" in text


def test_a_rank_that_never_starts_is_a_clear_error_not_a_hang():
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port())}
    code = "from l0.calibration.shards import init_distributed; init_distributed(timeout=3)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=90)
    assert done.returncode != 0
    assert "rank 0 of 2 could not join the process group" in done.stderr
    assert "within 3 s" in done.stderr


def test_init_distributed_outside_torchrun_says_what_is_missing(monkeypatch):
    from l0.calibration.shards import init_distributed

    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="init_distributed needs the torchrun environment"):
        init_distributed()


def test_noise_does_not_depend_on_how_records_are_split():
    whole = BlockNoise(7, 0, 20_000)(3)
    for cuts in ([0, 1, 20_000], [0, 4095, 4097, 13_000, 20_000]):
        parts = [BlockNoise(7, a, b - a)(3) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        assert torch.equal(torch.cat(parts), whole)
    assert not torch.equal(BlockNoise(7, 0, 100)(4), whole[:100])  # a new epoch, new draws
    assert not torch.equal(BlockNoise(8, 0, 100)(3), whole[:100])  # a new seed, new draws
    draws = whole.double()
    assert 0.0 < draws.min() and draws.max() < 1.0 and abs(draws.mean() - 0.5) < 0.01


def test_files_are_dealt_in_contiguous_runs_of_about_equal_records():
    assert _file_runs(np.array([25, 25, 25, 25]), 2) == [(0, 2), (2, 4)]
    assert _file_runs(np.array([10, 90]), 2) == [(0, 1), (1, 2)]
    assert sorted(_file_runs(np.array([50]), 2)) in ([(0, 0), (0, 1)], [(0, 1), (1, 1)])
    runs = _file_runs(np.full(10, 7), 4)
    assert runs[0][0] == 0 and runs[-1][1] == 10
    assert all(a[1] == b[0] for a, b in zip(runs[:-1], runs[1:], strict=True))


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda tmp: ColumnShards.from_files("a.npz"), TypeError, "`paths` must be a list"),
        (lambda tmp: ColumnShards.from_files([]), ValueError, "`paths` must be at least one"),
        (lambda tmp: ColumnShards.from_callable(5), TypeError, "`loader` must be a callable"),
        (lambda tmp: ColumnShards.from_files([tmp / "missing.npz"]).load(Communicator(False)),
         ValueError, "does not exist"),
        (lambda tmp: ColumnShards.from_files([_not_npz(tmp)]).load(Communicator(False)),
         ValueError, "is not a scipy.sparse.save_npz file"),
        (lambda tmp: ColumnShards.from_files(_mismatched(tmp)).load(Communicator(False)),
         ValueError, r"must have the same rows \(targets\); got \[2, 3\]"),
    ],
)
def test_bad_shards_name_the_problem(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        make(tmp_path)


def _not_npz(folder: Path) -> Path:
    path = folder / "x.npz"
    path.write_text("not a zip")
    return path


def _mismatched(folder: Path) -> list[Path]:
    paths = [folder / "a.npz", folder / "b.npz"]
    sp.save_npz(paths[0], sp.csr_array(np.ones((2, 3))))
    sp.save_npz(paths[1], sp.csr_array(np.ones((3, 3))))
    return paths


def test_shards_refuse_what_needs_one_process_and_wrong_design_weights():
    from l0.calibration import frontier

    M, y, _ = problem()
    with pytest.raises(ValueError, match="`method` must be 'l0' for a matrix in ColumnShards"):
        calibrate(ColumnShards.from_matrix(M), y, method="raking")
    with pytest.raises(ValueError, match=r"frontier\(\) runs in one process"):
        frontier(ColumnShards.from_matrix(M), y, budgets=[10])
    with pytest.raises(ValueError, match="`init_weights` must be of length 1500"):
        calibrate(ColumnShards.from_matrix(M), y, init_weights=np.ones(10), **SETTINGS)
    with pytest.raises(ValueError, match=r"`loss` must be 'relative', 'absolute' or 'capped' "
                                         r"for a sharded calibration"):
        calibrate(ColumnShards.from_matrix(M), y, loss="max", **SETTINGS)
    with pytest.raises(ValueError, match=r"`device` must be 'cpu' for a sharded calibration"):
        calibrate(ColumnShards.from_matrix(M), y, **{**SETTINGS, "device": "meta"})
    with pytest.raises(ValueError, match=r"`max_records` must be an int in \[1, 1500\]"):
        calibrate(ColumnShards.from_matrix(M), y, **{**SETTINGS, "max_records": 1501})


def test_the_readme_torchrun_recipe_runs_on_two_ranks(tmp_path):
    """The README's script, as written, under `torchrun --nproc_per_node=2` (tiny blocks)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    script = readme.split("Save as `calibrate_sharded.py`:")[1].split("```text\n")[1]
    script = script.split("```")[0]
    (tmp_path / "calibrate_sharded.py").write_text(script)
    blocks = tmp_path / "blocks"
    blocks.mkdir()
    rng = np.random.default_rng(5)
    M = sp.random_array((6, 200 * 4), density=0.5, rng=rng, format="csc")
    M.data = rng.uniform(1.0, 2.0, M.nnz)
    for i in range(200):
        sp.save_npz(blocks / f"block-{i:04d}.npz", sp.coo_array(M[:, 4 * i: 4 * i + 4]))
    np.save(blocks / "y.npy", M @ rng.uniform(0.5, 2.0, M.shape[1]))
    script = (tmp_path / "calibrate_sharded.py").read_text().replace("500_000", "300")
    (tmp_path / "calibrate_sharded.py").write_text(script)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={free_port()}", "calibrate_sharded.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("l0 calibration (exact): 6 targets (6 met)") == 1  # rank 0 only
    assert "of 800 records kept" in done.stdout


@pytest.mark.parametrize("bounds", [(0.0, np.inf), (0.5, 1.6)])
def test_the_matrix_free_newton_steps_reach_the_direct_solution(bounds):
    """The sharded refit's conjugate-gradient Newton steps (here with a one-process sum) solve
    the same minimum-distance problem as the direct ones, on a redundant nested system."""
    from l0.calibration._solvers._newton import solve_distance

    rng = np.random.default_rng(0)
    nation = sp.csr_array(np.ones((1, 600)))
    region = sp.csr_array((np.ones(600), (rng.integers(0, 6, 600), np.arange(600))), shape=(6, 600))
    A = sp.csr_array(sp.vstack([nation, region, sp.random_array((8, 600), density=0.3, rng=rng)]))
    b = A @ rng.uniform(0.6, 1.5, 600)
    args = (A, b, np.ones(600), np.full(600, bounds[0]), np.full(600, bounds[1]))
    g_direct, _, direct = solve_distance(*args)
    g_cg, _, cg = solve_distance(*args, reduce=lambda v: v, matrix_free=True)
    assert direct.converged and cg.converged
    np.testing.assert_allclose(g_cg, g_direct, rtol=1e-9, atol=1e-12)
