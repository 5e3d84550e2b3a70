# amaranth: UnusedElaboratable=no
"""PEArray (esb_hw/hw/core/array.py) against the golden GEMM: every shipped config in Amaranth's simulator, and
the default, odd-shaped and primitive netlists in cocotb on Verilator and Icarus.

Every stream source drives random payloads (``last`` included) while ``valid`` is low (esb_hw/sim/streams.py), and
the sinks apply random back-pressure.
"""

import random
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

import esb_hw.hw.core.array as array_module
from esb_hw.compiler.gemm import gemm_stimulus
from esb_hw.config import AcceleratorConfig
from esb_hw.data import CONFIGS as CONFIG_DIR
from esb_hw.errors import ParameterError
from esb_hw.hw.core.array import PEArray, pipeline_latency
from esb_hw.layouts import array_output_layout, pack, unpack, weight_encoding
from esb_hw.sim.pytest_helpers import simulate
from esb_hw.sim.runner import SIM_MODELS
from esb_hw.sim.streams import get_many, put_many

ROOT = Path(__file__).resolve().parents[1]
COCOTB_MODULE = "esb_hw.sim.testbenches.cocotb_array"
PRIMITIVE_MODELS = SIM_MODELS / "xilinx_primitives.v"
SHIPPED = {path.stem: AcceleratorConfig.from_toml(path) for path in sorted(CONFIG_DIR.glob("*.toml"))}
CONFIGS = {
    "default": SHIPPED["default"],
    # Odd shape (unbalanced adder trees, padding), ESB activations, the naive shift-add PEs.
    "odd_esb_naive": AcceleratorConfig(weight_bits=5, weight_k=2, activation_bits=6, activation_k=3, rows=3,
                                       cols=5, max_reduction=600, pe_variant="esb_naive", name="odd_esb_naive"),
    "baseline_pot": AcceleratorConfig(weight_bits=3, weight_k=0, activation_bits=8, activation_k=8, rows=4,
                                      cols=2, max_reduction=64, pe_variant="baseline", name="baseline_pot"),
    # Uniform 4-bit weights: radix-4 recoded products, weights carried as two's complement levels.
    "uniform4_recoded": SHIPPED["uniform4"],
    # Uniform 5-bit weights: two recoded terms per product into the tree.
    "uniform5_recoded": SHIPPED["uniform5"],
    # Uniform 6-bit weights (Booth top digit up to 2) on ESB activations, which the lanes shift into levels;
    # an odd shape.
    "uniform6_act_esb": AcceleratorConfig(weight_bits=6, weight_k=4, activation_bits=6, activation_k=3, rows=3,
                                          cols=7, max_reduction=700, name="uniform6_act_esb"),
}


def random_gemm(config: AcceleratorConfig, out_rows: int, reduction: int, columns: int, seed: int):
    rng = np.random.default_rng(seed)
    weights = rng.integers(0, config.weight_format.code_count, (out_rows, reduction))
    activations = rng.integers(0, config.activation_format.code_count, (reduction, columns))
    return weights, activations


def extreme_gemm(config: AcceleratorConfig, sign: int, reduction: int | None = None):
    """The largest positive (sign = +1) or negative sum: max levels everywhere, ``max_reduction`` long."""
    weight_format, activation_format = config.weight_format, config.activation_format
    weight_code = weight_format.code_of_level(np.array([sign * weight_format.max_level]))[0]
    activation_code = activation_format.code_of_level(np.array([activation_format.max_level]))[0]
    reduction = reduction or config.max_reduction - config.max_reduction % config.cols
    return np.full((config.rows, reduction), weight_code), np.full((reduction, 2), activation_code)


def gemm_cases(config):
    """Shapes: the full array, one row, one column, one beat, shapes not matching the array, more rows than
    the array (two row blocks)."""
    shapes = [(config.rows, 4 * config.cols, 6), (1, 3 * config.cols, 4), (config.rows, config.cols + 1, 1),
              (2, 1, 5), (max(1, config.rows - 1), 2 * config.cols - 1, 7), (config.rows + 1, config.cols, 2)]
    return [random_gemm(config, *shape, seed=index) for index, shape in enumerate(shapes)]


def combined(config, cases):
    beats, expected = [], []
    for weights, activations in cases:
        stimulus = gemm_stimulus(config, weights, activations)
        beats += stimulus.beats
        expected += stimulus.expected_payloads
    return beats, expected


