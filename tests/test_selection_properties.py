"""Property-based checks (hypothesis) of the selection API: random data, any budget — results
finite, budgets honoured, the same seed gives the same result, inputs and the global RNG untouched."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from l0 import FeatureGate, HybridGate, SampleGate

SETTINGS = settings(max_examples=12, deadline=None)


def data(seed, n, d):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, d) + rng.uniform(-5, 5, d)
    x[rng.random(x.shape) < 0.1] = 0.0  # some exact zeros, possibly whole rows or columns
    return x


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 60), d=st.integers(1, 4),
       share=st.floats(0.0, 1.0))
def test_sample_gate_fit(seed, n, d, share):
    x = data(seed, n, d)
    before = x.copy()
    k = int(share * n)
    state = torch.get_rng_state()
    a = SampleGate(n, k).fit(x, epochs=40, seed=seed)
    b = SampleGate(n, k).fit(x, epochs=40, seed=seed)
    assert torch.equal(state, torch.get_rng_state())
    np.testing.assert_array_equal(x, before)
    assert torch.isfinite(a.gates.log_alpha).all()
    assert torch.equal(a.gates.log_alpha, b.gates.log_alpha)
    rows, idx = a.select_samples(torch.from_numpy(x))
    assert len(idx) <= k and torch.isfinite(rows).all()


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(2, 60), d=st.integers(1, 6),
       budget=st.integers(1, 6), task=st.sampled_from(["regression", "classification"]))
def test_feature_gate_fit(seed, n, d, budget, task):
    x = data(seed, n, d)
    rng = np.random.default_rng(seed + 1)
    y = (rng.random(n) < 0.5).astype(float) if task == "classification" else rng.normal(size=n)
    before = (x.copy(), y.copy())
    budget = min(budget, d)
    state = torch.get_rng_state()
    a = FeatureGate(d, max_features=budget).fit(x, y, task=task, epochs=30, seed=seed)
    b = FeatureGate(d, max_features=budget).fit(x, y, task=task, epochs=30, seed=seed)
    assert torch.equal(state, torch.get_rng_state())
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(y, before[1])
    assert torch.isfinite(a.gates.log_alpha).all()
    assert torch.equal(a.gates.log_alpha, b.gates.log_alpha)
    _, idx = a.select_features(torch.from_numpy(x))
    assert len(idx) <= budget


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 80), target=st.integers(1, 80),
       l0=st.floats(0.0, 1.0), training=st.booleans())
def test_hybrid_gate_select(seed, n, target, l0, training):
    target = min(target, n)
    hybrid = HybridGate(n, l0, 1.0 - l0, target_items=target).train(training)
    x = torch.arange(float(n))
    state = torch.get_rng_state()
    rows, idx, kinds = hybrid.select(x, random_seed=seed)
    again = hybrid.select(x, random_seed=seed)[1]
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(idx, again) and torch.equal(rows, x[idx])
    # the whole budget, always: rows the L0 gate leaves unused are drawn at random
    assert len(idx) == target and len(set(idx.tolist())) == len(idx)
    assert (kinds == "l0").sum() <= hybrid.n_l0
