"""``SparseCalibrator``: calibration as a scikit-learn estimator (a sparse non-negative regression).

Calibration *is* a regression of the totals on the records: the rows of ``X`` (targets) are the
samples, its columns (records) the features, and the weights are the coefficients, non-negative
and mostly zero. :meth:`SparseCalibrator.fit` wraps :func:`~l0.calibration.calibrate` (no second
engine) and follows scikit-learn's estimator rules: ``__init__`` only stores its arguments,
``fit`` validates and returns ``self``, fitted state ends in ``_``, ``random_state`` seeds a local
generator.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - the dev extra installs it
    raise ImportError("SparseCalibrator needs scikit-learn: pip install scikit-learn") from exc

from ._calibrate import calibrate
from ._solvers.methods import METHOD_TABLE

__all__ = ["SparseCalibrator"]


class SparseCalibrator(RegressorMixin, BaseEstimator):
    """Non-negative, sparse weights ``coef_`` with ``X @ coef_ ≈ y`` (``X``: targets × records).

    Parameters
    ----------
    method : {"l0", "exact", "linear", "raking", "logit"}, default "l0"
        The :func:`~l0.calibration.calibrate` method.
    max_records : int, optional
        Record budget (``method="l0"``).
    bounds : (float, float), optional
        Bounds on ``coef_ / design_weights``.
    design_weights : array-like of shape (n_features,), optional
        Design weights ``d`` (default 1).
    loss : {"relative", "absolute", "capped", "max"}, default "relative"
    random_state : int, optional
        Seed of the gate noise (``method="l0"``); default 0.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        The weights, exactly 0 off the support.
    result_ : CalibrationResult
        The full result (status, per-target table, diagnostics).
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    >>> model = SparseCalibrator(method="exact").fit(X, [4.0, 10.0])
    >>> model.predict(X).round(9).tolist(), int(np.count_nonzero(model.coef_))
    ([4.0, 10.0], 2)
    """

    def __init__(self, method: str = "l0", max_records: int | None = None,
                 bounds: tuple[float, float] | None = None, design_weights: Any = None,
                 loss: str = "relative", random_state: int | None = None) -> None:
        self.method = method
        self.max_records = max_records
        self.bounds = bounds
        self.design_weights = design_weights
        self.loss = loss
        self.random_state = random_state

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SparseCalibrator:
        """Calibrate: ``sample_weight`` are the targets' weights in the loss."""
        X, y = validate_data(self, X, y, accept_sparse=("csr", "csc", "coo"), dtype=np.float64,
                             y_numeric=True)
        if self.method not in METHOD_TABLE:
            raise ValueError(f"`method` must be one of {', '.join(map(repr, METHOD_TABLE))}; got "
                             f"{self.method!r}.")
        has = {f.name for f in dataclasses.fields(METHOD_TABLE[self.method].options_type)}
        settings: dict[str, Any] = {}
        if "seed" in has:  # the method draws noise: random_state seeds it
            seed = 0 if self.random_state is None else self.random_state
            if not isinstance(seed, numbers.Integral):
                raise ValueError(f"`random_state` must be an int or None; got {seed!r}.")
            settings.update(seed=int(seed), progress=False)
        if "max_records" in has:
            settings["max_records"] = self.max_records
        elif self.max_records is not None:
            raise ValueError(f"`max_records` applies to method='l0' only; got method="
                             f"{self.method!r}.")
        kwargs: dict[str, Any] = {"init_weights": self.design_weights, "bounds": self.bounds,
                                  "loss": self.loss}
        if sample_weight is not None:
            kwargs["target_weights"] = np.asarray(sample_weight, dtype=np.float64)
        self.result_ = calibrate(X, y, method=self.method, **kwargs, **settings)
        self.coef_ = self.result_.weights
        return self

    def predict(self, X: Any) -> np.ndarray:
        """``X @ coef_``: the estimated totals."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=("csr", "csc", "coo"), dtype=np.float64,
                          reset=False)
        return np.asarray(X @ self.coef_, dtype=np.float64).reshape(-1)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.regressor_tags.poor_score = True  # a record budget trades fit for sparsity
        return tags
