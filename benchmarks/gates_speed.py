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


def run(kind: str, data, epochs: int, seed: int, fused: bool = False) -> dict:
    torch.manual_seed(seed)
    x_train, x_test, y_train, y_test = data
    model = make_model(kind, fused)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    n = len(x_train)
    lam = 0.1  # the paper: lambda / N per example
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for idx in torch.randperm(n).split(64):
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            if kind != "dense":
                loss = loss + lam * compute_l0_penalty(model) / n
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)  # the typical epoch: robust to a shared machine's hiccups
    model.eval()
    with torch.no_grad():
        error = float((model(x_test).argmax(1) != y_test).float().mean())
    total = sum(p.numel() for n_, p in model.named_parameters() if "gates" not in n_)
    active = total if kind == "dense" else get_active_parameter_count(model)
    inputs = 64
    if kind == "input":
        inputs = int((model[0].gate.deterministic() > 0).sum())
    return {"kind": kind + (" fused" if fused else ""), "s/epoch": seconds, "error": error,
            "active": active, "total": total, "inputs": inputs}


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
    rows = [run("dense", data, args.epochs, args.seed)] + [
        run(kind, data, args.epochs, args.seed, fused)
        for kind in ("weight", "input", "output") for fused in (False, True)]
    base = rows[0]["s/epoch"]
    print(f"digits 64-300-100-10, {args.epochs} epochs, batch 64, one thread")
    header = ("gates", "ms/epoch", "x dense", "test err", "active params", "inputs")
    print("{:>13} {:>9} {:>8} {:>9} {:>15} {:>7}".format(*header))
    for r in rows:
        print(f"{r['kind']:>13} {1000 * r['s/epoch']:9.1f} {r['s/epoch'] / base:8.2f} "
              f"{r['error']:9.2%} {r['active']:>7}/{r['total']:<7} {r['inputs']:>7}")


if __name__ == "__main__":
    main()
