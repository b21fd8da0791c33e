"""Selection under a record budget at the users' scale: the column-generated capped vertex.

Above ``VERTEX_UP_TO_NNZ`` non-zeros ``calibrate(M, y, max_records=k)`` used to train the gates
(HiGHS on the whole matrix takes minutes); it now takes the capped LP vertex by column
generation (a restricted master over a working set, every record priced by the master's duals)
and refits its support. One run compares, at the same k, on the nested problem of
``calibration_speed.nested`` (400,000 households, nation ⊃ 10 states ⊃ 60 districts × 20
variables = 1,420 targets, ~6.4 M non-zeros):

* ``column generation`` — ``calibrate(M, y, max_records=k)`` as it ships (the whole call);
* ``gates``             — ``selection="gates"``, what shipped above the limit before;
* ``whole-matrix vertex`` — the same capped-vertex search with HiGHS holding every record
                          (the limit raised), the route the column generation replaces.

Every row: records kept, max relative error, Kish ESS, seconds (whole call, matrix built
beforehand), LP solves and LP seconds. One thread.

    python benchmarks/scale.py [--n 400000] [--budgets 5000,20000] [--skip-baselines]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration_speed import nested  # noqa: E402


def row(label: str, k: int, run) -> None:
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    info = result.info
    print(f"| {k:,} | {label} ({info.get('selection')}) | {result.status} | "
          f"{result.n_active:,} | {result.max_error:.1e} | {result.ess:,.1f} | {seconds:,.1f} | "
          f"{info.get('lp_solves', '—')} | "
          f"{info.get('lp_seconds', float('nan')):.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=400_000)
    parser.add_argument("--budgets", default="5000,20000")
    parser.add_argument("--skip-baselines", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    from l0.calibration import calibrate
    from l0.calibration._solvers import l0 as l0_solver

    M, y = nested(n=args.n, variables=20, states=10, districts=60, per_record=6)
    print(f"nested: {M.shape[1]:,} records × {M.shape[0]:,} targets, {M.nnz:,} non-zeros "
          f"(limit for HiGHS on the whole matrix: {l0_solver.VERTEX_UP_TO_NNZ:,})\n")
    print("| k | selection | status | records | max error | ESS | seconds | LP solves | LP s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k in (int(b) for b in args.budgets.split(",")):
        row(k=k, label="column generation",
            run=lambda k=k: calibrate(M, y, max_records=k, progress=False))
        if args.skip_baselines:
            continue
        row(k=k, label="gates (before)", run=lambda k=k: calibrate(
            M, y, max_records=k, selection="gates", seed=0, progress=False))
        limit = l0_solver.VERTEX_UP_TO_NNZ
        l0_solver.VERTEX_UP_TO_NNZ = M.nnz + 1
        try:
            row(k=k, label="whole-matrix vertex",
                run=lambda k=k: calibrate(M, y, max_records=k, progress=False))
        finally:
            l0_solver.VERTEX_UP_TO_NNZ = limit


if __name__ == "__main__":
    main()
