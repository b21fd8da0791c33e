"""The table :func:`~l0.calibration.frontier` returns: a pandas DataFrame that plots itself.

Kept apart from ``frontier.py`` so that pandas is imported only when a frontier is computed.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["FrontierTable"]


class FrontierTable(pd.DataFrame):
    """One row per budget (see :func:`~l0.calibration.frontier`); ``plot()`` draws the frontier.

    Any selection or computation on it returns a plain DataFrame; pandas' own plotting stays
    available as ``pandas.DataFrame(table).plot``.
    """

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    def plot(self, *, title: str | None = None) -> Any:  # type: ignore[override]
        """Records kept against max relative error and ESS (matplotlib); the Figure."""
        from .plots import plot_frontier

        return plot_frontier(self, title=title)
