"""Training cost and quality of L0 layers vs dense layers on scikit-learn's digits.

Prints, per configuration: median seconds per epoch (ratio to dense), test error, parameters whose
test-time gate is open, and input units kept. One thread, so ratios are comparable. Every gate
structure runs twice: as is, and with its gates fused (``l0.fuse_gates``: one sample per step).

    python benchmarks/gates_speed.py [--epochs 30] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from l0 import L0Linear, compute_l0_penalty, fuse_gates, get_active_parameter_count


def make_model(kind: str, fused: bool = False) -> nn.Module:
    if kind == "dense":
        layers = [nn.Linear(64, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)]
    else:
        def lin(i, o):
            return L0Linear(i, o, structure=kind, init_sparsity=0.1, temperature=2 / 3)

        layers = [lin(64, 300), nn.ReLU(), lin(300, 100), nn.ReLU(), lin(100, 10)]
    model = nn.Sequential(*layers)
    if fused:
        fuse_gates(model)
    return model


class Run:
    """One configuration's model, optimiser and per-epoch times (epochs run one at a time, so
    that every configuration's epochs interleave with the others')."""

    def __init__(self, kind: str, data, seed: int, fused: bool = False) -> None:
        torch.manual_seed(seed)
        self.kind, self.label = kind, kind + (" fused" if fused else "")
        self.data = data
        self.model = make_model(kind, fused)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=2e-3)
        self.order = torch.Generator().manual_seed(seed)
        self.times: list[float] = []

    def epoch(self) -> None:
        x_train, _, y_train, _ = self.data
        n = len(x_train)
        lam = 0.1  # the paper: lambda / N per example
        start = time.perf_counter()
        self.model.train()
        for idx in torch.randperm(n, generator=self.order).split(64):
            loss = nn.functional.cross_entropy(self.model(x_train[idx]), y_train[idx])
            if self.kind != "dense":
                loss = loss + lam * compute_l0_penalty(self.model) / n
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        self.times.append(time.perf_counter() - start)

    def result(self, dense_times: list[float]) -> dict:
        _, x_test, _, y_test = self.data
        model = self.model.eval()
        with torch.no_grad():
            error = float((model(x_test).argmax(1) != y_test).float().mean())
        total = sum(p.numel() for n_, p in model.named_parameters() if "gates" not in n_)
        active = total if self.kind == "dense" else get_active_parameter_count(model)
        inputs = 64
        if self.kind == "input":
            inputs = int((model[0].gate.deterministic() > 0).sum())
        # the typical epoch (median: robust to a shared machine's hiccups), and the median of
        # its ratio to the dense epoch run just before it
        ratio = statistics.median(a / b for a, b in zip(self.times, dense_times))
        return {"kind": self.label, "s/epoch": statistics.median(self.times), "ratio": ratio,
                "error": error, "active": active, "total": total, "inputs": inputs}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    parts = train_test_split(X, y, test_size=0.3, random_state=args.seed, stratify=y)
    data = [torch.from_numpy(parts[0]), torch.from_numpy(parts[1]),
            torch.from_numpy(parts[2]), torch.from_numpy(parts[3])]
    runs = [Run("dense", data, args.seed)] + [
        Run(kind, data, args.seed, fused)
        for kind in ("weight", "input", "output") for fused in (False, True)]
    for _ in range(args.epochs):  # the configurations' epochs interleaved
        for run in runs:
            run.epoch()
    rows = [run.result(runs[0].times) for run in runs]
    print(f"digits 64-300-100-10, {args.epochs} epochs, batch 64, one thread; epochs of all"
          " configurations interleaved, x dense = median ratio to the dense epoch of the round")
    header = ("gates", "ms/epoch", "x dense", "test err", "active params", "inputs")
    print("{:>13} {:>9} {:>8} {:>9} {:>15} {:>7}".format(*header))
    for r in rows:
        print(f"{r['kind']:>13} {1000 * r['s/epoch']:9.1f} {r['ratio']:8.2f} "
              f"{r['error']:9.2%} {r['active']:>7}/{r['total']:<7} {r['inputs']:>7}")


if __name__ == "__main__":
    main()
