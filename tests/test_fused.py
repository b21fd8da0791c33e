"""fuse_gates: every gate of a model sampled as one tensor — the same training as without it."""

import copy

import pytest
import torch
from torch import nn

import l0
from l0 import (
    HardConcrete,
    L0Conv2d,
    L0Linear,
    SparsityController,
    compute_l0_penalty,
    export,
    fuse_gates,
    l0_gate,
)
from l0.nn._penalty_node import expected_open
from l0.nn.schedules import _lagrangian


def _mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        L0Linear(12, 16, structure="input", temperature=2 / 3, init_sparsity=0.2), nn.ReLU(),
        L0Linear(16, 8, structure="output", init_sparsity=0.3), nn.ReLU(),
        L0Linear(8, 3, structure="weight"),
    )


def _conv(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        L0Conv2d(1, 4, 3, padding=1, structured=True), nn.ReLU(), nn.Flatten(),
        L0Linear(4 * 6 * 6, 5, structure="input"),
    )


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 25,
           fused: bool = False) -> list[float]:
    """Adam steps with a SparsityController on compute_l0_penalty; returns the losses."""
    if fused:
        fuse_gates(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    n = sum(p.numel() for name, p in model.named_parameters() if "gates" not in name)
    ctl = SparsityController(0.4 * n, n, lr=5.0, rho=100.0)
    losses = []
    torch.manual_seed(123)  # the gates draw from torch's default generator
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        expected = compute_l0_penalty(model)
        loss = loss + ctl.penalty(expected)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ctl.step(expected.detach())
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("make, shape", [(_mlp, (32, 12)), (_conv, (16, 1, 6, 6))])
def test_a_fused_model_trains_as_the_unfused_one(make, shape, monkeypatch):
    # the same noise reaches the same gates; only the last bit may differ (torch's vectorised
    # and scalar elementwise kernels round differently, and a gate's place in the concatenation
    # decides which one it meets)
    torch.manual_seed(5)
    x, y = torch.randn(*shape), torch.randint(3, (shape[0],))
    plain, fused = make(), make()
    losses = _train(plain, x, y)

    def no_sampling_per_gate(self, generator=None):
        raise AssertionError("a fused gate sampled on its own")

    monkeypatch.setattr(HardConcrete, "sample", no_sampling_per_gate)
    torch.testing.assert_close(_train(fused, x, y, fused=True), losses, rtol=1e-5, atol=0)
    monkeypatch.undo()
    assert plain.state_dict().keys() == fused.state_dict().keys()
    for (name, a), (_, b) in zip(plain.state_dict().items(), fused.state_dict().items()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
    assert l0.get_active_parameter_count(fused) == l0.get_active_parameter_count(plain)


def test_gates_with_their_own_generators_draw_as_without_fusing():
    def make():
        torch.manual_seed(0)
        shared = torch.Generator().manual_seed(7)
        own = torch.Generator().manual_seed(8)
        return nn.Sequential(L0Linear(6, 5, structure="input", generator=shared),
                             L0Linear(5, 4, structure="output", generator=own),
                             L0Linear(4, 2, structure="input", generator=shared))
    x = torch.randn(10, 6)
    plain, fused = make().train(), make().train()
    handle = fuse_gates(fused)
    assert len(handle._current_plan().groups) == 2  # one draw per generator
    for _ in range(3):
        torch.testing.assert_close(fused(x), plain(x), rtol=1e-6, atol=1e-6)


def test_gates_with_different_settings_are_sampled_as_one_tensor():
    def make():
        torch.manual_seed(0)
        return nn.Sequential(L0Linear(6, 5, structure="input", temperature=0.3),
                             L0Linear(5, 4, structure="input", temperature=0.9, stretch=0.2))
    x = torch.randn(10, 6)
    plain, fused = make().train(), make().train()
    fuse_gates(fused)
    torch.manual_seed(1)
    out = plain(x)
    out.sum().backward()
    torch.manual_seed(1)
    out_fused = fused(x)
    out_fused.sum().backward()
    torch.testing.assert_close(out_fused, out, rtol=1e-6, atol=1e-6)
    for a, b in zip(plain.parameters(), fused.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6)


def test_the_penalty_of_a_fused_model_is_the_unfused_one_and_is_recomputed_when_stale():
    model = _mlp()
    handle = fuse_gates(model)
    x = torch.randn(4, 12)
    model(x)
    cached = compute_l0_penalty(model)
    assert compute_l0_penalty(model) is cached  # an output of this step's sample node
    plain = F_expected(model)
    assert torch.equal(cached, plain)
    logits = [g.qz_logits for g in _gates(model)]
    for a, b in zip(torch.autograd.grad(cached, logits), torch.autograd.grad(plain, logits)):
        assert torch.equal(a, b)
    # the backward pass freed the node: the next call computes the penalty anew
    assert handle._sampled_penalty() is None
    assert torch.equal(compute_l0_penalty(model), plain)
    model(x)
    assert handle._sampled_penalty() is not None
    with torch.no_grad():  # a changed logit (an optimiser step): the sample's penalty is stale
        model[0].gate.qz_logits.add_(0.5)
    assert handle._sampled_penalty() is None
    assert torch.equal(compute_l0_penalty(model), F_expected(model))
    model(x)
    model[2].gate.temperature = 0.3  # a changed setting
    assert handle._sampled_penalty() is None
    assert torch.equal(compute_l0_penalty(model), F_expected(model))
    with torch.no_grad():  # drawn without gradients, wanted with them
        model(x)
    penalty = compute_l0_penalty(model)
    assert penalty.requires_grad and handle._sampled_penalty() is None
    model(x)  # a part of the model: its own penalty
    assert compute_l0_penalty(model[0]).item() == pytest.approx(model[0].gate.get_penalty().item())


def test_the_penalty_and_the_loss_backpropagate_together_through_one_node():
    torch.manual_seed(0)
    x, y = torch.randn(6, 12), torch.randint(3, (6,))
    grads = {}
    for fused in (False, True):
        model = _mlp()
        if fused:
            fuse_gates(model)
        torch.manual_seed(4)
        loss = nn.functional.cross_entropy(model(x), y)
        (loss + 1e-2 * compute_l0_penalty(model)).backward()
        grads[fused] = [p.grad.clone() for p in model.parameters()]
    for a, b in zip(grads[False], grads[True]):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)
    # backpropagated apart, the penalty needs the graph kept (as for any shared node)
    model = _mlp()
    fuse_gates(model)
    loss = nn.functional.cross_entropy(model(x), y)
    penalty = compute_l0_penalty(model)
    loss.backward(retain_graph=True)
    penalty.backward()
    assert all(g.qz_logits.grad is not None for g in _gates(model))
    loss = nn.functional.cross_entropy(model(x), y)
    penalty = compute_l0_penalty(model)
    loss.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        penalty.backward()


def _gates(model):
    return [m for m in model.modules() if isinstance(m, HardConcrete)]


def F_expected(model):  # noqa: N802 - the generic path, without the fused sample
    return expected_open([g._penalty_term() for g in _gates(model)])


def test_one_sample_per_forward_pass_and_fresh_samples_outside_it():
    torch.manual_seed(0)
    layer = L0Linear(5, 5, structure="input", init_sparsity=0.5)
    seen = []

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            seen.append(self.layer.gate())
            seen.append(self.layer.gate())
            return self.layer(self.layer(x))

    model = Twice().train()
    fuse_gates(model)
    model(torch.randn(2, 5))
    assert seen[0] is seen[1]  # one draw for the whole forward pass
    assert layer.gate._fused_sample is None  # cleared afterwards ...
    alone = layer.gate()
    assert not torch.equal(alone, seen[0])  # ... so a call outside it draws afresh
    model(torch.randn(2, 5))
    assert not torch.equal(seen[2], seen[0])  # and every forward pass draws anew


def test_a_forward_pass_that_raises_leaves_no_sample_behind():
    model = _mlp()
    fuse_gates(model)
    with pytest.raises(RuntimeError):
        model(torch.randn(2, 7))  # wrong width
    assert all(g._fused_sample is None for g in _gates(model))


def test_eval_mode_and_eval_mode_gates_keep_their_test_time_values():
    plain, fused = _mlp(), _mlp()
    fuse_gates(fused)
    x = torch.randn(3, 12)
    assert torch.equal(plain.eval()(x), fused.eval()(x))
    fused.train()
    fused[2].eval()  # this gate only: deterministic, the others sampled
    handle = fused[0].gate._fused_by
    assert [g for group in handle._current_plan().groups for g in group.gates] == [
        fused[0].gate, fused[4].gate]
    fused(x)
    assert handle._sampled_penalty() is None  # the draw did not cover every gate
    torch.testing.assert_close(compute_l0_penalty(fused), F_expected(fused))


def test_parametrized_and_bare_gates_are_fused_too():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    l0_gate(model[0], "weight", dim=1)
    model.add_module("extra", HardConcrete(3))
    handle = fuse_gates(model)
    assert len(handle.gates) == 2
    model.train()(torch.randn(2, 4))
    (loss := compute_l0_penalty(model)).backward()
    assert model.extra.qz_logits.grad is not None and loss.item() > 0


def test_remove_restores_the_unfused_behaviour_and_refusals():
    model = _mlp()
    handle = fuse_gates(model)
    with pytest.raises(ValueError, match="already fused"):
        fuse_gates(model)
    with pytest.raises(ValueError, match="already fused"):
        fuse_gates(model[0])
    handle.remove()
    assert not model._forward_pre_hooks and not model._forward_hooks
    assert all(g._fused_by is None for g in _gates(model))
    fuse_gates(model).remove()  # fusing again works
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module; got list"):
        fuse_gates([model])
    with pytest.raises(ValueError, match="`model` must hold at least one HardConcrete gate"):
        fuse_gates(nn.Linear(2, 2))


def test_a_copy_of_a_fused_model_is_fused_on_its_own_and_export_works():
    model = _mlp()
    handle = fuse_gates(model)
    twin = copy.deepcopy(model)
    twin_handle = twin[0].gate._fused_by
    assert twin_handle is not handle and twin_handle.gates[0] is twin[0].gate
    torch.manual_seed(3)
    out_twin = twin(torch.ones(2, 12))
    torch.manual_seed(3)
    assert torch.equal(model(torch.ones(2, 12)), out_twin)
    assert all(g._fused_sample is None for g in _gates(model))
    twin_handle.remove()
    assert model._forward_pre_hooks and not twin._forward_pre_hooks
    small = export(model)
    assert not any(isinstance(m, HardConcrete) for m in small.modules())
    x = torch.randn(5, 12)
    torch.testing.assert_close(small(x), model.eval()(x))


@pytest.mark.parametrize("mode", ["equal", "at_most"])
def test_the_controller_term_by_numbers_equals_the_term_by_tensors(mode):
    for value in (10.0, 250.0, 700.0):
        a = torch.tensor(value, requires_grad=True)
        b = torch.tensor(value, requires_grad=True)
        by_numbers, count = _lagrangian(a, 300.0, 1000.0, 0.2, 30.0, mode == "at_most", read=True)
        by_tensors, none = _lagrangian(b, 300.0, 1000.0, 0.2, 30.0, mode == "at_most", read=False)
        assert count == value and none is None
        by_numbers.backward()
        by_tensors.backward()
        torch.testing.assert_close(by_numbers, by_tensors)
        torch.testing.assert_close(a.grad, b.grad)


def test_a_model_moved_to_another_dtype_after_fusing_samples_in_it():
    model = _mlp()
    handle = fuse_gates(model)
    model(torch.randn(2, 12))
    model.to(torch.float64)  # parameters change in place: the plan must notice
    out = model(torch.randn(2, 12, dtype=torch.float64))
    assert out.dtype == torch.float64
    assert handle._current_plan().groups[0].dtype == torch.float64
    penalty = handle.penalty()
    assert penalty.dtype == torch.float64 and penalty is compute_l0_penalty(model)
    torch.testing.assert_close(penalty, F_expected(model))


def test_the_controller_refuses_a_count_that_is_not_a_finite_count_in_its_penalty():
    ctl = SparsityController(10, 100)
    with pytest.raises(ValueError, match="`expected` must be a finite count >= 0; got nan"):
        ctl.penalty(torch.tensor(float("nan"), requires_grad=True))
