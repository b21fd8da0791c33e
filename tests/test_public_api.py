"""The public surface: 0.6.x names and signatures, docstrings, and the README snippets."""

import inspect
import re
from pathlib import Path

import pytest

import l0

# name -> {argument: default} of l0-python 0.6.x (inspect.Parameter.empty: required)
REQUIRED = inspect.Parameter.empty
SIGNATURES_0_6 = {
    "HardConcrete": {"input_dim": REQUIRED, "output_dim": None, "temperature": 0.5,
                     "stretch": 0.1, "init_mean": 0.5},
    "L0Gate": {"size": REQUIRED, "temperature": 0.5, "init_mean": 0.5},
    "SampleGate": {"n_samples": REQUIRED, "target_samples": REQUIRED, "temperature": 0.25},
    "FeatureGate": {"n_features": REQUIRED, "max_features": REQUIRED, "temperature": 0.1},
    "HybridGate": {"n_items": REQUIRED, "l0_fraction": 0.25, "random_fraction": 0.75,
                   "target_items": None, "temperature": 0.25},
    "L0Linear": {"in_features": REQUIRED, "out_features": REQUIRED, "bias": True,
                 "temperature": 0.5, "init_sparsity": 0.5, "use_l2": False},
    "L0Conv2d": {"in_channels": REQUIRED, "out_channels": REQUIRED, "kernel_size": REQUIRED,
                 "stride": 1, "padding": 0, "bias": True, "temperature": 0.5,
                 "init_sparsity": 0.5, "structured": False, "use_l2": False},
    "L0DepthwiseConv2d": {"in_channels": REQUIRED, "kernel_size": REQUIRED, "stride": 1,
                          "padding": 0, "bias": True, "temperature": 0.5, "init_sparsity": 0.5},
    "SparseMLP": {"input_dim": 784, "hidden_dim": 256, "output_dim": 10, "init_sparsity": 0.5,
                  "temperature": 0.5, "use_l2": False},
    "prune_model": {"model": REQUIRED, "threshold": 0.05},
    "SparseL0Linear": {"n_features": REQUIRED, "fit_intercept": True, "beta": 2 / 3,
                       "gamma": -0.1, "zeta": 1.1, "init_keep_prob": 0.5, "device": "cpu",
                       "seed": None},
    "SparseCalibrationWeights": {"n_features": REQUIRED, "beta": 2 / 3, "gamma": -0.1,
                                 "zeta": 1.1, "init_keep_prob": 0.5, "init_weights": None,
                                 "log_weight_jitter_sd": 0.0, "log_alpha_jitter_sd": 0.01,
                                 "device": "cpu", "use_gates": True, "seed": None},
    "compute_l0_penalty": {"model": REQUIRED},
    "compute_l2_penalty": {"model": REQUIRED},
    "compute_l0l2_penalty": {"model": REQUIRED, "l0_lambda": 1e-3, "l2_lambda": 1e-4},
    "get_sparsity_stats": {"model": REQUIRED},
    "get_active_parameter_count": {"model": REQUIRED},
    "TemperatureScheduler": {"initial_temp": 2.0, "final_temp": 0.1, "anneal_epochs": 100,
                             "schedule": "exponential"},
    "update_temperatures": {"model": REQUIRED, "temperature": REQUIRED},
    "PenaltyTracker": {},
}
METHODS_0_6 = {
    "SparseCalibrationWeights": {
        "fit": ["M", "y", "lambda_l0", "lambda_l2", "lr", "epochs", "loss_type", "verbose",
                "verbose_freq", "target_groups", "normalize_groups", "group_multipliers"],
        "predict": ["M"], "forward": ["M", "deterministic"], "get_weights": ["deterministic"],
        "get_deterministic_gates": [], "get_active_weights": [], "get_sparsity": [],
        "get_l0_penalty": [], "get_l2_penalty": []},
    "SampleGate": {"select_samples": ["data"], "select_weighted_samples": ["data", "weights"]},
    "FeatureGate": {"select_features": ["data"],
                    "select_features_with_names": ["data", "feature_names"],
                    "get_feature_importance": []},
    "HybridGate": {"select": ["data", "random_seed"], "get_penalty": []},
    "L0Gate": {"get_gates": [], "apply_gates": ["x", "dim"], "get_penalty": [],
               "get_active_indices": ["threshold"]},
    "HardConcrete": {"get_penalty": [], "get_active_prob": [], "get_sparsity": [],
                     "get_num_active": [], "reset_parameters": []},
    "TemperatureScheduler": {"get_temperature": ["epoch"]},
    "PenaltyTracker": {"log": ["name", "value"], "get_history": ["name"], "get_stats": ["name"],
                       "clear": [], "save_to_csv": ["filepath"],
                       "plot_history": ["metrics", "save_path"]},
    "SparseL0Linear": {"fit": ["X_sparse", "y", "lambda_reg", "lr", "epochs", "verbose",
                               "verbose_freq"], "predict": ["X_sparse"],
                       "get_l0_penalty": [], "get_sparsity": [], "get_selected_features": ["threshold"],
                       "get_deterministic_gates": []},
}


