import numpy as np
import pytest
import scipy.sparse as sp
import torch

from l0 import SparseL0Linear


def _problem(seed=0):
    X = sp.random(400, 8, density=0.5, format="csr", random_state=seed)
    coef = np.array([1.5, 0, 0, -2.0, 0, 0, 0, 0.8])
    return X, X @ coef + 0.3, coef


def test_recovers_the_support_and_coefficients():
    X, y, coef = _problem()
    model = SparseL0Linear(8, seed=1).fit(X, y, lambda_reg=0.01, lr=0.05, epochs=1500)
    assert model.get_selected_features().tolist() == [0, 3, 7]
    np.testing.assert_allclose(model.get_coefficients(), coef, atol=0.15)
    pred = model.predict(X).numpy()
    assert np.abs(pred - y).max() < 0.2


def test_seed_makes_fit_reproducible_and_leaves_global_rng_alone():
    X, y, _ = _problem()
    state = torch.get_rng_state()
    a = SparseL0Linear(8, seed=3).fit(X, y, epochs=50)
    b = SparseL0Linear(8, seed=3).fit(X, y, epochs=50)
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(a.log_alpha, b.log_alpha) and torch.equal(a.weight, b.weight)


def test_a_second_matrix_of_the_same_shape_is_not_confused_with_the_first():
    X, y, _ = _problem()
    model = SparseL0Linear(8, seed=0).fit(X, y, epochs=10)
    X2 = X.copy()
    X2.data = X2.data * 2
    assert not torch.allclose(model.predict(X), model.predict(X2))


def test_dense_inputs_are_accepted():
    X, y, _ = _problem()
    model = SparseL0Linear(8, seed=0).fit(X.toarray(), y, epochs=5)
    torch.testing.assert_close(model.predict(X.toarray()), model.predict(X))


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda m, X, y: m.fit(X, y[:-1]), ValueError, "`y` must have 400 entries; got 399."),
        (lambda m, X, y: m.fit(X[:, :3], y), ValueError, "`X` must have shape (n_samples, 8); got (400, 3)."),
        (lambda m, X, y: m.fit("X", y), TypeError, "`X` must be a scipy sparse matrix"),
        (lambda m, X, y: m.fit(X, np.full(400, np.nan)), ValueError, "`y` must be finite"),
        (lambda m, X, y: m.fit(X, y, lr=0), ValueError, "`lr` must be a float > 0.0; got 0.0."),
    ],
)
def test_bad_input(call, error, message):
    X, y, _ = _problem()
    with pytest.raises(error) as info:
        call(SparseL0Linear(8, seed=0), X, y)
    assert str(info.value).startswith(message)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="`gamma` must be a float < 0.0; got 0.1."):
        SparseL0Linear(3, gamma=0.1)
    with pytest.raises(ValueError, match=r"`init_keep_prob` must be a float in \(0.0, 1.0\); got 1.0."):
        SparseL0Linear(3, init_keep_prob=1.0)


def test_torch_sparse_csr_input_is_accepted():
    X, y, _ = _problem()
    model = SparseL0Linear(8, seed=0).fit(X, y, epochs=5)
    csr = torch.sparse_csr_tensor(torch.from_numpy(X.indptr).long(), torch.from_numpy(X.indices).long(),
                                  torch.from_numpy(X.data).float(), size=X.shape)
    torch.testing.assert_close(model.predict(csr), model.predict(X))


def test_random_seed_errors_name_the_argument():
    from l0 import HybridGate

    with pytest.raises(ValueError, match="`random_seed` must be an int >= 0; got -1."):
        HybridGate(10).select(torch.zeros(10), random_seed=-1)


def test_fit_on_zero_rows_is_a_clear_error_not_nan():
    model = SparseL0Linear(3, 1, seed=0)
    with pytest.raises(ValueError, match="`X_sparse` must have at least one row"):
        model.fit(sp.csr_matrix(np.zeros((0, 3))), np.zeros(0))
    assert all(torch.isfinite(p).all() for p in model.parameters())
