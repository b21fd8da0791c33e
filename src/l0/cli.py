"""The ``l0`` command: ``l0 demo``, ``l0 calibrate``, ``l0 frontier``.

Bad files or arguments end with exit code 2 and one line on stderr (``l0: error: ...``), never a
traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "demo"]


class UsageError(Exception):
    """A problem with the command line or its files: exit code 2, one line."""


# --------------------------------------------------------------------------- reading files
def _read_matrix(path: str) -> Any:
    import pandas as pd
    import scipy.sparse as sp

    if not os.path.isfile(path):
        raise UsageError(f"--matrix: no such file {path!r}")
    if path.endswith(".npz"):
        try:
            return sp.load_npz(path)
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"--matrix: {path!r} is not a scipy sparse .npz file "
                             f"(scipy.sparse.save_npz) ({type(exc).__name__})") from None
    try:
        frame = pd.read_csv(path, header=None)
        if not all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
            frame = pd.read_csv(path, index_col=0)  # a header row and target names
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UsageError(f"--matrix: cannot read {path!r} as CSV ({exc})") from None
    if not all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
        raise UsageError(f"--matrix: {path!r} holds non-numeric entries")
    return frame


def _read_vector(path: str, option: str) -> tuple[Any, list[str] | None]:
    """One column of numbers, or two (names, numbers); a header row is allowed."""
    import numpy as np
    import pandas as pd

    if not os.path.isfile(path):
        raise UsageError(f"{option}: no such file {path!r}")
    try:
        frame = pd.read_csv(path, header=None)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UsageError(f"{option}: cannot read {path!r} as CSV ({exc})") from None
    if frame.shape[1] not in (1, 2):
        raise UsageError(f"{option}: {path!r} must have one column (values) or two (names, "
                         f"values); got {frame.shape[1]}")
    values = pd.to_numeric(frame.iloc[:, -1], errors="coerce")
    if np.isnan(values.iloc[0]) and len(values) > 1:  # a header row
        frame, values = frame.iloc[1:], values.iloc[1:]
    if values.isna().any():
        raise UsageError(f"{option}: {path!r} holds a non-numeric value at row "
                         f"{int(np.flatnonzero(values.isna().to_numpy())[0]) + 1}")
    names = frame.iloc[:, 0].astype(str).tolist() if frame.shape[1] == 2 else None
    return values.to_numpy(dtype=float), names


def _problem(args: argparse.Namespace) -> tuple[Any, Any]:
    """The matrix and the problem spec of the command line's files and options."""
    from .calibration._spec import ProblemSpec

    M = _read_matrix(args.matrix)
    y, names = _read_vector(args.targets, "--targets")
    if names is None and hasattr(M, "index") and not all(isinstance(i, int) for i in M.index):
        names = [str(i) for i in M.index]
    kwargs: dict[str, Any] = {"target_names": names}
    if args.init_weights:
        kwargs["init_weights"] = _read_vector(args.init_weights, "--init-weights")[0]
    if args.bounds:
        kwargs["bounds"] = tuple(args.bounds)
    return M, ProblemSpec(y, **kwargs)


def _check_output(path: str | None, option: str) -> None:
    """Refuse, before any work, an output the command could not write at the end: a folder
    that does not exist or is not writable, a path that is a directory."""
    if not path:
        return
    full = os.path.abspath(path)
    folder = os.path.dirname(full)
    if os.path.isdir(full):
        raise UsageError(f"{option} must be a file path; got {path!r}, which is a directory.")
    if not os.path.isdir(folder):
        raise UsageError(f"{option} must be a path in an existing folder; got {path!r} "
                         f"(no folder {folder!r}).")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option} must be a path in a writable folder; got {path!r}.")


def _has_plotting() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


_PLOT_EXTRA = "the report needs matplotlib: pip install 'l0-python[plot]'"


