import numpy as np
import pytest
import torch

from l0 import FeatureGate, HybridGate, SampleGate
from l0.datasets import load_api


def _set_logits(gate, values):
    with torch.no_grad():
        gate.gates.qz_logits.copy_(torch.as_tensor(values, dtype=torch.float32))


def test_feature_budget_is_enforced():
    gate = FeatureGate(n_features=100, max_features=50).eval()
    _set_logits(gate, torch.linspace(5, 3, 100))  # every gate open
    data = torch.randn(4, 100)
    selected, idx = gate.select_features(data)
    assert idx.tolist() == list(range(50)) and selected.shape == (4, 50)
    _, names = gate.select_features_with_names(data, [f"f{i}" for i in range(100)])
    assert names == [f"f{i}" for i in range(50)]


def test_sample_budget_is_enforced_and_largest_gates_win():
    gate = SampleGate(n_samples=6, target_samples=2).eval()
    _set_logits(gate, [1.0, 9.0, -9.0, 8.0, 0.5, 9.5])
    data = torch.arange(12.0).reshape(6, 2)
    selected, idx = gate.select_samples(data)
    assert idx.tolist() == [1, 5]
    torch.testing.assert_close(selected, data[[1, 5]])  # trained (open) gates are exactly 1
    rows, weights, widx = gate.select_weighted_samples(data, torch.full((6,), 2.0))
    assert widx.tolist() == [1, 5] and weights.tolist() == [2.0, 2.0]


def test_select_samples_carries_the_gradient_in_training():
    gate = SampleGate(50, 10, generator=torch.Generator().manual_seed(0))
    selected, idx = gate.select_samples(torch.randn(50, 3))
    assert 0 < len(idx) <= 10
    selected.sum().backward()
    assert gate.gates.qz_logits.grad is not None
    assert gate.gates.qz_logits.grad[idx].abs().sum() > 0


@pytest.mark.parametrize("n,k", [(5, 5), (5, 0), (1, 1)])
def test_sample_gate_edge_budgets_work(n, k):
    gate = SampleGate(n, k).eval()
    _, idx = gate.select_samples(torch.randn(n, 2))
    assert len(idx) <= k
    assert torch.isfinite(gate.gates.qz_logits).all()


@pytest.mark.parametrize("n", [1, 2, 5, 10, 37])
def test_hybrid_gate_small_sizes_work(n):
    hybrid = HybridGate(n_items=n).eval()
    data, idx, kinds = hybrid.select(torch.arange(float(n)), random_seed=3)
    assert len(idx) == len(kinds) <= hybrid.target_items
    assert sorted(idx.tolist()) == idx.tolist() and len(set(idx.tolist())) == len(idx)
    torch.testing.assert_close(data, torch.arange(float(n))[idx])


def test_hybrid_gate_uses_a_local_generator_only():
    hybrid = HybridGate(n_items=100, l0_fraction=0.5, random_fraction=0.5, target_items=20).eval()
    _set_logits(hybrid.l0_gate, torch.where(torch.arange(100) < 10, 9.0, -9.0))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = hybrid.select(torch.arange(100.0), random_seed=11)
    assert torch.equal(state, torch.get_rng_state())
    b = hybrid.select(torch.arange(100.0), random_seed=11)
    assert torch.equal(a[1], b[1]) and list(a[2]) == list(b[2])
    assert (a[2] == "l0").sum() == 10 and (a[2] == "random").sum() == 10
    assert set(a[1][a[2] == "l0"].tolist()) == set(range(10))


@pytest.mark.parametrize(
    "factory,error,message",
    [
        (lambda: SampleGate(10, 11), ValueError, "`target_samples` must be an int in [0, 10]; got 11."),
        (lambda: SampleGate(0, 0), ValueError, "`n_samples` must be an int >= 1; got 0."),
        (lambda: FeatureGate(10, 0), ValueError, "`max_features` must be an int in [1, 10]; got 0."),
        (lambda: HybridGate(10, 0.6, 0.6), ValueError, "`l0_fraction + random_fraction` must be <= 1"),
        (lambda: HybridGate(10, target_items=11), ValueError, "`target_items` must be an int in [1, 10]"),
        (lambda: SampleGate(5, 2).select_samples(torch.zeros(4, 2)), ValueError,
         "`data` must have 5 entries along dim 0; got shape (4, 2)."),
        (lambda: FeatureGate(5, 2).select_features_with_names(torch.zeros(3, 5), ["a"]), ValueError,
         "`feature_names` must have 5 names; got 1."),
        (lambda: SampleGate(5, 2).select_samples([1, 2]), TypeError, "`data` must be a torch.Tensor"),
        (lambda: SampleGate(3, 1).fit(np.array([[1.0], [np.nan], [2.0]])), ValueError,
         "`data` must be finite"),
        (lambda: FeatureGate(2, 1).fit(np.ones((4, 2)), np.array([0, 1, 2, 1.0]), task="classification"),
         ValueError, "`y` must hold 0/1 labels"),
        (lambda: FeatureGate(2, 1).fit(np.ones((4, 2)), np.ones(4), task="ranking"), ValueError,
         "`task` must be one of 'regression', 'classification'"),
    ],
)
def test_bad_arguments(factory, error, message):
    with pytest.raises(error) as info:
        factory()
    assert str(info.value).startswith(message)


