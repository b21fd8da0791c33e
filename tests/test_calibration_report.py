"""Pictures, the HTML report and progress output of a calibration."""

import logging

import numpy as np
import pytest
import scipy.sparse as sp

from l0.calibration import calibrate, frontier
from l0.calibration.plots import plot_frontier


def problem(seed=0):
    rng = np.random.default_rng(seed)
    M = sp.random_array((8, 60), density=0.5, rng=rng, format="csr")
    M.data = rng.uniform(1, 5, M.nnz)
    return M, M @ rng.uniform(0.5, 2, 60)


@pytest.mark.parametrize("kwargs", [{"max_records": 30}, {"max_records": 30, "selection": "gates"},
                                    {"method": "raking"}, {"method": "exact"}])
def test_plots_render_to_non_empty_files(tmp_path, kwargs):
    M, y = problem()
    if kwargs.get("method", "l0") == "l0":
        kwargs = {**kwargs, "progress": False, "max_epochs": 200}
    result = calibrate(M, y, **kwargs)
    figure = result.plot()
    assert len(figure.axes) >= 3
    figure.savefig(tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 10_000
    table = frontier(M, y, budgets=[10, 30, 60], progress=False)
    plot_frontier(table).savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_the_frontier_table_plots_itself_and_slices_to_plain_frames(tmp_path):
    import pandas as pd

    M, y = problem()
    table = frontier(M, y, budgets=[10, 30], progress=False)
    figure = table.plot(title="budgets")
    assert figure._suptitle.get_text() == "budgets"
    assert [ax.get_xlabel() for ax in figure.axes] == ["records kept", "records kept"]
    figure.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 10_000
    assert type(table[["budget", "records"]]) is pd.DataFrame
    assert len(table.attrs["results"]) == 2


def test_report_has_its_sections_and_names(tmp_path):
    M, y = problem(1)
    names = [f"total {i}" for i in range(8)]
    result = calibrate(M, y, max_records=30, target_names=names, progress=False)
    path = result.report(tmp_path / "r.html", title="a test")
    page = open(path, encoding="utf-8").read()
    for section in ('id="summary"', 'id="diagnostics"', 'id="pictures"', 'id="targets"',
                    "<title>a test</title>", "total 0", "data:image/png;base64,"):
        assert section in page
    with pytest.raises(ValueError, match="`path` must be in an existing folder"):
        result.report(tmp_path / "missing" / "r.html")


def test_progress_auto_writes_a_few_log_lines_not_a_bar_when_stderr_is_not_a_terminal(
        capsys, caplog):
    M, y = problem(2)
    with caplog.at_level(logging.INFO, logger="l0"):
        calibrate(M, y, max_epochs=400, rtol=0.0, selection="gates", max_records=30)
    assert "l0 calibration" not in capsys.readouterr().err  # no tqdm bar in a log
    lines = [r.getMessage() for r in caplog.records if r.name == "l0"]
    assert 2 <= len(lines) <= 6
    assert lines[-1].startswith("l0 gate training stopped at epoch 400")
