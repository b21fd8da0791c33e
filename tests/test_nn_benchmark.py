"""The network benchmark's fast digits version: L0 models shrink, export exactly, stay accurate."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import nn_mnist  # noqa: E402


def test_digits_version_of_the_network_benchmark():
    rows, costs = nn_mnist.run("digits", epochs=150, budget=0.3, finetune=5, timing_rounds=3)
    rows = {r["model"]: r for r in rows}
    dense, units, weights = rows["dense"], rows["L0 input units"], rows["L0 per weight"]
    assert dense["arch"] == [64, 300, 100, 10] and dense["error"] < 0.06
    # input-unit gates remove whole units: a smaller architecture, still accurate
    assert units["arch"][0] < 64 and units["arch"][1] < 300
    assert units["params"] < 0.45 * dense["params"] and units["error"] < 0.08
    assert weights["params"] < 0.45 * dense["params"] and weights["error"] < 0.08
    assert len(rows) == 5
    # the interleaved step timing ran for the three trained kinds (its values are for the docs)
    assert dense["ratio"] == 1.0 and units["step_ms"] > 0 and weights["step_ms"] > 0
    # and for every kind (fused and unfused gates) under both optimizers
    assert set(costs) == {"torch default Adam", "Adam(fused=True)"}
    for table in costs.values():
        assert set(table) == set(nn_mnist.STEP_KINDS) and table["dense"][1] == 1.0


def test_the_step_ablation_times_every_variant():
    data = nn_mnist.load_digits_split()
    rows = nn_mnist.ablation([64, 300, 100, 10], data, 0.3, rounds=1, block=2)
    assert [label for label, _, _ in rows] == [label for label, _ in nn_mnist.ABLATION]
    assert rows[0][2] == 1.0 and all(ms > 0 for _, ms, _ in rows)
