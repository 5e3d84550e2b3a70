"""GEMM tiling for :class:`esb_hw.hw.array.PEArray`: packed input beats and golden-model expectations.

``Y (R x N) = W (R x K) X (K x N)`` runs as one tile per output column ``n``: ``ceil(K / cols)`` beats, each
carrying ``cols`` activation codes of column ``n`` and the ``rows x cols`` weight codes that multiply them.
Missing rows and the tail of ``K`` are padded with code 0 (level 0), so any shape fits the array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import AcceleratorConfig
from ..quant import golden

__all__ = ["GemmStimulus", "gemm_stimulus", "pack_outputs", "unpack_outputs"]


@dataclass(frozen=True)
class GemmStimulus:
    beats: list[int]  # packed input payloads (activations, weights, last; first field in the low bits)
    expected: list[list[int]]  # per tile (output column), the `rows` exact sums
    tiles: int


def gemm_stimulus(config: AcceleratorConfig, weight_codes, activation_codes) -> GemmStimulus:
    weight_codes = np.asarray(weight_codes, dtype=np.int64)
    activation_codes = np.asarray(activation_codes, dtype=np.int64)
    out_rows, reduction = weight_codes.shape
    if activation_codes.shape[0] != reduction:
        raise ValueError(f"W is {weight_codes.shape} but X is {activation_codes.shape}")
    if out_rows > config.rows:
        raise ValueError(f"W has {out_rows} rows but the array has {config.rows}")
    beats_per_tile = max(1, -(-reduction // config.cols))
    padded = beats_per_tile * config.cols
    if reduction > config.max_reduction:  # the zero padding adds nothing to the sums
        raise ValueError(f"a reduction of {reduction} exceeds max_reduction {config.max_reduction}")
    weights = np.zeros((config.rows, padded), dtype=np.int64)
    weights[:out_rows, :reduction] = weight_codes
    activations = np.zeros((padded, activation_codes.shape[1]), dtype=np.int64)
    activations[:reduction] = activation_codes

    abits, wbits = config.activation_format.bits, config.weight_format.bits
    weights_offset = abits * config.cols
    last_offset = weights_offset + wbits * config.cols * config.rows
    beats = []
    for column in range(activation_codes.shape[1]):
        for beat in range(beats_per_tile):
            span = slice(beat * config.cols, (beat + 1) * config.cols)
            payload = 0
            for lane, code in enumerate(activations[span, column]):
                payload |= int(code) << (lane * abits)
            for position, code in enumerate(weights[:, span].ravel()):  # row-major: weights[r][c]
                payload |= int(code) << (weights_offset + position * wbits)
            payload |= int(beat == beats_per_tile - 1) << last_offset
            beats.append(payload)
    expected = golden.linear(config.activation_format.level(activations).T, config.weight_format.level(weights))
    return GemmStimulus(beats, expected.tolist(), activation_codes.shape[1])


def pack_outputs(sums, accumulator_bits: int) -> int:
    """One output payload from ``rows`` signed sums (row 0 in the low bits); the inverse of unpack_outputs."""
    mask = (1 << accumulator_bits) - 1
    return sum((int(value) & mask) << (row * accumulator_bits) for row, value in enumerate(sums))


def unpack_outputs(payload: int, rows: int, accumulator_bits: int) -> list[int]:
    """Split an output payload into ``rows`` signed sums (row 0 in the low bits)."""
    mask = (1 << accumulator_bits) - 1
    values = []
    for row in range(rows):
        value = (payload >> (row * accumulator_bits)) & mask
        values.append(value - (1 << accumulator_bits) if value >> (accumulator_bits - 1) else value)
    return values
