"""GEMM tiling (esb_hw/compiler/gemm.py): beats replayed field by field, row blocks, golden expectations."""

import numpy as np
import pytest

from esb_hw.compiler.gemm import gemm_stimulus
from esb_hw.config import AcceleratorConfig
from esb_hw.errors import InputError
from esb_hw.layouts import array_input_layout, unpack
from esb_hw.quant import golden

CONFIG = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=8, activation_k=8, rows=2, cols=3)


def replay(config, stimulus):
    """Run the beats through a Python model of the array: per tile, the rows' sums of level products."""
    layout = array_input_layout(config)
    sums, tiles = [0] * config.rows, []
    for payload in stimulus.beats:
        beat = unpack(layout, payload)
        for row in range(config.rows):
            levels = config.weight_format.level(np.array(beat["weights"][row]))
            sums[row] += int(np.dot(levels, beat["activations"]))
        if beat["last"]:
            tiles.append(sums)
            sums = [0] * config.rows
    return tiles


@pytest.mark.parametrize("out_rows", [1, 2, 5])
def test_beats_replay_to_the_golden_gemm(out_rows):
    rng = np.random.default_rng(out_rows)
    weights = rng.integers(0, 16, (out_rows, 7))
    activations = rng.integers(0, 256, (7, 4))
    stimulus = gemm_stimulus(CONFIG, weights, activations)
    blocks = -(-out_rows // CONFIG.rows)
    assert stimulus.tiles == 4 * blocks and len(stimulus.beats) == 4 * blocks * 3  # ceil(7 / 3) beats per tile
    tiles = replay(CONFIG, stimulus)
    assert tiles == stimulus.expected
    expected = golden.linear(activations.T, CONFIG.weight_format.level(weights)).T
    assert np.array_equal(stimulus.assemble(tiles), expected)


def test_assemble_catches_a_wrong_sum():
    rng = np.random.default_rng(1)
    weights, activations = rng.integers(0, 16, (3, 5)), rng.integers(0, 256, (5, 2))
    stimulus = gemm_stimulus(CONFIG, weights, activations)
    tiles = replay(CONFIG, stimulus)
    tiles[3][0] += 1  # block 1, column 1, row 0 of the block: output row 2
    wrong = stimulus.assemble(tiles)
    expected = golden.linear(activations.T, CONFIG.weight_format.level(weights)).T
    assert np.argwhere(wrong != expected).tolist() == [[2, 1]]


def test_output_payloads_round_trip():
    stimulus = gemm_stimulus(CONFIG, np.full((2, 3), 15), np.full((3, 1), 255))
    assert stimulus.tile_sums(stimulus.expected_payloads) == stimulus.expected
    assert stimulus.expected[0][0] < 0


@pytest.mark.parametrize("weights, activations, message", [
    (np.zeros((1, 4097), int), np.zeros((4097, 1), int), "a reduction of 4097 exceeds max_reduction 4096"),
    (np.zeros((1, 4), int), np.zeros((3, 1), int), r"W is \(1, 4\) but X is \(3, 1\): their K differ"),
    (np.zeros((0, 3), int), np.zeros((3, 1), int), r"W must not be empty, got shape \(0, 3\)"),
    (np.zeros((1, 3), int), np.zeros((3, 0), int), r"X must not be empty, got shape \(3, 0\)"),
    (np.zeros((1, 3)), np.zeros((3, 1), int), "W must hold integer codes, got dtype float64"),
    (np.zeros(3, int), np.zeros((3, 1), int), r"W must be a 2-d array of codes, got shape \(3,\)"),
    (np.full((1, 3), 16), np.zeros((3, 1), int), "weight codes must be in 0..15"),
])
def test_rejects_what_does_not_fit(weights, activations, message):
    with pytest.raises(InputError, match=message):
        gemm_stimulus(CONFIG, weights, activations)
