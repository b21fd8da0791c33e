"""SparseCalibrationWeights: the 0.6.x estimator, drop-in, minus its bugs."""

import inspect

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from l0 import SparseCalibrationWeights
from l0.calibration import DivergenceError


def problem(q=15, n=60, seed=0):
    rng = np.random.default_rng(seed)
    M = sp.random_array((q, n), density=0.5, rng=rng, format="csr")
    M.data = rng.uniform(1, 10, M.nnz)
    return M, M @ rng.uniform(0.5, 2.0, n)


def test_fit_defaults_are_those_of_0_6():
    params = inspect.signature(SparseCalibrationWeights.fit).parameters
    defaults = {k: p.default for k, p in params.items() if k not in ("self", "M", "y")}
    assert defaults == {
        "lambda_l0": 0.01, "lambda_l2": 0.0, "lr": 0.01, "epochs": 1000, "loss_type": "mse",
        "verbose": False, "verbose_freq": 100, "target_groups": None, "normalize_groups": True,
        "group_multipliers": None,
    }


def test_fit_matches_feasible_targets():
    M, y = problem()
    model = SparseCalibrationWeights(60, seed=0, init_keep_prob=0.9)
    model.fit(M, y, lambda_l0=1e-4, lr=0.05, epochs=1500, loss_type="relative")
    errors = np.abs(model.predict(M).numpy() / y - 1)
    assert errors.mean() < 0.05


