"""export(): a plain torch model, physically smaller, equal to the gated model in eval mode."""

import pytest
import torch
from torch import nn

from l0 import L0Conv2d, L0DepthwiseConv2d, L0Linear, SparseMLP, export, l0_gate
from l0.nn.sites import GateSite


def close_some(gate, fraction, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        closed = torch.rand(gate.qz_logits.shape, generator=g) < fraction
        gate.qz_logits[closed] = -10.0
        gate.qz_logits[~closed] = 10.0


def assert_plain(model):
    for m in model.modules():
        assert not isinstance(m, GateSite)
        assert not hasattr(m, "parametrizations")


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_input_unit_gates_shrink_the_previous_layer():
    torch.manual_seed(0)
    model = nn.Sequential(L0Linear(20, 30), nn.ReLU(), L0Linear(30, 10, structure="input"),
                          nn.Tanh(), L0Linear(10, 3, structure="input"))
    close_some(model[0].weight_gates, 0.3)
    close_some(model[2].input_gates, 0.5, seed=1)
    close_some(model[4].input_gates, 0.4, seed=2)
    small = export(model)
    assert_plain(small)
    kept = int((model[2].input_gates.qz_logits > 0).sum())
    assert small[0].out_features == kept and small[2].in_features == kept
    assert small[0].in_features == 20 and small[4].out_features == 3  # the interface stays
    x = torch.randn(16, 20)
    torch.testing.assert_close(small(x), model.eval()(x), atol=1e-6, rtol=1e-5)
    assert count(small) < count(nn.Sequential(nn.Linear(20, 30), nn.Linear(30, 10),
                                              nn.Linear(10, 3)))


def test_closed_output_units_with_a_bias_are_folded_into_the_next_bias():
    torch.manual_seed(1)
    first = l0_gate(nn.Linear(6, 8), "weight", dim=0)  # gates rows, the bias stays open
    close_some(first.parametrizations.weight[0].gate, 0.5)
    model = nn.Sequential(first, nn.Sigmoid(), nn.Linear(8, 4))  # sigmoid(bias) != 0
    small = export(model)
    assert small[0].out_features == int((first.parametrizations.weight[0].gate.qz_logits > 0).sum())
    x = torch.randn(5, 6)
    torch.testing.assert_close(small(x), model.eval()(x), atol=1e-6, rtol=1e-5)


def test_conv_channels_batch_norm_pooling_and_flatten():
    torch.manual_seed(2)
    model = nn.Sequential(
        L0Conv2d(3, 8, 3, padding=1, structured=True), nn.BatchNorm2d(8), nn.ReLU(),
        L0Conv2d(8, 6, 3, structured=True), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), L0Linear(6 * 3 * 3, 5, structure="input"),
    )
    close_some(model[0].channel_gates, 0.5)
    with torch.no_grad():
        model[3].channel_gates.qz_logits.copy_(torch.tensor([10.0, -10, 10, 10, -10, 10]))
    model[1].running_mean.uniform_(-1, 1)
    model[1].running_var.uniform_(0.5, 2)
    small = export(model)
    assert_plain(small)
    assert small[0].out_channels == int((model[0].channel_gates.qz_logits > 0).sum())
    assert small[1].num_features == small[0].out_channels == small[3].in_channels
    assert small[7].in_features == small[3].out_channels * 9
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(small(x), model.eval()(x), atol=1e-5, rtol=1e-5)


def test_constant_channel_into_a_padded_conv_is_kept_unless_zero():
    torch.manual_seed(4)
    first = l0_gate(nn.Conv2d(2, 4, 3), "weight", dim=0)
    gate = first.parametrizations.weight[0].gate
    with torch.no_grad():
        gate.qz_logits.copy_(torch.tensor([10.0, -10.0, 10.0, -10.0]))
    model = nn.Sequential(first, nn.Sigmoid(), nn.Conv2d(4, 3, 3, padding=1))
    small = export(model)
    assert small[0].out_channels == 4  # a non-zero constant under zero padding cannot fold
    x = torch.randn(2, 2, 7, 7)
    torch.testing.assert_close(small(x), model.eval()(x), atol=1e-6, rtol=1e-5)


def test_sparse_mlp_and_depthwise_layers_export():
    torch.manual_seed(5)
    mlp = SparseMLP(input_dim=12, hidden_dim=16, output_dim=3)
    close_some(mlp.fc2.weight_gates, 0.9)
    small = export(mlp)
    x = torch.randn(4, 12)
    torch.testing.assert_close(small(x), mlp.eval()(x), atol=1e-6, rtol=1e-5)
    depthwise = nn.Sequential(L0DepthwiseConv2d(3, 3, padding=1), nn.ReLU())
    close_some(depthwise[0].channel_gates, 0.5)
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(export(depthwise)(x), depthwise.eval()(x))


def test_export_leaves_the_model_untouched_and_returns_eval_mode():
    model = nn.Sequential(L0Linear(4, 4), nn.ReLU(), L0Linear(4, 2, structure="input"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    small = export(model)
    assert model.training and not small.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_bad_model():
    with pytest.raises(TypeError, match="`model` must be an nn.Sequential, a SparseMLP or a layer"):
        export("model")


def test_export_refuses_gates_hidden_in_a_block_it_cannot_follow():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = L0Linear(4, 4)

        def forward(self, x):
            return x + self.fc(x)

    with pytest.raises(TypeError, match="the Residual at position 1 holds the gated module 'fc'"):
        export(nn.Sequential(L0Linear(4, 4), Residual()))


def test_every_unit_closed_before_a_batch_norm_still_exports_a_model_that_runs():
    model = nn.Sequential(L0Linear(4, 6, structure="output"), nn.BatchNorm1d(6), nn.ReLU(),
                          L0Linear(6, 2))
    with torch.no_grad():
        model[0].output_gates.qz_logits.fill_(-10.0)
        model[1].running_mean.uniform_(-1, 1)
    model.eval()
    small = export(model)
    x = torch.randn(5, 4)
    assert small[0].out_features == 1  # one unit kept: a layer with none cannot run
    assert torch.allclose(small(x), model(x), atol=1e-6)
