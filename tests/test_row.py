# amaranth: UnusedElaboratable=no
"""DotProductRow (esb_hw/hw/core/row.py) in Amaranth's simulator: every weight code times every activation code
for every shipped config and PE variant, extreme sums at max_reduction, restarts and idle cycles."""

import dataclasses

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from esb_hw.config import PE_VARIANTS, AcceleratorConfig
from esb_hw.data import shipped_config
from esb_hw.errors import ParameterError
from esb_hw.hw.arith.product import ActivationLane
from esb_hw.hw.arith.tree import tree_levels
from esb_hw.hw.core.row import TREE_ARITY, DotProductRow
from esb_hw.layouts import weight_encoding, weight_fields

CONFIGS = ["default", "pot3", "esb5_act_esb", "uniform4", "uniform5"]


class RowHarness(wiring.Component):
    """A row with the array's column lanes in front and its flags delayed to the row's last stage, so that a
    testbench drives one set of ``cols`` (weight, activation) codes and its ``restart`` flag per cycle."""

    def __init__(self, config: AcceleratorConfig):
        self.config = config
        self.row = DotProductRow(config)
        super().__init__({"activations": In(data.ArrayLayout(config.activation_format.bits, config.cols)),
                          "weights": In(data.ArrayLayout(config.weight_format.bits, config.cols)),
                          "valid": In(1), "restart": In(1),
                          "accumulator": Out(self.row.accumulator.shape())})

    def elaborate(self, platform):
        m = Module()
        config, row = self.config, self.row
        m.submodules.row = row
        if config.pe_variant == "baseline":
            m.d.comb += row.activation_codes.eq(self.activations)
        else:
            for col in range(config.cols):
                lane = ActivationLane(activation=config.activation_format, weight=config.weight_format,
                                      shared=config.pe_variant == "esb", recoded=weight_encoding(config) == "twos")
                m.submodules[f"lane_{col}"] = lane
                m.d.comb += [lane.code.eq(self.activations[col]), row.lanes[col].eq(lane.lane)]
        valid, restart = self.valid, self.restart
        for stage in range(row.latency):
            valid_next, restart_next = Signal(name=f"valid_{stage}"), Signal(name=f"restart_{stage}")
            m.d.sync += [valid_next.eq(valid), restart_next.eq(restart)]
            valid, restart = valid_next, restart_next
        m.d.comb += [row.weights.eq(self.weights), row.accumulate.eq(valid),
                     row.restart.eq(restart), self.accumulator.eq(row.accumulator)]
        return m


def run_row(config: AcceleratorConfig, sets, feed_pattern=None):
    """Drive ``(weight codes, activation codes, restart)`` sets, one per cycle where ``feed_pattern`` has a 1
    (idle cycles drive random codes with ``valid`` low); return the accumulator after each set."""
    harness = RowHarness(config)
    rng = np.random.default_rng(99)
    pattern = list(feed_pattern or [])
    observed = []

    async def testbench(ctx):
        queue, fed_at, cycle = list(sets), [], 0
        while len(observed) < len(sets):
            feed = bool((pattern.pop(0) if pattern else 1) and queue)
            weights, activations, restart = queue.pop(0) if feed else (
                rng.integers(0, config.weight_format.code_count, config.cols),
                rng.integers(0, config.activation_format.code_count, config.cols), int(rng.integers(2)))
            ctx.set(harness.weights, [int(w) for w in weight_fields(config, weights)])
            ctx.set(harness.activations, [int(a) for a in activations])
            ctx.set(harness.valid, int(feed))
            ctx.set(harness.restart, int(restart))
            await ctx.tick()
            if feed:
                fed_at.append(cycle)
            # The set fed at cycle f is in the accumulator after the edge that ends cycle f + latency.
            if fed_at and fed_at[0] + harness.row.latency == cycle:
                observed.append(ctx.get(harness.accumulator))
                fed_at.pop(0)
            cycle += 1

    simulator = Simulator(harness)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return observed


def golden_running_sums(config, sets):
    """docs/arithmetic.md: exact sums of La * Lw, restarted by ``restart``."""
    sums, total = [], 0
    for weights, activations, restart in sets:
        products = config.activation_format.level(np.asarray(activations)) * config.weight_format.level(
            np.asarray(weights))
        total = int(products.sum()) + (0 if restart else total)
        sums.append(total)
    return sums


def mismatches(config, sets, observed):
    expected = golden_running_sums(config, sets)
    return [(index, got, want) for index, (got, want) in enumerate(zip(observed, expected, strict=True))
            if got != want]


def exhaustive_sets(config):
    """Every (weight code, activation code) pair, ``cols`` pairs per set, each set a new sum."""
    weights, activations = np.meshgrid(np.arange(config.weight_format.code_count),
                                       np.arange(config.activation_format.code_count), indexing="ij")
    weights, activations = weights.ravel(), activations.ravel()
    padding = -len(weights) % config.cols
    weights = np.concatenate([weights, np.zeros(padding, int)]).reshape(-1, config.cols)
    activations = np.concatenate([activations, np.zeros(padding, int)]).reshape(-1, config.cols)
    return [(w, a, 1) for w, a in zip(weights, activations, strict=True)]


