"""Labels win over positions: a labelled DataFrame M aligns every Series argument by label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from l0.calibration import calibrate


def _labelled():
    rng = np.random.default_rng(0)
    dense = sp.random_array((6, 40), density=0.5, rng=rng).toarray() + np.eye(6, 40)
    names = [f"t{i}" for i in range(6)]
    M = pd.DataFrame(dense, index=names, columns=[f"r{j}" for j in range(40)])
    y = pd.Series(dense @ rng.uniform(0.5, 2.0, 40), index=names)
    return M, y


def test_y_in_another_order_is_paired_with_its_row_by_label():
    M, y = _labelled()
    by_position = calibrate(M.to_numpy(), y.to_numpy(), method="linear")
    shuffled = y.iloc[[3, 0, 5, 1, 4, 2]]
    by_label = calibrate(M, shuffled, method="linear")
    np.testing.assert_array_equal(by_label.weights, by_position.weights)
    assert by_label.max_error < 1e-9
    assert by_label.per_target().index.tolist() == list(M.index)  # names from the labels


def test_tolerance_and_design_weights_by_label():
    M, y = _labelled()
    d = pd.Series(np.linspace(1.0, 2.0, 40), index=M.columns)
    tol = pd.Series([0.0, 0.0, 0.05, 0.0, 0.0, 0.0], index=M.index)
    plain = calibrate(M.to_numpy(), y.to_numpy(), init_weights=d.to_numpy(),
                      tolerance=tol.to_numpy(), max_records=20, progress=False)
    labelled = calibrate(M, y.iloc[::-1], init_weights=d.iloc[::-1], tolerance=tol.iloc[::-1],
                         max_records=20, progress=False)
    np.testing.assert_array_equal(labelled.weights, plain.weights)


@pytest.mark.parametrize("name, bad, message", [
    ("y", lambda y: y.rename({"t2": "tX"}),
     r"`y` must be labelled by the row labels of M; got 1 missing \['t2'\] and 1 that are not "
     r"row labels of M \['tX'\]."),
    ("y", lambda y: y.iloc[:5],
     r"`y` must be labelled by the row labels of M; got 1 missing \['t5'\] and 0 that"),
    ("init_weights", lambda M: pd.Series(1.0, index=[f"x{j}" for j in range(40)]),
     r"`init_weights` must be labelled by the column labels of M; got 40 missing"),
])
def test_a_label_mismatch_names_the_labels(name, bad, message):
    M, y = _labelled()
    kwargs = {"y": bad(y)} if name == "y" else {"y": y, name: bad(M)}
    with pytest.raises(ValueError, match=message):
        calibrate(M, kwargs.pop("y"), method="linear", **kwargs)


def test_an_unlabelled_matrix_keeps_positions():
    M, y = _labelled()
    plain = pd.DataFrame(M.to_numpy())  # default 0..n-1 labels: no labels to align by
    result = calibrate(plain, pd.Series(y.to_numpy(), index=list("abcdef")), method="linear")
    assert result.max_error < 1e-9