def test_analytic_gradient_equals_autograd_of_the_0_6_loss():
    """The engine's gradient is that of sum(c (ŷ-y)^2/s^2) + λ0 E[L0] + λ2 Σ exp(log_w)^2."""
    M, y = problem(q=6, n=20)
    groups = np.array([0, 0, 1, 1, 1, 2])
    model = SparseCalibrationWeights(20, seed=1, init_weights=np.linspace(0.5, 2, 20),
                                     dtype=torch.float64)
    state = model._generator.get_state()
    coef = torch.tensor([0.5, 0.5, 1 / 3 * 2.0, 1 / 3 * 2.0, 1 / 3 * 2.0, 1.0], dtype=torch.float64)
    scale = torch.tensor(np.maximum(np.abs(y), 1.0))
    pred = model.forward(M)
    loss = (coef * ((pred - torch.tensor(y)) / scale) ** 2).sum()
    loss = loss + 0.3 * model.get_l0_penalty() + 0.01 * model.get_l2_penalty()
    loss.backward()
    expected = (model.log_weight.grad.clone(), model.log_alpha.grad.clone())
    model.log_weight.grad = model.log_alpha.grad = None
    model._generator.set_state(state)
    model.fit(M, y, lambda_l0=0.3, lambda_l2=0.01, lr=1e-3, epochs=1, loss_type="relative",
              target_groups=groups, group_multipliers={1: 2.0})
    # after one step Adam's first moment is (1 - beta1) * gradient
    first_moment = model._optimizer_state["exp_avg"]
    torch.testing.assert_close(first_moment[0] / 0.1, expected[0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(first_moment[1] / 0.1, expected[1], rtol=1e-9, atol=1e-12)


def test_a_second_fit_continues_the_first_without_new_jitter():
    M, y = problem()
    kwargs = dict(lambda_l0=1e-3, lr=0.05, loss_type="relative")
    once = SparseCalibrationWeights(60, seed=2, log_weight_jitter_sd=0.1).fit(M, y, epochs=60, **kwargs)
    twice = SparseCalibrationWeights(60, seed=2, log_weight_jitter_sd=0.1)
    twice.fit(M, y, epochs=25, **kwargs).fit(M, y, epochs=35, **kwargs)
    torch.testing.assert_close(once.log_weight, twice.log_weight, rtol=0, atol=0)
    torch.testing.assert_close(once.log_alpha, twice.log_alpha, rtol=0, atol=0)


def test_seed_makes_fits_reproducible_and_leaves_the_global_rng_alone():
    M, y = problem()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = SparseCalibrationWeights(60, seed=5, log_weight_jitter_sd=0.05).fit(M, y, epochs=30)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)
    b = SparseCalibrationWeights(60, seed=5, log_weight_jitter_sd=0.05).fit(M, y, epochs=30)
    torch.testing.assert_close(a.get_weights(deterministic=True), b.get_weights(deterministic=True),
                               rtol=0, atol=0)


def test_predict_uses_the_matrix_it_is_given_not_a_stale_cache():
    M, y = problem()
    model = SparseCalibrationWeights(60, seed=0).fit(M, y, epochs=5)
    M2 = M.copy()
    M2.data = M2.data[::-1].copy()  # same shape and nnz, other values
    w = model.get_weights(deterministic=True).detach().numpy().astype(np.float64)
    np.testing.assert_allclose(model.predict(M2).numpy(), M2 @ w, rtol=1e-6)  # float32, as 0.6.x
    np.testing.assert_allclose(model.predict(M).numpy(), M @ w, rtol=1e-6)


@pytest.mark.parametrize("make", [lambda m: m.toarray(), lambda m: pd.DataFrame(m.toarray()),
                                  lambda m: torch.tensor(m.toarray()), sp.coo_matrix])
def test_dense_and_other_matrix_types_are_accepted(make):
    M, y = problem()
    ref = SparseCalibrationWeights(60, seed=0).fit(M, y, epochs=10)
    other = SparseCalibrationWeights(60, seed=0).fit(make(M), y, epochs=10)
    torch.testing.assert_close(ref.log_weight, other.log_weight)


def test_accessors_follow_their_definitions():
    M, y = problem()
    model = SparseCalibrationWeights(60, seed=0, init_keep_prob=0.3).fit(M, y, epochs=50,
                                                                          lambda_l0=0.5)
    w = model.get_weights(deterministic=True).detach()
    active = model.get_active_weights()
    assert active["count"] == int((w > 0).sum())
    torch.testing.assert_close(active["values"], w[w > 0])
    assert model.get_sparsity() == pytest.approx(float((w == 0).double().mean()))
    gates = model.get_deterministic_gates().detach()
    torch.testing.assert_close(w, torch.exp(model.log_weight.detach()) * gates)
    beta, gamma, zeta = model.beta, model.gamma, model.zeta
    p = torch.sigmoid(model.log_alpha.detach() - beta * np.log(-gamma / zeta))
    assert model.get_l0_penalty().item() == pytest.approx(p.sum().item())
    l2 = (torch.exp(model.log_weight.detach()) ** 2).sum().item()
    assert model.get_l2_penalty().item() == pytest.approx(l2)


def test_without_gates_the_weights_are_exp_log_weight():
    M, y = problem()
    model = SparseCalibrationWeights(60, use_gates=False, seed=0).fit(M, y, epochs=20)
    torch.testing.assert_close(model.get_weights(), torch.exp(model.log_weight))
    assert model.get_sparsity() == 0.0


def test_verbose_report(capsys):
    M, y = problem()
    SparseCalibrationWeights(60, seed=0).fit(M, y, epochs=20, verbose=True, verbose_freq=10,
                                             target_groups=np.arange(15) % 3)
    out = capsys.readouterr().out
    assert out.startswith("Groups: 3 groups, normalize=on\n")
    assert out.count("mean_group_mare=") == 2 and "Epoch   20:" in out
    assert "Weight dist: [<0.01:" in out


def test_a_diverging_fit_stops_with_an_error_and_keeps_finite_weights():
    M = sp.csr_array(np.array([[1e200, 1e200]]))
    model = SparseCalibrationWeights(2, seed=0)
    with pytest.raises(DivergenceError, match="lower `lr`|Lower `lr`"):
        model.fit(M, [1e200])
    assert torch.isfinite(model.log_weight).all() and torch.isfinite(model.log_alpha).all()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"n_features": 0}, ValueError, "`n_features` must be an int >= 1"),
        ({"n_features": 4, "beta": -1.0}, ValueError, "`beta` must be a float > 0.0"),
        ({"n_features": 4, "gamma": 0.1}, ValueError, "`gamma` must be a float < 0.0"),
        ({"n_features": 4, "zeta": 0.9}, ValueError, "`zeta` must be a float > 1.0"),
        ({"n_features": 4, "init_keep_prob": 1.5}, ValueError, "`init_keep_prob` must be a float in"),
        ({"n_features": 4, "init_keep_prob": [0.5] * 3}, ValueError, "`init_keep_prob` array must have shape \\(4,\\)"),
        ({"n_features": 4, "init_weights": [-1.0, 1, 1, 1]}, ValueError, "`init_weights` must be values in"),
        ({"n_features": 4, "log_alpha_jitter_sd": -0.1}, ValueError, "`log_alpha_jitter_sd`"),
        ({"n_features": 4, "seed": "x"}, TypeError, "`seed` must be an int"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        SparseCalibrationWeights(**kwargs)


M1 = sp.csr_array(np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]]))


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        ((M1, [1.0, 2.0]), {"loss_type": "relatve"}, ValueError, "`loss_type` must be one of 'mse', 'relative'"),
        ((M1, [np.nan, 2.0]), {}, ValueError, "`y` must be finite"),
        ((np.array([[np.nan, 1, 1], [1, 1, 1]]), [1.0, 2.0]), {}, ValueError, "`M` must be finite"),
        ((sp.csr_array(np.ones((2, 4))), [1.0, 2.0]), {}, ValueError, "`M` must be a matrix with 3 columns"),
        ((M1, [1.0, 2.0]), {"target_groups": ["a", "b"]}, TypeError, "`target_groups` must be integer"),
        ((M1, [1.0, 2.0]), {"target_groups": [0, 1, 1]}, ValueError, "`target_groups` must be a 1-D array of length 2"),
        ((M1, [1.0, 2.0]), {"group_multipliers": {0: 2.0}}, ValueError, "requires `target_groups`"),
        ((M1, [1.0, 2.0]), {"lr": -1.0}, ValueError, "`lr` must be a float > 0.0"),
        ((M1, [1.0, 2.0]), {"lambda_l0": np.nan}, ValueError, "`lambda_l0` must be a float >= 0.0"),
        ((M1, [1.0, 2.0]), {"epochs": 1.5}, TypeError, "`epochs` must be an int"),
    ],
)
def test_bad_fit_input(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        SparseCalibrationWeights(3, seed=0).fit(*args, **kwargs)


def test_predict_checks_the_matrix_width():
    model = SparseCalibrationWeights(3, seed=0)
    with pytest.raises(ValueError, match="`M` must be a matrix with 3 columns"):
        model.predict(sp.csr_array(np.ones((2, 5))))


def test_public_tensors_are_float32_like_0_6_and_float64_on_request():
    M, y = problem()
    model = SparseCalibrationWeights(60)
    assert torch.allclose(torch.exp(model.log_weight), torch.ones(60))  # raised on float64
    assert model.log_alpha.dtype == model.predict(M).dtype == torch.float32
    precise = SparseCalibrationWeights(60, seed=0, init_keep_prob=0.9, dtype=torch.float64)
    coarse = SparseCalibrationWeights(60, seed=0, init_keep_prob=0.9)
    kwargs = dict(lambda_l0=1e-4, lr=0.05, epochs=300, loss_type="relative")
    precise.fit(M, y, **kwargs)
    coarse.fit(M, y, **kwargs)
    assert precise.predict(M).dtype == torch.float64
    # the fit runs in float64 either way: the float32 model differs by its start's rounding
    torch.testing.assert_close(coarse.log_weight.double(), precise.log_weight, rtol=0, atol=1e-5)
    with pytest.raises(TypeError, match="`dtype` must be torch.float32 or torch.float64"):
        SparseCalibrationWeights(3, dtype=torch.int64)