@pytest.mark.parametrize("variant", PE_VARIANTS)
@pytest.mark.parametrize("name", CONFIGS)
def test_every_weight_code_times_every_activation_code(name, variant):
    config = dataclasses.replace(shipped_config(name), pe_variant=variant)
    sets = exhaustive_sets(config)
    assert mismatches(config, sets, run_row(config, sets)) == []


@pytest.mark.parametrize("weights, activations", [((6, 4), (8, 8)), ((5, 3), (6, 3)), ((4, 2), (6, 3))],
                         ids=["uniform6-uint8", "uniform5-esb6", "uniform4-esb6"])
def test_recoded_products_of_6_bits_and_of_esb_activations(weights, activations):
    """Radix-4 recoding beyond the shipped configs: the 6-bit Booth top digit (|d2| up to 2), and ESB
    activations, which the lane shifts into integer levels."""
    config = AcceleratorConfig(weight_bits=weights[0], weight_k=weights[1], activation_bits=activations[0],
                               activation_k=activations[1], rows=1, cols=7, max_reduction=700, name="recoded")
    assert weight_encoding(config) == "twos"
    sets = exhaustive_sets(config)
    assert mismatches(config, sets, run_row(config, sets)) == []


def single_column_sets(config):
    """One product per set in column ``c = index % cols``, zeros elsewhere: each product alone on each column."""
    rng = np.random.default_rng(5)
    sets = []
    for index in range(12 * config.cols):
        weights, activations = np.zeros(config.cols, int), np.zeros(config.cols, int)
        weights[index % config.cols] = rng.integers(config.weight_format.code_count)
        activations[index % config.cols] = rng.integers(config.activation_format.code_count)
        sets.append((weights, activations, 1))
    return sets


@pytest.mark.parametrize("name", CONFIGS)
def test_each_column_alone(name):
    config = shipped_config(name)
    sets = single_column_sets(config)
    assert mismatches(config, sets, run_row(config, sets)) == []


def extreme_sets(config):
    """Longest sums of the largest products, positive then negative, and negative-zero codes mixed in."""
    weight, activation = config.weight_format, config.activation_format
    top_activation = np.full(config.cols, activation.code_of_level(np.array([activation.max_level]))[0])
    most_positive = np.full(config.cols, weight.code_of_level(np.array([weight.max_level]))[0])
    most_negative = np.full(config.cols, weight.code_of_level(np.array([-weight.max_level]))[0])
    negative_zero = np.full(config.cols, 1 << (weight.bits - 1))
    length = config.max_reduction // config.cols
    positive = [(most_positive, top_activation, int(index == 0)) for index in range(length)]
    negative = [(most_negative, top_activation, int(index == 0)) for index in range(length)]
    with_zeros = [(negative_zero if index % 3 else most_negative, top_activation, int(index == 0))
                  for index in range(16)]
    return positive + negative + with_zeros


@pytest.mark.parametrize("variant", PE_VARIANTS)
@pytest.mark.parametrize("name", ["default", "esb5_act_esb"])
def test_extreme_sums_at_the_maximum_reduction_length(name, variant):
    config = dataclasses.replace(shipped_config(name), pe_variant=variant)
    sets = extreme_sets(config)
    assert mismatches(config, sets, run_row(config, sets)) == []
    extremes = golden_running_sums(config, sets)
    assert max(extremes) == config.max_reduction * config.max_product == -min(extremes)


def random_sets(config, count, seed, restart_probability=0.1):
    rng = np.random.default_rng(seed)
    sets = [(rng.integers(0, config.weight_format.code_count, config.cols),
             rng.integers(0, config.activation_format.code_count, config.cols),
             int(rng.random() < restart_probability)) for _ in range(count)]
    sets[0] = (sets[0][0], sets[0][1], 1)
    return sets


def test_random_sums_with_restarts_and_idle_cycles():
    """Idle cycles (``accumulate`` low, random codes in the free-running products) must not touch the sum."""
    config = shipped_config("esb5_act_esb")
    sets = random_sets(config, 300, seed=3)
    pattern = [int(bit) for bit in np.random.default_rng(4).integers(0, 2, 2000)]  # about half idle
    assert mismatches(config, sets, run_row(config, sets, pattern)) == []


def test_checker_catches_a_wrong_accumulator():
    config = shipped_config("default")
    sets = random_sets(config, 4, seed=1, restart_probability=0)
    observed = run_row(config, sets)
    assert mismatches(config, sets, observed) == []
    observed[1] += 1
    assert [entry[0] for entry in mismatches(config, sets, observed)] == [1]


def test_latency_is_the_documented_one():
    config = shipped_config("default")
    assert DotProductRow(config).latency == 1 + tree_levels(config.cols, TREE_ARITY) == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"config": {"rows": 8}}, "config must be an AcceleratorConfig, got dict"),
    ({"primitives": "yes"}, "primitives must be a bool, got str 'yes'"),
])
def test_parameters_are_checked(kwargs, message):
    arguments = {"config": shipped_config("default"), **kwargs}
    with pytest.raises(ParameterError, match=message):
        DotProductRow(arguments.pop("config"), **arguments)
