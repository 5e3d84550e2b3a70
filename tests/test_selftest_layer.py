"""The compiler's self-test layer (esb_hw/compiler/selftest.py): extremes first, then random tiles."""

import numpy as np
import pytest

from esb_hw.compiler.gemm import gemm_stimulus
from esb_hw.compiler.selftest import build_test_layer
from esb_hw.config import AcceleratorConfig
from esb_hw.errors import ParameterError
from esb_hw.layouts import array_output_layout, unpack

SMALL = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=6, activation_k=3, rows=2, cols=3,
                          max_reduction=96, name="small")


def test_extreme_tiles_come_first():
    layer = build_test_layer(SMALL, tiles=6)
    assert layer.tiles == 6 and len(layer.beats) == 6 * 4  # reduction 4 * cols = 12: 4 beats per tile
    extreme = SMALL.max_product * 12
    layout = array_output_layout(SMALL)
    assert unpack(layout, layer.expected[0]) == [extreme, extreme]
    assert unpack(layout, layer.expected[1]) == [-extreme, -extreme]


def test_random_tiles_are_the_golden_gemm_of_the_seeded_codes():
    layer = build_test_layer(SMALL, tiles=5, seed=7)
    rng = np.random.default_rng(7)
    for tile in range(3):  # each random tile has weights of its own
        weights = rng.integers(0, SMALL.weight_format.code_count, (2, 12))
        activations = rng.integers(0, SMALL.activation_format.code_count, (12, 1))
        stimulus = gemm_stimulus(SMALL, weights, activations)
        assert layer.expected[2 + tile] == stimulus.expected_payloads[0]
        assert layer.beats[4 * (2 + tile): 4 * (3 + tile)] == tuple(stimulus.beats)
    assert build_test_layer(SMALL, tiles=5, seed=8).expected[2:] != layer.expected[2:]


def test_tiles_are_checked():
    with pytest.raises(ParameterError, match="tiles must be an int >= 3, got 2"):
        build_test_layer(SMALL, tiles=2)
