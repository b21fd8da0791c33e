import pytest
import torch

import l0
from l0 import functional as F
from l0.distributions import HardConcreteDistribution


def test_rsample_is_reproducible_with_a_generator_and_leaves_global_rng_alone():
    d = HardConcreteDistribution(torch.zeros(4), temperature=0.5)
    state = torch.get_rng_state()
    a = d.rsample((3,), generator=torch.Generator().manual_seed(7))
    b = d.rsample((3,), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.shape == (3, 4)
    assert torch.equal(state, torch.get_rng_state())


def test_rsample_carries_gradient_to_log_alpha():
    la = torch.zeros(5, requires_grad=True)
    HardConcreteDistribution(la).rsample((100,)).sum().backward()
    assert la.grad is not None and la.grad.abs().sum() > 0


def test_properties_use_the_core():
    la = torch.tensor([-1.0, 0.5])
    d = HardConcreteDistribution(la, temperature=0.4, low=-0.2, high=1.3)
    torch.testing.assert_close(d.prob_nonzero, F.prob_nonzero(la, 0.4, -0.2, 1.3))
    torch.testing.assert_close(d.prob_one, F.prob_one(la, 0.4, -0.2, 1.3))
    torch.testing.assert_close(d.median, F.deterministic_gate(la, 0.4, -0.2, 1.3))
    torch.testing.assert_close(d.cdf(torch.tensor(0.0)), 1 - d.prob_nonzero)


def test_expand_and_sample_shape():
    d = HardConcreteDistribution(torch.tensor(0.3)).expand((2, 3))
    assert d.batch_shape == (2, 3)
    assert d.sample((4,)).shape == (4, 2, 3)
    assert d.temperature == pytest.approx(2 / 3)


def test_log_prob_explains_why_it_is_missing():
    with pytest.raises(NotImplementedError, match="two atoms"):
        HardConcreteDistribution(torch.zeros(1)).log_prob(torch.zeros(1))


def test_invalid_parameters():
    with pytest.raises(ValueError, match="`temperature` must be a float > 0.0; got -0.5."):
        HardConcreteDistribution(torch.zeros(1), temperature=-0.5)


def test_0_6_import_path_for_the_gate_module_still_works():
    from l0.distributions import HardConcrete

    assert HardConcrete is l0.HardConcrete
    with pytest.raises(AttributeError):
        l0.distributions.NotThere  # noqa: B018
