# amaranth: UnusedElaboratable=no
"""LayerCore (esb_hw/hw/core/layer.py): whole conv2d and linear layers from on-chip buffers to output codes,
bit-exact with the golden model (conv2d or linear, requantize, max_pool2x2), in Amaranth's simulator."""

import numpy as np
import pytest

from esb_hw.compiler.lowering import reference
from esb_hw.compiler.timeline import core_cycles as predicted_cycles
from esb_hw.config import AcceleratorConfig
from esb_hw.errors import ParameterError
from esb_hw.hw.core.layer import LayerCore
from esb_hw.sim.layer_core import output_codes, random_layer, run_layer_core

SMALL = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=8, activation_k=8, rows=4, cols=4,
                          max_reduction=4096, name="small")
SMALL_ESB = AcceleratorConfig(weight_bits=5, weight_k=2, activation_bits=6, activation_k=3, rows=4, cols=4,
                              max_reduction=1024, name="small_esb")
SMALL_UNIFORM = AcceleratorConfig(weight_bits=5, weight_k=3, activation_bits=8, activation_k=8, rows=4, cols=4,
                                  max_reduction=4096, name="small_uniform")


def run_layer(config, layer, x, entries=8, lanes=1):
    run = run_layer_core(config, layer, x, entries=entries, requant_lanes=lanes)
    return run.schedule, run.images, run.words, run.cycles


CASES = [
    # config, (out, in, kernel, stride, padding, height, width, pool)
    (SMALL, (4, 4, 3, 1, 1, 6, 6, False)),
    (SMALL, (6, 5, 3, 2, 1, 7, 7, False)),
    (SMALL, (5, 3, 3, 1, 1, 6, 8, True)),
    (SMALL_ESB, (4, 6, 3, 1, 0, 6, 6, True)),
    (SMALL_UNIFORM, (3, 4, 1, 1, 0, 5, 5, False)),
]


@pytest.mark.parametrize("config, case", CASES, ids=lambda value: getattr(value, "name", None)
                         or "x".join(map(str, value[:3])) + f"s{value[3]}p{value[4]}" + ("pool" if value[7] else ""))
def test_conv_layers_match_the_golden_model(config, case):
    out_channels, in_channels, kernel, stride, padding, height, width, pool = case
    rng = np.random.default_rng(sum(case))
    layer = random_layer(config, rng, "conv2d", out_channels, in_channels, kernel, stride, padding, pool)
    x = rng.integers(0, config.activation_format.code_count, (in_channels, height, width))
    schedule, images, words, cycles = run_layer(config, layer, x)
    assert words == images.outputs
    assert np.array_equal(output_codes(config, schedule, words), reference(config, layer, x))
    assert abs(predicted_cycles(schedule) / cycles - 1) < 0.05, (predicted_cycles(schedule), cycles)


def test_a_linear_layer():
    rng = np.random.default_rng(5)
    layer = random_layer(SMALL, rng, "linear", 6, 10)
    x = rng.integers(0, 256, (9, 10))
    schedule, images, words, _ = run_layer(SMALL, layer, x, entries=4)
    assert np.array_equal(output_codes(SMALL, schedule, words), reference(SMALL, layer, x))


@pytest.mark.slow  # the engine's utilization is measured by bench/layer_perf.py and test_engine's runs
def test_utilization_of_a_3x3_layer_and_the_cycle_model():
    """3x3, 16 -> 8 channels on a 4x4 array (36 chunks): the array is busy nearly every cycle from start to
    done, and the compiler's model predicts the cycles within 1 %."""
    rng = np.random.default_rng(8)
    layer = random_layer(SMALL, rng, "conv2d", 8, 16, 3, 1, 1)
    x = rng.integers(0, 256, (16, 8, 8))
    schedule, images, words, cycles = run_layer(SMALL, layer, x, entries=32)
    assert words == images.outputs
    utilization = schedule.macs / (cycles * SMALL.macs)
    assert utilization > 0.9, utilization
    assert abs(predicted_cycles(schedule) / cycles - 1) < 0.01, (predicted_cycles(schedule), cycles)


@pytest.mark.parametrize("lanes", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_more_requantization_lanes(lanes):
    """A 1x1 layer (4 chunks) is bound by the requantization: 2 and 4 lanes take 3 and 2 cycles per pixel
    instead of 5, every code still exact, and the cycle model follows."""
    rng = np.random.default_rng(lanes)
    layer = random_layer(SMALL, rng, "conv2d", 8, 16, 1, 1, 0, pool=True)
    x = rng.integers(0, 256, (16, 8, 8))
    schedule, images, words, cycles = run_layer(SMALL, layer, x, entries=32, lanes=lanes)
    assert words == images.outputs
    assert np.array_equal(output_codes(SMALL, schedule, words), reference(SMALL, layer, x))
    predicted = predicted_cycles(schedule, requant_lanes=lanes)
    assert abs(predicted / cycles - 1) < 0.05, (predicted, cycles)
    _, _, _, one_lane = run_layer(SMALL, layer, x, entries=32, lanes=1)
    assert cycles < one_lane


def test_checker_catches_a_wrong_word():
    rng = np.random.default_rng(6)
    layer = random_layer(SMALL, rng, "conv2d", 4, 4, 3, 1, 1)
    x = rng.integers(0, 256, (4, 5, 5))
    schedule, images, words, _ = run_layer(SMALL, layer, x)
    assert words == images.outputs
    words[3] ^= 1 << 9
    assert not np.array_equal(output_codes(SMALL, schedule, words), reference(SMALL, layer, x))


def test_the_array_must_be_square():
    config = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=8, activation_k=8, rows=4, cols=8)
    with pytest.raises(ParameterError, match="the layer core needs a square array, got 4x8"):
        LayerCore(config)
