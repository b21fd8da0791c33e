"""Gated networks under DistributedDataParallel (gloo, 2 processes spawned by the test).

What must hold: the gate logits' gradients are averaged over the ranks like any parameter's;
each rank's gate noise is its own (seeded, independent); the budget controller sees the same
count on every rank; ``export(ddp.module)`` gives the same small network everywhere; the same
with the gates fused (``fuse_gates``: one sample per step, the penalty from it).
"""

from __future__ import annotations

import datetime
import gc
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from _ranks import spawn_ranks
from torch import nn

from l0 import L0Linear, SparsityController, compute_l0_penalty, export, fuse_gates

TIMEOUT = 120
STEPS = 40


def build(rank: int, one_generator: bool = False) -> nn.Sequential:
    """The two-layer gated net of ``rank``: a seeded generator per gate layer, or one for both
    (fused gates then draw all their noise at once and give the penalty from that draw)."""
    torch.manual_seed(0)  # the same initial weights (DDP would broadcast rank 0's anyway)
    noise = [torch.Generator().manual_seed(1000 * (rank + 1) + i) for i in range(2)]
    if one_generator:
        noise[1] = noise[0]
    return nn.Sequential(L0Linear(64, 32, structure="input", generator=noise[0]), nn.ReLU(),
                         L0Linear(32, 10, structure="input", generator=noise[1]))


def expected_open(model: nn.Module) -> torch.Tensor:
    return sum(m.input_gates.get_active_prob().sum() for m in (model[0], model[2]))


def _worker(rank: int, world: int, port: int, folder: str) -> None:
    import torch.distributed as dist
    from sklearn.datasets import load_digits
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=60))
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32)[rank::world]  # each rank its own shard
    y = torch.tensor(y)[rank::world]
    model = build(rank)
    ddp = DDP(model)
    gates = [model[0].input_gates, model[2].input_gates]
    out: dict = {}

    # each rank's noise: its first draw
    out["noise"] = gates[0].sample().detach().tolist()[:8]

    # 1. the averaged gradient of the gate logits
    out["grad_gap"], out["grad_size"] = _gate_gradient_gap(ddp, gates, X, y, world)

    # 3. training under a budget: the controller's count on every rank
    total = sum(g.qz_logits.numel() for g in gates)
    controller = SparsityController(0.5 * total, total, lr=5.0, rho=1000.0, start=total,
                                    ramp=STEPS // 2)
    optimizer = torch.optim.Adam(ddp.parameters(), lr=5e-3)
    counts = []
    for step in range(STEPS):
        batch = slice((step * 64) % (len(X) - 64), (step * 64) % (len(X) - 64) + 64)
        expected = expected_open(model)
        loss = nn.functional.cross_entropy(ddp(X[batch]), y[batch]) + controller.penalty(expected)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        controller.step(expected_open(model).detach())
        counts.append(float(expected_open(model)))
    out["counts"] = counts
    out["multiplier"] = controller.multiplier
    out["logits"] = torch.cat([g.qz_logits.detach().flatten() for g in gates]).tolist()
    small = export(ddp.module)
    probe = torch.linspace(0, 1, 64 * 3).reshape(3, 64)
    out["export"] = small(probe).tolist()
    out["export_matches"] = bool(torch.allclose(small(probe), ddp.module.eval()(probe),
                                                atol=1e-5))
    out["penalty_finite"] = bool(torch.isfinite(compute_l0_penalty(ddp.module)))

    # 4. fused gates (one sample per step for the model) under DDP: the same averaging, and
    # training with the fused penalty keeps every rank's logits identical
    fused_model = build(rank, one_generator=True)
    fuse_gates(fused_model)
    fused = DDP(fused_model)
    fused_gates = [fused_model[0].input_gates, fused_model[2].input_gates]
    out["fused_grad_gap"], out["fused_grad_size"] = _gate_gradient_gap(fused, fused_gates, X, y,
                                                                       world)
    optimizer = torch.optim.Adam(fused.parameters(), lr=5e-3)
    for _ in range(5):
        loss = nn.functional.cross_entropy(fused(X[:64]), y[:64])
        penalty = compute_l0_penalty(fused)
        out.setdefault("fused_penalty_is_sampled", []).append(
            penalty is fused_model[0].input_gates._fused_by._draw.penalty)
        optimizer.zero_grad()
        (loss + 1e-3 * penalty).backward()
        optimizer.step()
    out["fused_logits"] = torch.cat([g.qz_logits.detach().flatten() for g in fused_gates]).tolist()
    Path(folder, f"rank{rank}.json").write_text(json.dumps(out))
    # DDP's reducers must go before the process group, and the gloo threads must not be torn
    # down by the interpreter's exit: torch can then abort ("terminate called without an
    # active exception") after every result is written, failing the rank's exit code.
    del ddp, fused
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
    os._exit(0)


def _gate_gradient_gap(ddp, gates, X, y, world: int) -> tuple[float, float]:
    """Local gradients of the gate logits (no_sync) with the same noise as the synced step,
    averaged by hand, against what DDP leaves after backward: (largest gap, largest gradient)."""
    import torch.distributed as dist

    states = [g.generator.get_state() for g in gates]
    with ddp.no_sync():
        nn.functional.cross_entropy(ddp(X[:64]), y[:64]).backward()
    local = torch.cat([g.qz_logits.grad.flatten() for g in gates])
    ddp.zero_grad()
    for g, s in zip(gates, states, strict=True):
        g.generator.set_state(s)
    nn.functional.cross_entropy(ddp(X[:64]), y[:64]).backward()
    synced = torch.cat([g.qz_logits.grad.flatten() for g in gates])
    everyone = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(everyone, local)
    ddp.zero_grad()
    return float((synced - torch.stack(everyone).mean(0)).abs().max()), float(synced.abs().max())


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    spawn_ranks(_worker, 2, str(folder), timeout=TIMEOUT)
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.parametrize("kind", ["", "fused_"])
def test_gate_logit_gradients_are_averaged_like_any_parameter(ranks, kind):
    for rank in ranks:
        assert rank[f"{kind}grad_size"] > 1e-6
        assert rank[f"{kind}grad_gap"] <= 1e-6 * rank[f"{kind}grad_size"]


def test_fused_gates_train_alike_on_every_rank_with_the_sampled_penalty(ranks):
    assert ranks[0]["fused_logits"] == ranks[1]["fused_logits"]
    assert all(ranks[0]["fused_penalty_is_sampled"])


def test_each_rank_draws_its_own_seeded_gate_noise(ranks):
    assert ranks[0]["noise"] != ranks[1]["noise"]
    again = build(0)[0].input_gates.sample().detach().tolist()[:8]
    np.testing.assert_allclose(again, ranks[0]["noise"], rtol=1e-6)  # seeded: reproducible


def test_the_controller_and_the_gates_agree_on_every_rank(ranks):
    assert ranks[0]["counts"] == ranks[1]["counts"]
    assert ranks[0]["multiplier"] == ranks[1]["multiplier"]
    assert ranks[0]["logits"] == ranks[1]["logits"]
    assert ranks[0]["counts"][-1] < ranks[0]["counts"][0]  # the budget ramp pulled it down


def test_export_of_the_ddp_module_is_the_same_small_network_everywhere(ranks):
    assert ranks[0]["export"] == ranks[1]["export"]
    assert ranks[0]["export_matches"] and ranks[1]["export_matches"]
    assert ranks[0]["penalty_finite"]
