"""Calibration speed, memory and the error reached: l0-python 0.6.2 vs this package vs the floor.

For N = 1e4, 1e5, 1e6 records and Q = 1,000 targets (1 % dense, planted feasible totals), each
engine runs in its own process with one thread:

* ``floor``      one ``M @ x`` plus one ``M.T @ r`` in scipy on the CSR matrix (the bare minimum
                 of a gradient epoch);
* ``l0-python``  ``SparseCalibrationWeights.fit`` of l0-python 0.6.2, installed by this script into
                 its own venv (``--no-peer`` skips it);
* ``ours``       the drop-in ``SparseCalibrationWeights.fit`` with the same arguments;
* ``calibrate``  ``l0.calibration.calibrate(M, y)`` with its defaults, to convergence + refit.

Per-epoch time is ``(T(E epochs) - T(0 epochs)) / E``; setup (conversion, checks) is reported on
its own. Peak memory is the growth of the process's peak RSS over its RSS with ``M`` loaded
(``/proc/self/clear_refs``), next to the bytes of the CSR matrix. The error is the mean and max
relative error of the published (test-time) weights after the same epochs.

``--big`` adds the PolicyEngine-scale tier: N = 5 M cloned households, Q = 20 k nested targets
(50 variables × nation, 50 states, 350 districts), ~1e8 non-zeros. ``--readme`` runs the
calibration example of l0-python's README (Q = 200, N = 10,000) and the NNLS optimum.

    python benchmarks/calibration_speed.py [--no-peer] [--sizes 1e4,1e5,1e6] [--big] [--readme]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer import peer_python, save_problem  # noqa: E402

HERE = Path(__file__).resolve()
FIT = {"lambda_l0": 1e-4, "lr": 0.05, "loss_type": "relative"}
INIT = {"init_keep_prob": 0.9, "seed": 0}


# --------------------------------------------------------------------------- helpers
def rss_kb(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def reset_peak() -> int:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # pragma: no cover - not Linux
        pass
    return rss_kb("VmRSS")


def csr_bytes(M: sp.csr_array) -> int:
    return M.data.nbytes + M.indices.nbytes + M.indptr.nbytes


def errors(M: sp.csr_array, w: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    rel = np.abs(M @ w - y) / np.maximum(np.abs(y), 1.0)
    return float(rel.mean()), float(rel.max())


# --------------------------------------------------------------------------- problems
def planted(n: int, q: int = 1000, density: float = 0.01, seed: int = 0):
    rng = np.random.default_rng(seed)
    per_col = max(1, round(q * density))
    rows = np.sort(rng.integers(0, q, (n, per_col)), axis=1)  # duplicates are summed below
    M = sp.csc_array((rng.uniform(0.0, 1.0, n * per_col), rows.ravel(),
                      np.arange(0, n * per_col + 1, per_col)), shape=(q, n))
    M.sum_duplicates()
    M = sp.csr_array(M)
    return M, M @ rng.uniform(0.5, 1.5, n)


def nested(n: int = 5_000_000, variables: int = 50, states: int = 50, districts: int = 350,
           per_record: int = 7, seed: int = 0):
    """Households in districts ⊂ states ⊂ nation; each has ``per_record`` of ``variables``."""
    rng = np.random.default_rng(seed)
    district = rng.integers(0, districts, n)
    state = district % states
    var = np.sort(rng.integers(0, variables, (n, per_record)), axis=1)
    values = rng.lognormal(0.0, 1.0, (n, per_record))
    values[:, 0] = 1.0  # a count
    areas = 1 + states + districts
    rows = np.concatenate([
        var * areas,                                   # nation
        var * areas + 1 + state[:, None],              # state
        var * areas + 1 + states + district[:, None],  # district
    ], axis=1).astype(np.int32)
    order = np.argsort(rows, axis=1, kind="stable")
    rows = np.take_along_axis(rows, order, axis=1)
    data = np.take_along_axis(np.concatenate([values] * 3, axis=1), order, axis=1)
    M = sp.csc_array((data.ravel(), rows.ravel(), np.arange(0, n * 3 * per_record + 1,
                                                            3 * per_record)),
                     shape=(variables * areas, n))
    M.sum_duplicates()
    M = sp.csr_array(M)
    return M, M @ rng.uniform(0.5, 1.5, n)


# --------------------------------------------------------------------------- workers
def worker(kind: str, path: str, epochs: int) -> dict:
    import torch

    torch.set_num_threads(1)
    loaded = np.load(path)
    M = sp.csr_array((loaded["data"], loaded["indices"], loaded["indptr"]),
                     shape=tuple(loaded["shape"]))
    y = loaded["y"]
    n = M.shape[1]
    if kind != "floor":  # imports and first-call costs are not part of the fit
        from l0.calibration import SparseCalibrationWeights  # ours, or l0-python's in its venv

        small = sp.csr_array(M[:, :50])
        SparseCalibrationWeights(50, **INIT).fit(small, small @ np.ones(50), epochs=2, **FIT)
        if kind == "calibrate":
            from l0.calibration import calibrate

            calibrate(small, small @ np.ones(50), progress=False, max_epochs=20)
    base = reset_peak()
    out: dict = {"csr_mb": csr_bytes(M) / 2**20}
    if kind == "floor":
        x, r = np.ones(n), np.ones(M.shape[0])
        M @ x, M.T @ r
        start = time.perf_counter()
        for _ in range(epochs):
            M @ x
            M.T @ r
        out["epoch_ms"] = 1e3 * (time.perf_counter() - start) / epochs
    elif kind in ("ours", "peer"):
        timed = {"epochs": 0.0}
        if kind == "ours":  # time the epochs themselves: at 1e8 non-zeros setup dwarfs them
            from l0.calibration._solvers._engine import GradientEngine

            step = GradientEngine.step

            def timed_step(self):  # noqa: ANN001, ANN202
                start = time.perf_counter()
                try:
                    return step(self)
                finally:
                    timed["epochs"] += time.perf_counter() - start

            GradientEngine.step = timed_step

        def run(e: int) -> tuple[float, object]:
            model = SparseCalibrationWeights(n, **INIT)
            start = time.perf_counter()
            model.fit(M, y, epochs=e, **FIT)
            return time.perf_counter() - start, model

        setup = run(0)[0]  # the model of the setup run is dropped at once
        total, model = run(epochs)
        if kind == "ours":
            out["setup_s"] = total - timed["epochs"]
            out["epoch_ms"] = 1e3 * timed["epochs"] / epochs
        else:  # the peer's setup is small next to its epochs
            out["setup_s"] = setup
            out["epoch_ms"] = 1e3 * (total - setup) / epochs
        w = model.get_weights(deterministic=True).detach().double().cpu().numpy()
        out["mean_error"], out["max_error"] = errors(M, w, y)
        out["kept"] = int(np.count_nonzero(w))
    elif kind == "calibrate":
        from l0.calibration import calibrate

        start = time.perf_counter()
        result = calibrate(M, y, progress=False, max_epochs=epochs)
        out["total_s"] = time.perf_counter() - start
        out["epochs"] = result.epochs
        out["mean_error"], out["max_error"] = result.mean_error, result.max_error
        out["kept"], out["ess"] = result.n_active, result.ess
    out["peak_mb"] = max(0, rss_kb("VmHWM") - base) / 1024
    return out


def spawn(kind: str, path: str, epochs: int, python: str = sys.executable) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if kind == "peer":
        env.pop("PYTHONPATH", None)
    proc = subprocess.run([python, str(HERE), "--worker", kind, path, str(epochs)],
                          capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def save(M: sp.csr_array, y: np.ndarray, directory: str, name: str) -> str:
    return save_problem(M, y, directory, name)


# --------------------------------------------------------------------------- tables
def speed_table(sizes: list[int], peer: bool, directory: str) -> None:
    epochs_for = {10_000: 100, 100_000: 30, 1_000_000: 10}
    python = peer_python() if peer else None
    print("\n## Per-epoch time, memory and error (Q = 1,000, 1 % dense, one thread)\n")
    print("| N | engine | ms/epoch | vs floor | vs l0-python | setup s | peak MB | CSR MB "
          "| epochs | mean err | max err | kept |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        M, y = planted(n)
        path = save(M, y, directory, f"planted{n}")
        epochs = epochs_for.get(n, 10)
        rows = {"floor": spawn("floor", path, 20)}
        if python:
            rows["l0-python 0.6.2"] = spawn("peer", path, epochs, python)
        rows["ours (drop-in)"] = spawn("ours", path, epochs)
        floor = rows["floor"]["epoch_ms"]
        peer_ms = rows.get("l0-python 0.6.2", {}).get("epoch_ms")
        for name, r in rows.items():
            vs_peer = f"{peer_ms / r['epoch_ms']:.1f}× faster" if peer_ms and name != "floor" \
                and not name.startswith("l0-python") else ""
            err = f"{r['mean_error']:.2%} | {r['max_error']:.2%} | {r['kept']}" if "kept" in r \
                else " | | "
            print(f"| {n:,} | {name} | {r['epoch_ms']:.2f} | {r['epoch_ms'] / floor:.2f}× | "
                  f"{vs_peer} | {r.get('setup_s', 0):.2f} | {r['peak_mb']:.0f} | "
                  f"{r['csr_mb']:.0f} | {epochs if 'kept' in r else ''} | {err} |", flush=True)
        c = spawn("calibrate", path, 2000)
        print(f"| {n:,} | calibrate() defaults | total {c['total_s']:.1f} s | | | | "
              f"{c['peak_mb']:.0f} | {c['csr_mb']:.0f} | {c['epochs']} | {c['mean_error']:.2e} | "
              f"{c['max_error']:.2e} | {c['kept']} (ESS {c['ess']:.0f}) |", flush=True)


def big_tier(directory: str) -> None:
    start = time.perf_counter()
    M, y = nested()
    print(f"\n## PolicyEngine scale: {M.shape[1]:,} records × {M.shape[0]:,} targets, "
          f"{M.nnz:,} non-zeros (built in {time.perf_counter() - start:.0f} s)\n")
    path = save(M, y, directory, "nested")
    del M, y
    print("| engine | ms/epoch | vs floor | setup s | peak MB over M | CSR MB | mean err | max err |")
    print("|---|---|---|---|---|---|---|---|")
    floor = spawn("floor", path, 3)
    print(f"| floor | {floor['epoch_ms']:.0f} | 1.00× | | {floor['peak_mb']:.0f} | "
          f"{floor['csr_mb']:.0f} | | |", flush=True)
    ours = spawn("ours", path, 5)
    print(f"| ours (drop-in) | {ours['epoch_ms']:.0f} | {ours['epoch_ms'] / floor['epoch_ms']:.2f}× | "
          f"{ours['setup_s']:.1f} | {ours['peak_mb']:.0f} | {ours['csr_mb']:.0f} | "
          f"{ours['mean_error']:.2%} | {ours['max_error']:.2%} |", flush=True)


def readme_example(peer: bool) -> None:
    """l0-python's README calibration example, seeded, and what is achievable on it."""
    import torch
    from scipy.optimize import nnls

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    q, n = 200, 10_000
    M = sp.random_array((q, n), density=0.3, format="csr", rng=rng)
    y = rng.uniform(1e6, 1e8, q)
    print("\n## l0-python's README example (Q = 200, N = 10,000, random infeasible totals)\n")
    print("| run | seconds | mean rel. err | max rel. err | records kept |")
    print("|---|---|---|---|---|")
    start = time.perf_counter()
    A = M.toarray() / y[:, None]
    best, _ = nnls(A, np.ones(q), maxiter=50 * n)
    m, x = errors(M, best, y)
    print(f"| NNLS optimum of the squared relative errors (oracle) | {time.perf_counter() - start:.1f} "
          f"| {m:.2%} | {x:.2%} | {np.count_nonzero(best)} |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = save(M, y, tmp, "readme")
        if peer:
            r = spawn_readme(path, peer_python())
            print(f"| l0-python 0.6.2, README call | {r['seconds']:.0f} | {r['mean_error']:.2%} | "
                  f"{r['max_error']:.2%} | {r['kept']} |", flush=True)
        r = spawn_readme(path, sys.executable)
        print(f"| ours, the same README call (drop-in) | {r['seconds']:.0f} | {r['mean_error']:.2%} | "
              f"{r['max_error']:.2%} | {r['kept']} |", flush=True)
    from l0.calibration import calibrate

    start = time.perf_counter()
    result = calibrate(M, y, progress=False)
    print(f"| ours, `calibrate(M, y)` defaults | {time.perf_counter() - start:.1f} | "
          f"{result.mean_error:.2%} | {result.max_error:.2%} | {result.n_active} |")


README_CALL = """
import json, sys, time, numpy as np, scipy.sparse as sp, torch
torch.set_num_threads(1)
from l0.calibration import SparseCalibrationWeights
z = np.load(sys.argv[1])
M = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
y = z["y"]; n = M.shape[1]
model = SparseCalibrationWeights(n_features=n, beta=0.35, gamma=-0.1, zeta=1.1,
    init_keep_prob=0.5, init_weights=1.0, log_weight_jitter_sd=0.05, device="cpu", seed=0)
start = time.perf_counter()
model.fit(M=M, y=y, lambda_l0=1e-6, lambda_l2=1e-8, lr=0.15, epochs=2000, loss_type="relative")
seconds = time.perf_counter() - start
w = model.get_weights(deterministic=True).detach().double().numpy()
rel = np.abs(M @ w - y) / np.abs(y)
print(json.dumps({"seconds": seconds, "mean_error": rel.mean(), "max_error": rel.max(),
                  "kept": int(np.count_nonzero(w))}))
"""


def spawn_readme(path: str, python: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([python, "-c", README_CALL, path], capture_output=True, text=True,
                          env=env, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "PATH", "EPOCHS"))
    parser.add_argument("--no-peer", action="store_true", help="skip l0-python 0.6.2")
    parser.add_argument("--sizes", default="1e4,1e5,1e6")
    parser.add_argument("--big", action="store_true", help="add the 5 M × 20 k tier")
    parser.add_argument("--readme", action="store_true", help="run l0-python's README example")
    args = parser.parse_args()
    if args.worker:
        kind, path, epochs = args.worker
        print(json.dumps(worker(kind, path, int(epochs))))
        return
    print(f"python {sys.version.split()[0]}, one thread per engine; driver peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")
    with tempfile.TemporaryDirectory() as directory:
        sizes = [int(float(s)) for s in args.sizes.split(",") if s]
        if sizes:
            speed_table(sizes, not args.no_peer, directory)
        if args.big:
            big_tier(directory)
    if args.readme:
        readme_example(not args.no_peer)


if __name__ == "__main__":
    main()
