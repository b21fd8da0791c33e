"""Geography cloning: the records × areas matrix built from a DataFrame, against scipy's kron.

Problem (the issue's size): 100,000 households with 10 numeric variables, cloned into 50 areas
of 10 states, targets at the area level and nationally (5 M clones, 1.0e8 non-zeros); and the same
records eligible for 5 random areas each (assignment probabilities), with area, state and
national targets.

* ``clone_into_areas``  the whole call from the DataFrames (base margins, targets table, CSR);
* ``scipy kron``        the strongest vectorised baseline for the all-areas case:
                        ``vstack([kron(eye(A), B), kron(ones((1, A)), B)])`` to CSR from an
                        already-built base matrix ``B`` (so it is timed without the margins).

Memory: the peak of numpy/scipy allocations during the call (tracemalloc) beyond the final CSR
matrix, as a multiple of the CSR's bytes (goal: <= 2x). Quality: the two matrices are compared
entry for entry; a small cloned problem is calibrated end to end under a record budget.

    python benchmarks/geography.py [--records 100000] [--areas 50] [--variables 10]
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import numpy as np
import pandas as pd
import scipy.sparse as sp

from l0.calibration.geography import clone_into_areas
from l0.calibration.margins import Total


def households(n: int, variables: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {f"v{j}": rng.lognormal(3.0 + j, 1.0, n).round(2) for j in range(variables)}
    return pd.DataFrame(data, index=pd.RangeIndex(n, name="household"))


def area_frame(n_areas: int) -> pd.DataFrame:
    return pd.DataFrame({"state": [f"S{a % 10}" for a in range(n_areas)]},
                        index=pd.Index([f"D{a:03d}" for a in range(n_areas)], name="district"))


def target_table(areas: pd.DataFrame, variables: int, levels: tuple[str, ...],
                 value: float = 1.0) -> pd.DataFrame:
    rows = []
    for level in levels:
        units = ([None] if level == "all" else
                 list(areas.index) if level == "district" else list(dict.fromkeys(areas[level])))
        rows += [(level, u, f"v{j}", value) for u in units for j in range(variables)]
    return pd.DataFrame(rows, columns=["level", "unit", "target", "value"])


def measured(call):  # noqa: ANN001, ANN201 - (seconds, peak bytes, result)
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    start = time.perf_counter()
    out = call()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak - base, out


def csr_bytes(M: sp.csr_array) -> int:
    return M.data.nbytes + M.indices.nbytes + M.indptr.nbytes


def row(label: str, M: sp.csr_array, seconds: float, peak: int, check: str) -> str:
    extra = (peak - csr_bytes(M)) / csr_bytes(M)
    return (f"| {label} | {M.shape[0]:,} × {M.shape[1]:,} | {M.nnz / 1e6:,.1f} M | "
            f"{csr_bytes(M) / 2**20:,.0f} MB | {seconds:.2f} | {extra:.2f}× | {check} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--areas", type=int, default=50)
    parser.add_argument("--variables", type=int, default=10)
    args = parser.parse_args()
    n, A, K = args.records, args.areas, args.variables
    records, areas = households(n, K), area_frame(A)
    margins = [Total(f"v{j}") for j in range(K)]
    print(f"{n:,} records × {A} areas × {K} variables; one process, tracemalloc on")
    print("| build | shape | non-zeros | CSR | seconds | extra memory / CSR | check |")
    print("|---|---|---|---|---|---|---|")

    table = target_table(areas, K, ("district", "all"))
    seconds, peak, cloned = measured(
        lambda: clone_into_areas(records, areas, margins, targets=table))
    B = sp.csr_array(records.to_numpy().T)

    def kron_build() -> sp.csr_array:
        return sp.csr_array(sp.vstack([sp.kron(sp.eye_array(A), B, format="csr"),
                                       sp.kron(np.ones((1, A)), B, format="csr")], format="csr"))

    k_seconds, k_peak, reference = measured(kron_build)
    same = (cloned.matrix.shape == reference.shape and cloned.matrix.nnz == reference.nnz
            and np.array_equal(cloned.matrix.indptr, reference.indptr)
            and np.array_equal(cloned.matrix.indices, reference.indices)
            and np.array_equal(cloned.matrix.data, reference.data))
    print(row("clone_into_areas, every area", cloned.matrix, seconds, peak,
              "equal to kron" if same else "DIFFERS from kron"))
    print(row("scipy kron + vstack (from B)", reference, k_seconds, k_peak, "reference"))
    del reference, cloned
    gc.collect()

    rng = np.random.default_rng(1)
    picks = np.argsort(rng.random((n, A)), axis=1)[:, :5]
    probs = rng.dirichlet(np.ones(5), n)
    assignment = sp.csr_array((probs.ravel(), picks.ravel(), np.arange(0, 5 * n + 1, 5)),
                              shape=(n, A))
    table3 = target_table(areas, K, ("district", "state", "all"))
    seconds, peak, eligible = measured(lambda: clone_into_areas(
        records, areas, margins, targets=table3, assignment=assignment))
    weights_ok = np.isclose(np.bincount(eligible.clone_record, eligible.init_weights), 1.0).all()
    print(row("clone_into_areas, 5 areas each, 3 levels", eligible.matrix, seconds, peak,
              "clone weights sum to d" if weights_ok else "clone weights WRONG"))
    del eligible
    gc.collect()

    small, small_areas = households(2_000, 4, seed=2), area_frame(20)
    planted = np.random.default_rng(3).uniform(0.5, 2.0, 2_000 * 20) / 20
    small_table = target_table(small_areas, 4, ("district", "state", "all"))
    probe = clone_into_areas(small, small_areas, [Total(f"v{j}") for j in range(4)],
                             targets=small_table)
    small_table["value"] = probe.matrix @ planted
    start = time.perf_counter()
    probe = clone_into_areas(small, small_areas, [Total(f"v{j}") for j in range(4)],
                             targets=small_table)
    result = probe.calibrate(max_records=500, progress=False)
    print(f"\nend to end: 2,000 records × 20 areas ({probe.matrix.shape[1]:,} clones, "
          f"{len(probe)} targets at 3 levels), max_records=500: {result.n_active} clones on "
          f"{probe.record_weights(result).gt(0).sum()} records, max relative error "
          f"{np.abs(result.relative_errors).max():.1e}, ESS {result.ess:.0f}, "
          f"{time.perf_counter() - start:.2f} s (build + calibrate)")


if __name__ == "__main__":
    main()
