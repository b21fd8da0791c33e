"""The ``l0`` command end to end, in subprocesses: demo, calibrate, frontier, every bad input."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "l0", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=240)


def test_demo_calibrates_the_schools_within_the_budget_and_writes_a_report(tmp_path):
    out = run("demo", "--records", "800", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    last = text.split("worst relative error over all 238 totals: calibrated ")[1]
    worst, kept = float(last.split()[0]), int(last.split(" with ")[1].split()[0])
    assert 700 <= kept <= 800 and worst <= 1e-8
    assert f"{kept} of 6,194 schools kept" in text
    random = float(text.split("random sample of the same size ")[-1].split("%")[0])
    assert random > 10.0  # the point of the demo: a random sample misses badly
    report = tmp_path / "l0-demo-report.html"
    assert f"report: {report}" in text
    page = report.read_text()
    for section in ('id="summary"', 'id="diagnostics"', 'id="pictures"', 'id="targets"',
                    "data:image/png;base64,"):
        assert section in page


def write_files(folder):
    """A 6 × 40 problem as M.npz, M.csv, y.csv (named totals) and d.csv (design weights)."""
    rng = np.random.default_rng(0)
    M = sp.random_array((6, 40), density=0.5, rng=rng, format="csr")
    M.data = rng.uniform(1, 5, M.nnz)
    w = rng.uniform(0.5, 2, 40)
    y = M @ w
    sp.save_npz(folder / "M.npz", sp.csr_matrix(M))
    pd.DataFrame(M.toarray()).to_csv(folder / "M.csv", header=False, index=False)
    pd.DataFrame({"name": [f"t{i}" for i in range(6)], "total": y}).to_csv(
        folder / "y.csv", index=False)
    pd.DataFrame({"d": np.ones(40)}).to_csv(folder / "d.csv", index=False)
    return folder, M, y


@pytest.fixture
def files(tmp_path):
    return write_files(tmp_path)


@pytest.mark.parametrize("matrix", ["M.npz", "M.csv"])
def test_calibrate_reads_files_and_writes_weights_and_a_report(files, matrix):
    path, M, y = files
    out = run("calibrate", "--matrix", path / matrix, "--targets", path / "y.csv",
              "--init-weights", path / "d.csv", "--max-records", 20, "--bounds", 0, 10,
              "--out", path / "w.csv", "--report", path / "r.html")
    assert out.returncode == 0, out.stderr
    assert "(exact)" in out.stdout
    weights = pd.read_csv(path / "w.csv")["weight"].to_numpy()
    assert np.count_nonzero(weights) <= 20 and weights.max() <= 10 + 1e-12
    np.testing.assert_allclose(M @ weights, y, rtol=1e-8)
    assert "t0" in (path / "r.html").read_text()  # target names flow into the report


def test_calibrate_classical_and_frontier(files):
    path, M, y = files
    out = run("calibrate", "--matrix", path / "M.npz", "--targets", path / "y.csv",
              "--method", "raking")
    assert out.returncode == 0 and "raking calibration (exact)" in out.stdout
    out = run("frontier", "--matrix", path / "M.npz", "--targets", path / "y.csv",
              "--budgets", "10,20,40", "--out", path / "f.csv")
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(path / "f.csv")
    assert table["budget"].tolist() == [10, 20, 40] and (table["records"] <= table["budget"]).all()


BAD_INPUTS = [
    (["calibrate", "--matrix", "{p}/missing.npz", "--targets", "{p}/y.csv"], "no such file"),
    (["calibrate", "--matrix", "{p}/words.csv", "--targets", "{p}/y.csv"], "non-numeric"),
    (["calibrate", "--matrix", "{p}/bad.npz", "--targets", "{p}/y.csv"], "not a scipy sparse"),
    (["calibrate", "--matrix", "{p}/M.npz", "--targets", "{p}/d.csv"],
     "`y` must be of length 6"),
    (["calibrate", "--matrix", "{p}/M.npz", "--targets", "{p}/y.csv", "--bounds", "3", "1"],
     "`bounds` must be (low, high) with low < high"),
    (["calibrate", "--matrix", "{p}/M.npz", "--targets", "{p}/y.csv", "--method", "magic"],
     "invalid choice: 'magic'"),
    (["calibrate", "--matrix", "{p}/M.npz", "--targets", "{p}/y.csv", "--method", "exact",
      "--max-records", "3"], "`max_records` is not a setting of method='exact'"),
    (["calibrate", "--matrix", "{p}/M.npz", "--targets", "{p}/text.csv"], "non-numeric value"),
    (["frontier", "--matrix", "{p}/M.npz", "--targets", "{p}/y.csv", "--budgets", "a,b"],
     "budgets must be integers"),
    (["calibrate", "--matrix", "{p}/M.npz"], "required: --targets"),
    (["nope"], "invalid choice: 'nope'"),
]

# Every bad input runs the `l0` entry point in one fresh interpreter (one subprocess for all,
# not one each: starting Python with torch costs seconds); each case gets its own exit code and
# stderr, and anything but a clean exit is recorded as a traceback.
_DRIVER = """
import contextlib, io, json, sys, traceback
from l0.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            code, _ = None, traceback.print_exc(file=err)
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def bad_input_runs(tmp_path_factory):
    path, _, _ = write_files(tmp_path_factory.mktemp("bad"))
    (path / "bad.npz").write_bytes(b"not an npz")
    (path / "text.csv").write_text("total\n1.0\nabc\n")
    (path / "words.csv").write_text("name,a,b\nt0,x,1\nt1,y,2\n")
    argvs = [[a.format(p=path) for a in args] for args, _ in BAD_INPUTS]
    done = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(argvs)],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", range(len(BAD_INPUTS)))