# --------------------------------------------------------------------------- commands
def demo(records: int = 800, bounds: tuple[float, float] = (0.0, 12.0), seed: int = 0,
         report: str | None = "l0-demo-report.html") -> int:
    """Calibrate the bundled California schools with a record budget and bounds on w/d."""
    _check_output(report, "--report")
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
    result = calibrate(M, y, max_records=records, bounds=bounds, seed=seed, target_names=names,
                       progress=False)
    seconds = time.perf_counter() - start
    print(f"calibrate(M, y, max_records={records}, bounds={bounds}): {seconds:.1f} s — "
          f"{result.n_active} of {n:,} schools kept")
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
    if report and not _has_plotting():
        print(f"\nno report written: {_PLOT_EXTRA}")
    elif report:
        path = result.report(report, title=f"California schools: {result.n_active} of {n:,} "
                                           f"schools, w/d in {bounds}")
        print(f"\nreport: {path}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from .calibration._calibrate import calibrate_spec
    from .calibration._solvers.methods import METHOD_TABLE

    _check_output(args.out, "--out")
    _check_output(args.report, "--report")
    if args.report and not _has_plotting():
        raise UsageError(f"--report cannot be written: {_PLOT_EXTRA}.")
    M, spec = _problem(args)
    settings: dict[str, Any] = {}
    if args.max_records is not None:
        settings["max_records"] = args.max_records
    has = {f.name for f in dataclasses.fields(METHOD_TABLE[args.method].options_type)}
    settings.update({name: value for name, value in (("seed", args.seed), ("progress", None))
                     if name in has})  # --seed (and the progress display) where they apply
    start = time.perf_counter()
    result = calibrate_spec(M, spec, method=args.method, **settings)
    print(result.summary())
    print(f"{time.perf_counter() - start:.2f} s")
    if args.out:
        import pandas as pd

        pd.DataFrame({"weight": result.weights}).to_csv(args.out, index_label="record")
        print(f"weights: {os.path.abspath(args.out)}")
    if args.report:
        print(f"report: {result.report(args.report)}")
    return 0


def _frontier(args: argparse.Namespace) -> int:
    from .calibration.frontier import frontier_spec

    _check_output(args.out, "--out")
    M, spec = _problem(args)
    table = frontier_spec(M, spec, args.budgets, seed=args.seed, progress=None)
    print(table.drop(columns=["selection"]).to_string(index=False, float_format=lambda x:
                                                      f"{x:.4g}"))
    if args.out:
        table.to_csv(args.out, index=False)
        print(f"table: {os.path.abspath(args.out)}")
    return 0


# --------------------------------------------------------------------------- parsing
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2 (argparse's own code)
        raise UsageError(message)


def _budgets(text: str) -> list[int]:
    try:
        budgets = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"budgets must be integers separated by commas; got "
                                         f"{text!r}") from None
    if not budgets or min(budgets) < 1:
        raise argparse.ArgumentTypeError(f"budgets must be integers >= 1; got {text!r}")
    return budgets


def _parser() -> argparse.ArgumentParser:
    from .calibration._solvers.methods import METHOD_TABLE

    parser = _Parser(prog="l0", description="L0 regularization tools: sparse survey calibration")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("demo", help="calibrate the bundled California schools data")
    run.add_argument("--records", type=int, default=800, help="keep at most this many schools")
    run.add_argument("--bounds", type=float, nargs=2, default=(0.0, 12.0), metavar=("LO", "HI"))
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--report", default="l0-demo-report.html", help="HTML report path")
    for name, help_text in (("calibrate", "calibrate a matrix to target totals"),
                            ("frontier", "records against errors and ESS over budgets")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--matrix", required=True,
                         help="targets x records: scipy .npz (save_npz) or CSV")
        cmd.add_argument("--targets", required=True, help="CSV of totals (or names, totals)")
        cmd.add_argument("--init-weights", help="CSV of design weights, one per record")
        cmd.add_argument("--bounds", type=float, nargs=2, metavar=("LO", "HI"),
                         help="bounds on w/d")
        cmd.add_argument("--seed", type=int, default=0)
        cmd.add_argument("--out", help="CSV to write (weights, or the frontier table)")
        if name == "calibrate":
            cmd.add_argument("--method", default="l0", choices=tuple(METHOD_TABLE))
            cmd.add_argument("--max-records", type=int, help="record budget (method l0)")
            cmd.add_argument("--report", help="HTML report path")
        else:
            cmd.add_argument("--budgets", type=_budgets, required=True,
                             help="record budgets, e.g. 300,800,1400")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``l0`` command; returns the exit code (2 for bad arguments or files)."""
    try:
        args = _parser().parse_args(argv)
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            if args.command == "demo":
                return demo(args.records, tuple(args.bounds), args.seed, args.report or None)
            if args.command == "calibrate":
                return _calibrate(args)
            return _frontier(args)
    except UsageError as exc:
        print(f"l0: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError) as exc:  # the library's own argument errors name the argument
        print(f"l0: error: {exc}", file=sys.stderr)
        return 2


def console() -> None:  # pragma: no cover - the console-script entry point
    raise SystemExit(main())


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
