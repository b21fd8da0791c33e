import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import RelaxedBernoulli

from l0 import functional as F

GAMMA, ZETA = -0.1, 1.1


@pytest.mark.parametrize("temperature", [0.1, 2 / 3, 1.5])
def test_sampler_equals_torch_relaxed_bernoulli_stretched_and_clamped(temperature):
    log_alpha = torch.linspace(-4, 4, 9, dtype=torch.float64)
    torch.manual_seed(123)
    relaxed = RelaxedBernoulli(torch.tensor(temperature, dtype=torch.float64), logits=log_alpha)
    s = relaxed.rsample((500,))
    oracle = (s * (ZETA - GAMMA) + GAMMA).clamp(0, 1)
    torch.manual_seed(123)
    noise = torch.rand((500, 9), dtype=torch.float64)  # what RelaxedBernoulli drew
    ours = F.sample_hard_concrete(log_alpha, noise, temperature, GAMMA, ZETA)
    torch.testing.assert_close(ours, oracle, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("log_alpha,temperature", [(-2.0, 2 / 3), (0.0, 0.5), (1.5, 0.25), (0.3, 1.0)])
def test_prob_nonzero_and_prob_one_match_monte_carlo(log_alpha, temperature):
    n = 400_000
    g = torch.Generator().manual_seed(1)
    la = torch.full((n,), log_alpha, dtype=torch.float64)
    z = F.sample_hard_concrete(la, F.uniform_noise((n,), generator=g, dtype=torch.float64),
                               temperature)
    se = 4 * math.sqrt(0.25 / n)
    p0 = float(F.prob_nonzero(torch.tensor(log_alpha), temperature))
    p1 = float(F.prob_one(torch.tensor(log_alpha), temperature))
    assert abs(float((z != 0).double().mean()) - p0) < se
    assert abs(float((z == 1).double().mean()) - p1) < se
    for t in (0.2, 0.5, 0.8):
        cdf = float(F.hard_concrete_cdf(t, torch.tensor(log_alpha, dtype=torch.float64), temperature))
        assert abs(float((z <= t).double().mean()) - cdf) < se


def test_prob_nonzero_closed_form_by_hand():
    # sigma(log_alpha - beta * log(-gamma / zeta)) with beta = 0.5: sigma(0.5 * log 11)
    expected = 1 / (1 + math.exp(-0.5 * math.log(11)))
    assert float(F.prob_nonzero(torch.tensor(0.0), 0.5)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "log_alpha,temperature,rule,expected",
    [
        (0.0, 0.5, "median", 0.5),
        (0.0, 0.5, "paper", 0.5),
        (1.0, 0.5, "median", 1 / (1 + math.exp(-2.0)) * 1.2 - 0.1),
        (1.0, 0.5, "paper", 1 / (1 + math.exp(-1.0)) * 1.2 - 0.1),
        (3.0, 0.5, "median", 1.0),
        (3.0, 0.5, "paper", 1.0),
        (2.0, 0.5, "paper", 1 / (1 + math.exp(-2.0)) * 1.2 - 0.1),
        (-3.0, 0.5, "median", 0.0),
        (-3.0, 0.5, "paper", 0.0),
    ],
)
def test_test_time_rules_against_hand_values(log_alpha, temperature, rule, expected):
    got = F.deterministic_gate(torch.tensor(log_alpha, dtype=torch.float64), temperature, rule=rule)
    assert float(got) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.floats(-8, 8), st.floats(0.05, 2.0))
def test_median_rule_is_zero_exactly_when_prob_zero_at_least_half(log_alpha, temperature):
    la = torch.tensor(log_alpha, dtype=torch.float64)
    median = float(F.deterministic_gate(la, temperature))
    p_zero = 1 - float(F.prob_nonzero(la, temperature))
    if abs(p_zero - 0.5) > 1e-9:
        assert (median == 0.0) == (p_zero > 0.5)


def test_median_rule_is_the_median_by_simulation():
    n = 200_000
    g = torch.Generator().manual_seed(5)
    for la, beta in [(0.4, 0.5), (-0.2, 2 / 3), (0.1, 1.0)]:
        z = F.sample_hard_concrete(torch.full((n,), la, dtype=torch.float64),
                                   F.uniform_noise((n,), generator=g, dtype=torch.float64), beta)
        assert float(z.median()) == pytest.approx(float(F.deterministic_gate(
            torch.tensor(la, dtype=torch.float64), beta)), abs=5e-3)


@settings(max_examples=50, deadline=None)
@given(st.floats(0.001, 0.999), st.floats(0.05, 2.0))
def test_log_alpha_for_prob_nonzero_inverts_prob_nonzero(p, temperature):
    la = F.log_alpha_for_prob_nonzero(torch.tensor(p, dtype=torch.float64), temperature)
    assert float(F.prob_nonzero(la, temperature)) == pytest.approx(p, rel=1e-6)


def test_gradcheck_in_float64():
    log_alpha = torch.tensor([-1.0, 0.2, 0.9], dtype=torch.float64, requires_grad=True)
    noise = torch.tensor([0.3, 0.55, 0.6], dtype=torch.float64)  # interior: gates strictly in (0,1)
    assert torch.autograd.gradcheck(lambda a: F.sample_hard_concrete(a, noise, 2 / 3), (log_alpha,))
    assert torch.autograd.gradcheck(lambda a: F.prob_nonzero(a, 2 / 3), (log_alpha,))
    assert torch.autograd.gradcheck(lambda a: F.deterministic_gate(a, 2 / 3), (log_alpha,))


def test_samples_are_in_unit_interval_with_exact_zeros_and_ones():
    g = torch.Generator().manual_seed(0)
    z = F.sample_hard_concrete(torch.zeros(10_000), F.uniform_noise((10_000,), generator=g), 0.5)
    assert float(z.min()) == 0.0 and float(z.max()) == 1.0
    assert ((z == 0) | (z == 1)).float().mean() > 0.3


