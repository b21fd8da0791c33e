"""SparseCalibrator follows scikit-learn's rules: its own check suite, and it wraps calibrate()."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from l0.calibration import calibrate
from l0.calibration.estimator import SparseCalibrator
from l0.datasets import load_api_targets


@pytest.mark.filterwarnings("ignore::UserWarning")  # random targets: some unreachable
@parametrize_with_checks([SparseCalibrator(), SparseCalibrator(method="exact")])
def test_scikit_learn_checks(estimator, check):
    check(estimator)


def test_it_is_calibrate_with_targets_as_samples_and_records_as_features():
    M, y, _ = load_api_targets()
    model = SparseCalibrator(max_records=800, random_state=0).fit(M, y)
    direct = calibrate(M, y, max_records=800, seed=0, progress=False)
    np.testing.assert_array_equal(model.coef_, direct.weights)
    np.testing.assert_allclose(model.predict(M), M @ direct.weights)
    assert model.score(M, y) == pytest.approx(1.0, abs=1e-12)
    assert model.result_.status == "exact" and np.count_nonzero(model.coef_) <= 800


def test_sample_weight_are_the_targets_loss_weights():
    X = np.array([[1.0, 1.0], [1.0, 1.0]])
    y = np.array([10.0, 20.0])  # conflicting totals: the weights decide where the error goes
    with pytest.warns(UserWarning, match="conflict"):
        heavy_first = SparseCalibrator(method="exact").fit(X, y, sample_weight=[10.0, 1.0])
    assert heavy_first.predict(X)[0] == pytest.approx(10.0, abs=1e-7)


def test_bad_settings_are_clear_errors():
    X = np.eye(2)
    with pytest.raises(ValueError, match="`method` must be one of"):
        SparseCalibrator(method="magic").fit(X, [1.0, 2.0])
    with pytest.raises(ValueError, match="`max_records` applies to method='l0' only"):
        SparseCalibrator(method="exact", max_records=1).fit(X, [1.0, 2.0])
