"""Command line: ``python -m l0 demo``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence


def demo() -> int:
    """Select 300 of the 6,194 California schools whose column means match the population's."""
    import numpy as np
    import torch

    from .datasets import load_api
    from .selection import SampleGate

    torch.set_num_threads(1)
    columns = ["api00", "api99", "meals", "ell", "col.grad", "full", "enroll", "api.stu"]
    schools = load_api("pop")[columns].dropna()
    data = schools.to_numpy(float)
    start = time.perf_counter()
    gate = SampleGate(len(data), target_samples=300).fit(data, seed=0)
    seconds = time.perf_counter() - start
    rows, weights, idx = gate.select_weighted_samples(
        torch.from_numpy(data), torch.ones(len(data), dtype=torch.float64)
    )
    w = weights.detach().numpy()
    selected = (w @ rows.numpy()) / w.sum()
    rng = np.random.default_rng(0)
    random = data[rng.choice(len(data), len(idx), replace=False)].mean(0)
    full = data.mean(0)
    print(f"California schools 1999-2000: {len(data)} schools, {len(columns)} columns")
    print(f"SampleGate.fit selected {len(idx)} schools in {seconds:.1f} s\n")
    print(f"{'column':>10} {'population':>12} {'selected':>12} {'rel.err':>9} {'random':>9}")
    for name, f, s, r in zip(columns, full, selected, random):
        print(f"{name:>10} {f:12.2f} {s:12.2f} {s / f - 1:9.2%} {r / f - 1:9.2%}")
    worst = np.abs(selected / full - 1).max()
    print(f"\nworst relative error: selected {worst:.2%}, "
          f"random sample of the same size {np.abs(random / full - 1).max():.2%}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="l0", description="L0 regularization tools")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the demo on the bundled California schools data")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo()
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
