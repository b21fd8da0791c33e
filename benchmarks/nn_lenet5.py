"""LeNet-5-Caffe on MNIST: dense, L0 channel/unit gates under a MAC budget, structured magnitude.

LeNet-5-Caffe (Louizos et al. 2017, table 2): conv 5×5 (1→20) → max-pool 2 → conv 5×5 (20→50)
→ max-pool 2 → flatten (800) → linear 800→500 → ReLU → linear 500→10, with ReLU after each
convolution. Runs, each with Adam (lr 1e-3, linearly down to 1e-4 over the last half of the
steps), batch 100, the same epochs:

* ``dense``       plain layers;
* ``L0``          output-channel gates on both convolutions (``L0Conv2d(structured=True)``) and
                  input-unit gates on both linear layers; the *expected MACs after export*
                  (:class:`l0.ComputeCost`) held at ``--budget`` × the dense MACs by
                  ``SparsityController`` (budget ramped down over the first half); evaluated
                  after ``l0.export``, checked to compute what the gated model does;
* ``magnitude``   the dense model pruned to the *architecture* L0 kept (whole channels and units
                  by the L2 norm of their filters / rows, ``torch.nn.utils.prune``), exported,
                  then fine-tuned for ``--finetune`` epochs.

Table: test error, kept architecture (conv1-conv2-fc1 inputs-fc1 outputs), parameters, MACs per
image (dense / expected under the gates / after export), median seconds per epoch, and the
training step's cost relative to dense, timed interleaved (blocks of steps of each model in
turn). ``--dataset digits`` runs the same on scikit-learn's 8×8 digits (padded convolutions) in
seconds; the tests run it.

    python benchmarks/nn_lenet5.py [--epochs 20] [--budget 0.15] [--threads 2] [--dataset mnist|digits]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nn_mnist import decay_schedule, load_digits_split, load_mnist  # noqa: E402

from l0 import ComputeCost, L0Conv2d, L0Linear, SparsityController, export, layer_costs  # noqa: E402

GATE_KW = {"init_sparsity": 0.1, "temperature": 2 / 3}


def lenet(gated: bool, side: int) -> nn.Sequential:
    """LeNet-5-Caffe for ``side`` × ``side`` images (28: MNIST, unpadded; 8: digits, padded)."""
    pad = 0 if side == 28 else 2
    flat = 50 * (((side - 4 + 2 * pad) // 2 - 4 + 2 * pad) // 2) ** 2
    if gated:
        convs = [L0Conv2d(1, 20, 5, padding=pad, structured=True, **GATE_KW),
                 L0Conv2d(20, 50, 5, padding=pad, structured=True, **GATE_KW)]
        linears = [L0Linear(flat, 500, structure="input", **GATE_KW),
                   L0Linear(500, 10, structure="input", **GATE_KW)]
    else:
        convs = [nn.Conv2d(1, 20, 5, padding=pad), nn.Conv2d(20, 50, 5, padding=pad)]
        linears = [nn.Linear(flat, 500), nn.Linear(500, 10)]
    return nn.Sequential(convs[0], nn.ReLU(), nn.MaxPool2d(2), convs[1], nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), linears[0], nn.ReLU(), linears[1])


def images(data: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    side = int(round(data[0].shape[1] ** 0.5))
    return (data[0].reshape(-1, 1, side, side), data[1], data[2].reshape(-1, 1, side, side),
            data[3])


class Trainer:
    """Adam with the benchmark's schedule; with a MAC budget, the controller's penalty."""

    def __init__(self, model: nn.Module, steps: int, example: torch.Tensor,
                 budget: float | None = None, lr: float = 1e-3) -> None:
        self.model = model
        gates = [p for n, p in model.named_parameters() if "gates" in n]
        weights = [p for n, p in model.named_parameters() if "gates" not in n]
        groups = [{"params": weights}] + ([{"params": gates, "lr": 2e-2}] if gates else [])
        self.optimizer = torch.optim.Adam(groups, lr=lr)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                          decay_schedule(steps, 0.5))
        self.cost = self.controller = None
        if budget is not None:
            self.cost = ComputeCost(model, example)
            total = self.cost.dense_macs
            self.controller = SparsityController(budget * total, total, lr=5.0, rho=1000.0,
                                                 start=total, ramp=steps // 2)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        loss = nn.functional.cross_entropy(self.model(x), y)
        if self.controller is not None:
            loss = loss + self.controller.penalty(self.cost.expected_macs())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        if self.controller is not None:
            self.controller.step(self.cost.expected_macs().detach())


def train(model: nn.Module, data, epochs: int, budget: float | None = None,
          seed: int = 0) -> tuple[float, Trainer]:
    xt, yt = data[0], data[1]
    batches = len(xt) // 100
    trainer = Trainer(model, epochs * batches, xt[:1], budget)
    gen = torch.Generator().manual_seed(seed)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(xt), generator=gen)
        model.train()
        for b in range(batches):
            idx = order[b * 100:(b + 1) * 100]
            trainer.step(xt[idx], yt[idx])
        times.append(time.perf_counter() - start)
    return (statistics.median(times) if times else 0.0), trainer


@torch.no_grad()
def error(model: nn.Module, data) -> float:
    model.eval()
    wrong = sum(int((model(x).argmax(1) != y).sum())
                for x, y in zip(data[2].split(1000), data[3].split(1000), strict=True))
    return wrong / len(data[3])


def widths(model: nn.Module) -> list[int]:
    """conv1 out, conv2 out, fc1 in, fc1 out of an exported (plain) LeNet."""
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    linears = [m for m in model if isinstance(m, nn.Linear)]
    return [convs[0].out_channels, convs[1].out_channels, linears[0].in_features,
            linears[0].out_features]


@torch.no_grad()
def structured_magnitude(dense: nn.Module, keep: list[int]) -> nn.Module:
    """The dense LeNet cut to ``keep`` = (conv1, conv2, fc1 outputs) by L2 norms, exported."""
    model = copy.deepcopy(dense)
    layers = [m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))][:3]
    for m, k in zip(layers, keep, strict=True):
        if m.weight.shape[0] > k:
            prune.ln_structured(m, "weight", amount=m.weight.shape[0] - k, n=2, dim=0)
            prune.remove(m, "weight")
            if m.bias is not None:
                m.bias[(m.weight.reshape(m.weight.shape[0], -1) == 0).all(dim=1)] = 0.0
    return export(model)


def step_cost(models: dict[str, nn.Module], data, budget: float, rounds: int,
              block: int = 10) -> dict[str, tuple[float, float]]:
    """Median ms per training step and its median ratio to dense, models timed interleaved."""
    xt, yt = data[0], data[1]
    trainers = {k: Trainer(m, rounds * block, xt[:1], None if k == "dense" else budget)
                for k, m in models.items()}
    batches = [torch.randint(len(xt), (100,)) for _ in range(block)]
    per_round: dict[str, list[float]] = {k: [] for k in trainers}
    for r in range(rounds + 1):  # one warm-up round
        for kind, trainer in trainers.items():
            start = time.perf_counter()
            for idx in batches:
                trainer.step(xt[idx], yt[idx])
            if r >= 1:
                per_round[kind].append((time.perf_counter() - start) / block * 1e3)
    dense = per_round["dense"]
    return {k: (statistics.median(v), statistics.median(a / b for a, b in zip(v, dense,
                                                                             strict=True)))
            for k, v in per_round.items()}


def run(dataset: str = "mnist", epochs: int = 20, budget: float = 0.15, finetune: int = 5,
        seed: int = 0, threads: int = 2, timing_rounds: int = 20) -> list[dict]:
    torch.set_num_threads(threads)
    data = images(load_mnist() if dataset == "mnist" else load_digits_split())
    side = data[0].shape[-1]
    example = data[0][:1]
    torch.manual_seed(seed)
    dense = lenet(False, side)
    seconds, _ = train(dense, data, epochs, seed=seed)
    dense_macs = layer_costs(dense, example)["total"]["macs_total"]
    rows = [{"model": "dense", "error": error(dense, data), "seconds": seconds,
             "arch": widths(dense), "params": layer_costs(dense, example)["total"]["params_total"],
             "macs": (dense_macs, dense_macs, dense_macs)}]
    torch.manual_seed(seed)
    gated = lenet(True, side)
    seconds, trainer = train(gated, data, epochs, budget=budget, seed=seed)
    expected = float(trainer.cost.expected_macs().detach())
    small = export(gated)
    probe = data[2][:256]
    assert torch.allclose(small(probe), gated.eval()(probe), atol=1e-4), "export changed the model"
    small_costs = layer_costs(small, example)["total"]
    rows.append({"model": f"L0 (MAC budget {budget:.0%})", "error": error(small, data),
                 "seconds": seconds, "arch": widths(small), "params": small_costs["params_total"],
                 "macs": (dense_macs, expected, small_costs["macs_total"]),
                 "budget_gap": expected / (budget * dense_macs) - 1.0})
    keep = widths(small)
    pruned = structured_magnitude(dense, [keep[0], keep[1], keep[3]])
    before = error(pruned, data)
    train(pruned, data, finetune, seed=seed)
    pruned_costs = layer_costs(pruned, example)["total"]
    rows.append({"model": f"magnitude, structured (+{finetune} ep.)", "error": error(pruned, data),
                 "error_before_finetune": before, "seconds": None, "arch": widths(pruned),
                 "params": pruned_costs["params_total"],
                 "macs": (dense_macs, None, pruned_costs["macs_total"])})
    torch.manual_seed(seed)
    costs = step_cost({"dense": lenet(False, side), "l0": lenet(True, side)}, data, budget,
                      timing_rounds)
    rows[0]["step"], rows[1]["step"] = costs["dense"], costs["l0"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("mnist", "digits"), default="mnist")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--budget", type=float, default=0.15,
                        help="expected MACs after export, as a fraction of the dense MACs")
    parser.add_argument("--finetune", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = run(args.dataset, args.epochs, args.budget, args.finetune, args.seed, args.threads)
    print(f"{args.dataset}, LeNet-5-Caffe, {args.epochs} epochs, {args.threads} threads\n")
    print("| model | test error | architecture | params | MACs/image dense / expected / "
          "exported | s/epoch | ms/step | × dense |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        dense, expected, exported = r["macs"]
        macs = f"{dense:,} / {'' if expected is None else f'{expected:,.0f}'} / {exported:,} " \
               f"({exported / dense:.1%})"
        step = r.get("step")
        timing = (f"{r['seconds']:.1f} | {step[0]:.1f} | {step[1]:.2f}" if step else " | | ")
        print(f"| {r['model']} | {r['error']:.2%} | {'-'.join(map(str, r['arch']))} | "
              f"{r['params']:,} | {macs} | {timing} |")
    gap = rows[1]["budget_gap"]
    print(f"\nexpected MACs vs the budget: {gap:+.1%}; structured magnitude before fine-tuning: "
          f"{rows[2]['error_before_finetune']:.2%} error")


if __name__ == "__main__":
    main()
