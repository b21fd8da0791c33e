"""Contracts of calibration's internal architecture: the method table, the distances, the problem
spec, the shard layout of every problem and the selection contest."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp

from l0.calibration import METHODS, calibrate
from l0.calibration._solvers import METHOD_TABLE, Method
from l0.calibration.options import options_for
from l0.calibration.result import CalibrationResult

M_SMALL = sp.csr_array(np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]]))
Y_SMALL = np.array([4.0, 10.0])


# --------------------------------------------------------------------------- the method table
@dataclass(frozen=True)
class ToyOptions:
    factor: float = 1.0


def _toy_solve(problem, options):
    weights = options.factor * problem.design
    return CalibrationResult.build(problem, weights, method="toy", converged=True,
                                   message="toy", info={"factor": options.factor})


@pytest.fixture
def toy_method(monkeypatch):
    """A method registered in the table only: every consumer must see it from there."""
    monkeypatch.setitem(METHOD_TABLE, "toy", Method("toy", ToyOptions, _toy_solve))


def test_the_public_method_names_are_the_table_in_order():
    assert METHODS == ("l0", "exact", "linear", "raking", "logit") == tuple(METHOD_TABLE)
    assert all(entry.name == name for name, entry in METHOD_TABLE.items())


def test_a_method_in_the_table_reaches_calibrate_options_and_the_cli(toy_method):
    from l0.cli import _parser

    result = calibrate(M_SMALL, Y_SMALL, method="toy", factor=2.0)
    assert result.method == "toy" and result.info == {"factor": 2.0}
    np.testing.assert_array_equal(result.weights, np.full(4, 2.0))
    with pytest.raises(ValueError, match=r"`lr` is not a setting of method='toy'; its settings "
                                         r"are factor\."):
        options_for(METHOD_TABLE["toy"], None, {"lr": 0.1})
    action = next(a for a in _parser()._subparsers._group_actions[0].choices["calibrate"]._actions
                  if a.dest == "method")
    assert tuple(action.choices) == (*METHODS, "toy")


def test_the_estimator_reads_the_table(toy_method):
    pytest.importorskip("sklearn")
    from l0.calibration.estimator import SparseCalibrator

    model = SparseCalibrator(method="toy").fit(M_SMALL.toarray(), Y_SMALL)
    assert model.result_.method == "toy"
    with pytest.raises(ValueError, match="`max_records` applies to method='l0' only"):
        SparseCalibrator(method="toy", max_records=2).fit(M_SMALL.toarray(), Y_SMALL)
    with pytest.raises(ValueError, match="`method` must be one of 'l0', 'exact', 'linear', "
                                         "'raking', 'logit', 'toy'; got 'nope'"):
        SparseCalibrator(method="nope").fit(M_SMALL.toarray(), Y_SMALL)


@pytest.mark.parametrize("name", ["linear", "raking", "logit"])
@pytest.mark.parametrize("argument, value", [("tolerance", 0.1), ("loss", "absolute"),
                                             ("target_weights", [1.0, 2.0]),
                                             ("group_multipliers", {0: 2.0})])
def test_classical_checks_refuse_what_does_not_apply(name, argument, value):
    entry = METHOD_TABLE[name]
    with pytest.raises(ValueError, match=f"`{argument}` does not apply to method={name!r}"):
        entry.check({argument: value}, sharded=False)
    with pytest.raises(ValueError, match=f"`{argument}` does not apply to method={name!r}"):
        calibrate(M_SMALL, Y_SMALL, method=name, **{argument: value}, **(
            {"target_groups": [0, 1]} if argument == "group_multipliers" else {}))


@pytest.mark.parametrize("name", ["exact", "linear", "raking", "logit"])
def test_every_method_but_l0_refuses_column_shards(name):
    with pytest.raises(ValueError, match=f"`method` must be 'l0' for a matrix in ColumnShards; "
                                         f"got {name!r}"):
        METHOD_TABLE[name].check({}, sharded=True)
    METHOD_TABLE[name].check({}, sharded=False)
    METHOD_TABLE["l0"].check({"tolerance": 0.1, "loss": "max"}, sharded=True)


def test_the_option_types_come_from_the_table():
    kinds = {name: entry.options_type.__name__ for name, entry in METHOD_TABLE.items()}
    assert kinds == {"l0": "L0Options", "exact": "ExactOptions", "linear": "ClassicalOptions",
                     "raking": "ClassicalOptions", "logit": "ClassicalOptions"}
    for entry in METHOD_TABLE.values():
        assert isinstance(options_for(entry, None, {}), entry.options_type)
        assert dataclasses.is_dataclass(entry.options_type)
