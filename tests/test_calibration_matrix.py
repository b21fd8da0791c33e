"""Input conversion: every matrix and vector type, and the exact error for each bad input."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from l0.calibration import build_problem
from l0.calibration._matrix import as_csr, as_vector

DENSE = np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]])


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a,
        lambda a: a.astype(np.float32),
        lambda a: a.astype(np.int64),
        pd.DataFrame,
        torch.tensor,
        lambda a: torch.tensor(a).to_sparse(),
        lambda a: torch.tensor(a).to_sparse_csr(),
        sp.csr_matrix,
        sp.csc_array,
        sp.coo_array,
        sp.lil_matrix,
        sp.dok_array,
    ],
)
@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_every_matrix_type_becomes_the_same_canonical_csr(make):
    csr = as_csr(make(DENSE))
    assert isinstance(csr, sp.csr_array) and csr.dtype == np.float64
    assert csr.has_canonical_format
    np.testing.assert_array_equal(csr.toarray(), DENSE)


def test_a_float64_csr_array_is_used_without_a_copy():
    M = sp.csr_array(DENSE)
    assert as_csr(M) is M


def test_boolean_indicator_matrices_are_accepted():
    np.testing.assert_array_equal(as_csr(DENSE > 0).toarray(), (DENSE > 0).astype(float))
    np.testing.assert_array_equal(as_csr(sp.csr_array(DENSE > 0)).toarray(), (DENSE > 0) * 1.0)


def test_duplicate_coo_entries_are_summed():
    M = sp.coo_array((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([1, 1]))), shape=(1, 2))
    np.testing.assert_array_equal(as_csr(M).toarray(), [[0.0, 3.0]])


def test_a_nested_list_reads_like_the_array():
    np.testing.assert_array_equal(as_csr([[1, 0], [0, 2.5]]).toarray(), [[1.0, 0.0], [0.0, 2.5]])


@pytest.mark.parametrize(
    "value, error, message",
    [
        ("M", TypeError, "`M` must be a 2-D scipy sparse matrix"),
        ([[1.0, 2.0], [1.0]], TypeError, "`M` must be a rectangular nested list of numbers"),
        (np.array([["a", "b"]]), TypeError, "`M` must be a real numeric matrix; got 'dtype <U1'"),
        (np.array([[1 + 2j]]), TypeError, "`M` must be a real numeric matrix"),
        (sp.csr_array(np.array([[1 + 2j]])), TypeError, "`M` must be a real numeric matrix"),
        (np.ones((2, 2, 2)), ValueError, "got 'an array with shape \\(2, 2, 2\\)'"),
        (np.ones((0, 3)), ValueError, "`M` must be a matrix with at least one row and one column"),
        (sp.csr_array(np.array([[1.0, np.nan], [np.inf, 0.0]])), ValueError,
         "2 non-finite entries, the first nan at row 0, column 1"),
    ],
)
def test_bad_matrices(value, error, message):
    with pytest.raises(error, match=message):
        as_csr(value)


def test_vectors():
    np.testing.assert_array_equal(as_vector([1, 2], "y"), [1.0, 2.0])
    np.testing.assert_array_equal(as_vector(np.array([[1.0], [2.0]]), "y"), [1.0, 2.0])
    np.testing.assert_array_equal(as_vector(torch.tensor([1.0, 2.0]), "y"), [1.0, 2.0])
    np.testing.assert_array_equal(as_vector(pd.Series([1.0, 2.0]), "y"), [1.0, 2.0])


@pytest.mark.parametrize(
    "value, error, message",
    [
        (None, TypeError, "`y` must be a 1-D array of numbers; got None"),
        ("12", TypeError, "`y` must be a 1-D array of numbers"),
        ([[1, 2], [3]], TypeError, "`y` must be a 1-D array of numbers"),
        ([1 + 1j], TypeError, "`y` must be a 1-D array of real numbers"),
        (np.ones((2, 2)), ValueError, "`y` must be a 1-D array; got 'shape \\(2, 2\\)'"),
        ([1.0, np.inf, np.nan], ValueError, "2 non-finite values, the first at 1"),
    ],
)
def test_bad_vectors(value, error, message):
    with pytest.raises(error, match=message):
        as_vector(value, "y")


M0 = sp.csr_array(np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]]))


def test_integral_float_group_ids_and_torch_groups_are_accepted():
    a = build_problem(M0, [3.0, 2.0], target_groups=np.array([0.0, 1.0]))
    b = build_problem(M0, [3.0, 2.0], target_groups=torch.tensor([0, 1]))
    np.testing.assert_array_equal(a.coef, b.coef)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"target_groups": "ab"}, TypeError, "`target_groups` must be a 1-D array of group ids"),
        ({"target_groups": [0.5, 1.0]}, TypeError, "`target_groups` must be integer group ids or string labels"),
        ({"target_groups": [True, False]}, TypeError, "`target_groups` must be integer group ids or string labels"),
        ({"target_groups": [0, 1], "group_multipliers": [2.0]}, TypeError,
         "`group_multipliers` must be a dict"),
        ({"target_groups": [0, 1], "group_multipliers": {0: -1.0}}, ValueError,
         "`group_multipliers\\[0\\]` must be a float >= 0.0"),
        ({"target_weights": [0.0, 0.0]}, ValueError, "`target_weights` must be not all zero"),
        ({"bounds": (None, None)}, None, None),
        ({"bounds": (0.5, None)}, None, None),
        ({"bounds": (0.0, 0.0)}, ValueError, "`bounds\\[1\\]` must be a float > 0.0"),
        ({"bounds": (-1.0, 2.0)}, ValueError, "`bounds\\[0\\]` must be a float >= 0.0"),
        ({"init_weights": 0.0}, ValueError, "`init_weights` must be a float > 0.0"),
        ({"init_weights": "1"}, TypeError, "`init_weights` must be a 1-D array of numbers"),
        ({"tolerance": [0.1, -0.1]}, ValueError, "`tolerance` must be non-negative"),
        ({"cap": 0.0}, ValueError, "`cap` must be a float > 0.0"),
        ({"relative_floor": 0.0}, ValueError, "`relative_floor` must be a float > 0.0"),
    ],
)
def test_problem_arguments(kwargs, error, message):
    if error is None:
        problem = build_problem(M0, [3.0, 2.0], **kwargs)
        assert problem.bounds[1] == np.inf
        return
    with pytest.raises(error, match=message):
        build_problem(M0, [3.0, 2.0], **kwargs)


def test_problem_arrays_are_read_only_copies():
    y = np.array([3.0, 2.0])
    d = np.array([1.0, 2.0, 3.0])
    problem = build_problem(M0, y, init_weights=d)
    assert y.flags.writeable and d.flags.writeable  # the caller's arrays are untouched
    with pytest.raises(ValueError):
        problem.y[0] = 1.0