def test_extreme_noise_and_logits_stay_finite():
    z = F.sample_hard_concrete(torch.tensor([-1e6, 0.0, 1e6]), torch.tensor([0.0, 1.0, 0.5]), 0.1)
    assert torch.isfinite(z).all()
    assert z.tolist() == [0.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"temperature": 0.0}, "`temperature` must be a float > 0.0; got 0.0."),
        ({"temperature": -1}, "`temperature` must be a float > 0.0; got -1.0."),
        ({"temperature": float("nan")}, "`temperature` must be a float > 0.0; got nan."),
        ({"low": 0.1}, "`gamma` must be a float < 0.0; got 0.1."),
        ({"high": 1.0}, "`zeta` must be a float > 1.0; got 1.0."),
    ],
)
def test_invalid_parameters_raise_value_error(kwargs, message):
    args = {"temperature": 0.5, "low": -0.1, "high": 1.1} | kwargs
    with pytest.raises(ValueError) as info:
        F.sample_hard_concrete(torch.zeros(2), torch.rand(2), **args)
    assert str(info.value) == message
    with pytest.raises(ValueError):
        F.prob_nonzero(torch.zeros(2), **args)


def test_invalid_rule_and_types():
    with pytest.raises(ValueError, match="`rule` must be one of 'median', 'paper'; got 'mean'"):
        F.deterministic_gate(torch.zeros(1), 0.5, rule="mean")
    with pytest.raises(TypeError, match="`temperature` must be a float"):
        F.prob_nonzero(torch.zeros(1), "0.5")


def test_sampler_backward_equals_autograd_of_the_explicit_formula():
    g = torch.Generator().manual_seed(3)
    log_alpha = torch.randn(4, 5, generator=g, dtype=torch.float64) * 3
    noise = torch.rand(7, 4, 5, generator=g, dtype=torch.float64)  # broadcasts over log_alpha
    weights = torch.randn(7, 4, 5, generator=g, dtype=torch.float64)
    ours = log_alpha.clone().requires_grad_()
    (F.sample_hard_concrete(ours, noise, 0.4) * weights).sum().backward()
    ref = log_alpha.clone().requires_grad_()
    u = noise.clamp(torch.finfo(noise.dtype).eps, 1 - torch.finfo(noise.dtype).eps)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + ref) / 0.4)
    z = (s * (F.ZETA - F.GAMMA) + F.GAMMA).clamp(0.0, 1.0)
    (z * weights).sum().backward()
    torch.testing.assert_close(ours.grad, ref.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(F.sample_hard_concrete(log_alpha, noise, 0.4), z.detach())


def test_sampler_gradient_is_zero_beyond_the_logit_clamp_and_values_match_the_no_grad_path():
    # float64 noise within 1e-14 of 1 lifts a clamped logit of -30 into the open interval: the
    # sample moves with the noise but not with log_alpha, which the clamp holds at -30.
    log_alpha = torch.tensor([-40.0, 35.0, 0.5, -29.0], dtype=torch.float64, requires_grad=True)
    near_one = torch.sigmoid(torch.tensor(30.5, dtype=torch.float64))  # logit(u) = 30.5
    noise = torch.stack([near_one, 1 - near_one, torch.tensor(0.7).double(), near_one])
    z = F.sample_hard_concrete(log_alpha, noise, 0.9)
    z.sum().backward()
    assert 0 < z[0] < 1 and 0 < z[1] < 1 and 0 < z[3] < 1
    assert log_alpha.grad[0] == 0 and log_alpha.grad[1] == 0
    assert log_alpha.grad[2] > 0 and log_alpha.grad[3] > 0
    with torch.no_grad():  # the plain-operation path gives the same values bit for bit
        assert torch.equal(F.sample_hard_concrete(log_alpha, noise, 0.9), z.detach())
    mixed = torch.zeros(3, dtype=torch.float64, requires_grad=True)  # float32 noise, float64 logits
    out = F.sample_hard_concrete(mixed, torch.tensor([0.2, 0.5, 0.8]), 0.5)
    out.sum().backward()
    assert out.dtype == torch.float64 and mixed.grad.dtype == torch.float64


@pytest.mark.parametrize("rule", ["median", "paper"])
def test_one_definition_of_an_open_gate_agrees_with_every_count(rule):
    from l0 import HardConcrete, SparseL0Linear

    t = F.open_threshold(0.4, rule=rule)
    # logits straddling the threshold by a few ulps, plus ordinary ones
    la = torch.cat([t + torch.linspace(-1e-12, 1e-12, 41, dtype=torch.float64),
                    torch.linspace(-8, 8, 101, dtype=torch.float64)])
    open_ = F.is_open(la, 0.4, rule=rule)
    assert torch.equal(F.deterministic_gate(la, 0.4, rule=rule) != 0, open_)
    gate = HardConcrete(len(la), temperature=0.4, rule=rule, dtype=torch.float64)
    with torch.no_grad():
        gate.qz_logits.copy_(la)
    assert gate.get_num_active() == int(open_.sum()) == int((gate.eval()() != 0).sum())
    if rule == "median":
        far = (la - t).abs() > 1e-9  # away from ties P(z != 0) > 1/2 is the same set
        assert torch.equal(open_[far], (F.prob_nonzero(la, 0.4) > 0.5)[far])
        model = SparseL0Linear(len(la), beta=0.4)
        with torch.no_grad():
            model.log_alpha.copy_(la.float())
        expected = 1.0 - float(F.is_open(model.log_alpha, 0.4).double().mean())
        assert model.get_sparsity() == pytest.approx(expected)