def cocotb_params(config, seed=1):
    """Every case of gemm_cases plus both extremes at max_reduction in one run: one build, one simulation."""
    beats, expected = combined(config, gemm_cases(config) + [extreme_gemm(config, +1), extreme_gemm(config, -1)])
    return {"beats": beats, "expected": expected, "latency": pipeline_latency(config), "seed": seed, "idle": 0.3,
            "stall": 0.3}


def run_amaranth(array: PEArray, beats, tiles: int, seed: int, idle=0.3, stall=0.3):
    """Stream ``beats`` through ``array`` in Amaranth's simulator; return the output payloads as ints. Fails,
    instead of hanging, when the tiles take more than 20 cycles per beat."""
    outputs = []

    async def source(ctx):
        await put_many(ctx, array.i, beats, rng=random.Random(seed), idle=idle, noise=random.Random(seed + 2))

    async def sink(ctx):
        payloads = await get_many(ctx, array.o, tiles, rng=random.Random(seed + 1), stall=stall)
        outputs.extend(int(payload.as_value().value) for payload in payloads)

    simulator = Simulator(array)
    simulator.add_clock(1e-8)
    simulator.add_testbench(source, background=True)
    simulator.add_testbench(sink, background=True)
    simulator.run_until(1e-8 * (20 * len(beats) + 200))
    assert len(outputs) == tiles, f"timed out with {len(outputs)} of {tiles} tiles out"
    return outputs


def tile_mismatches(outputs, expected):
    return [tile for tile, (got, want) in enumerate(zip(outputs, expected, strict=True)) if got != want]


def amaranth_cases(config):
    """A smaller mix than cocotb's (Amaranth's simulator is the slower one on arrays): random shapes,
    two row blocks, and extremes of 8 beats (the full max_reduction runs in tests/test_row.py and cocotb)."""
    return (gemm_cases(config)[:2] + gemm_cases(config)[-1:]
            + [extreme_gemm(config, +1, 8 * config.cols), extreme_gemm(config, -1, 8 * config.cols)])


SMALL_SHIPPED = sorted(name for name, config in SHIPPED.items() if config.macs <= 64)
#: Chip configs whose PE and formats a simulated config already covers (the same generator at 8x8 or 32x32), left
#: out of the Verilator runs: a 64x64 array is many minutes of g++.
COVERED_ELSEWHERE = {"zcu102_64x64": "array32x32", "zcu102_64x64_uniform4": "uniform4"}
BIG_SHIPPED = sorted(name for name, config in SHIPPED.items() if config.macs > 64 and name not in COVERED_ELSEWHERE)


@pytest.mark.parametrize("name", SMALL_SHIPPED)
def test_every_shipped_config_in_amaranth_sim(name):
    config = SHIPPED[name]
    beats, expected = combined(config, amaranth_cases(config))
    outputs = run_amaranth(PEArray(config), beats, len(expected), seed=len(name))
    assert tile_mismatches(outputs, expected) == []


def test_recoded_esb_activations_in_amaranth_sim():
    config = CONFIGS["uniform6_act_esb"]
    assert weight_encoding(config) == "twos"
    beats, expected = combined(config, amaranth_cases(config))
    outputs = run_amaranth(PEArray(config), beats, len(expected), seed=6)
    assert tile_mismatches(outputs, expected) == []


def planted_idle_last_array():
    """PEArray with a planted bug: the tile-start flag taken from ``last`` on idle cycles too."""
    source = Path(array_module.__file__).read_text()
    guarded = ("        with m.If(accepted):\n"
               "            m.d.sync += starts_tile.eq(self.i.payload.last)\n")
    assert guarded in source
    mutated = source.replace(guarded, "        m.d.sync += starts_tile.eq(self.i.payload.last)\n")
    module = types.ModuleType("planted_array", "PEArray with a planted bug")
    module.__package__ = array_module.__package__
    sys.modules["planted_array"] = module
    try:
        exec(compile(mutated, "planted_array.py", "exec"), module.__dict__)
    finally:
        del sys.modules["planted_array"]
    return module.PEArray


