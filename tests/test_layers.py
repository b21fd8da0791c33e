import io

import pytest
import torch
from torch import nn

from l0 import L0Conv2d, L0DepthwiseConv2d, L0Linear, SparseMLP, prune_model
from l0 import functional as F


def _set_logits(gate, values):
    with torch.no_grad():
        gate.qz_logits.copy_(torch.as_tensor(values, dtype=gate.qz_logits.dtype).expand_as(gate.qz_logits))


@pytest.mark.parametrize("structure", ["weight", "input", "output"])
def test_all_open_linear_reproduces_nn_linear(structure):
    layer = L0Linear(6, 4, structure=structure, init_sparsity=0.0).eval()
    dense = nn.Linear(6, 4)
    dense.load_state_dict({"weight": layer.weight.detach(), "bias": layer.bias.detach()})
    x = torch.randn(5, 6)
    torch.testing.assert_close(layer(x), dense(x))


def test_all_open_conv_reproduces_nn_conv2d():
    for structured in (False, True):
        layer = L0Conv2d(3, 4, (3, 2), stride=2, padding=1, structured=structured,
                         init_sparsity=0.0).eval()
        dense = nn.Conv2d(3, 4, (3, 2), stride=2, padding=1)
        dense.load_state_dict({"weight": layer.weight.detach(), "bias": layer.bias.detach()})
        x = torch.randn(2, 3, 9, 8)
        torch.testing.assert_close(layer(x), dense(x))


def test_depthwise_all_open_reproduces_its_conv():
    layer = L0DepthwiseConv2d(3, 3, padding=1, init_sparsity=0.0).eval()
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(layer(x), layer.depthwise_conv(x))


def test_closed_output_channels_output_exact_zero_including_bias():
    conv = L0Conv2d(2, 3, 3, structured=True)
    dw = L0DepthwiseConv2d(3, 3)
    lin = L0Linear(4, 3, structure="output")
    for layer in (conv, dw, lin):
        with torch.no_grad():
            layer.bias.fill_(5.0)
        _set_logits(layer.gate, [10.0, -10.0, 10.0])
        layer.eval()
    assert conv(torch.randn(1, 2, 5, 5))[:, 1].abs().max() == 0
    assert dw(torch.randn(1, 3, 5, 5))[:, 1].abs().max() == 0
    assert lin(torch.randn(2, 4))[:, 1].abs().max() == 0


def test_input_gates_same_values_and_gradients_whether_or_not_the_input_needs_grad():
    # Without an input gradient the layer gates its weight columns instead of its inputs.
    layer = L0Linear(6, 4, structure="input", init_sparsity=0.3)
    x = torch.randn(5, 6)
    results = []
    for needs_grad in (False, True):
        layer.gate.generator = torch.Generator().manual_seed(3)
        layer.zero_grad()
        inp = x.clone().requires_grad_(needs_grad)
        out = layer(inp)
        (out.sin().sum()).backward()
        results.append((out.detach(), layer.weight.grad.clone(), layer.bias.grad.clone(),
                        layer.gate.qz_logits.grad.clone()))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)
    assert results[0][3].abs().sum() > 0


def test_closed_input_unit_ignores_that_input():
    layer = L0Linear(3, 2, structure="input")
    _set_logits(layer.gate, [10.0, -10.0, 10.0])
    layer.eval()
    x = torch.randn(4, 3)
    y = x.clone()
    y[:, 1] = 1e6
    torch.testing.assert_close(layer(x), layer(y))


def test_structured_penalty_counts_covered_parameters():
    lin = L0Linear(5, 3, structure="input")
    p = F.prob_nonzero(lin.gate.qz_logits, 0.5).sum()
    torch.testing.assert_close(lin.get_l0_penalty(), 3 * p)
    out = L0Linear(5, 3, structure="output")
    torch.testing.assert_close(out.get_l0_penalty(), 6 * F.prob_nonzero(out.gate.qz_logits, 0.5).sum())
    conv = L0Conv2d(2, 4, 3, structured=True)
    torch.testing.assert_close(conv.get_l0_penalty(),
                               (2 * 9 + 1) * F.prob_nonzero(conv.gate.qz_logits, 0.5).sum())
    weight = L0Linear(5, 3)
    torch.testing.assert_close(weight.get_l0_penalty(), F.prob_nonzero(weight.gate.qz_logits, 0.5).sum())


def test_0_6_attribute_names():
    assert L0Linear(2, 2).weight_gates.gate_size == (2, 2)
    assert L0Conv2d(2, 3, 3).weight_gates.gate_size == (3, 18)
    assert L0Conv2d(2, 3, 3, structured=True).channel_gates.gate_size == (3,)
    dw = L0DepthwiseConv2d(4, 3)
    assert dw.channel_gates.gate_size == (4,) and isinstance(dw.depthwise_conv, nn.Conv2d)
    assert set(SparseMLP(8, 4, 2).get_sparsity_stats()) == {"fc1", "fc2", "fc3"}


