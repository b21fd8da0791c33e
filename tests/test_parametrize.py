"""l0_gate / remove_gates: gates on any module's tensor through torch.nn.utils.parametrize."""

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from l0 import (
    compute_l0_penalty,
    compute_l2_penalty,
    l0_gate,
    remove_gates,
    update_temperatures,
)
from l0 import (
    functional as F,
)
from l0.nn.parametrize import L0Parametrization


def test_input_unit_gates_multiply_columns_by_the_test_time_gate():
    torch.manual_seed(0)
    layer = l0_gate(nn.Linear(5, 3), "weight", dim=1, init_mean=0.5)
    gate = layer.parametrizations.weight[0].gate
    with torch.no_grad():
        gate.qz_logits.copy_(torch.tensor([-5.0, 0.0, 5.0, -1.0, 2.0]))
    layer.eval()
    z = F.deterministic_gate(gate.qz_logits, gate.temperature, gate.gamma, gate.zeta)
    original = layer.parametrizations.weight.original
    torch.testing.assert_close(layer.weight, original * z)
    assert (layer.weight[:, 0] == 0).all()  # a closed input unit removes the column


def test_training_mode_draws_fresh_gates_and_cached_shares_one_draw():
    layer = l0_gate(nn.Linear(50, 4), generator=torch.Generator().manual_seed(0), init_mean=0.5)
    layer.train()
    assert not torch.equal(layer.weight, layer.weight)
    with parametrize.cached():
        assert torch.equal(layer.weight, layer.weight)


def test_gradients_reach_weights_and_gate_logits():
    layer = l0_gate(nn.Linear(6, 2), dim=1)
    layer(torch.randn(8, 6)).sum().backward()
    assert layer.parametrizations.weight.original.grad is not None
    assert layer.parametrizations.weight[0].gate.qz_logits.grad.abs().sum() > 0


def test_penalties_and_temperatures_reach_parametrized_gates():
    model = nn.Sequential(l0_gate(nn.Linear(4, 3), dim=1), nn.ReLU(),
                          l0_gate(nn.Conv2d(3, 6, 3), "weight", dim=0))
    g1 = model[0].parametrizations.weight[0].gate
    g2 = model[2].parametrizations.weight[0].gate
    assert g1.cost == 3 and g2.cost == 3 * 3 * 3  # parameters per gate
    expected = g1.get_penalty() + g2.get_penalty()
    torch.testing.assert_close(compute_l0_penalty(model), expected)
    assert update_temperatures(model, 0.3) == 2 and g2.temperature == 0.3
    # L2 sees the original weights (as for plain layers, not the biases), never the gate logits
    originals = [model[0].parametrizations.weight.original,
                 model[2].parametrizations.weight.original]
    torch.testing.assert_close(compute_l2_penalty(model), sum((p**2).sum() for p in originals))


def test_per_element_gates_and_round_trip_removal():
    torch.manual_seed(1)
    model = nn.Sequential(l0_gate(nn.Linear(4, 3), init_mean=0.4), nn.Tanh(),
                          l0_gate(nn.Linear(3, 2), dim=0))
    assert model[0].parametrizations.weight[0].gate.gate_size == (12,)
    model.train()  # remove_gates bakes the test-time gates whatever the mode
    x = torch.randn(7, 4)
    expected = model.eval()(x)
    model.train()
    remove_gates(model)
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert isinstance(model[0].weight, nn.Parameter)
    torch.testing.assert_close(model.eval()(x), expected)


def test_remove_gates_keeps_other_parametrizations_and_refuses_chains():
    class Double(nn.Module):
        def forward(self, X):  # noqa: N803
            return 2 * X

    layer = nn.Linear(3, 3)
    parametrize.register_parametrization(layer, "bias", Double())
    l0_gate(layer, "weight")
    remove_gates(layer)
    assert parametrize.is_parametrized(layer, "bias") and not parametrize.is_parametrized(layer, "weight")
    parametrize.register_parametrization(layer, "weight", Double())
    l0_gate(layer, "weight")
    with pytest.raises(ValueError, match="only parametrization"):
        remove_gates(layer)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: l0_gate("layer"), TypeError, "`module` must be a torch.nn.Module"),
        (lambda: l0_gate(nn.Linear(2, 2), "wieght"), ValueError, "`name` must be a tensor of Linear"),
        (lambda: l0_gate(nn.Linear(2, 2), 3), TypeError, "`name` must be the name of a parameter"),
        (lambda: l0_gate(nn.Linear(2, 2), dim=2), ValueError, "`dim` must be an int in \\[-2, 1\\]"),
        (lambda: l0_gate(nn.Linear(2, 2), temperature=0), ValueError, "`temperature` must be a float > 0"),
        (lambda: l0_gate(nn.Linear(2, 2), rule="mean"), ValueError, "`rule` must be one of"),
        (lambda: remove_gates(None), TypeError, "`model` must be a torch.nn.Module"),
    ],
)
def test_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_parametrization_repr():
    p = L0Parametrization((3, 4), dim=-1)
    assert p.dim == 1 and "shape=(3, 4), dim=1" in repr(p)


def test_removing_gates_from_a_deep_copy_leaves_the_original_intact():
    import copy

    layer = l0_gate(nn.Linear(3, 2), dim=0)
    twin = remove_gates(copy.deepcopy(layer))
    assert type(twin) is nn.Linear
    assert parametrize.is_parametrized(layer, "weight") and layer.weight.shape == (2, 3)