def test_the_planted_idle_last_bug_is_caught():
    """A source that held its last payload while idle let this bug pass; random idle payloads catch it."""
    config = SHIPPED["default"]
    beats, expected = combined(config, amaranth_cases(config)[:2])
    good = run_amaranth(PEArray(config), beats, len(expected), seed=3)
    assert tile_mismatches(good, expected) == []
    planted = run_amaranth(planted_idle_last_array()(config), beats, len(expected), seed=3)
    assert tile_mismatches(planted, expected) != []


def test_full_rate_latency_in_amaranth_sim():
    """No gaps, no back-pressure: a tile's sums appear ``latency`` cycles after its last beat is accepted."""
    config = CONFIGS["odd_esb_naive"]
    stimulus = gemm_stimulus(config, *random_gemm(config, 3, 10, 4, seed=8))  # 2 beats per tile, 4 tiles
    array = PEArray(config)
    seen = []

    async def testbench(ctx):
        ctx.set(array.o.ready, 1)
        noise = random.Random(4)
        for cycle in range(len(stimulus.beats) + array.latency + 2):
            feeding = cycle < len(stimulus.beats)
            width = len(array.i.payload.as_value())
            ctx.set(array.i.payload.as_value(), stimulus.beats[cycle] if feeding else noise.getrandbits(width))
            ctx.set(array.i.valid, feeding)
            await ctx.tick()
            if ctx.get(array.o.valid):
                seen.append((cycle, int(ctx.get(array.o.payload).as_value().value)))

    simulator = Simulator(array)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    # The last beat of tile t is accepted at cycle 2 t + 1; its sums are valid after `latency` more edges.
    assert seen == [(2 * tile + 1 + array.latency - 1, payload)
                    for tile, payload in enumerate(stimulus.expected_payloads)]


@pytest.mark.slow
@pytest.mark.parametrize("name", BIG_SHIPPED)
def test_big_shipped_configs_in_verilator(name):
    """The 16x16 and 32x32 configs, in cocotb on Verilator (a 32x32 build takes minutes of g++)."""
    config = SHIPPED[name]
    simulate(PEArray(config), COCOTB_MODULE, simulator="verilator", toplevel=f"array_{name}",
             params=cocotb_params(config))


def test_shipped_configs_are_all_simulated():
    assert sorted(SMALL_SHIPPED + BIG_SHIPPED + list(COVERED_ELSEWHERE)) == sorted(SHIPPED) and len(SMALL_SHIPPED) >= 4
    for name, other in COVERED_ELSEWHERE.items():  # the same formats and PE as a simulated config
        covered, simulated = SHIPPED[name], SHIPPED[other]
        assert (covered.weight_format, covered.activation_format, covered.pe_variant) == (
            simulated.weight_format, simulated.activation_format, simulated.pe_variant)


#: Configs whose cocotb runs take over half a minute each: in ``make test-all`` (the Amaranth-simulator test above
#: checks them bit-exactly in ``make test``).
SLOW_COCOTB = {"uniform5_recoded", "uniform6_act_esb", "uniform4_recoded", "baseline_pot"}


def _array_cases():
    """Every config on both simulators; the slow configs, and the default's Icarus run (about 40 s; Verilator runs
    it in ``make test``), only in ``make test-all``."""
    cases = []
    for name in sorted(CONFIGS):
        for simulator in ("verilator", "icarus"):
            slow = name in SLOW_COCOTB or (name == "default" and simulator == "icarus")
            cases.append(pytest.param(name, simulator, marks=pytest.mark.slow) if slow else (name, simulator))
    return cases


@pytest.mark.parametrize("name, simulator", _array_cases())
def test_array_matches_golden_gemm(name, simulator):
    config = CONFIGS[name]
    simulate(PEArray(config), COCOTB_MODULE, simulator=simulator, toplevel=f"array_{name}",
             params=cocotb_params(config))


# Minutes each (Verilator builds of thousands of primitive cells): `make test-all` runs them.
@pytest.mark.parametrize("name, simulator", [pytest.param("default", "verilator", marks=pytest.mark.slow),
                                             pytest.param("uniform4_recoded", "verilator", marks=pytest.mark.slow),
                                             pytest.param("uniform5_recoded", "verilator", marks=pytest.mark.slow),
                                             pytest.param("default", "icarus", marks=pytest.mark.slow)])
