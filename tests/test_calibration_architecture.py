"""Contracts of calibration's internal architecture: the method table, the distances, the problem
spec, the shard layout of every problem and the selection contest."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp

from l0.calibration import METHODS, calibrate
from l0.calibration._solvers.methods import METHOD_TABLE, Method
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


# --------------------------------------------------------------------------- the distances
U = np.linspace(-4.0, 4.0, 801)


def _bound(name, low=-np.inf, high=np.inf):
    from l0.calibration._solvers.distances import DISTANCES

    return DISTANCES[name](np.full_like(U, low), np.full_like(U, high))


def test_the_distance_registry_holds_the_three_distances_once():
    from l0.calibration._solvers.distances import DISTANCES, REFIT_DISTANCES
    from l0.calibration.options import L0Options

    assert tuple(DISTANCES) == ("linear", "raking", "logit") == METHODS[2:]
    assert REFIT_DISTANCES == ("linear", "raking")
    assert L0Options(refit_distance="raking").refit_distance == "raking"
    with pytest.raises(ValueError, match="`refit_distance` must be one of 'linear', 'raking'"):
        L0Options(refit_distance="logit")


def test_linear_is_the_chi_square_distance():
    d = _bound("linear")
    np.testing.assert_array_equal(d.g(U), 1.0 + U)
    np.testing.assert_array_equal(d.slope(U), np.ones_like(U))
    np.testing.assert_allclose(d.phi(U), U + U**2 / 2, rtol=0, atol=1e-15)
    # truncated at [0.5, 2]: g clipped, flat outside, phi continued linearly
    t = _bound("linear", 0.5, 2.0)
    np.testing.assert_array_equal(t.g(U), np.clip(1.0 + U, 0.5, 2.0))
    np.testing.assert_array_equal(t.slope(U), ((U > -0.5) & (U < 1.0)).astype(float))
    expected = np.where(U > 1.0, 1.5 + 2.0 * (U - 1.0),
                        np.where(U < -0.5, -0.375 + 0.5 * (U + 0.5), U + U**2 / 2))
    np.testing.assert_allclose(t.phi(U), expected, atol=1e-14)


def test_raking_is_exp_with_slope_exp():
    d = _bound("raking", 0.0)
    np.testing.assert_allclose(d.g(U), np.exp(U), rtol=1e-15)
    np.testing.assert_allclose(d.slope(U), np.exp(U), rtol=1e-15)
    np.testing.assert_allclose(d.phi(U), np.exp(U) - 1.0, rtol=1e-14, atol=1e-16)


def test_logit_is_the_textbook_logit_distance():
    low, high = 0.4, 2.5
    d = _bound("logit", low, high)
    a = (high - low) / ((1 - low) * (high - 1))
    # Deville & Särndal's logit: g(u) = (L(U-1) + U(1-L) e^{Au}) / ((U-1) + (1-L) e^{Au})
    e = np.exp(a * U)
    g = (low * (high - 1) + high * (1 - low) * e) / ((high - 1) + (1 - low) * e)
    np.testing.assert_allclose(d.g(U), g, rtol=1e-13)
    slope = a * (1 - low) * (high - 1) * (high - low) * e / ((high - 1) + (1 - low) * e) ** 2
    np.testing.assert_allclose(d.slope(U), slope, rtol=1e-12)
    assert d.g(np.zeros(1))[0] == pytest.approx(1.0, abs=1e-15)
    assert d.slope(np.zeros(1))[0] == pytest.approx(1.0, abs=1e-14)
    assert (d.g(U) > low).all() and (d.g(U) < high).all()
    # phi is the integral of g from 0 (Simpson on a fine grid)
    fine = np.linspace(0.0, 3.0, 3001)
    df = _bound("logit", low, high).__class__(np.full_like(fine, low), np.full_like(fine, high))
    values = df.g(fine)
    simpson = (fine[1] - fine[0]) / 3 * (values[0] + values[-1] + 4 * values[1:-1:2].sum()
                                         + 2 * values[2:-1:2].sum())
    assert df.phi(fine)[-1] == pytest.approx(simpson, rel=1e-10)


@pytest.mark.parametrize("name, given, expected", [
    ("linear", False, (-np.inf, np.inf)), ("raking", False, (0.0, np.inf)),
    ("linear", True, (0.5, 3.0)), ("raking", True, (0.5, 3.0)), ("logit", True, (0.5, 3.0))])
def test_each_distance_says_which_bounds_a_calibration_uses(name, given, expected):
    from l0.calibration._solvers.distances import DISTANCES

    assert DISTANCES[name].ratio_bounds((0.5, 3.0), given) == expected


def test_logit_refuses_bounds_that_do_not_enclose_one():
    from l0.calibration._solvers.distances import DISTANCES

    for bounds, given in [((0.0, np.inf), False), ((0.0, np.inf), True), ((1.2, 3.0), True)]:
        with pytest.raises(ValueError, match=r"`bounds` must be \(low, high\) with 0 <= low < 1 "
                                             r"< high < inf for method='logit'"):
            DISTANCES["logit"].ratio_bounds(bounds, given)


# --------------------------------------------------------------------------- the problem spec
def test_the_spec_holds_exactly_the_problem_arguments_of_calibrate_and_build_problem():
    import inspect

    from l0.calibration import build_problem
    from l0.calibration._spec import PROBLEM_ARGUMENTS, ProblemSpec

    keyword = [name for name, p in inspect.signature(calibrate).parameters.items()
               if p.kind is p.KEYWORD_ONLY and name not in ("method", "options")]
    assert sorted(keyword) == sorted(PROBLEM_ARGUMENTS)
    built = set(inspect.signature(build_problem).parameters) - {"M", "y", "shards"}
    assert built == set(PROBLEM_ARGUMENTS) | {"normalize_loss"}
    defaults = {name: inspect.signature(calibrate).parameters[name].default for name in keyword}
    assert ProblemSpec(Y_SMALL).arguments() == defaults


def test_take_removes_the_problem_arguments_and_leaves_the_settings():
    from l0.calibration._spec import ProblemSpec

    kwargs = {"bounds": (0, 3), "max_records": 2, "tolerance": 0.1, "seed": 1}
    spec = ProblemSpec.take(Y_SMALL, kwargs)
    assert kwargs == {"max_records": 2, "seed": 1}
    assert spec.bounds == (0, 3) and spec.tolerance == 0.1 and spec.loss == "relative"


@pytest.mark.parametrize("front", ["calibrate", "frontier", "build_problem", "targets"])
def test_target_warnings_point_at_the_callers_line(front):
    from l0.calibration import Targets, build_problem, frontier

    M = sp.csr_array(np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    y = [2.0, 3.0, -1.0]  # two identical rows with different totals; a negative total
    run = {"calibrate": lambda: calibrate(M, y, method="exact"),
           "frontier": lambda: frontier(M, y, budgets=[2], progress=False),
           "build_problem": lambda: build_problem(M, y),
           "targets": lambda: Targets(M, np.array(y), ["a", "b", "c"], np.array(["g"] * 3),
                                      None, None).calibrate(method="exact")}[front]
    with pytest.warns(UserWarning) as record:
        run()
    messages = [str(w.message) for w in record]
    assert any("cannot be reached" in m for m in messages)
    assert any("conflict" in m for m in messages)
    assert {w.filename for w in record} == {__file__}


# --------------------------------------------------------------------------- the shard layout
def test_a_whole_matrix_is_a_world_of_one_whose_sums_return_their_input():
    import torch

    from l0.calibration import ColumnShards, build_problem
    from l0.calibration._comm import ShardLayout

    problem = build_problem(M_SMALL, Y_SMALL)
    layout = problem.shards
    assert isinstance(layout, ShardLayout) and not layout.sharded
    assert (layout.comm.rank, layout.comm.world, layout.offset, layout.n_local,
            layout.n_total) == (0, 1, 0, 4, 4)
    assert problem.n_total == problem.n_records == 4
    values = np.array([1.5, -2.0, 3.25])
    np.testing.assert_array_equal(problem.total(values), values)
    tensor = torch.arange(3.0)
    assert layout.comm.sum_tensor(tensor, 2, 3.5) == (tensor, [2, 3.5])  # the same tensor
    assert layout.comm.total(7, 2.5) == [7.0, 2.5]
    np.testing.assert_array_equal(layout.smallest(np.array([0, 2, 3]), np.array([3.0, 1.0, 1.0]),
                                                  2), [2, 3])  # ties: the lower index
    assert layout.comm.calls == 0 and layout.comm.floats == 0
    # records given as shards stay "sharded" in a world of one: the rank-invariant algorithm
    block, shards = ColumnShards.from_matrix(M_SMALL).load()
    assert shards.sharded and shards.comm.world == 1 and block.shape == (2, 4)
    assert build_problem(block, Y_SMALL, shards=shards).shards is shards


def test_a_hand_made_problem_gets_the_whole_layout_too():
    from dataclasses import replace

    from l0.calibration import build_problem

    problem = build_problem(M_SMALL, Y_SMALL)
    assert replace(problem, shards=None).shards.n_total == 4
    assert replace(problem, loss="absolute").shards is problem.shards


def test_one_process_keeps_the_plain_checkpoint_path_and_shards_name_theirs(tmp_path):
    from l0.calibration import ColumnShards

    rng = np.random.default_rng(0)
    M = sp.random_array((5, 60), density=0.5, rng=rng, format="csr")
    y = M @ rng.uniform(0.5, 2, 60)
    settings = {"max_records": 20, "selection": "gates", "max_epochs": 20, "progress": False}
    calibrate(M, y, checkpoint=str(tmp_path / "plain.pt"), **settings)
    calibrate(ColumnShards.from_matrix(M), y, checkpoint=str(tmp_path / "sharded.pt"),
              **settings)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.pt", "sharded.pt.rank0-of-1"]


# --------------------------------------------------------------------------- the contest
def _candidate(selection, ratios=(1.0,), *, trained=False, decisive=False):
    from l0.calibration._solvers.candidates import Candidate

    marker = object() if trained else None
    return Candidate(np.array(ratios), {"selection": selection}, f"from {selection}",
                     engine=marker, loop=marker, decisive=decisive)


def test_choose_a_decisive_candidate_wins_outright():
    from l0.calibration._solvers.candidates import choose

    gates = _candidate("gates", trained=True)
    vertex = _candidate("capped vertex", decisive=True)
    fallback = _candidate("capped vertex", decisive=True)

    def never(candidate):
        raise AssertionError("no score is needed")

    assert choose([vertex], never) is vertex
    assert choose([gates, fallback], never) is fallback


def test_choose_the_gates_unless_a_rival_is_strictly_better():
    from l0.calibration._solvers.candidates import choose

    gates = _candidate("gates", (2.0,), trained=True)
    pruned = _candidate("pruned vertex", (1.0,))
    by_ratio = lambda c: (float(c.ratios[0]), 0.0)  # noqa: E731
    assert choose([gates], by_ratio) is gates  # alone: no score, no losses
    won = choose([pruned, gates], by_ratio)
    assert won.info == {"selection": "pruned vertex", "losses": {"gates": 2.0,
                                                                "pruned vertex": 1.0}}
    assert won.engine is gates.engine and won.loop is gates.loop  # the training that ran
    assert won.message == "support from the pruned vertex (loss 1; the gates' support: 2)"
    tie = choose([_candidate("pruned vertex", (2.0,)), gates], by_ratio)
    assert tie.info["selection"] == "gates" and tie.message == "from gates"
    assert list(tie.info["losses"]) == ["gates", "pruned vertex"]
    # the "max" loss: ties of the largest error go to the smaller relative loss
    second = lambda c: (1.0, float(c.ratios[0]))  # noqa: E731
    assert choose([pruned, gates], second).info["selection"] == "pruned vertex"


def test_the_strategies_tried_follow_the_selection_setting():
    from l0.calibration._solvers import candidates as c
    from l0.calibration.options import L0Options

    assert c.strategies(L0Options(), use_vertex=False) == [c.gates]
    assert c.strategies(L0Options(), use_vertex=True) == [c.vertex, c.pruned_vertex, c.gates]
    assert c.strategies(L0Options(selection="gates"), use_vertex=True) == [
        c.gates, c.gates_then_vertex]


def _planted(q=12, n=150, seed=0, density=0.4):
    rng = np.random.default_rng(seed)
    M = sp.random_array((q, n), density=density, rng=rng, format="csr")
    M.data = rng.uniform(1, 20, M.nnz)
    d = rng.uniform(1, 3, n)
    return M, M @ (d * rng.uniform(0.5, 2.0, n)), d


# what the hand-coded contest before the candidate strategies published on these problems
CONTEST = [
    ({"seed": 0}, {"max_records": 40}, "capped vertex", "support from the capped vertex",
     ["selection", "lp_solves", "lp_seconds", "support_before_refit", "refit", "vertex_cap"]),
    ({"seed": 0}, {"max_records": 6, "max_epochs": 200}, "pruned vertex",
     "support from the pruned vertex (loss 0.00874; the gates' support: 0.0365)",
     ["selection", "vertex_records", "prune_step", "refit", "refit_report", "repair_rounds",
      "losses"]),
    ({"seed": 2}, {"max_records": 10, "max_epochs": 300}, "gates", "max_epochs reached",
     ["selection", "support_before_refit", "training", "refit", "refit_report",
      "repair_rounds", "losses"]),
    ({"seed": 1}, {"max_records": 40, "selection": "gates", "refit": False, "max_epochs": 30},
     "capped vertex", "support from the capped vertex (the gates' support missed 12 targets)",
     ["selection", "lp_solves", "lp_seconds", "support_before_refit", "refit", "vertex_cap",
      "gates_missed"]),
    ({"q": 30, "n": 400, "seed": 2}, {"target_error": 0.05}, "band vertex",
     "support from the band vertex", ["selection", "lp_seconds", "support_before_refit",
                                      "refit"]),
    ({"seed": 3}, {"lambda_l0": 0.05, "max_epochs": 200}, "gates", "max_epochs reached",
     ["selection", "support_before_refit", "training", "refit"]),
]


@pytest.mark.parametrize("problem, settings, selection, message, keys", CONTEST)
def test_the_contest_publishes_what_the_hand_coded_one_did(problem, settings, selection,
                                                           message, keys):
    M, y, d = _planted(**problem)
    result = calibrate(M, y, init_weights=d, progress=False, **settings)
    assert result.info["selection"] == selection
    assert result.message == message
    assert list(result.info) == keys


def test_calibration_modules_import_no_circle():
    """No module of l0.calibration imports, directly or through others, one that imports it
    back (TYPE_CHECKING imports included)."""
    import ast
    from pathlib import Path

    import l0.calibration

    root = Path(l0.calibration.__file__).parent
    modules = {".".join(p.relative_to(root).with_suffix("").parts): p for p in root.rglob("*.py")}
    modules = {name.removesuffix(".__init__").removesuffix("__init__"): p
               for name, p in modules.items()}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                parts = package.split(".") if package else []
                if node.level - 1 > len(parts):
                    continue  # above l0.calibration
                base = parts[: len(parts) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
                for alias in node.names:
                    full = f"{target}.{alias.name}".strip(".")
                    deps.add(full if full in modules else target)
        graph[name] = {d for d in deps if d in modules and d != name}

    def reaches(start, goal, seen):
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and not seen.add(nxt) and reaches(nxt, goal, seen)):
                return True
        return False

    circles = sorted(name for name in graph if name and reaches(name, name, set()))
    assert circles == []
    assert "_problem" not in graph["_target_checks"] and "_target_checks" in graph["_spec"]
