"""The gate-site protocol: every consumer reads only ``GateSite``, so a new structure is one class."""

from __future__ import annotations

import torch
import torch.nn.functional as TF
from torch import nn

from l0 import (
    ComputeCost,
    L0Conv2d,
    L0DepthwiseConv2d,
    L0Linear,
    compute_l0_penalty,
    export,
    get_active_parameter_count,
    get_sparsity_stats,
    l0_gate,
    layer_costs,
)
from l0.nn import HardConcrete
from l0.nn.sites import GateSite, gate_sites, open_probabilities, site_of


class PairGatedLinear(GateSite, nn.Module):
    """A structure no consumer knows: one gate per *pair* of output units (rows 2i, 2i+1 and
    their biases). Written only against the protocol."""

    unit_dim = 0

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.lin = nn.Linear(n_in, n_out)
        self.pairs = HardConcrete(n_out // 2, init_mean=0.5, cost=2 * (n_in + 1))

    @property
    def gate(self):
        return self.pairs

    @property
    def module(self):
        return self

    @property
    def weight(self):
        return self.lin.weight

    @property
    def bias(self):
        return self.lin.bias

    gated_weight, gated_bias = weight, bias

    def masks(self, values):
        rows = values.repeat_interleave(2)
        return rows.unsqueeze(1), rows

    def to_plain(self):
        plain = nn.Linear(self.lin.in_features, self.lin.out_features)
        weight, bias = self.test_time_parameters()
        with torch.no_grad():
            plain.weight.copy_(weight)
            plain.bias.copy_(bias)
        return plain

    def forward(self, x):
        w, b = self.masks(self.gate())
        return TF.linear(x, self.lin.weight * w, self.lin.bias * b)


def _pair_model():
    torch.manual_seed(0)
    model = nn.Sequential(PairGatedLinear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[0].pairs.qz_logits.copy_(torch.tensor([-20.0, 20.0, -20.0, 20.0]))
    return model.eval()


def test_a_new_structure_is_one_class_every_consumer_reads_it():
    model = _pair_model()
    x = torch.randn(5, 6)
    # export: the two closed pairs (4 rows) are cut from the layer and the next one's inputs
    small = export(model)
    assert small[0].out_features == 4 and small[2].in_features == 4
    torch.testing.assert_close(small(x), model(x), rtol=0, atol=1e-6)
    # costs: 4 of 8 rows open at test time -> 4 * 6 MACs of 48, 4 * 7 of 56 parameters
    row = layer_costs(model, x)["0"]
    assert (row["macs_total"], row["macs_active"], row["params_active"]) == (48, 24, 28)
    # the MAC budget's count of the exported model: the first layer keeps 4 outputs, the
    # second reads 4 inputs
    cost = ComputeCost(model, x)
    assert abs(float(cost.expected_macs().detach()) - (6 * 4 + 4 * 3)) < 1e-4  # float32
    # penalty, statistics, counts
    assert abs(float(compute_l0_penalty(model).detach()) - 2 * 14) < 1e-4  # two open pairs of 14 parameters
    stats = get_sparsity_stats(model)["0"]
    assert stats["total_params"] == 56 and stats["test_time_active"] == 28
    assert get_active_parameter_count(model) == 28


def test_every_shipped_gated_module_is_a_site_and_says_what_it_covers():
    conv = l0_gate(nn.Conv2d(2, 4, 3), "weight", dim=0)
    model = nn.Sequential(L0Linear(4, 3, structure="input"), L0Linear(3, 3, structure="output"),
                          L0Conv2d(1, 2, 3, structured=True), L0DepthwiseConv2d(2, 3), conv)
    sites = dict(gate_sites(model))
    assert set(sites) == {"0", "1", "2", "3", "4"}
    assert [sites[k].unit_dim for k in "01234"] == [1, 0, 0, 0, 0]
    assert [sites[k].dense for k in "01234"] == [True, True, True, False, True]
    assert site_of(conv) is not None and site_of(nn.Linear(2, 2)) is None
    assert sites["4"].module is conv and sites["4"].gated_bias is conv.bias
    assert open_probabilities(nn.Linear(2, 2)).shape == ()
    assert open_probabilities(model[0]).shape == (1, 4)


def test_test_time_active_counts_gated_parameters_only_never_more_than_total():
    # input-unit gates do not cover the bias: it used to be counted as active (11 > 8 total)
    layer = L0Linear(4, 2, structure="input", init_sparsity=0.0)
    stats = get_sparsity_stats(nn.Sequential(layer))["0"]
    assert stats["total_params"] == 8
    assert stats["test_time_active"] == 8


def test_layer_costs_draws_no_gates_of_a_gated_tensor_in_training_mode():
    gen = torch.Generator().manual_seed(3)
    layer = nn.Linear(4, 3)
    l0_gate(layer, "weight", dim=1, generator=gen).train()
    before = gen.get_state()
    layer_costs(layer, torch.zeros(1, 4))
    assert torch.equal(gen.get_state(), before)


def test_the_cost_tools_read_a_gated_tensor_without_drawing_its_gates_in_training_mode():
    gen = torch.Generator().manual_seed(3)
    layer = nn.Linear(4, 3)
    l0_gate(layer, "weight", dim=1, generator=gen)
    l0_gate(layer, "bias", generator=gen)
    model = nn.Sequential(layer, nn.ReLU(), nn.Linear(3, 2)).train()
    before = gen.get_state()
    layer_costs(model, torch.zeros(1, 4))
    cost = ComputeCost(model, torch.zeros(1, 4))
    cost.expected_macs()
    assert torch.equal(gen.get_state(), before)


class _WeightlessSite(PairGatedLinear):
    """A site with no ``weight``/``bias`` attributes: only the protocol's names."""

    weight = bias = None

    @property
    def gated_weight(self):
        return self.lin.weight

    @property
    def gated_bias(self):
        return self.lin.bias


def test_the_cost_tools_need_only_the_protocol_names():
    model = nn.Sequential(_WeightlessSite(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    with torch.no_grad():
        model[0].pairs.qz_logits.copy_(torch.tensor([-20.0, 20.0, -20.0, 20.0]))
    x = torch.randn(5, 6)
    assert layer_costs(model, x)["0"]["macs_active"] == 24
    assert ComputeCost(model, x).dense_macs == 6 * 8 + 8 * 3


def test_a_layer_under_another_parametrization_is_counted_as_plain():
    from torch.nn.utils.parametrizations import weight_norm

    model = nn.Sequential(weight_norm(nn.Linear(4, 3)), nn.ReLU(), nn.Linear(3, 2))
    assert layer_costs(model, torch.zeros(1, 4))["total"]["macs_total"] == 18
    assert ComputeCost(model, torch.zeros(1, 4)).dense_macs == 18
