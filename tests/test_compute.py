"""ComputeCost: the expected MACs/parameters after export, against a Monte Carlo of exports."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from l0 import L0Conv2d, L0Linear, export, l0_gate, layer_costs
from l0.nn.compute import ComputeCost


def gated(model: nn.Module) -> list:
    return [m for m in model.modules() if hasattr(m, "qz_logits")]


def conv_net() -> nn.Sequential:
    return nn.Sequential(
        L0Conv2d(1, 12, 3, structured=True), nn.ReLU(), nn.MaxPool2d(2),
        L0Conv2d(12, 16, 2, structured=True), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(),
        L0Linear(16 * 2 * 2, 20, structure="input"), nn.ReLU(),
        L0Linear(20, 10, structure="output"))


def mixed_mlp() -> nn.Sequential:
    plain = nn.Linear(24, 10)
    l0_gate(plain, "weight", dim=1)  # input units of the last layer, by parametrisation
    return nn.Sequential(L0Linear(12, 20, structure="weight"), nn.Tanh(),
                         L0Linear(20, 24, structure="output"), nn.ReLU(), plain)


@pytest.mark.parametrize("make, example", [(conv_net, torch.zeros(2, 1, 8, 8)),
                                           (mixed_mlp, torch.zeros(2, 12))])
def test_expected_cost_is_the_mean_cost_of_exports_under_sampled_gates(make, example):
    torch.manual_seed(0)
    model = make()
    gates = gated(model)
    with torch.no_grad():
        for g in gates:
            g.qz_logits.uniform_(-1.0, 3.0)  # open probabilities from about 0.3 to 0.95
    cost = ComputeCost(model, example)
    expected = (float(cost.expected_macs().detach()), float(cost.expected_params().detach()))
    probs = [g.get_active_prob().detach().clone() for g in gates]
    rng = torch.Generator().manual_seed(1)
    samples = []
    for _ in range(300):  # each gate open with its probability, independently; then export
        with torch.no_grad():
            for g, p in zip(gates, probs, strict=True):
                g.qz_logits.copy_(torch.where(torch.rand(p.shape, generator=rng) < p, 20.0, -20.0))
        total = layer_costs(export(model), example)["total"]
        samples.append((total["macs_total"], total["params_total"]))
    samples = np.array(samples, dtype=float)
    mean, error = samples.mean(0), samples.std(0) / np.sqrt(len(samples))
    assert np.all(np.abs(np.array(expected) - mean) <= 4 * error + 1e-9), (expected, mean, error)


def test_dense_counts_and_all_open_gates_match_layer_costs():
    model = conv_net()
    example = torch.zeros(1, 1, 8, 8)
    dense = layer_costs(model, example)["total"]
    cost = ComputeCost(model, example)
    assert cost.dense_macs == dense["macs_total"] and cost.dense_params == dense["params_total"]
    with torch.no_grad():
        for g in gated(model):
            g.qz_logits.fill_(20.0)
    assert float(cost.expected_macs().detach()) == pytest.approx(cost.dense_macs, rel=1e-5)
    assert float(cost.expected_params().detach()) == pytest.approx(cost.dense_params, rel=1e-5)


def test_the_expected_macs_are_differentiable_in_every_gate():
    model = conv_net()
    cost = ComputeCost(model, torch.zeros(1, 1, 8, 8))
    cost.expected_macs().backward()
    for g in gated(model):
        assert g.qz_logits.grad is not None and torch.isfinite(g.qz_logits.grad).all()
        assert (g.qz_logits.grad > 0).any()  # opening a gate costs compute
    with torch.no_grad():  # saturated gates: no NaN from log(1 - p) at p = 1
        for g in gated(model):
            g.qz_logits.fill_(50.0)
            g.qz_logits.grad = None
    cost.expected_macs().backward()
    assert all(torch.isfinite(g.qz_logits.grad).all() for g in gated(model))


def test_closing_a_producer_unit_removes_the_consumer_s_input_too():
    model = nn.Sequential(L0Linear(4, 6, structure="output"), nn.ReLU(),
                          L0Linear(6, 3, structure="input"))
    with torch.no_grad():
        model[0].output_gates.qz_logits.fill_(20.0)
        model[2].input_gates.qz_logits.fill_(20.0)
        model[0].output_gates.qz_logits[:2] = -20.0  # 2 of 6 hidden units never written
    cost = ComputeCost(model, torch.zeros(1, 4))
    assert float(cost.expected_macs().detach()) == pytest.approx(4 * 4 + 4 * 3, abs=1e-3)


@pytest.mark.parametrize(
    "model, example, error, message",
    [
        ("not a model", torch.zeros(1, 4), TypeError, "`model` must be a torch.nn.Module"),
        (nn.Sequential(nn.Linear(4, 4), nn.LSTM(4, 4)), torch.zeros(1, 4), TypeError,
         "got LSTM at position 1"),
        (nn.Sequential(nn.Conv2d(4, 4, 3, groups=2)), torch.zeros(1, 4, 5, 5), TypeError,
         "grouped convolution at position 0"),
        (nn.Sequential(nn.ReLU()), torch.zeros(1, 4), ValueError,
         "at least one linear or convolution layer"),
    ],
)
def test_unsupported_models_are_named(model, example, error, message):
    with pytest.raises(error, match=message):
        ComputeCost(model, example)


def test_a_budget_in_macs_is_held_by_the_sparsity_controller():
    """Digits as 8×8 images, a channel- and unit-gated conv net, 30 % of its dense MACs: the
    expected MACs end within 2 % of the budget, the exported net under it and still accurate."""
    from sklearn.datasets import load_digits

    from l0 import SparsityController

    torch.manual_seed(0)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(y)
    kw = {"init_sparsity": 0.1, "temperature": 2 / 3}
    model = nn.Sequential(
        L0Conv2d(1, 8, 3, structured=True, **kw), nn.ReLU(),
        L0Conv2d(8, 16, 3, structured=True, **kw), nn.ReLU(), nn.Flatten(),
        L0Linear(16 * 4 * 4, 32, structure="input", **kw), nn.ReLU(),
        L0Linear(32, 10, structure="input", **kw))
    cost = ComputeCost(model, X[:1])
    steps, budget = 1000, 0.3 * cost.dense_macs
    controller = SparsityController(budget, cost.dense_macs, lr=5.0, rho=1000.0,
                                    start=cost.dense_macs, ramp=steps // 2)
    gates = [p for n, p in model.named_parameters() if "gates" in n]
    weights = [p for n, p in model.named_parameters() if "gates" not in n]
    optimizer = torch.optim.Adam([{"params": weights}, {"params": gates, "lr": 2e-2}], lr=3e-3)
    batches = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = torch.randint(0, len(X), (128,), generator=batches)
        loss = nn.functional.cross_entropy(model(X[batch]), y[batch])
        loss = loss + controller.penalty(cost.expected_macs())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        controller.step(cost.expected_macs().detach())
    expected = float(cost.expected_macs().detach())
    assert abs(expected / budget - 1.0) <= 0.02
    small = export(model)
    assert layer_costs(small, X[:1])["total"]["macs_total"] <= budget
    assert float((small(X).argmax(1) == y).float().mean()) >= 0.9


@pytest.mark.parametrize("case", ["random", "all open", "all closed", "bias fold"])
def test_test_time_macs_and_params_are_those_of_the_exported_model(case):
    from l0 import export

    torch.manual_seed(3)
    model = nn.Sequential(L0Conv2d(1, 6, 3, structured=True), nn.ReLU(), nn.Flatten(),
                          L0Linear(6 * 6 * 6, 12, structure="input"), nn.ReLU(),
                          L0Linear(12, 5, structure="output"), nn.ReLU(),
                          L0Linear(5, 3, bias=case != "bias fold"))
    with torch.no_grad():
        for m in model:
            if hasattr(m, "gate"):
                logits = m.gate.qz_logits
                logits.copy_({"random": torch.randn(logits.shape) * 3,
                              "all open": torch.full(logits.shape, 20.0),
                              "all closed": torch.full(logits.shape, -20.0),
                              "bias fold": torch.full(logits.shape, 20.0)}[case])
        if case == "bias fold":  # output unit 0 of the third layer closes: a constant, folded
            model[5].output_gates.qz_logits[0] = -20.0
            model[5].bias[0] = 1.5
    x = torch.randn(2, 1, 8, 8)
    cost = ComputeCost(model, x)
    small = export(model)
    plain = ComputeCost(small, x)  # no gates left: its dense counts are the exported model's
    assert cost.test_time_macs() == plain.dense_macs
    assert cost.test_time_params() == plain.dense_params == sum(p.numel() for p in small.parameters())
    if case == "random":
        assert cost.test_time_macs() < cost.dense_macs
