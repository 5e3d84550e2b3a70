# amaranth: UnusedElaboratable=no
"""Requantizer (esb_hw/hw/core/requant.py): accumulators to activation codes, bit-exact with
esb_hw.quant.golden.requantize, with back-pressure and random idle payloads; the ESB encoder over every level."""

import random

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from esb_hw.config import AcceleratorConfig
from esb_hw.errors import ParameterError
from esb_hw.hw.core.requant import OUTPUT_DEPTH, Requantizer, esb_encoder, requant_latency
from esb_hw.layouts import REQUANT_MULTIPLIER_BITS, REQUANT_SHIFT_RANGE, pack, requant_input_layout
from esb_hw.quant import ESBFormat, golden
from esb_hw.sim.streams import get_many, put_many

ACTIVATIONS = [ESBFormat(6, 3, False), ESBFormat(8, 8, False), ESBFormat(5, 2, False), ESBFormat(4, 0, False),
               ESBFormat(7, 4, False), ESBFormat(3, 1, False), ESBFormat(8, 5, False)]


def config_for(activation: ESBFormat, max_reduction: int = 4096) -> AcceleratorConfig:
    return AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=activation.bits,
                             activation_k=activation.k, rows=8, cols=8, max_reduction=max_reduction)


class Encoder(wiring.Component):
    def __init__(self, activation: ESBFormat):
        self.activation = activation
        super().__init__({"level": In(range(activation.max_level + 1)), "code": Out(activation.bits)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.code.eq(esb_encoder(m, self.level, self.activation))
        return m


def encoded(activation: ESBFormat) -> list[int]:
    unit = Encoder(activation)
    codes = []

    async def testbench(ctx):
        for level in range(activation.max_level + 1):
            ctx.set(unit.level, level)
            codes.append(ctx.get(unit.code))

    simulator = Simulator(unit)
    simulator.add_testbench(testbench)
    simulator.run()
    return codes


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
def test_encoder_gives_the_nearest_level_ties_up_for_every_level(activation):
    levels = np.arange(activation.max_level + 1)
    assert encoded(activation) == golden.encode_level_ties_up(levels, activation).tolist()


def test_encoder_checker_catches_a_tie_rounded_down():
    """ESB(6,3): levels 16 and 18 around 17, a tie that goes up; a tie sent down is caught."""
    activation = ESBFormat(6, 3, False)
    codes = encoded(activation)
    want = golden.encode_level_ties_up(np.arange(activation.max_level + 1), activation).tolist()
    assert codes[17] == want[17] == activation.code_of_level(np.array([18]))[0]
    codes[17] -= 1
    assert [level for level, (got, good) in enumerate(zip(codes, want, strict=True)) if got != good] == [17]


def run_requantizer(config, values, *, seed=0, idle=0.3, stall=0.3):
    """``values``: (accumulator, bias, M, S) tuples; the codes that come out, in order."""
    dut = Requantizer(config)
    layout = requant_input_layout(config)
    payloads = [pack(layout, {"accumulator": acc, "params": {"bias": bias, "multiplier": mult, "shift": shift}})
                for acc, bias, mult, shift in values]
    codes = []

    async def source(ctx):
        await put_many(ctx, dut.i, payloads, rng=random.Random(seed), idle=idle)

    async def sink(ctx):
        codes.extend(await get_many(ctx, dut.o, len(values), rng=random.Random(seed + 1), stall=stall))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(source, background=True)
    simulator.add_testbench(sink)
    simulator.run()
    return codes


def expected_codes(config, values) -> list[int]:
    accumulators, bias, multiplier, shift = (np.array(column, dtype=np.int64) for column in zip(*values, strict=True))
    params = golden.RequantParams(bias=bias, multiplier=multiplier, shift=shift)
    # One channel per value: channel axis 0 of a 1-d accumulator array.
    return golden.requantize(accumulators, params, config.activation_format, relu=False,
                             channel_axis=0).astype(np.int64).tolist()


def edge_values(config, rng):
    """Extreme accumulators and biases, M = 0 and 2**16 - 1, S = 1 and 48, rounding ties and the saturation
    bound."""
    top = (1 << (config.accumulator_bits - 1)) - 1
    low = -(1 << (config.accumulator_bits - 1))
    max_multiplier = (1 << REQUANT_MULTIPLIER_BITS) - 1
    values = []
    for acc in (low, -1, 0, 1, top):
        for bias in (low, 0, top):
            for multiplier in (0, 1, max_multiplier):
                for shift in REQUANT_SHIFT_RANGE:
                    values.append((acc, bias, multiplier, shift))
    # Ties: (acc * M) exactly half way between two integers after the shift, for small S.
    for shift in range(1, 9):
        for level in range(0, 40):
            values.append(((2 * level + 1) << (shift - 1), 0, 1, shift))
    # The saturation bound exactly: results just below, at and just above La_max, ties included, with the
    # accumulator and the bias carrying the value in turn.
    max_level = config.activation_format.max_level
    for shift in range(1, 5):
        for target in (max_level - 1, max_level, max_level + 1):
            centre = target << shift
            for value in range(centre - (1 << shift), centre + (1 << shift) + 1):
                values += [(value, 0, 1, shift), (0, value, 1, shift), (value - 7, 7, 1, shift)]
    # Scales that land near every level of the format.
    for _ in range(200):
        shift = int(rng.integers(8, 20))
        values.append((int(rng.integers(0, 1 << 18)), int(rng.integers(-2000, 2000)),
                       int(rng.integers(1, max_multiplier)), shift))
    return values


def random_values(config, rng, count):
    half = 1 << (config.accumulator_bits - 1)
    return [(int(rng.integers(-half, half)), int(rng.integers(-half, half)),
             int(rng.integers(0, 1 << REQUANT_MULTIPLIER_BITS)),
             int(rng.integers(REQUANT_SHIFT_RANGE[0], REQUANT_SHIFT_RANGE[1] + 1))) for _ in range(count)]


@pytest.mark.parametrize("activation", ACTIVATIONS[:4], ids=str)
def test_edges_and_random_values_match_the_golden_model(activation):
    config = config_for(activation)
    rng = np.random.default_rng(activation.bits * 10 + activation.k)
    values = edge_values(config, rng) + random_values(config, rng, 200)
    assert run_requantizer(config, values, seed=activation.bits) == expected_codes(config, values)


def test_relu_is_implied_by_the_clamp():
    """docs/arithmetic.md applies ReLU before the clamp to [0, La_max]; the clamp alone already sends negatives to 0,
    so the lane has no ReLU of its own and a layer's ReLU flag changes nothing."""
    config = config_for(ESBFormat(6, 3, False))
    values = random_values(config, np.random.default_rng(9), 300)
    accumulators, bias, multiplier, shift = (np.array(column, dtype=np.int64) for column in zip(*values, strict=True))
    params = golden.RequantParams(bias=bias, multiplier=multiplier, shift=shift)
    with_relu, without = (golden.requantize(accumulators, params, config.activation_format, relu=relu,
                                            channel_axis=0) for relu in (True, False))
    assert np.array_equal(with_relu, without) and (without == 0).sum() > 50


def test_checker_catches_a_wrong_code():
    config = config_for(ESBFormat(6, 3, False))
    values = [(1000, 24, 300, 10), (5, 0, 1, 1), (-7, 0, 9, 2)]
    codes = run_requantizer(config, values)
    want = expected_codes(config, values)
    assert codes == want
    codes[0] ^= 1
    assert [index for index, (got, good) in enumerate(zip(codes, want, strict=True)) if got != good] == [0]


def test_full_rate_latency():
    """No gaps and no back-pressure: one code per cycle, each ``requant_latency`` cycles after its input."""
    config = config_for(ESBFormat(8, 8, False))
    dut = Requantizer(config)
    assert dut.latency == requant_latency(config) == 12
    layout = requant_input_layout(config)
    values = [(index * 37, 0, 1, 1) for index in range(40)]
    seen = []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(len(values) + dut.latency + 2):
            if cycle < len(values):
                acc, bias, multiplier, shift = values[cycle]
                ctx.set(dut.i.payload.as_value(), pack(layout, {"accumulator": acc, "params": {
                    "bias": bias, "multiplier": multiplier, "shift": shift}}))
                ctx.set(dut.i.valid, 1)
            else:
                ctx.set(dut.i.valid, 0)
            assert ctx.get(dut.i.ready)
            *_, valid, code = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                seen.append((cycle, code))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    assert [cycle for cycle, _ in seen] == [index + dut.latency for index in range(len(values))]
    assert [code for _, code in seen] == expected_codes(config, values)


def test_credits_stop_the_input_while_the_output_is_blocked():
    """With ``o.ready`` low, the lane takes exactly OUTPUT_DEPTH values, then every code comes out exact."""
    config = config_for(ESBFormat(6, 3, False))
    dut = Requantizer(config)
    layout = requant_input_layout(config)
    values = random_values(config, np.random.default_rng(3), OUTPUT_DEPTH + 10)
    taken, codes = [], []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 0)
        for index, (acc, bias, multiplier, shift) in enumerate(values):
            ctx.set(dut.i.payload.as_value(), pack(layout, {"accumulator": acc, "params": {
                "bias": bias, "multiplier": multiplier, "shift": shift}}))
            ctx.set(dut.i.valid, 1)
            *_, ready = await ctx.tick().sample(dut.i.ready)
            if not ready:
                break
            taken.append(index)
        ctx.set(dut.i.valid, 0)
        for _ in range(3 * dut.latency):
            await ctx.tick()
        assert not ctx.get(dut.i.ready)
        codes.extend(await get_many(ctx, dut.o, len(taken)))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    assert taken == list(range(OUTPUT_DEPTH))
    assert codes == expected_codes(config, values[:OUTPUT_DEPTH])


@pytest.mark.parametrize("kwargs, message", [
    ({"config": "default"}, "config must be an AcceleratorConfig, got str"),
    ({"primitives": 1}, "primitives must be a bool, got int 1"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        Requantizer(**{"config": config_for(ESBFormat(8, 8, False)), **kwargs})


def test_a_pipeline_that_disagrees_with_the_contract_fails_to_elaborate(monkeypatch):
    """The requantizer checks the stages it builds against esb_hw.contract.latency when it elaborates: a contract
    one cycle off (as a pipeline stage added without telling the cycle model would be) fails at once."""
    import gc
    import warnings

    from amaranth.back import rtlil
    from amaranth.hdl import UnusedElaboratable

    import esb_hw.hw.core.requant as requant_module

    config = config_for(ACTIVATIONS[0])
    monkeypatch.setattr(requant_module, "requant_latency", lambda config: 13)
    with warnings.catch_warnings():  # the parts built before the failure are never used: no warning for them
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(AssertionError, match=r"Requantizer built 12 pipeline stages; the contract "
                                                 r"\(esb_hw/contract/latency.py\) says 13"):
            rtlil.convert(Requantizer(config))
        gc.collect()
