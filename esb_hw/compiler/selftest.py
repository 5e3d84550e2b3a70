"""The built-in self-test layer: beats and expected sums from the golden model, computed once per build and
handed to the self-checking top (:class:`esb_hw.hw.debug.selftest.SelfTest`)."""

from __future__ import annotations

import numpy as np

from ..config import AcceleratorConfig
from ..errors import ParameterError
from ..layouts import SelfTestLayer
from .gemm import gemm_stimulus

__all__ = ["build_test_layer"]


def build_test_layer(config: AcceleratorConfig, *, tiles: int = 16, seed: int = 2022) -> SelfTestLayer:
    """Two tiles of the largest products everywhere (positive, then negative sums), then ``tiles - 2`` tiles of
    random codes, each with weights of its own, with ``reduction = min(4 cols, max_reduction)``.

    Fresh weights in every tile exercise more weight codes per product than one shared weight matrix, and they
    keep the ROM's bit columns distinct, so synthesis cannot merge the array's input registers.

    The extreme tiles exercise every product path at its largest level and the accumulator's sign; sums at
    the full ``max_reduction`` (the accumulator's top bits) are checked in simulation (``tests/test_row.py``,
    ``tests/test_array.py``), not in the ROM, which would grow by ``max_reduction / cols`` beats.
    """
    if isinstance(tiles, bool) or not isinstance(tiles, int) or tiles < 3:
        raise ParameterError(f"tiles must be an int >= 3, got {tiles!r}")
    rng = np.random.default_rng(seed)
    reduction = min(4 * config.cols, config.max_reduction)
    top_activation = config.activation_format.code_of_level(np.array([config.activation_format.max_level]))[0]
    beats, expected = [], []
    for sign in (+1, -1):
        weight_code = config.weight_format.code_of_level(np.array([sign * config.weight_format.max_level]))[0]
        stimulus = gemm_stimulus(config, np.full((config.rows, reduction), weight_code),
                                 np.full((reduction, 1), top_activation))
        beats += stimulus.beats
        expected += stimulus.expected_payloads
    for _ in range(tiles - 2):
        weights = rng.integers(0, config.weight_format.code_count, (config.rows, reduction))
        activations = rng.integers(0, config.activation_format.code_count, (reduction, 1))
        stimulus = gemm_stimulus(config, weights, activations)
        beats += stimulus.beats
        expected += stimulus.expected_payloads
    return SelfTestLayer(tuple(beats), tuple(expected))
