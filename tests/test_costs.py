"""layer_costs: parameters and MACs per layer against closed forms."""

import pytest
import torch
from torch import nn

from l0 import L0Conv2d, L0DepthwiseConv2d, L0Linear, l0_gate, layer_costs


def test_linear_and_conv_closed_forms():
    torch.manual_seed(0)
    model = nn.Sequential(
        L0Conv2d(3, 8, 3, padding=1, structured=True), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), L0Linear(8 * 4 * 4, 10), nn.ReLU(), nn.Linear(10, 2),
    )
    with torch.no_grad():
        model[0].channel_gates.qz_logits.copy_(torch.tensor([9.0, -9, 9, -9, 9, -9, 9, 9]))
        model[4].weight_gates.qz_logits.normal_()
    costs = layer_costs(model, torch.zeros(5, 3, 8, 8))
    conv, lin, plain = costs["0"], costs["4"], costs["6"]
    # conv: 5 open channels of 3*3*3 weights (+ their bias), 8*8 output positions
    assert conv["params_total"] == 8 * 27 + 8 and conv["params_active"] == 5 * 27 + 5
    assert conv["macs_total"] == 8 * 27 * 64 and conv["macs_active"] == 5 * 27 * 64
    p = model[0].channel_gates.get_active_prob().detach()
    assert conv["macs_expected"] == pytest.approx(float(p.sum()) * 27 * 64, rel=1e-6)
    assert conv["params_expected"] == pytest.approx(float(p.sum()) * 28, rel=1e-6)
    # per-weight gates: expected = the L0 penalty, active = weights the median rule keeps
    gate = model[4].weight_gates
    assert lin["params_expected"] == pytest.approx(gate.get_penalty().item() + 10, rel=1e-6)
    assert lin["macs_active"] == int((gate.deterministic() != 0).sum())
    assert plain == {"params_total": 22, "params_expected": 22.0, "params_active": 22,
                     "macs_total": 20, "macs_expected": 20.0, "macs_active": 20}
    assert costs["total"]["macs_total"] == conv["macs_total"] + lin["macs_total"] + 20


def test_parametrized_and_depthwise_layers_and_sequences():
    layer = l0_gate(nn.Linear(6, 4), dim=1)
    with torch.no_grad():
        layer.parametrizations.weight[0].gate.qz_logits.copy_(torch.tensor([9.0, 9, -9, -9, -9, 9]))
    costs = layer_costs(nn.Sequential(layer), torch.zeros(2, 7, 6))  # 7 positions per example
    assert costs["0"]["params_active"] == 3 * 4 + 4
    assert costs["0"]["macs_active"] == 3 * 4 * 7 and costs["0"]["macs_total"] == 24 * 7
    depthwise = nn.Sequential(L0DepthwiseConv2d(4, 3, padding=1))
    costs = layer_costs(depthwise, torch.zeros(1, 4, 5, 5))
    assert list(costs) == ["0", "total"]  # its inner conv is not counted twice
    assert costs["0"]["macs_total"] == 4 * 9 * 25


def test_costs_leave_the_training_mode_alone_and_check_arguments():
    model = nn.Sequential(L0Linear(3, 2)).train()
    layer_costs(model, torch.zeros(1, 3))
    assert model.training
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module"):
        layer_costs("m", torch.zeros(1))
    with pytest.raises(TypeError, match="`example_input` must be a tensor"):
        layer_costs(model, [1, 2, 3])


def test_unbatched_inputs_count_as_one_example():
    linear = nn.Sequential(L0Linear(4, 3), nn.ReLU(), L0Linear(3, 2))
    assert layer_costs(linear, torch.randn(4))["total"]["macs_total"] == 4 * 3 + 3 * 2
    assert layer_costs(linear, torch.randn(7, 4))["total"]["macs_total"] == 4 * 3 + 3 * 2
    conv = nn.Sequential(L0Conv2d(3, 4, 3, structured=True))
    per_example = 4 * 27 * 36  # out channels x (in channels x 3 x 3) x 6 x 6 positions
    assert layer_costs(conv, torch.randn(3, 8, 8))["total"]["macs_total"] == per_example
    assert layer_costs(conv, torch.randn(2, 3, 8, 8))["total"]["macs_total"] == per_example
