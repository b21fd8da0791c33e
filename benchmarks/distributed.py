"""Sharded calibration on torch.distributed (gloo): one process against two, on this machine.

Two problems, both nested (households in districts ⊂ states ⊂ nation, 7 variables each):

* **scale** — the speed benchmark's 5 M households × 20,050 targets (1.0e8 non-zeros), written
  as 200 COO column blocks of 25,000 records (the shape PolicyEngine writes). Each run trains
  the gates for ``--epochs`` epochs under ``max_records=500,000`` from the files (every rank
  loads only its own files) and publishes the gate weights (``refit=False``): whole-call
  seconds (loading included), seconds per epoch (training only), peak RSS per rank and the
  floats reduced per epoch.
* **convergence** — 300,000 households × 610 targets, the defaults to convergence under
  ``max_records=20,000`` (gates, then the minimum-distance refit by conjugate gradients):
  records, errors, ESS, seconds, and whether one and two ranks agree.

Rows: ``one process`` (``calibrate(M)`` on the hstacked matrix: the baseline), ``shards, P=1``
(``ColumnShards`` without a process group), ``shards, P=2`` (two gloo ranks spawned here, one
thread each). Then a projection of the communication of 30 M × 40 k on 8 GPUs from the measured
reduction sizes (the GPU/nccl path itself is not implemented yet).

    python benchmarks/distributed.py [--epochs 20] [--skip-scale] [--skip-convergence]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration_speed import nested  # noqa: E402

BLOCK = 25_000


def write_blocks(M: sp.csr_array, y: np.ndarray, folder: Path) -> list[str]:
    csc = M.tocsc()
    paths = []
    for i, start in enumerate(range(0, M.shape[1], BLOCK)):
        path = folder / f"block-{i:04d}.npz"
        sp.save_npz(path, sp.coo_array(csc[:, start: start + BLOCK]), compressed=False)
        paths.append(str(path))
    np.save(folder / "y.npy", y)
    return paths


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: per address space, so unlike ru_maxrss it
    does not inherit the parent's peak across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (this benchmark needs Linux)")


def run(kind: str, folder: str, settings: dict, rank: int = 0, world: int = 1,
        port: int = 0) -> dict:
    """One calibration in this process: 'single' (hstacked matrix) or 'shards'."""
    import torch

    torch.set_num_threads(1)
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world, timeout=datetime.timedelta(seconds=600))
    from l0.calibration import calibrate
    from l0.calibration.shards import ColumnShards

    paths = sorted(str(p) for p in Path(folder).glob("block-*.npz"))
    y = np.load(Path(folder) / "y.npy")
    start = time.perf_counter()
    if kind == "single":
        M = sp.hstack([sp.load_npz(p) for p in paths], format="csr")
        result = calibrate(M, y, selection="gates", **settings)
    else:
        result = calibrate(ColumnShards.from_files(paths), y, **settings)
    seconds = time.perf_counter() - start
    training = result.info["training"]
    out = {"seconds": seconds, "epoch_s": training["seconds"] / max(training["epochs"], 1),
           "epochs": training["epochs"], "peak_mb": peak_mb(), "records": result.n_active,
           "max_error": result.max_error, "mean_error": result.mean_error, "ess": result.ess,
           "floats_per_epoch": training.get("floats_reduced", 0) / max(training["epochs"], 1),
           "reductions_per_epoch": training.get("reductions", 0) / max(training["epochs"], 1),
           "weights": result.weights}
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return out


def _rank_main(rank: int, world: int, port: int, folder: str, settings: dict, out: str) -> None:
    result = run("shards", folder, settings, rank, world, port)
    np.save(f"{out}-{rank}.npy", result.pop("weights"))
    Path(f"{out}-{rank}.json").write_text(json.dumps(result))


def run_ranks(world: int, folder: str, settings: dict) -> list[dict]:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = os.path.join(folder, f"out-p{world}")
    mp.start_processes(_rank_main, args=(world, port, folder, settings, out), nprocs=world,
                       start_method="spawn")
    results = []
    for r in range(world):
        row = json.loads(Path(f"{out}-{r}.json").read_text())
        row["weights"] = np.load(f"{out}-{r}.npy")
        results.append(row)
    return results


def in_subprocess(kind: str, folder: str, settings: dict) -> dict:
    """A one-process run in a fresh interpreter, so that its peak memory is its own."""
    import torch.multiprocessing as mp

    out = os.path.join(folder, f"out-{kind}")
    mp.start_processes(_single_main, args=(kind, folder, settings, out), nprocs=1,
                       start_method="spawn")
    row = json.loads(Path(f"{out}.json").read_text())
    row["weights"] = np.load(f"{out}.npy")
    return row


def _single_main(_: int, kind: str, folder: str, settings: dict, out: str) -> None:
    result = run(kind, folder, settings)
    np.save(f"{out}.npy", result.pop("weights"))
    Path(f"{out}.json").write_text(json.dumps(result))


def table(rows: list[tuple[str, dict]], base: dict) -> None:
    print("| run | whole call s | s/epoch | vs one process | peak RSS MB per rank | vs one "
          "process | reductions/epoch | floats/epoch | records | max error | ESS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, r in rows:
        print(f"| {label} | {r['seconds']:.1f} | {r['epoch_s']:.3f} | "
              f"{r['epoch_s'] / base['epoch_s']:.2f}× | {r['peak_mb']:,.0f} | "
              f"{r['peak_mb'] / base['peak_mb']:.2f}× | {r['reductions_per_epoch']:.1f} | "
              f"{r['floats_per_epoch']:,.0f} | {r['records']:,} | "
              f"{r['max_error']:.2e} | {r['ess']:,.0f} |")


def compare(label: str, a: np.ndarray, b: np.ndarray) -> None:
    same = np.array_equal(np.flatnonzero(a), np.flatnonzero(b))
    kept = np.flatnonzero(a)
    worst = float(np.max(np.abs(a[kept] - b[kept]) / a[kept])) if len(kept) else 0.0
    print(f"{label}: same support: {same}; max |Δw|/w = {worst:.1e}")


def three_runs(folder: Path, settings: dict) -> tuple[dict, dict, list[dict]]:
    """One process, shards on one process, two ranks: the table, and P=1 against P=2."""
    single = in_subprocess("single", str(folder), settings)
    p1 = in_subprocess("shards", str(folder), settings)
    p2 = run_ranks(2, str(folder), settings)
    slowest = {**p2[0], "peak_mb": max(r["peak_mb"] for r in p2),
               "seconds": max(r["seconds"] for r in p2),
               "epoch_s": max(r["epoch_s"] for r in p2)}
    table([("one process", single), ("shards, P=1", p1), ("shards, P=2", slowest)], single)
    compare("P=1 vs P=2 weights", p1["weights"], p2[0]["weights"])
    return single, p1, p2


def scale(epochs: int, root: Path) -> None:
    folder = root / "scale"
    folder.mkdir()
    start = time.perf_counter()
    M, y = nested()
    write_blocks(M, y, folder)
    print(f"\n## Scale: {M.shape[1]:,} records × {M.shape[0]:,} targets, {M.nnz:,} non-zeros, "
          f"{len(list(folder.glob('block-*.npz')))} column blocks (built and written in "
          f"{time.perf_counter() - start:.0f} s), {epochs} epochs\n")
    del M, y
    settings = {"max_records": 500_000, "max_epochs": epochs, "refit": False, "progress": False}
    _, _, p2 = three_runs(folder, settings)
    print(f"P=2 floats per epoch: {p2[0]['floats_per_epoch']:,.1f} (Q = 20,050); reductions per "
          f"epoch: {p2[0]['reductions_per_epoch']:.2f}")


def convergence(root: Path) -> None:
    folder = root / "convergence"
    folder.mkdir()
    M, y = nested(n=300_000, variables=10, states=10, districts=50)
    write_blocks(M, y, folder)
    print(f"\n## Convergence: {M.shape[1]:,} records × {M.shape[0]:,} targets, {M.nnz:,} "
          "non-zeros, max_records=20,000, defaults\n")
    del M, y
    _, _, p2 = three_runs(folder, {"max_records": 20_000, "progress": False})
    compare("rank 0 vs rank 1 result", p2[0]["weights"], p2[1]["weights"])


def projection() -> None:
    q, ranks, records = 40_000, 8, 30_000_000
    nnz = records * 20  # 20 non-zeros per record, as in the 5 M problem
    floats = q + 2  # the two reductions of an epoch (estimates; expected and open counts)
    ring = 2 * (ranks - 1) / ranks * floats * 8  # bytes each GPU sends per epoch (ring)
    print("\n## Projection: 30 M records × 40,000 targets on 8 GPUs (arithmetic, not measured)\n")
    print(f"- per epoch: 2 all-reduces of {q:,} and 2 floats = {floats * 8 / 1024:,.0f} KiB; "
          f"a ring all-reduce sends {ring / 1024:,.0f} KiB per GPU")
    print(f"- per GPU: {records // ranks:,} records, {nnz // ranks:,} non-zeros; the two sparse "
          f"products read ≈ {2 * 12 * nnz / ranks / 1e9:.1f} GB per epoch (12 B per non-zero)")
    for name, bandwidth, latency in (("NVLink, 150 GB/s, 30 µs/collective", 150e9, 30e-6),
                                     ("PCIe/Ethernet, 10 GB/s, 100 µs", 10e9, 100e-6)):
        comm = ring / bandwidth + 2 * latency
        compute = 2 * 12 * nnz / ranks / 1e12 * 2  # at ~0.5 TB/s effective for SpMV
        print(f"- {name}: communication ≈ {comm * 1e3:.2f} ms per epoch against ≈ "
              f"{compute * 1e3:.1f} ms of products (at 0.5 TB/s effective): "
              f"{comm / (comm + compute):.0%} of an epoch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-convergence", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="l0-distributed-") as tmp:
        root = Path(tmp)
        if not args.skip_convergence:
            convergence(root)
        if not args.skip_scale:
            scale(args.epochs, root)
    projection()


if __name__ == "__main__":
    main()
