"""The compiler's self-test layer (esb_hw/compiler/selftest.py): extremes first, then random tiles."""

import numpy as np
import pytest

from esb_hw.compiler.selftest import build_test_layer
from esb_hw.config import AcceleratorConfig
from esb_hw.errors import ParameterError
from esb_hw.layouts import array_input_layout, array_output_layout, pack, unpack

SMALL = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=6, activation_k=3, rows=2, cols=3,
                          max_reduction=96, name="small")


def test_extreme_tiles_come_first():
    layer = build_test_layer(SMALL, tiles=6)
    assert layer.tiles == 6 and len(layer.beats) == 6 * 4  # reduction 4 * cols = 12: 4 beats per tile
    extreme = SMALL.max_product * 12
    layout = array_output_layout(SMALL)
    assert unpack(layout, layer.expected[0]) == [extreme, extreme]
    assert unpack(layout, layer.expected[1]) == [-extreme, -extreme]


def replay(layer):
    """Each tile's row sums, recomputed from the unpacked beats with the formats' levels, and the weights of each
    tile."""
    layout = array_input_layout(SMALL)
    sums, tiles, weights = [0] * SMALL.rows, [], []
    for payload in layer.beats:
        beat = unpack(layout, payload)
        levels = SMALL.activation_format.level(np.array(beat["activations"]))
        for row in range(SMALL.rows):
            sums[row] += int(np.dot(SMALL.weight_format.level(np.array(beat["weights"][row])), levels))
        weights.append(beat["weights"])
        if beat["last"]:
            tiles.append((sums, weights))
            sums, weights = [0] * SMALL.rows, []
    return tiles


def test_every_tile_is_exact_and_the_random_ones_have_weights_of_their_own():
    layer = build_test_layer(SMALL, tiles=6, seed=7)
    tiles = replay(layer)
    assert [sums for sums, _ in tiles] == [unpack(array_output_layout(SMALL), word) for word in layer.expected]
    random_weights = [weights for _, weights in tiles[2:]]
    assert all(first != second for first, second in zip(random_weights, random_weights[1:], strict=False))
    assert build_test_layer(SMALL, tiles=6, seed=8).expected[2:] != layer.expected[2:]


def test_replay_catches_a_wrong_expectation():
    layer = build_test_layer(SMALL, tiles=4)
    wrong = list(layer.expected)
    sums = unpack(array_output_layout(SMALL), wrong[3])
    sums[0] -= 1
    wrong[3] = pack(array_output_layout(SMALL), sums)
    replayed = [sums for sums, _ in replay(layer)]
    expected = [unpack(array_output_layout(SMALL), word) for word in wrong]
    assert [index for index, (got, want) in enumerate(zip(replayed, expected, strict=True)) if got != want] == [3]


def test_tiles_are_checked():
    with pytest.raises(ParameterError, match="tiles must be an int >= 3, got 2"):
        build_test_layer(SMALL, tiles=2)
