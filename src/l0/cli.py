"""Command line: ``python -m l0 demo``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence


def demo(records: int = 800, seed: int = 0) -> int:
    """Calibrate the California schools: at most ``records`` schools that reproduce 238 totals."""
    import numpy as np
    import torch

    from .calibration import calibrate
    from .datasets import load_api_targets

    torch.set_num_threads(1)
    M, y, names = load_api_targets()
    n = M.shape[1]
    print(f"California schools 1999-2000: {n:,} schools, {len(y)} population totals "
          "(schools per county x type, enrolment per county, score/meals/ELL sums per type)\n")
    start = time.perf_counter()
    result = calibrate(M, y, max_records=records, seed=seed, target_names=names, progress=False)
    seconds = time.perf_counter() - start
    print(f"calibrate(M, y, max_records={records}): {seconds:.1f} s — select {records} schools "
          "or fewer, then refit their weights")
    print(result.summary() + "\n")
    vertex = calibrate(M, y, method="exact")
    print(f"for comparison, the exact LP vertex (method='exact'): {vertex.n_active} schools, "
          f"max error {vertex.max_error:.1e}, ESS {vertex.ess:.0f} — fewer schools, far more "
          "uneven weights\n")
    rng = np.random.default_rng(seed)
    sample = rng.choice(n, result.n_active, replace=False)
    naive = np.zeros(n)
    naive[sample] = n / len(sample)  # a uniform random sample of the same size, weighted N/n
    naive_errors = np.abs(M @ naive - y) / np.maximum(np.abs(y), 1.0)
    table = result.per_target()
    table["random sample"] = naive_errors
    worst = table.reindex(table["random sample"].sort_values().index[-8:])
    print("the eight totals a random sample of the same size misses most:")
    print(f"{'target':>28} {'total':>12} {'calibrated':>12} {'rel.err':>9} {'random':>9}")
    for name, row in worst.iterrows():
        print(f"{name:>28} {row['target']:12.0f} {row['estimate']:12.1f} "
              f"{row['relative_error']:9.1e} {row['random sample']:9.1%}")
    print(f"\nworst relative error over all {len(y)} totals: calibrated "
          f"{result.max_error:.1e} with {result.n_active} schools; random sample of the same "
          f"size {naive_errors.max():.1%}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="l0", description="L0 regularization tools")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("demo", help="calibrate the bundled California schools data")
    run.add_argument("--records", type=int, default=800, help="keep at most this many schools")
    run.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.records, args.seed)
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
