"""The documentation: the guides' Python blocks run as written, and the API reference builds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
GUIDES = ("getting-started.md", "calibration.md", "networks.md")


def _blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)


@pytest.mark.parametrize("page", GUIDES)
def test_guide_blocks_run_in_order(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = _blocks(page)
    assert blocks, page
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{page}[{i}]", "exec"), namespace)


def test_the_docs_index_links_every_page():
    index = (DOCS / "README.md").read_text()
    for page in (*GUIDES, "benchmarks.md", "changes-from-0.6.md"):
        assert f"]({page})" in index, page
        assert (DOCS / page).exists(), page


def test_the_api_reference_builds_from_the_docstrings(tmp_path):
    pytest.importorskip("pdoc")
    out = tmp_path / "api"
    done = subprocess.run([sys.executable, str(DOCS / "build_api.py"), str(out)],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    for page in ("l0.html", "l0/calibration.html", "l0/calibration/margins.html",
                 "l0/nn/layers.html", "l0/nn/sites.html", "l0/selection.html"):
        assert (out / page).stat().st_size > 1_000, page
    margins = (out / "l0/calibration/margins.html").read_text()
    assert "build_targets" in margins and "unmatched" in margins
