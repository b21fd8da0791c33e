"""The calibration engine: objective gradients, analytic engine gradients, back-ends, refit."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from l0 import functional as F
from l0.calibration import build_problem
from l0.calibration._backends import ScipyBackend, TorchBackend, make_backend
from l0.calibration._objective import Objective
from l0.calibration._solvers._engine import EngineSettings, GradientEngine
from l0.calibration._solvers.refit import polish


def random_problem(q=12, n=40, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    M = sp.random_array((q, n), density=0.4, rng=rng, format="csr") * 10
    w_true = rng.uniform(0.5, 2.0, n)
    y = M @ w_true
    y[0] = 0.0  # a zero target exercises the floor
    return build_problem(M, y, **kwargs), w_true


def finite_difference(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = h
        grad[i] = (f(x + e) - f(x - e)) / (2 * h)
    return grad


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"loss": "absolute"},
        {"loss": "capped", "cap": 0.05},
        {"tolerance": 0.02},
        {"target_groups": np.repeat([0, 1, 2], 4), "group_multipliers": {1: 3.0}},
        {"target_weights": np.linspace(0.5, 2.0, 12), "normalize_groups": False},
    ],
)
def test_objective_gradient_matches_finite_differences(kwargs):
    problem, w_true = random_problem(**kwargs)
    objective = Objective(problem)
    rng = np.random.default_rng(1)
    estimates = problem.y + rng.normal(0, 0.1, problem.n_targets) * np.maximum(np.abs(problem.y), 1)
    _, grad = objective(torch.from_numpy(estimates))
    fd = finite_difference(lambda e: objective.loss(torch.from_numpy(e)), estimates,
                           h=1e-6 * np.abs(estimates).max())
    np.testing.assert_allclose(grad.numpy(), fd, rtol=1e-5, atol=1e-9 * np.abs(fd).max())


def test_relative_loss_has_no_plus_one_bias_and_uses_abs_for_negative_targets():
    M = sp.csr_array(np.diag([1.0, -1.0, 1.0]))
    problem = build_problem(M, [2.0, -4.0, 0.0], relative_floor=0.5)
    np.testing.assert_allclose(problem.scale, [2.0, 4.0, 0.5])
    objective = Objective(problem)
    # estimates 10 % off the two non-zero targets, 0.05 off the zero target
    value = objective.loss(torch.tensor([2.2, -4.4, 0.05], dtype=torch.float64))
    assert value == pytest.approx((0.01 + 0.01 + 0.01) / 3)


def test_tolerance_band_costs_nothing_inside():
    problem = build_problem(sp.csr_array(np.eye(2)), [10.0, 10.0], tolerance=0.05)
    objective = Objective(problem)
    assert objective.loss(torch.tensor([10.4, 9.6], dtype=torch.float64)) == 0.0
    # outside the band only the excess counts: 0.1 - 0.05
    assert objective.loss(torch.tensor([11.0, 10.0], dtype=torch.float64)) == pytest.approx(
        0.05**2 / 2
    )


def test_capped_loss_is_huber():
    problem = build_problem(sp.csr_array(np.eye(1)), [1.0], loss="capped", cap=0.5)
    objective = Objective(problem)
    assert objective.loss(torch.tensor([1.4], dtype=torch.float64)) == pytest.approx(0.16)
    assert objective.loss(torch.tensor([4.0], dtype=torch.float64)) == pytest.approx(0.5 * (6 - 0.5))
    _, grad = objective(torch.tensor([4.0], dtype=torch.float64))
    assert grad.item() == pytest.approx(1.0)  # 2 * cap: bounded pull


def make_engine(problem, seed=0, settings=EngineSettings(l0_weight=0.3, l2_weight=0.01, closeness=0.2),
                backend="scipy"):
    n = problem.n_records
    theta = torch.linspace(-0.3, 0.3, n, dtype=torch.float64).requires_grad_()
    log_alpha = torch.linspace(-1.0, 2.0, n, dtype=torch.float64).requires_grad_()
    gen = torch.Generator().manual_seed(seed)
    return GradientEngine(problem, make_backend(problem.M, "cpu", backend), theta, log_alpha, gen,
                          settings)


def autograd_loss(problem, theta, log_alpha, noise, s: EngineSettings):
    d = torch.tensor(problem.design)
    # the sampler written out in plain torch ops: autograd is an independent oracle
    logistic = torch.logit(noise, eps=torch.finfo(noise.dtype).eps)  # float32, as the engine
    gate = torch.sigmoid((logistic + log_alpha) / s.temperature)
    z = (gate * (s.zeta - s.gamma) + s.gamma).clamp(0.0, 1.0)
    base = d * torch.exp(theta)
    est = torch.from_numpy(problem.M.toarray()) @ (base * z)
    e = (est - torch.tensor(problem.y)) / torch.tensor(problem.scale)
    loss = (torch.tensor(problem.coef) * e**2).sum()
    loss = loss + s.l0_weight * F.prob_nonzero(log_alpha, s.temperature, s.gamma, s.zeta).sum()
    loss = loss + s.l2_weight * (base**2).sum()
    return loss + s.closeness * ((d / d.sum()) * (torch.exp(theta) - 1) ** 2).sum()


def test_engine_gradient_equals_autograd_of_the_same_loss():
    problem, _ = random_problem(init_weights=np.linspace(1.0, 3.0, 40))
    engine = make_engine(problem)
    theta0 = engine.theta.detach().clone().requires_grad_()
    alpha0 = engine.log_alpha.detach().clone().requires_grad_()
    noise = torch.rand(40, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    autograd_loss(problem, theta0, alpha0, noise, engine.settings).backward()
    seen = {}

    def look(grads):  # record the gradients the engine hands to Adam, do not move
        seen["theta"], seen["alpha"] = (g.clone() for g in grads)

    engine.optimizer.step = look
    engine.step()
    torch.testing.assert_close(seen["theta"], theta0.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(seen["alpha"], alpha0.grad, rtol=1e-10, atol=1e-12)


def test_torch_backend_equals_scipy_backend():
    problem, _ = random_problem(q=30, n=200)
    x = torch.rand(200, dtype=torch.float64)
    r = torch.rand(30, dtype=torch.float64)
    scipy_b, torch_b = ScipyBackend(problem.M), TorchBackend(problem.M)
    torch.testing.assert_close(scipy_b.matvec(x), torch_b.matvec(x))
    torch.testing.assert_close(scipy_b.rmatvec(r), torch_b.rmatvec(r))
    cols = np.array([3, 7, 100])
    torch.testing.assert_close(scipy_b.columns(cols).matvec(x[cols]), torch_b.columns(cols).matvec(x[cols]))


def test_column_layout_for_many_records_gives_the_same_products():
    rng = np.random.default_rng(0)
    M = sp.random_array((5, 70_000), density=0.001, rng=rng, format="csr")
    backend = ScipyBackend(M)
    assert backend.matrix.format == "csc"
    x = rng.random(70_000)
    np.testing.assert_allclose(backend.matvec(torch.from_numpy(x)).numpy(), M @ x)


def test_engines_on_both_backends_follow_the_same_path():
    problem, _ = random_problem()
    a, b = make_engine(problem, backend="scipy"), make_engine(problem, backend="torch")
    for _ in range(50):
        la, _ = a.step()
        lb, _ = b.step()
    assert la == pytest.approx(lb, rel=1e-9)
    torch.testing.assert_close(a.theta, b.theta)


def test_refit_reaches_the_nnls_optimum_on_a_fixed_support():
    from scipy.optimize import nnls

    rng = np.random.default_rng(3)
    M = sp.csr_array(rng.uniform(0, 1, (15, 10)))
    y = rng.uniform(5, 10, 15)  # overdetermined: no exact fit
    problem = build_problem(M, y)
    support = np.arange(10)
    ratios, report = polish(problem, ScipyBackend(problem.M), support, np.ones(10))
    A = M.toarray() * (np.sqrt(problem.coef) / problem.scale)[:, None]
    best, _ = nnls(A, np.sqrt(problem.coef) * y / problem.scale)
    assert report.loss_after == pytest.approx(Objective(problem).loss(torch.from_numpy(M @ best)),
                                              rel=1e-6)
    np.testing.assert_allclose(ratios, best, atol=1e-4)


def test_refit_respects_ratio_bounds():
    rng = np.random.default_rng(4)
    M = sp.csr_array(rng.uniform(0, 1, (6, 30)))
    y = M @ np.full(30, 3.0)  # needs ratios of 3
    problem = build_problem(M, y, bounds=(0.5, 2.0))
    ratios, _ = polish(problem, ScipyBackend(problem.M), np.arange(30), np.ones(30))
    assert ratios.min() >= 0.5 and ratios.max() <= 2.0
    np.testing.assert_allclose(ratios, 2.0)  # the bound binds everywhere


def test_repair_prices_in_records_that_a_support_is_missing():
    from l0.calibration._solvers.refit import refit_with_repair

    rng = np.random.default_rng(5)
    M = rng.uniform(0, 1, (6, 40))
    M[0, 5:] = 0.0  # only records 0-4 reach target 0
    y = M @ np.ones(40)
    problem = build_problem(sp.csr_array(M), y)
    support = np.arange(5, 40)
    ratios, _, rounds = refit_with_repair(problem, ScipyBackend(problem.M), support,
                                          np.ones(35), budget=37)
    assert rounds >= 1 and np.count_nonzero(ratios) <= 37
    assert np.count_nonzero(ratios[:5]) >= 1
    assert np.abs(problem.relative_errors(M @ ratios)).max() <= 1e-6
    # without room in the budget the target stays missed, and nothing is added
    ratios, _, _ = refit_with_repair(problem, ScipyBackend(problem.M), support, np.ones(35),
                                     budget=35)
    assert np.count_nonzero(ratios[:5]) == 0
    assert np.abs(problem.relative_errors(M @ ratios))[0] == pytest.approx(1.0)


@pytest.mark.parametrize("refuses", [False, True])
def test_the_engines_adam_is_torchs_adam_with_or_without_the_fused_kernel(monkeypatch, refuses):
    """Where torch's fused kernel refuses the tensors (as on a GPU with step counts on the
    CPU), the engine's Adam runs the plain one from the first step. torch counts the step before
    the kernel checks its arguments, so a fused try on the real state counted the first step
    twice, and the bias correction moved every weight (0.03 after 10 steps on a GPU)."""
    from torch.optim import adam as torch_adam

    from l0.calibration._solvers import _adam

    def kernel(*args, fused=None, **kwargs):
        if fused and refuses:
            for step in args[5]:  # what torch does before its fused kernel raises
                step += 1
            raise RuntimeError("the fused kernel refuses these tensors")
        return torch_adam.adam(*args, fused=fused, **kwargs)

    monkeypatch.setattr(_adam, "adam", kernel)
    _adam._has_fused_kernel.cache_clear()
    try:
        gen = torch.Generator().manual_seed(0)
        grads = [torch.randn(50, dtype=torch.float64, generator=gen) for _ in range(10)]
        ours = torch.zeros(50, dtype=torch.float64, requires_grad=True)
        theirs = torch.zeros(50, dtype=torch.float64, requires_grad=True)
        engine_adam = _adam.Adam([ours], lr=0.05)
        assert engine_adam.fused is (None if refuses else True)
        reference = torch.optim.Adam([theirs], lr=0.05)
        for g in grads:
            engine_adam.step([g])
            theirs.grad = g.clone()
            reference.step()
        torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=0, atol=1e-15)
        assert float(engine_adam.steps[0]) == 10.0
    finally:
        _adam._has_fused_kernel.cache_clear()
