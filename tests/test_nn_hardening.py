"""Bad input to the network tools: one clear error naming the argument, never a traceback from
deep inside torch; promises (a budget, a count) kept."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from l0 import (
    ComputeCost,
    HybridGate,
    L0Linear,
    SparseL0Linear,
    gate_parameters,
    layer_costs,
    split_parameters,
    update_temperatures,
)
from l0 import functional as F


def _mlp():
    return nn.Sequential(L0Linear(4, 3), nn.ReLU(), L0Linear(3, 2, structure="input"))


def test_an_unbatched_example_counts_like_a_batch_of_one():
    model = _mlp()
    assert ComputeCost(model, torch.zeros(4)).dense_macs == ComputeCost(model, torch.zeros(1, 4)).dense_macs == 18
    assert layer_costs(model, torch.zeros(4)) == layer_costs(model, torch.zeros(1, 4))


@pytest.mark.parametrize("cost", [ComputeCost, layer_costs])
def test_a_wrong_or_empty_example_input_is_named(cost):
    with pytest.raises(ValueError, match=r"`example_input` must be an input the model accepts; "
                                         r"got shape \(1, 5\), on which it fails: mat1 and mat2"):
        cost(_mlp(), torch.zeros(1, 5))
    with pytest.raises(ValueError, match=r"`example_input` must be a batch of at least one "
                                         r"example \(or one example\); got 'shape \(0, 4\)'"):
        cost(_mlp(), torch.zeros(0, 4))
    with pytest.raises(TypeError, match="`example_input` must be a tensor the model accepts"):
        cost(_mlp(), [[0.0] * 4])


def test_update_temperatures_refuses_a_list():
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module .wrap a list"):
        update_temperatures([_mlp()], 0.5)


@pytest.mark.parametrize("sample", [F.sample_hard_concrete, F.sample_with_gradient])
def test_integer_noise_is_refused(sample):
    with pytest.raises(TypeError, match=r"`noise` must be a floating-point tensor of uniforms "
                                        r"in \[0, 1\]; got dtype torch.int64."):
        sample(torch.zeros(3), torch.tensor([0, 1, 0]), 0.5)


@pytest.mark.parametrize("l0_fraction, random_fraction", [(1.0, 0.0), (0.5, 0.5), (0.25, 0.75)])
@pytest.mark.parametrize("budget", [1, 2, 5])
def test_a_hybrid_selection_always_holds_its_budget(l0_fraction, random_fraction, budget):
    # the untrained L0 gate keeps nothing at test time: its share goes to the random part
    hybrid = HybridGate(10, l0_fraction, random_fraction, target_items=budget).eval()
    _, idx, kinds = hybrid.select(torch.arange(10.0), random_seed=0)
    assert len(idx) == budget == len(set(idx.tolist()))
    assert (kinds == "l0").sum() <= hybrid.n_l0


def test_sparse_l0_linear_takes_torch_sparse_layouts_and_refuses_text_targets():
    model = SparseL0Linear(4, seed=0).eval()
    dense = torch.eye(4)
    expected = model(dense, deterministic=True)
    for layout in (dense.to_sparse(), dense.to_sparse_csr(), dense.to_sparse_csc()):
        torch.testing.assert_close(model(layout, deterministic=True), expected)
    with pytest.raises(TypeError, match="`y` must be numeric targets .one per row of X_sparse.; "
                                        "got 'dtype <U1'"):
        model.fit(sp.eye(4, format="csr"), np.array(list("abcd")), epochs=1)


def test_split_parameters_gives_the_gate_logits_and_the_rest_each_once():
    shared = L0Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared, L0Linear(3, 2, structure="output"))
    gates, rest = split_parameters(model)
    assert [id(p) for p in gates] == [id(shared.weight_gates.qz_logits),
                                      id(model[3].output_gates.qz_logits)]
    assert {id(p) for p in gates} | {id(p) for p in rest} == {id(p) for p in model.parameters()}
    assert not {id(p) for p in gates} & {id(p) for p in rest}
    assert gate_parameters(nn.Linear(2, 2)) == []
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module"):
        gate_parameters("net")
