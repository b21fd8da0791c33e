"""Bundled real data sets (see ``datasets/README.md`` for sources and attribution)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from .._validation import check_choice

__all__ = ["load_api", "load_api_targets", "load_california_schools", "ATTRIBUTION"]

_API_FILES = {"pop": "apipop.csv.gz", "strat": "apistrat.csv.gz"}

ATTRIBUTION = (
    "California schools, Academic Performance Index 1999-2000: public records of the California "
    "Department of Education, as packaged in the R survey package (apipop, apistrat). Cite: "
    "T. Lumley, Complex Surveys: A Guide to Analysis Using R (Wiley, 2010), and the R survey "
    "package."
)


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


def load_california_schools() -> tuple[Any, Any]:
    """The California schools population and its stratified sample, as two DataFrames.

    Returns
    -------
    population : pandas.DataFrame
        ``apipop``: all 6,194 schools, 37 columns (``stype``, ``cname``, ``enroll``, ``api00``,
        ``api99``, ``meals``, ``ell``, ...).
    sample : pandas.DataFrame
        ``apistrat``: 200 schools sampled by school type, with design weights ``pw``.

    Both carry the source and citation in ``DataFrame.attrs["source"]`` (:data:`ATTRIBUTION`).

    Examples
    --------
    >>> population, sample = load_california_schools()
    >>> len(population), len(sample), round(float(sample["pw"].sum()))
    (6194, 200, 6194)
    >>> "California Department of Education" in population.attrs["source"]
    True
    """
    population, sample = load_api("pop"), load_api("strat")
    for frame in (population, sample):
        frame.attrs["source"] = ATTRIBUTION
    return population, sample


def load_api_targets() -> tuple[Any, Any, list[str]]:
    """A real calibration problem: California schools (records) against population totals.

    Rows (238 targets): the number of schools of each county × school type (E/M/H), the
    enrolment of each county (missing enrolments count 0), and per school type the sums of
    api00, api99, meals and ell. Columns: the 6,194 schools of ``load_api("pop")``. The totals
    are the population's own, so ``w = 1`` fits exactly; a sparse calibration finds far fewer
    schools whose weighted totals match.

    Returns
    -------
    M : scipy.sparse.csr_array, shape (238, 6194)
    y : ndarray, shape (238,)
    names : list of str
        A label per target, e.g. ``"schools Alameda:H"``, ``"enroll Alameda"``, ``"api00 E"``.

    Examples
    --------
    >>> import numpy as np
    >>> M, y, names = load_api_targets()
    >>> M.shape, names[0], bool((M @ np.ones(M.shape[1]) == y).all())
    ((238, 6194), 'schools Alameda:H', True)
    """
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    pop = load_api("pop")
    n = len(pop)
    schools = np.arange(n)
    blocks, names = [], []

    def block(values: Any, keys: Any, label: str) -> None:
        codes, uniques = pd.factorize(keys)
        blocks.append(sp.csr_array((np.asarray(values, float), (codes, schools)),
                                   shape=(len(uniques), n)))
        names.extend(f"{label} {u}" for u in uniques)

    block(np.ones(n), pop.cname + ":" + pop.stype, "schools")
    block(pop.enroll.fillna(0), pop.cname, "enroll")
    for column in ("api00", "api99", "meals", "ell"):
        block(pop[column].fillna(0), pop.stype, column)
    M = sp.csr_array(sp.vstack(blocks, format="csr"))
    return M, M @ np.ones(n), names
