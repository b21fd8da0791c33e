import io
import math

import pytest
import torch

from l0 import HardConcrete, L0Gate
from l0 import functional as F


def test_init_mean_sets_logits_like_0_6():
    gate = HardConcrete(3, 2, temperature=0.3, stretch=0.2, init_mean=0.8)
    assert gate.gate_size == (3, 2) and (gate.gamma, gate.zeta) == (-0.2, 1.2)
    torch.testing.assert_close(gate.qz_logits, torch.full((3, 2), math.log(4.0)))
    assert gate.log_alpha is gate.qz_logits


@pytest.mark.parametrize("init_mean", [0.0, 1.0])
def test_init_mean_at_the_edges_is_finite(init_mean):
    gate = HardConcrete(4, init_mean=init_mean)
    assert torch.isfinite(gate.qz_logits).all()
    assert gate.eval()().sum().item() == (4.0 if init_mean == 1.0 else 0.0)


def test_eval_returns_the_test_time_gate_and_train_samples():
    gate = HardConcrete(6, temperature=0.5, init_mean=0.6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(gate.eval()(), F.deterministic_gate(gate.qz_logits, 0.5, -0.1, 1.1))
    gate.train()
    a = gate()
    gate.generator.manual_seed(0)
    assert torch.equal(a, gate())
    paper = HardConcrete(6, init_mean=0.6, rule="paper").eval()()
    torch.testing.assert_close(paper, F.deterministic_gate(gate.qz_logits, 0.5, rule="paper"))


def test_forward_broadcasts_over_input_shape():
    gate = HardConcrete(3).eval()
    assert gate((8, 3, 5, 5)).shape == (3, 1, 1, 1)


def test_penalty_is_cost_times_expected_open_gates():
    gate = HardConcrete(10, init_mean=0.3, cost=7.0)
    expected = 7.0 * F.prob_nonzero(gate.qz_logits, 0.5).sum()
    torch.testing.assert_close(gate.get_penalty(), expected)
    assert gate.get_sparsity() == pytest.approx(1 - expected.item() / 70)


def test_num_active_agrees_with_the_median_rule():
    gate = HardConcrete(200, init_mean=None)
    with torch.no_grad():
        gate.qz_logits.copy_(torch.linspace(-3, 3, 200))
    assert gate.get_num_active() == int((gate.eval()() > 0).sum())


def test_temperature_assignment_is_validated():
    gate = HardConcrete(2)
    gate.temperature = 0.2
    assert gate.temperature == 0.2
    with pytest.raises(ValueError, match="`temperature` must be a float > 0.0; got 0.0."):
        gate.temperature = 0


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"input_dim": 0}, ValueError, "`input_dim` must be an int >= 1; got 0."),
        ({"input_dim": 2.5}, TypeError, "`input_dim` must be an int >= 1; got 2.5."),
        ({"input_dim": 2, "stretch": 0}, ValueError, "`stretch` must be a float > 0.0; got 0.0."),
        ({"input_dim": 2, "init_mean": 1.5}, ValueError, "`init_mean` must be a float in [0.0, 1.0]"),
        ({"input_dim": 2, "rule": "x"}, ValueError, "`rule` must be one of 'median', 'paper'"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error) as info:
        HardConcrete(**kwargs)
    assert str(info.value).startswith(message)


def test_state_dict_and_torch_save_round_trip():
    gate = L0Gate(5, init_mean=0.7)
    with torch.no_grad():
        gate.gates.qz_logits.add_(torch.arange(5.0))
    buffer = io.BytesIO()
    torch.save(gate, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.equal(loaded.eval()(), gate.eval()())
    fresh = L0Gate(5)
    fresh.load_state_dict(gate.state_dict())
    assert list(gate.state_dict()) == ["gates.qz_logits"]
    assert torch.equal(fresh.gates.qz_logits, gate.gates.qz_logits)


def test_l0gate_apply_gates_and_errors():
    gate = L0Gate(3, init_mean=0.999).eval()
    x = torch.randn(4, 3)
    torch.testing.assert_close(gate(x, dim=1), x)
    assert gate.get_active_indices().tolist() == [0, 1, 2]
    gate.temperature = 0.1
    assert gate.gates.temperature == 0.1
    with pytest.raises(ValueError, match=r"`x` must have 3 entries along dim 0; got shape \(4, 3\)"):
        gate.apply_gates(x, dim=0)
    with pytest.raises(TypeError, match="`x` must be a torch.Tensor"):
        gate.apply_gates([1, 2, 3])


def test_one_name_per_concept_with_the_0_6_spellings_as_aliases():
    gate = HardConcrete(3, gamma=-0.2, zeta=1.3)
    assert gate.logits is gate.qz_logits is gate.log_alpha  # state dicts keep qz_logits
    assert (gate.low, gate.high) == (gate.gamma, gate.zeta) == (-0.2, 1.3)
    assert list(gate.state_dict()) == ["qz_logits"]