def test_primitive_netlist_matches_golden_gemm(name, simulator):
    """The netlist that is synthesized (LUT6_2/CARRY8 adders, mapped LUT6 products, the recoded products' LUT6,
    LUT6_2 and CARRY8), with behavioral models of the primitives written from UG974."""
    config = CONFIGS[name]
    verilog_text = verilog.convert(PEArray(config, primitives=True), name=f"primitives_{name}", emit_src=False)
    assert "LUT6_2" in verilog_text and "CARRY8" in verilog_text
    simulate(verilog_text + "\n" + PRIMITIVE_MODELS.read_text(), COCOTB_MODULE, simulator=simulator,
             toplevel=f"primitives_{name}", params=cocotb_params(config))


def test_extremes_reach_the_accumulator_limits():
    config = CONFIGS["default"]
    for sign in (+1, -1):
        stimulus = gemm_stimulus(config, *extreme_gemm(config, sign))
        peak = abs(stimulus.expected[0][0])
        assert peak == config.max_reduction * config.max_product
        assert peak < 2 ** (config.accumulator_bits - 1) <= 2 * peak  # the width is tight


@pytest.mark.parametrize("simulator", ["verilator"])
def test_array_checker_catches_a_wrong_sum(simulator):
    config = CONFIGS["default"]
    stimulus = gemm_stimulus(config, *random_gemm(config, 8, 16, 3, seed=5))
    expected = stimulus.expected_payloads
    layout = array_output_layout(config)
    sums = unpack(layout, expected[1])
    sums[1] += 1  # row 1's sum of tile 1
    expected[1] = pack(layout, sums)
    params = {"beats": stimulus.beats, "expected": expected, "latency": pipeline_latency(config), "seed": 1,
              "idle": 0.3, "stall": 0.3}
    with pytest.raises(AssertionError, match="1 of 3 tiles differ"):
        simulate(PEArray(config), COCOTB_MODULE, simulator=simulator, toplevel="array_default", params=params)


@pytest.mark.parametrize("kwargs, message", [
    ({"config": {"rows": 8}}, "config must be an AcceleratorConfig, got dict"),
    ({"primitives": None}, "primitives must be a bool, got NoneType None"),
])
def test_parameters_are_checked(kwargs, message):
    arguments = {"config": CONFIGS["default"], **kwargs}
    with pytest.raises(ParameterError, match=message):
        PEArray(arguments.pop("config"), **arguments)


def test_credits_stop_the_input_when_the_buffer_is_full():
    """Hold o.ready low: the array takes exactly OUTPUT_DEPTH one-beat tiles, then i.ready stays low; released,
    every tile comes out exact and in order."""
    from esb_hw.hw.core.array import OUTPUT_DEPTH

    config = CONFIGS["odd_esb_naive"]
    stimulus = gemm_stimulus(config, *random_gemm(config, 3, config.cols, OUTPUT_DEPTH + 8, seed=11))
    assert len(stimulus.beats) == stimulus.tiles == OUTPUT_DEPTH + 8  # one beat per tile
    array = PEArray(config)
    accepted_while_blocked, outputs = [], []  # beats taken while o was blocked; output beats

    async def driver(ctx):
        queue = list(stimulus.beats)
        noise, width = random.Random(5), len(array.i.payload.as_value())
        ctx.set(array.o.ready, 0)
        taken = 0
        for _ in range(OUTPUT_DEPTH + 40):
            ctx.set(array.i.payload.as_value(), queue[taken] if taken < len(queue) else noise.getrandbits(width))
            ctx.set(array.i.valid, int(taken < len(queue)))
            ready = ctx.get(array.i.ready)
            await ctx.tick()
            taken += int(ready and taken < len(queue))
        accepted_while_blocked.append(taken)
        assert not ctx.get(array.i.ready)
        ctx.set(array.o.ready, 1)
        while len(outputs) < stimulus.tiles:
            ctx.set(array.i.payload.as_value(), queue[taken] if taken < len(queue) else noise.getrandbits(width))
            ctx.set(array.i.valid, int(taken < len(queue)))
            ready, valid = ctx.get(array.i.ready), ctx.get(array.o.valid)
            payload = int(ctx.get(array.o.payload).as_value().value)
            await ctx.tick()
            taken += int(ready and taken < len(queue))
            if valid:
                outputs.append(payload)

    simulator = Simulator(array)
    simulator.add_clock(1e-8)
    simulator.add_testbench(driver)
    simulator.run()
    assert accepted_while_blocked == [OUTPUT_DEPTH]
    assert tile_mismatches(outputs, stimulus.expected_payloads) == []
