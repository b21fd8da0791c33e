import pytest
import torch
from torch import nn

from l0 import (
    HardConcrete,
    L0Conv2d,
    L0Gate,
    L0Linear,
    PenaltyTracker,
    SampleGate,
    compute_l0_penalty,
    compute_l0l2_penalty,
    compute_l2_penalty,
    get_active_parameter_count,
    get_sparsity_stats,
    update_temperatures,
)
from l0.nn import _penalty_node
from l0.nn._penalty_node import expected_open


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = L0Linear(4, 3)
        self.conv = L0Conv2d(1, 2, 3, structured=True)
        self.row_gate = SampleGate(10, 5)
        self.free_gate = HardConcrete(7)
        self.plain = nn.Linear(3, 3)
        self.nested = nn.Sequential(L0Gate(4))


def test_l0_penalty_counts_every_gate_once_wherever_it_lives():
    model = Mixed()
    expected = (model.fc.get_l0_penalty() + model.conv.get_l0_penalty()
                + model.row_gate.get_penalty() + model.free_gate.get_penalty()
                + model.nested[0].get_penalty())
    torch.testing.assert_close(compute_l0_penalty(model), expected)
    model.shared = model.free_gate  # the same gate twice counts once
    torch.testing.assert_close(compute_l0_penalty(model), expected)


def test_l0_penalty_value_and_gradient_equal_the_closed_form_through_autograd():
    # The penalty is one autograd node with a written-out gradient; the oracle is the sum of
    # sigmoid(clamp(log_alpha) - beta*log(-gamma/zeta)) * cost in plain torch ops.
    torch.manual_seed(0)
    model = nn.ModuleDict({
        "a": HardConcrete(5, 3, temperature=0.4, stretch=0.2, cost=1.0),
        "b": HardConcrete(7, temperature=2 / 3, cost=12.0),
        "c": HardConcrete(4, temperature=0.9, stretch=0.05, cost=3.5, dtype=torch.float64),
    })
    with torch.no_grad():
        for gate in model.values():
            gate.qz_logits.copy_(torch.randn(gate.gate_size) * 4)
        model["b"].qz_logits[:3] = torch.tensor([31.0, -45.0, 8.0])  # beyond/inside the clamp
    penalty = compute_l0_penalty(model)
    penalty.backward()
    ours = [g.qz_logits.grad.clone() for g in model.values()]
    oracle = 0
    for gate in model.values():
        gate.qz_logits.grad = None
        shift = gate.temperature * torch.log(torch.tensor(gate.stretch / (1 + gate.stretch)))
        logits = gate.qz_logits.clamp(-30.0, 30.0)
        oracle = oracle + torch.sigmoid(logits - shift.to(logits.dtype)).sum() * gate.cost
    oracle.backward()
    torch.testing.assert_close(penalty, oracle.to(penalty.dtype))
    for gate, grad in zip(model.values(), ours):
        assert grad.dtype == gate.qz_logits.dtype
        torch.testing.assert_close(grad, gate.qz_logits.grad)
    assert ours[1][0] == 0 and ours[1][1] == 0 and ours[1][2] > 0
    logits = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda la: expected_open([(la, 0.3, 2.0), (la * 2, -0.1, 1.0)]),
                                    (logits,))


def test_l0_penalty_trains_after_being_evaluated_in_inference_mode():
    # the penalty caches per-gate coefficient vectors; one made under inference_mode must not
    # poison a later training step
    layer = L0Linear(5, 3, structure="input", temperature=0.37)
    with torch.inference_mode():
        first = compute_l0_penalty(layer)
    penalty = compute_l0_penalty(layer)
    penalty.backward()
    torch.testing.assert_close(penalty.detach(), first.clone())
    assert layer.gate.qz_logits.grad.abs().sum() > 0


def test_l2_penalty_squares_weights_never_gate_logits():
    model = Mixed()
    expected = sum((m.weight ** 2).sum() for m in (model.fc, model.conv, model.plain))
    torch.testing.assert_close(compute_l2_penalty(model), expected)


def test_l0l2_combination_and_validation():
    model = Mixed()
    torch.testing.assert_close(compute_l0l2_penalty(model, 0.1, 0.01),
                               0.1 * compute_l0_penalty(model) + 0.01 * compute_l2_penalty(model))
    with pytest.raises(ValueError, match="`l0_lambda` must be a float >= 0.0; got -1.0."):
        compute_l0l2_penalty(model, l0_lambda=-1)
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module; got list."):
        compute_l0_penalty([])


def test_update_temperatures_reaches_every_gate():
    model = Mixed()
    assert update_temperatures(model, 0.123) == 5
    temps = {m.temperature for m in model.modules() if isinstance(m, HardConcrete)}
    assert temps == {0.123}
    with pytest.raises(ValueError):
        update_temperatures(model, 0.0)


def test_sparsity_stats_and_active_parameter_count():
    model = Mixed()
    with torch.no_grad():
        model.conv.channel_gates.qz_logits.copy_(torch.tensor([10.0, -10.0]))
        model.fc.weight_gates.qz_logits.fill_(10.0)
    stats = get_sparsity_stats(model)
    assert stats["conv"]["total_params"] == 2 * 10
    assert stats["conv"]["test_time_active"] == 10
    assert stats["fc"]["total_params"] == 12
    assert set(stats) >= {"fc", "conv", "row_gate.gates", "free_gate", "nested.0.gates"}
    assert stats["free_gate"]["total_params"] == 7
    # gated parameters only (0.6.x): fc's 12 open weights, not its 3 ungated biases; conv: one
    # channel open (9 weights + its gated bias); plain layers never count
    assert get_active_parameter_count(model) == 12 + 10
    plain = nn.Sequential(model, nn.Linear(4, 4))
    assert get_active_parameter_count(plain) == 12 + 10


def test_penalty_tracker(tmp_path):
    tracker = PenaltyTracker()
    for v in [1.0, torch.tensor(3.0)]:
        tracker.log("loss", v)
    tracker.log("l0", 5)
    assert tracker.get_stats("loss") == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0, "last": 3.0}
    assert tracker.get_stats("missing") == {}
    path = tmp_path / "h.csv"
    tracker.save_to_csv(str(path))
    assert path.read_text().splitlines()[0] == "loss,l0"
    fig = tracker.plot_history(save_path=str(tmp_path / "h.png"))
    assert len(fig.axes) == 2
    tracker.clear()
    assert tracker.get_history("loss") == []


def test_l0_penalty_is_the_same_with_one_node_per_gate_tensor(monkeypatch):
    # above _penalty_node.VECTOR_GATES gates each tensor gets its own node instead of shared vectors
    torch.manual_seed(1)
    model = nn.Sequential(L0Linear(6, 5, structure="input"), L0Linear(5, 4),
                          L0Conv2d(2, 3, 3, structured=True))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 3)
    grads = []
    for threshold in (_penalty_node.VECTOR_GATES, 4):
        monkeypatch.setattr(_penalty_node, "VECTOR_GATES", threshold)
        model.zero_grad()
        value = compute_l0_penalty(model)
        value.backward()
        grads.append((value.detach(), [m.gate.qz_logits.grad.clone() for m in model]))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b)
