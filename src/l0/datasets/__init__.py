"""Bundled real data sets (see ``datasets/README.md`` for sources and attribution)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from .._validation import check_choice

__all__ = ["load_api"]

_API_FILES = {"pop": "apipop.csv.gz", "strat": "apistrat.csv.gz"}


def load_api(which: str = "pop") -> Any:
    """California schools API 1999–2000 data as a pandas DataFrame.

    Parameters
    ----------
    which : {"pop", "strat"}, default "pop"
        ``"pop"``: the population of 6,194 schools; ``"strat"``: the stratified sample of 200
        schools with design weights ``pw``.

    Examples
    --------
    >>> load_api("pop").shape, load_api("strat")["pw"].sum().round()
    ((6194, 37), np.float64(6194.0))
    """
    import pandas as pd

    check_choice("which", which, tuple(_API_FILES))
    with resources.files(__name__).joinpath(_API_FILES[which]).open("rb") as handle:
        return pd.read_csv(handle, compression="gzip")