def _params(obj):
    target = obj.__init__ if inspect.isclass(obj) else obj
    return {p.name: p for p in inspect.signature(target).parameters.values() if p.name != "self"}


@pytest.mark.parametrize("name", sorted(SIGNATURES_0_6))
def test_0_6_signature_prefix_and_defaults(name):
    params = _params(getattr(l0, name))
    positional = [n for n, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional[: len(SIGNATURES_0_6[name])] == list(SIGNATURES_0_6[name])
    for arg, default in SIGNATURES_0_6[name].items():
        assert params[arg].default == default, (name, arg)
    extra = [n for n in positional[len(SIGNATURES_0_6[name]):] if params[n].default is REQUIRED]
    assert not extra, f"{name} gained required arguments {extra}"


@pytest.mark.parametrize("cls,methods", sorted(METHODS_0_6.items()))
def test_0_6_methods(cls, methods):
    klass = getattr(l0, cls)
    for method, args in methods.items():
        params = list(inspect.signature(getattr(klass, method)).parameters)[1:]
        assert params[: len(args)] == args, (cls, method)


def test_all_is_complete_and_importable():
    assert set(SIGNATURES_0_6) <= set(l0.__all__)
    for name in l0.__all__:
        assert hasattr(l0, name), name
    public = {n for n in dir(l0) if not n.startswith("_")} - {"__version__"}
    modules = {"functional", "distributions", "gates", "layers", "penalties", "schedules",
               "selection", "sparse", "datasets", "cli", "_validation", "calibration",
               "diagnostics", "_random", "parametrize", "costs", "compute", "fused"}
    assert public - modules <= set(l0.__all__)


@pytest.mark.parametrize("name", sorted(l0.__all__))
def test_public_names_have_numpydoc_docstrings(name):
    obj = getattr(l0, name)
    doc = inspect.getdoc(obj)
    assert doc and len(doc.splitlines()[0]) > 10, name
    if inspect.isclass(obj) or inspect.isfunction(obj):
        assert "Examples\n--------" in doc, f"{name} has no Examples section"


def test_functional_names_are_documented():
    for name in l0.functional.__all__:
        obj = getattr(l0.functional, name)
        if callable(obj):
            assert "Examples" in inspect.getdoc(obj), name


README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_the_two_command_quick_start():
    text = README.read_text()
    assert "make demo" in text and "make test" in text


_README_RUN: dict = {"namespace": {}, "done": 0}


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_snippets_run_as_written(index, capsys, tmp_path_factory, monkeypatch):
    """The snippets run in order in one namespace (later ones build on earlier ones), each
    block once for the whole suite; block ``index`` must run without an error."""
    monkeypatch.chdir(tmp_path_factory.getbasetemp())  # files the snippets write land here
    blocks = _python_blocks()
    run = _README_RUN
    while run["done"] <= index:
        i = run["done"]
        run["done"] += 1
        exec(compile(blocks[i], f"README.md[{i}]", "exec"), run["namespace"])
