"""Pictures of a calibration (matplotlib, the ``plot`` extra): what survey people look at.

:func:`plot_result` draws three panels — the relative error of every target, the distribution of
the kept records' ratios ``w/d``, and the gate training's history (loss, max error, open
records) — and :func:`plot_frontier` the records-against-quality curve of :func:`frontier`.
Both return the matplotlib ``Figure`` (nothing is shown or saved unless the caller asks).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_result", "plot_frontier"]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt  # headless machines fall back to the Agg backend
    except ImportError as exc:  # pragma: no cover - the README commands install it
        raise ImportError("plotting needs matplotlib: pip install 'l0-python[plot]'") from exc
    return plt


def plot_result(result: Any, *, title: str | None = None) -> Any:
    """Three panels of one :class:`~l0.calibration.CalibrationResult`; returns the Figure."""
    plt = _pyplot()
    fig, (errors, ratios, history) = plt.subplots(1, 3, figsize=(15, 4.2))
    _errors_panel(errors, result)
    _ratios_panel(ratios, result)
    _history_panel(history, result)
    fig.suptitle(title or f"{result.method} calibration ({result.status}): max error "
                 f"{result.max_error:.2e}")
    fig.tight_layout()
    return fig


def _errors_panel(errors: Any, result: Any) -> None:
    rel = np.asarray(result.relative_errors)
    met = np.asarray(result.within_tolerance if result.within_tolerance is not None
                     else np.abs(rel) <= 1e-8)
    index = np.arange(len(rel))
    floor = 1e-16
    errors.scatter(index[met], np.maximum(np.abs(rel[met]), floor), s=8, color="tab:blue",
                   label=f"met ({int(met.sum())})")
    if (~met).any():
        errors.scatter(index[~met], np.maximum(np.abs(rel[~met]), floor), s=12, color="tab:red",
                       label=f"missed ({int((~met).sum())})")
    errors.set_yscale("log")
    errors.set_xlabel("target")
    errors.set_ylabel("|relative error|")
    errors.set_title("error of every target")
    errors.legend(loc="upper right", fontsize=8)


def _ratios_panel(ratios: Any, result: Any) -> None:
    g = result.g_weights[result.support]
    if len(g):
        positive = g[g > 0]
        bins = np.geomspace(positive.min(), positive.max(), 40) if positive.min() < positive.max() \
            else 10
        ratios.hist(positive, bins=bins, color="tab:green")
        ratios.set_xscale("log")
        ratios.axvline(1.0, color="black", lw=0.8, ls="--", label="w = d")
        ratios.legend(loc="upper right", fontsize=8)
    ratios.set_xlabel("w / d of the kept records")
    ratios.set_ylabel("records")
    ratios.set_title(f"{result.n_active} of {len(result.weights)} records kept, "
                     f"ESS {result.ess:.0f}")


def _history_panel(history: Any, result: Any) -> None:
    frame = result.history
    if frame is not None and len(frame):
        history.plot(frame["epoch"], frame["max_error"], label="max error", color="tab:red")
        history.plot(frame["epoch"], frame["objective"], label="training loss", color="tab:blue")
        history.set_yscale("log")
        history.set_xlabel("epoch")
        open_axis = history.twinx()
        open_axis.plot(frame["epoch"], frame["n_open"], color="tab:gray", ls="--",
                       label="records open")
        open_axis.set_ylabel("records open")
        history.legend(loc="upper right", fontsize=8)
        history.set_title("gate training")
    else:
        history.text(0.5, 0.5, f"no gate training\n(support from the "
                     f"{result.info.get('selection', result.method)})", ha="center",
                     va="center", transform=history.transAxes)
        history.set_axis_off()


def plot_frontier(table: Any, *, title: str | None = None) -> Any:
    """Records kept against max relative error and ESS, one point per budget; the Figure."""
    plt = _pyplot()
    fig, (error, ess) = plt.subplots(1, 2, figsize=(11, 4))
    order = np.argsort(table["records"].to_numpy())
    records = table["records"].to_numpy()[order]
    error.plot(records, np.maximum(table["max_error"].to_numpy()[order], 1e-16), "o-")
    error.set_yscale("log")
    error.set_xlabel("records kept")
    error.set_ylabel("max relative error")
    ess.plot(records, table["ess"].to_numpy()[order], "o-", color="tab:green")
    ess.plot(records, records, ls=":", color="gray", label="ESS = records")
    ess.set_xlabel("records kept")
    ess.set_ylabel("effective sample size")
    ess.legend(fontsize=8)
    fig.suptitle(title or "calibration frontier")
    fig.tight_layout()
    return fig
