# amaranth: UnusedElaboratable=no
"""StationaryArray (esb_hw/hw/core/stationary.py): GEMMs with stationary weights and blocks of running sums,
bit-exact with the golden model, with loads overlapping computation, random idle payloads and back-pressure."""

import dataclasses
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from esb_hw.compiler.gemm import stationary_gemm_stimulus
from esb_hw.config import AcceleratorConfig
from esb_hw.contract.latency import OUTPUT_DEPTH
from esb_hw.data import shipped_config
from esb_hw.errors import ParameterError
from esb_hw.hw.core.stationary import StationaryArray
from esb_hw.sim.streams import get_many, put

CONFIGS = {
    "default": shipped_config("default"),
    "uniform5": shipped_config("uniform5"),
    "esb5_act_esb": shipped_config("esb5_act_esb"),
    "odd_naive": AcceleratorConfig(weight_bits=5, weight_k=2, activation_bits=6, activation_k=3, rows=3, cols=5,
                                   max_reduction=600, pe_variant="esb_naive", name="odd_naive"),
}


def random_gemm(config, out_rows, reduction, columns, seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, config.weight_format.code_count, (out_rows, reduction)),
            rng.integers(0, config.activation_format.code_count, (reduction, columns)))


def run(array, stimulus, *, seed=0, idle=0.0, stall=0.0):
    """Drive the loads and beats of ``stimulus``: a chunk's loads start once the previous chunk's swap beat is
    in (so they overlap its beats), and a chunk's beats wait for its loads. Returns the output payloads and the
    cycles from the first load to the last output."""
    outputs, state, cycles = [], {"loaded": 0, "swapped": 0, "cycle": 0}, []
    noise = random.Random(seed + 2)

    async def clock(ctx):
        while True:
            await ctx.tick()
            state["cycle"] += 1

    async def loads(ctx):
        for index, (chunk_loads, _) in enumerate(stimulus.chunks):
            while state["swapped"] < index:
                await ctx.tick()
            for payload in chunk_loads:
                await put(ctx, array.load, payload, noise=noise)
            state["loaded"] = index + 1

    async def beats(ctx):
        rng = random.Random(seed)
        for index, (_, chunk_beats) in enumerate(stimulus.chunks):
            while state["loaded"] <= index:
                await ctx.tick()
            for number, payload in enumerate(chunk_beats):
                await put(ctx, array.i, payload, rng=rng, idle=idle, noise=noise)
                if number == 0:
                    state["swapped"] = index + 1

    async def sink(ctx):
        payloads = await get_many(ctx, array.o, stimulus.tiles, rng=random.Random(seed + 1), stall=stall)
        outputs.extend(int(payload.as_value().value) for payload in payloads)
        cycles.append(state["cycle"])

    simulator = Simulator(array)
    simulator.add_clock(1e-8)
    for process in (clock, loads, beats, sink):
        simulator.add_testbench(process, background=True)
    simulator.run_until(1e-8 * (30 * (len(stimulus.beats) + 4 * len(stimulus.chunks) * array.config.rows) + 300))
    assert len(outputs) == stimulus.tiles, f"timed out with {len(outputs)} of {stimulus.tiles} tiles out"
    return outputs, cycles[0]


def mismatches(outputs, stimulus):
    return [tile for tile, (got, want) in enumerate(zip(outputs, stimulus.expected_payloads, strict=True))
            if got != want]


def cases(config):
    """Full blocks, a partial block, one column, more rows than the array, a reduction not a multiple of cols."""
    shapes = [(config.rows, 3 * config.cols, 40), (config.rows + 1, 2 * config.cols - 1, 9), (2, config.cols, 1)]
    return [random_gemm(config, *shape, seed=index) for index, shape in enumerate(shapes)]


#: Configs whose runs ``make test`` leaves to ``make test-all`` (the others cover the same control paths).
SLOW = {"esb5_act_esb", "uniform5"}


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
                                  for name in sorted(CONFIGS)])
