"""GEMM tiling (esb_hw/compiler/gemm.py): beat packing and golden expectations."""

import numpy as np
import pytest

from esb_hw.compiler.gemm import gemm_stimulus, pack_outputs, unpack_outputs
from esb_hw.config import AcceleratorConfig
from esb_hw.quant import golden

CONFIG = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=8, activation_k=8, rows=2, cols=3)


def unpack_beat(config, payload):
    """Field by field, from input_layout's order: activations, weights[r][c], last."""
    abits, wbits = config.activation_format.bits, config.weight_format.bits
    activations = [(payload >> (abits * c)) & ((1 << abits) - 1) for c in range(config.cols)]
    offset = abits * config.cols
    weights = [[(payload >> (offset + wbits * (r * config.cols + c))) & ((1 << wbits) - 1)
                for c in range(config.cols)] for r in range(config.rows)]
    last = payload >> (offset + wbits * config.rows * config.cols)
    return activations, weights, last


def test_beats_replay_to_the_golden_gemm():
    rng = np.random.default_rng(0)
    weights = rng.integers(0, 16, (2, 7))
    activations = rng.integers(0, 256, (7, 4))
    stimulus = gemm_stimulus(CONFIG, weights, activations)
    assert stimulus.tiles == 4 and len(stimulus.beats) == 4 * 3  # ceil(7 / 3) beats per column
    sums, replayed = [0, 0], []
    for payload in stimulus.beats:
        beat_activations, beat_weights, last = unpack_beat(CONFIG, payload)
        for row in range(2):
            sums[row] += sum(int(CONFIG.weight_format.level(w)) * a for w, a in zip(beat_weights[row],
                                                                                      beat_activations, strict=True))
        if last:
            replayed.append(sums)
            sums = [0, 0]
    expected = golden.linear(activations.T, CONFIG.weight_format.level(weights))
    assert replayed == stimulus.expected == expected.tolist()


def test_outputs_round_trip():
    payload = pack_outputs([-1, 5, -128, 127], 8)
    assert unpack_outputs(payload, 4, 8) == [-1, 5, -128, 127]
    assert unpack_outputs(payload, 4, 8) != [-1, 5, -128, 126]


def test_rejects_shapes_that_do_not_fit():
    with pytest.raises(ValueError, match="W has 3 rows but the array has 2"):
        gemm_stimulus(CONFIG, np.zeros((3, 3), int), np.zeros((3, 1), int))
    with pytest.raises(ValueError, match="exceeds max_reduction 4096"):
        gemm_stimulus(CONFIG, np.zeros((1, 4097), int), np.zeros((4097, 1), int))
    with pytest.raises(ValueError, match=r"W is \(1, 4\) but X is \(3, 1\)"):
        gemm_stimulus(CONFIG, np.zeros((1, 4), int), np.zeros((3, 1), int))