def test_gradients_reach_weights_bias_and_gates():
    for layer, x in [(L0Linear(4, 3, structure="output"), torch.randn(2, 4)),
                     (L0Conv2d(2, 3, 3, structured=True), torch.randn(1, 2, 5, 5)),
                     (L0DepthwiseConv2d(2, 3), torch.randn(1, 2, 5, 5))]:
        (layer(x).sum() + layer.get_l0_penalty()).backward()
        for p in layer.parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all()


def test_prune_model_works_on_every_layer_and_zeroes_closed_biases():
    model = nn.Sequential(L0Conv2d(1, 2, 3, structured=True), L0DepthwiseConv2d(2, 3),
                          L0Conv2d(2, 2, 1), nn.Flatten(), L0Linear(2, 2, structure="output"))
    for m in model:
        if hasattr(m, "gate"):
            _set_logits(m.gate, -10.0)
    prune_model(model)
    assert not model.training
    for m in model:
        if hasattr(m, "gate"):
            assert m.weight.abs().sum() == 0
            if m.bias is not None and m is not model[2]:
                assert m.bias.abs().sum() == 0
    assert model[2].bias is not None  # per-weight gates leave the bias alone


def test_sparse_mlp_losses():
    mlp = SparseMLP(8, 4, 2, use_l2=True)
    total = sum(m.get_l0_penalty() for m in (mlp.fc1, mlp.fc2, mlp.fc3))
    torch.testing.assert_close(mlp.get_l0_loss(), total)
    torch.testing.assert_close(mlp.get_l2_loss(), sum((m.weight ** 2).sum() for m in (mlp.fc1, mlp.fc2, mlp.fc3)))
    assert SparseMLP(8, 4, 2).get_l2_loss() == 0


def test_state_dict_and_torch_save_round_trip():
    model = SparseMLP(8, 4, 2, structure="input")
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    other = SparseMLP(8, 4, 2, structure="input")
    other.load_state_dict(torch.load(buffer))
    x = torch.randn(3, 8)
    torch.testing.assert_close(other.eval()(x), model.eval()(x))


@pytest.mark.parametrize(
    "factory,error,message",
    [
        (lambda: L0Linear(0, 2), ValueError, "`in_features` must be an int >= 1; got 0."),
        (lambda: L0Linear(2, 2, structure="row"), ValueError, "`structure` must be one of"),
        (lambda: L0Linear(2, 2, init_sparsity=1.2), ValueError, "`init_sparsity` must be a float in"),
        (lambda: L0Linear(2, 2, temperature=0), ValueError, "`temperature` must be a float > 0.0"),
        (lambda: L0Conv2d(2, 2, -1), ValueError, "`kernel_size` must be an int >= 1; got -1."),
        (lambda: L0DepthwiseConv2d(0, 3), ValueError, "`in_channels` must be an int >= 1; got 0."),
        (lambda: prune_model(L0Linear(2, 2), threshold=2), ValueError, "`threshold` must be a float in"),
    ],
)
def test_bad_arguments(factory, error, message):
    with pytest.raises(error) as info:
        factory()
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("make, message", [
    (lambda: L0Conv2d(3, 4, 3, stride=0), "`stride` must be an int >= 1; got 0"),
    (lambda: L0Conv2d(3, 4, 3, dilation=(1, 0)), "`dilation` must be an int >= 1; got 0"),
    (lambda: L0Conv2d(3, 4, 0), "`kernel_size` must be an int >= 1; got 0"),
    (lambda: L0Conv2d(3, 4, 3, padding=-1), "`padding` must be an int >= 0; got -1"),
    (lambda: L0DepthwiseConv2d(3, kernel_size=0), "`kernel_size` must be an int >= 1; got 0"),
    (lambda: L0DepthwiseConv2d(3, 3, stride=0), "`stride` must be an int >= 1; got 0"),
    (lambda: L0Linear(3, 2, device="cdu"), "`device` must be a torch device"),
    (lambda: L0Conv2d(3, 4, 3, device="cdu"), "`device` must be a torch device"),
])
def test_geometry_and_devices_are_checked_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_estimators_check_their_device_at_construction():
    from l0 import HardConcrete, SparseCalibrationWeights, SparseL0Linear

    for make in (lambda: SparseCalibrationWeights(3, device="cdu"),
                 lambda: SparseL0Linear(3, device="cdu"), lambda: HardConcrete(3, device="cdu")):
        with pytest.raises(ValueError, match="`device` must be a torch device such as 'cpu'"):
            make()