def test_gemms_match_the_golden_model_with_gaps_and_back_pressure(name):
    config = CONFIGS[name]
    array = StationaryArray(config, entries=16)
    for index, (weights, activations) in enumerate(cases(config)):
        stimulus = stationary_gemm_stimulus(config, weights, activations, entries=16)
        outputs, _ = run(array, stimulus, seed=index, idle=0.3, stall=0.3)
        assert mismatches(outputs, stimulus) == []
        assert np.array_equal(stimulus.assemble(stimulus.tile_sums(outputs)),
                              stimulus.assemble(stimulus.expected))


def test_extreme_sums_at_the_maximum_reduction():
    config = dataclasses.replace(CONFIGS["default"], max_reduction=64)
    weight_format, activation_format = config.weight_format, config.activation_format
    top = activation_format.code_of_level(np.array([activation_format.max_level]))[0]
    array = StationaryArray(config, entries=4)
    for sign in (+1, -1):
        code = weight_format.code_of_level(np.array([sign * weight_format.max_level]))[0]
        stimulus = stationary_gemm_stimulus(config, np.full((config.rows, 64), code), np.full((64, 3), top),
                                            entries=4)
        outputs, _ = run(array, stimulus)
        assert mismatches(outputs, stimulus) == []
        assert stimulus.expected[0][0] == sign * 64 * config.max_product


@pytest.mark.slow
def test_loads_overlap_computation_at_full_rate():
    """With blocks of at least ``rows`` columns, the next chunk loads while the current one runs: one beat per
    cycle, plus the first chunk's loads and the pipeline's latency."""
    config = CONFIGS["default"]
    array = StationaryArray(config, entries=32)
    stimulus = stationary_gemm_stimulus(config, *random_gemm(config, config.rows, 6 * config.cols, 64, seed=3),
                                        entries=32)
    outputs, cycles = run(array, stimulus)
    assert mismatches(outputs, stimulus) == []
    # 2 blocks x 6 chunks x 32 beats = 384 beats; the first 8 loads; 6 cycles of latency; a few cycles of hand-off.
    assert len(stimulus.beats) == 384
    assert cycles <= 384 + config.rows + array.latency + 4, cycles


def test_input_stops_exactly_when_the_output_buffer_would_overflow():
    """Results held back by ``o.ready`` low: the array takes exactly ``OUTPUT_DEPTH`` last beats (one result each),
    then lowers ``i.ready`` until a result is taken (its registered full flag; early or late both fail here)."""
    config = CONFIGS["default"]
    array = StationaryArray(config, entries=8)
    counts = {}

    async def testbench(ctx):
        ctx.set(array.o.ready, 0)
        ctx.set(array.i.payload.first, 1)
        ctx.set(array.i.payload.last, 1)
        ctx.set(array.i.valid, 1)
        accepted = 0
        for _ in range(3 * OUTPUT_DEPTH + array.latency):
            accepted += ctx.get(array.i.ready)
            await ctx.tick()
        counts["held"], counts["ready_while_full"] = accepted, ctx.get(array.i.ready)
        ctx.set(array.o.ready, 1)  # one result leaves: room for one more
        await ctx.tick()
        ctx.set(array.o.ready, 0)
        for _ in range(4):
            accepted += ctx.get(array.i.ready)
            await ctx.tick()
        counts["after_one"] = accepted

    simulator = Simulator(array)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    assert counts == {"held": OUTPUT_DEPTH, "ready_while_full": 0, "after_one": OUTPUT_DEPTH + 1}


def test_checker_catches_a_wrong_sum():
    config = CONFIGS["odd_naive"]
    stimulus = stationary_gemm_stimulus(config, *random_gemm(config, 3, 10, 4, seed=1), entries=4)
    outputs, _ = run(StationaryArray(config, entries=4), stimulus)
    assert mismatches(outputs, stimulus) == []
    outputs[2] ^= 1
    assert mismatches(outputs, stimulus) == [2]


@pytest.mark.parametrize("kwargs, message", [
    ({"entries": 1}, "entries must be an int in 2..64, got 1"),
    ({"primitives": 0}, "primitives must be a bool, got int 0"),
    ({"config": dataclasses.replace(CONFIGS["default"], pe_variant="baseline")},
     "a StationaryArray needs pe_variant 'esb' or 'esb_naive', got 'baseline'"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        StationaryArray(**{"config": CONFIGS["default"], **kwargs})