def test_sample_gate_fit_matches_population_means_within_one_percent():
    columns = ["api00", "api99", "meals", "ell", "col.grad", "full", "enroll", "api.stu"]
    data = load_api("pop")[columns].dropna().to_numpy(float)
    gate = SampleGate(len(data), target_samples=300).fit(data, seed=0)
    rows, weights, idx = gate.select_weighted_samples(torch.from_numpy(data),
                                                      torch.ones(len(data), dtype=torch.float64))
    assert 200 <= len(idx) <= 300
    w = weights.detach().numpy()
    means = w @ rows.numpy() / w.sum()
    assert np.abs(means / data.mean(0) - 1).max() < 0.01


def _with_noise(X, seed):
    return np.hstack([X, np.random.default_rng(seed).normal(size=X.shape)])


@pytest.mark.parametrize("seed", [0, 1])
def test_feature_gate_fit_keeps_informative_columns_and_drops_noise(seed):
    from sklearn.datasets import load_breast_cancer, load_diabetes
    from sklearn.model_selection import train_test_split

    X, y = load_breast_cancer(return_X_y=True)
    Xa = _with_noise(X, seed)
    X_train, X_test, y_train, y_test = train_test_split(Xa, y, test_size=0.3, random_state=seed)
    gate = FeatureGate(60, max_features=8).fit(X_train, y_train, task="classification", seed=seed)
    _, idx = gate.select_features(torch.from_numpy(Xa))
    assert 1 <= len(idx) <= 8 and max(idx.tolist()) < 30
    accuracy = (gate.predict(X_test).numpy() == y_test).mean()
    assert accuracy > 0.9

    X, y = load_diabetes(return_X_y=True)
    Xa = _with_noise(X, seed)
    gate = FeatureGate(20, max_features=5).fit(Xa, y, seed=seed)
    _, idx = gate.select_features(torch.zeros(1, 20))
    assert 1 <= len(idx) <= 5 and max(idx.tolist()) < 10
    assert 2 in idx.tolist()  # body-mass index, the strongest predictor
    r2 = 1 - ((gate.predict(Xa).numpy() - y) ** 2).mean() / y.var()
    assert r2 > 0.44  # ordinary least squares on all ten columns: 0.518; on bmi and s5: 0.459


def test_feature_gate_predict_needs_fit():
    with pytest.raises(RuntimeError, match="call fit first"):
        FeatureGate(3, 2).predict(torch.zeros(1, 3))


@pytest.mark.parametrize("epochs", [1, 3])
def test_feature_gate_fit_restores_the_gate_temperature(epochs):
    gate = FeatureGate(4, 2, temperature=0.1)
    gate.fit(np.random.default_rng(0).normal(size=(20, 4)), np.arange(20.0), epochs=epochs)
    assert gate.gates.temperature == 0.1


def test_hybrid_select_with_a_seed_is_repeatable_in_training_and_leaves_the_global_rng():
    from l0 import HybridGate

    hybrid = HybridGate(200, target_items=40).train()
    data = torch.arange(200.0)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = hybrid.select(data, random_seed=0)[1]
    b = hybrid.select(data, random_seed=0)[1]
    assert torch.equal(a, b) and torch.equal(state, torch.get_rng_state())
    assert not torch.equal(a, hybrid.select(data, random_seed=1)[1])


@pytest.mark.parametrize("target, fractions, expected", [
    (1, (0.25, 0.75), (0, 1)), (2, (0.25, 0.75), (1, 1)), (10, (0.25, 0.75), (3, 7)),
    (3, (0.5, 0.0), (2, 0)), (5, (0.0, 0.0), (0, 0)),
])
def test_hybrid_budget_never_rounds_to_zero_rows(target, fractions, expected):
    from l0 import HybridGate

    hybrid = HybridGate(20, *fractions, target_items=target)
    assert (hybrid.n_l0, hybrid.n_random) == expected
    _, idx, _ = hybrid.eval().select(torch.arange(20.0), random_seed=0)
    assert len(idx) <= target
    assert len(idx) >= hybrid.n_random  # the random part always gets its rows


def test_degenerate_fits_give_finite_parameters_or_a_clear_error():
    import numpy as np

    from l0 import FeatureGate, SampleGate

    gate = SampleGate(1, 1).fit(np.zeros((1, 3)), seed=0)  # one row, all zeros
    assert torch.isfinite(gate.gates.log_alpha).all()
    gate = SampleGate(30, 5).fit(np.c_[np.zeros(30), np.arange(30.0)], seed=0)  # a zero column
    assert torch.isfinite(gate.gates.log_alpha).all()
    with pytest.raises(ValueError, match="`X` must have at least 2 samples"):
        FeatureGate(3, max_features=2).fit(np.ones((1, 3)), np.array([1.0]), task="regression")
