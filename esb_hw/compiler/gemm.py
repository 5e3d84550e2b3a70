"""GEMM tiling for :class:`esb_hw.hw.core.array.PEArray`: input beats and their golden-model expectations.

``Y (R x N) = W (R x K) X (K x N)`` runs in row blocks of ``rows`` output rows. Each block is one tile per
output column ``n``: ``ceil(K / cols)`` beats, each carrying ``cols`` activation codes of column ``n`` and the
``rows x cols`` weight codes that multiply them (:func:`esb_hw.layouts.array_input_layout`). Missing rows and
the tail of ``K`` are padded with code 0 (level 0), so any shape fits the array. Tiles go block by block,
columns in order within a block; :meth:`GemmStimulus.assemble` puts the tiles' sums back into ``R x N``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import AcceleratorConfig
from ..errors import InputError
from ..layouts import (
    array_input_layout,
    array_output_layout,
    pack,
    stationary_input_layout,
    unpack,
    weight_fields,
    weight_row_layout,
)
from ..quant import golden

__all__ = ["GemmStimulus", "StationaryStimulus", "gemm_stimulus", "stationary_gemm_stimulus"]


@dataclass(frozen=True)
class GemmStimulus:
    """Packed input beats of a GEMM and the packed output beat expected for each tile.

    Attributes
    ----------
    config : AcceleratorConfig
    beats : list of int
        Input payloads (:func:`~esb_hw.layouts.array_input_layout`).
    expected : list of list of int
        Per tile, the ``rows`` exact sums (padding rows are 0).
    shape : tuple of int
        ``(R, N)``: the result's shape.
    """

    config: AcceleratorConfig
    beats: list[int]
    expected: list[list[int]]
    shape: tuple[int, int]

    @property
    def tiles(self) -> int:
        return len(self.expected)

    @property
    def expected_payloads(self) -> list[int]:
        """The output beats the array must produce, packed (:func:`~esb_hw.layouts.array_output_layout`)."""
        layout = array_output_layout(self.config)
        return [pack(layout, sums) for sums in self.expected]

    def tile_sums(self, payloads) -> list[list[int]]:
        """Unpack output beats into per-tile sums."""
        layout = array_output_layout(self.config)
        return [unpack(layout, payload) for payload in payloads]

    def assemble(self, tile_sums) -> np.ndarray:
        """``Y (R x N)`` (int64) from the per-tile sums, in the order the tiles ran."""
        out_rows, columns = self.shape
        if len(tile_sums) != self.tiles:
            raise InputError(f"expected {self.tiles} tiles of sums, got {len(tile_sums)}")
        rows = self.config.rows
        blocks = -(-out_rows // rows)
        grid = np.asarray(tile_sums, dtype=np.int64).reshape(blocks, columns, rows)
        return grid.transpose(0, 2, 1).reshape(blocks * rows, columns)[:out_rows]


def _padded_operands(config: AcceleratorConfig, weight_codes, activation_codes):
    """Checked operands: the weight fields ``(blocks * rows, chunks * cols)`` and the activation codes
    ``(chunks * cols, N)``, zero-padded, plus the golden sums ``(blocks * rows, N)`` and the original shapes."""
    weight_codes = np.asarray(weight_codes)
    activation_codes = np.asarray(activation_codes)
    for name, codes in (("W", weight_codes), ("X", activation_codes)):
        if codes.ndim != 2:
            raise InputError(f"{name} must be a 2-d array of codes, got shape {codes.shape}")
        if codes.size == 0:
            raise InputError(f"{name} must not be empty, got shape {codes.shape}")
        if not np.issubdtype(codes.dtype, np.integer):
            raise InputError(f"{name} must hold integer codes, got dtype {codes.dtype}")
    out_rows, reduction = weight_codes.shape
    if activation_codes.shape[0] != reduction:
        raise InputError(f"W is {weight_codes.shape} but X is {activation_codes.shape}: their K differ")
    if reduction > config.max_reduction:  # the zero padding adds nothing to the sums
        raise InputError(f"a reduction of {reduction} exceeds max_reduction {config.max_reduction}")
    try:
        config.weight_format.check_codes(weight_codes, "weight codes")
        config.activation_format.check_codes(activation_codes, "activation codes")
    except (TypeError, ValueError) as error:
        raise InputError(str(error)) from None
    rows, cols = config.rows, config.cols
    blocks = -(-out_rows // rows)
    padded = -(-reduction // cols) * cols
    weights = np.zeros((blocks * rows, padded), dtype=np.int64)  # code 0 is level 0 in both encodings
    weights[:out_rows, :reduction] = weight_codes
    activations = np.zeros((padded, activation_codes.shape[1]), dtype=np.int64)
    activations[:reduction] = activation_codes
    sums = golden.linear(config.activation_format.level(activations).T, config.weight_format.level(weights)).T
    return weight_fields(config, weights), activations, sums, (out_rows, activation_codes.shape[1])


def gemm_stimulus(config: AcceleratorConfig, weight_codes, activation_codes) -> GemmStimulus:
    """Tile ``W (R x K)`` (weight codes) times ``X (K x N)`` (activation codes) onto the array of ``config``.

    Raises
    ------
    InputError
        If the shapes disagree or are empty, a code is out of its format's range, or ``K`` exceeds
        ``config.max_reduction``.
    """
    fields, activations, sums, shape = _padded_operands(config, weight_codes, activation_codes)
    rows, cols = config.rows, config.cols
    blocks, beats_per_tile = fields.shape[0] // rows, fields.shape[1] // cols
    layout = array_input_layout(config)
    beats = []
    for block in range(blocks):
        block_weights = fields[block * rows: (block + 1) * rows]
        for column in range(shape[1]):
            for beat in range(beats_per_tile):
                span = slice(beat * cols, (beat + 1) * cols)
                beats.append(pack(layout, {"activations": activations[span, column].tolist(),
                                           "weights": block_weights[:, span].tolist(),
                                           "last": int(beat == beats_per_tile - 1)}))
    # Tiles go block-major, then column.
    expected = sums.reshape(blocks, rows, shape[1]).transpose(0, 2, 1).reshape(-1, rows)
    return GemmStimulus(config, beats, expected.tolist(), shape)


@dataclass(frozen=True)
class StationaryStimulus(GemmStimulus):
    """A GEMM for :class:`~esb_hw.hw.core.stationary.StationaryArray`: per chunk, the weight loads and then the
    beats that use them.

    Attributes
    ----------
    chunks : list of (list of int, list of int)
        In order: the packed loads (:func:`~esb_hw.layouts.weight_row_layout`) of one weight chunk, to be
        complete before its first beat, and its packed beats (:func:`~esb_hw.layouts.stationary_input_layout`),
        the first flagged ``swap``. ``beats`` (inherited) is every chunk's beats in order.
    entries : int
    """

    chunks: list[tuple[list[int], list[int]]] = ()
    entries: int = 32


def stationary_gemm_stimulus(config: AcceleratorConfig, weight_codes, activation_codes,
                             entries: int = 32) -> StationaryStimulus:
    """``W (R x K)`` times ``X (K x N)`` on the weight-stationary array: row blocks of ``rows`` outputs, blocks
    of up to ``entries`` columns of ``X``, and within a block one weight chunk of ``cols`` reduction steps after
    another; the tiles come out as :class:`GemmStimulus` orders them (block-major, then column).

    Raises
    ------
    InputError
        As :func:`gemm_stimulus`.
    """
    fields, activations, sums, shape = _padded_operands(config, weight_codes, activation_codes)
    rows, cols = config.rows, config.cols
    blocks, chunk_count = fields.shape[0] // rows, fields.shape[1] // cols
    load_layout, beat_layout = weight_row_layout(config), stationary_input_layout(config, entries)
    chunks, beats = [], []
    for block in range(blocks):
        for start in range(0, shape[1], entries):
            columns = range(start, min(start + entries, shape[1]))
            for chunk in range(chunk_count):
                span = slice(chunk * cols, (chunk + 1) * cols)
                loads = [pack(load_layout, {"row": row, "weights": fields[block * rows + row, span].tolist()})
                         for row in range(rows)]
                chunk_beats = [pack(beat_layout, {"activations": activations[span, column].tolist(),
                                                  "entry": column - start, "swap": int(column == start),
                                                  "first": int(chunk == 0), "last": int(chunk == chunk_count - 1)})
                               for column in columns]
                chunks.append((loads, chunk_beats))
                beats += chunk_beats
    expected = sums.reshape(blocks, rows, shape[1]).transpose(0, 2, 1).reshape(-1, rows)
    return StationaryStimulus(config, beats, expected.tolist(), shape, chunks, entries)
