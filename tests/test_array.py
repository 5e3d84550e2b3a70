"""PEArray (esb_hw/hw/array.py) against the golden GEMM, in cocotb on Verilator and Icarus."""

from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog

from esb_hw.compiler.gemm import gemm_stimulus
from esb_hw.config import AcceleratorConfig
from esb_hw.hw.core.array import PEArray, pipeline_latency
from sim.pytest_helpers import simulate, simulators

COCOTB_MODULE = "sim.tests.cocotb_array"
PRIMITIVE_MODELS = Path(__file__).resolve().parents[1] / "sim" / "models" / "xilinx_primitives.v"
CONFIGS = {
    "default": AcceleratorConfig.from_toml("configs/default.toml"),
    # Odd shape (unbalanced adder trees, padding), ESB activations, the naive shift-add PEs.
    "odd_esb_naive": AcceleratorConfig(weight_bits=5, weight_k=2, activation_bits=6, activation_k=3, rows=3,
                                       cols=5, max_reduction=600, pe_variant="esb_naive", name="odd_esb_naive"),
    "baseline_pot": AcceleratorConfig(weight_bits=3, weight_k=0, activation_bits=8, activation_k=8, rows=4,
                                      cols=2, max_reduction=64, pe_variant="baseline", name="baseline_pot"),
}


def random_gemm(config: AcceleratorConfig, out_rows: int, reduction: int, columns: int, seed: int):
    rng = np.random.default_rng(seed)
    weights = rng.integers(0, config.weight_format.code_count, (out_rows, reduction))
    activations = rng.integers(0, config.activation_format.code_count, (reduction, columns))
    return weights, activations


def extreme_gemm(config: AcceleratorConfig, sign: int):
    """The largest positive (sign = +1) or negative sum at max_reduction: max levels everywhere."""
    weight_format, activation_format = config.weight_format, config.activation_format
    weight_code = weight_format.code_of_level(np.array([sign * weight_format.max_level]))[0]
    activation_code = activation_format.code_of_level(np.array([activation_format.max_level]))[0]
    reduction = config.max_reduction - config.max_reduction % config.cols
    return (np.full((config.rows, reduction), weight_code), np.full((reduction, 2), activation_code))


def stimulus_params(config, weights, activations, seed=1, idle=0.3, stall=0.3):
    stimulus = gemm_stimulus(config, weights, activations)
    return {"beats": stimulus.beats, "expected": stimulus.expected, "rows": config.rows,
            "accumulator_bits": config.accumulator_bits, "latency": pipeline_latency(config),
            "seed": seed, "idle": idle, "stall": stall}


def gemm_cases(config):
    """Shapes: the full array, one row, one column, one beat, shapes not matching the array, extremes."""
    cases = []
    for index, (rows, reduction, columns) in enumerate([(config.rows, 4 * config.cols, 6), (1, 3 * config.cols, 4),
                                                        (config.rows, config.cols + 1, 1), (2, 1, 5),
                                                        (max(1, config.rows - 1), 2 * config.cols - 1, 7)]):
        cases.append(random_gemm(config, rows, reduction, columns, seed=index))
    return cases


def combined_params(config, seed=1):
    """Every case of gemm_cases plus both extremes in one run: one build, one simulation."""
    beats, expected = [], []
    for weights, activations in gemm_cases(config) + [extreme_gemm(config, +1), extreme_gemm(config, -1)]:
        stimulus = gemm_stimulus(config, weights, activations)
        beats += stimulus.beats
        expected += stimulus.expected
    return {"beats": beats, "expected": expected, "rows": config.rows, "accumulator_bits": config.accumulator_bits,
            "latency": pipeline_latency(config), "seed": seed, "idle": 0.3, "stall": 0.3}


@simulators
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_array_matches_golden_gemm(name, simulator):
    config = CONFIGS[name]
    simulate(PEArray(config), COCOTB_MODULE, simulator=simulator, toplevel=f"array_{name}",
             params=combined_params(config))


@simulators
def test_primitive_netlist_matches_golden_gemm(simulator):
    """The netlist that is synthesized (LUT6_2/CARRY8 ternary adders), with behavioral models of the two
    primitives written from UG974."""
    config = CONFIGS["default"]
    verilog_text = verilog.convert(PEArray(config, primitives=True), name="array_primitives", emit_src=False)
    assert "LUT6_2" in verilog_text and "CARRY8" in verilog_text
    simulate(verilog_text + "\n" + PRIMITIVE_MODELS.read_text(), COCOTB_MODULE, simulator=simulator,
             toplevel="array_primitives", params=combined_params(config))


def test_extremes_reach_the_accumulator_limits():
    config = CONFIGS["default"]
    for sign in (+1, -1):
        stimulus = gemm_stimulus(config, *extreme_gemm(config, sign))
        peak = abs(stimulus.expected[0][0])
        assert peak == config.max_reduction * config.max_product
        assert peak < 2 ** (config.accumulator_bits - 1) <= 2 * peak  # the width is tight


@pytest.mark.parametrize("simulator", ["icarus"])
def test_array_checker_catches_a_wrong_sum(simulator):
    config = CONFIGS["default"]
    params = stimulus_params(config, *random_gemm(config, 8, 16, 3, seed=5))
    params["expected"][1][2] += 1
    with pytest.raises(AssertionError, match="1 of 3 tiles differ"):
        simulate(PEArray(config), COCOTB_MODULE, simulator=simulator, toplevel="array_default", params=params)


def test_array_rejects_a_non_config():
    with pytest.raises(TypeError, match="config must be an AcceleratorConfig"):
        PEArray({"rows": 8})
