"""A self-contained HTML report of a calibration: summary, pictures, the targets that matter.

One file (the figure embedded as a PNG data URI, no external assets) that a person can open in
any browser and a pipeline can archive next to the weights.
"""

from __future__ import annotations

import base64
import html
import io
import os
from typing import Any

from .plots import plot_result

__all__ = ["write_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: 0.8em; } img { max-width: 100%; }
"""


def _figure_uri(result: Any, title: str) -> str:
    figure = plot_result(result, title=title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def write_report(result: Any, path: str | os.PathLike, *, title: str = "l0 calibration",
                 worst: int = 15) -> str:
    """Write the HTML report of ``result`` to ``path``; returns the absolute path.

    Sections: the summary, the diagnostics, the figure (:func:`~l0.calibration.plots.
    plot_result`), and the ``worst`` targets by absolute relative error.
    """
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise ValueError(f"`path` must be in an existing folder; got {str(path)!r}.")
    table = result.per_target()
    order = table["relative_error"].abs().sort_values(ascending=False).index[:worst]
    worst_table = table.loc[order, ["target", "estimate", "relative_error", "within_tolerance"]]
    diagnostics = {k: v for k, v in result.diagnostics().items() if k != "ratio_histogram"}
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{_fmt(v)}</td></tr>"
                   for k, v in diagnostics.items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<h2 id="summary">Summary</h2>
<pre>{html.escape(result.summary())}</pre>
<h2 id="diagnostics">Diagnostics</h2>
<table>{rows}</table>
<h2 id="pictures">Pictures</h2>
<img alt="errors, weights and history" src="{_figure_uri(result, title)}">
<h2 id="targets">The {len(worst_table)} targets with the largest errors</h2>
{worst_table.to_html(float_format=lambda x: f"{x:.6g}", border=0)}
</body></html>
"""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
    return os.path.abspath(os.fspath(path))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return html.escape(str(value))