def test_bad_files_and_arguments_exit_2_with_one_line_and_no_traceback(bad_input_runs, case):
    code, stderr = bad_input_runs[case]
    message = BAD_INPUTS[case][1]
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("l0: error: ") and message in lines[0]
    assert "Traceback" not in stderr


def test_the_console_entry_point_exits_2_in_a_subprocess_of_its_own(files):
    path, _, _ = files
    out = run("calibrate", "--matrix", path / "missing.npz", "--targets", path / "y.csv")
    assert out.returncode == 2 and out.stderr.startswith("l0: error: ")
    assert "Traceback" not in out.stderr


def test_help_exits_0():
    out = run("--help")
    assert out.returncode == 0 and "calibrate" in out.stdout


@pytest.mark.parametrize("out, report, message", [
    ("w.csv", "missing-folder/r.html", "--report must be a path in an existing folder"),
    ("missing-folder/w.csv", None, "--out must be a path in an existing folder"),
    (".", None, "--out must be a file path; got '.', which is a directory."),
])
def test_every_output_path_is_checked_before_any_work(files, monkeypatch, capsys, out, report,
                                                      message):
    from l0 import cli

    path, _, _ = files
    monkeypatch.chdir(path)
    monkeypatch.setattr(cli, "_problem", lambda args: pytest.fail("the files were read"))
    argv = ["calibrate", "--matrix", "M.npz", "--targets", "y.csv", "--out", out]
    assert cli.main(argv + (["--report", report] if report else [])) == 2
    assert message in capsys.readouterr().err
    assert not (path / "w.csv").exists()


def test_a_report_without_matplotlib_is_one_line(files, monkeypatch, capsys):
    from l0 import cli

    path, _, _ = files
    monkeypatch.chdir(path)
    monkeypatch.setattr(cli, "_has_plotting", lambda: False)
    argv = ["calibrate", "--matrix", "M.npz", "--targets", "y.csv", "--report", "r.html"]
    assert cli.main(argv) == 2
    assert "pip install 'l0-python[plot]'" in capsys.readouterr().err
    assert cli.demo(records=800, report="r.html") == 0  # the demo runs and says so
    assert "no report written: the report needs matplotlib" in capsys.readouterr().out
    assert not (path / "r.html").exists()
