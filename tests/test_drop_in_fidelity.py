"""0.6.x conventions kept: import paths, seed=None on torch's global generator, error phrases."""

import importlib

import numpy as np
import pytest
import scipy.sparse as sp
import torch

# every public name of l0-python 0.6.2, by the module it lived in there
NAMES_0_6 = {
    "l0": ["FeatureGate", "HardConcrete", "HybridGate", "L0Conv2d", "L0DepthwiseConv2d", "L0Gate",
           "L0Linear", "PenaltyTracker", "SampleGate", "SparseCalibrationWeights",
           "SparseL0Linear", "SparseMLP", "TemperatureScheduler", "compute_l0_penalty",
           "compute_l0l2_penalty", "compute_l2_penalty", "get_active_parameter_count",
           "get_sparsity_stats", "prune_model", "update_temperatures"],
    "l0.calibration": ["SparseCalibrationWeights"],
    "l0.distributions": ["HardConcrete"],
    "l0.gates": ["FeatureGate", "HybridGate", "L0Gate", "SampleGate"],
    "l0.layers": ["L0Conv2d", "L0DepthwiseConv2d", "L0Linear", "SparseMLP", "prune_model"],
    "l0.penalties": ["PenaltyTracker", "TemperatureScheduler", "compute_l0_penalty",
                     "compute_l0l2_penalty", "compute_l2_penalty", "get_active_parameter_count",
                     "get_sparsity_stats", "update_temperatures"],
    "l0.sparse": ["SparseL0Linear"],
}


@pytest.mark.parametrize("module, names", sorted(NAMES_0_6.items()))
def test_every_0_6_name_imports_from_its_0_6_module(module, names):
    mod = importlib.import_module(module)
    for name in names:
        assert hasattr(mod, name), f"{module}.{name}"
    from l0 import selection

    assert importlib.import_module("l0.gates").SampleGate is selection.SampleGate


def test_a_name_that_never_existed_is_still_an_attribute_error():
    import l0.gates

    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        l0.gates.Nope  # noqa: B018


def _problem():
    M = sp.csr_array(np.random.default_rng(0).uniform(0, 1, (5, 30)))
    return M, M @ np.ones(30)


def test_seed_none_draws_from_torchs_global_generator_like_0_6():
    from l0 import SparseCalibrationWeights, SparseL0Linear

    M, y = _problem()

    def calibration():
        torch.manual_seed(0)
        model = SparseCalibrationWeights(30, log_alpha_jitter_sd=0.05)
        model.fit(M, y, epochs=20)
        return model.log_alpha.detach().clone()

    def regression():
        torch.manual_seed(0)
        model = SparseL0Linear(30)
        model.fit(sp.csr_matrix(M), np.ones(5), epochs=5)
        return model.log_alpha.detach().clone()

    assert torch.equal(calibration(), calibration())
    assert torch.equal(regression(), regression())
    torch.manual_seed(0)
    first = SparseCalibrationWeights(30, log_alpha_jitter_sd=0.05).log_alpha.detach().clone()
    second = SparseCalibrationWeights(30, log_alpha_jitter_sd=0.05).log_alpha.detach().clone()
    assert not torch.equal(first, second)  # the global stream advances, as in 0.6.x
    state = torch.get_rng_state()
    SparseCalibrationWeights(30, seed=3, log_alpha_jitter_sd=0.05).fit(M, y, epochs=5)
    assert torch.equal(state, torch.get_rng_state())  # a seed keeps the global RNG untouched


@pytest.mark.parametrize("kwargs, phrase", [
    ({"group_multipliers": {0: 2.0}}, "group_multipliers requires target_groups"),
    ({"target_groups": np.array([0, 0, 1, 1, 1]), "group_multipliers": {99: 2.0}},
     "group_multipliers key 99 not found"),
])
def test_0_6_error_phrases_are_kept_in_the_fit_errors(kwargs, phrase):
    from l0 import SparseCalibrationWeights

    M, y = _problem()
    with pytest.raises(ValueError, match=phrase):
        SparseCalibrationWeights(30, seed=0).fit(M, y, epochs=1, **kwargs)


@pytest.mark.parametrize("name", ["init_weights", "init_keep_prob"])
def test_0_6_shape_phrase_is_kept_for_per_record_arrays(name):
    from l0 import SparseCalibrationWeights

    with pytest.raises(ValueError, match=rf"`{name}` array must have shape \(30,\)"):
        SparseCalibrationWeights(30, **{name: np.full(29, 0.5)})


@pytest.mark.parametrize("make", [lambda: __import__("l0").SparseCalibrationWeights(30, seed=0),
                                  lambda: __import__("l0").SparseL0Linear(30, seed=0)])
def test_the_estimators_gates_are_the_package_gate_module_seen_by_model_wide_tools(make):
    from l0 import HardConcrete, compute_l0_penalty, get_sparsity_stats, update_temperatures

    model = make()
    assert isinstance(model.gates, HardConcrete)
    assert model.log_alpha is model.gates.qz_logits  # the 0.6.x name, the same Parameter
    assert float(compute_l0_penalty(model).detach()) == pytest.approx(float(model.get_l0_penalty().detach()))
    update_temperatures(model, 0.3)
    assert model.beta == 0.3 and "gates" in get_sparsity_stats(model)
    # 0.6.x state-dict keys, both ways
    state = model.state_dict()
    assert "log_alpha" in state and "gates.qz_logits" not in state
    other = make()
    with torch.no_grad():
        other.log_alpha.fill_(1.5)
    other.load_state_dict(state)
    assert torch.equal(other.log_alpha, model.log_alpha)
