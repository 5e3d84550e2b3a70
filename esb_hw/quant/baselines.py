"""Baseline quantizers that ESB is compared against: uniform, power-of-two and APoT.

Each is a symmetric level set with the same bit budget (a sign bit plus ``bits - 1`` magnitude bits), so
``2**bits - 1`` distinct levels at most, like a signed ESB format. Levels are normalized so the largest is 1;
the scale that multiplies them is chosen per method (:func:`esb_hw.quant.dda.optimal_scale`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .format import _check_int, _check_real, check_alpha

__all__ = ["LevelSetQuantizer", "uniform", "power_of_two", "apot", "nearest_level"]


def nearest_level(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Nearest entry of sorted ``levels`` for each value; a tie takes the level of smaller magnitude."""
    index = np.clip(np.searchsorted(levels, values), 1, levels.size - 1)
    below, above = levels[index - 1], levels[index]
    distance_below, distance_above = values - below, above - values
    tie_goes_below = np.abs(below) <= np.abs(above)
    pick_below = (distance_below < distance_above) | ((distance_below == distance_above) & tie_goes_below)
    return np.where(pick_below, below, above)


@dataclass(frozen=True)
class LevelSetQuantizer:
    """Nearest-level quantizer over a fixed symmetric level set, scaled by ``alpha``."""

    name: str
    positive_levels: tuple[float, ...]

    def levels(self) -> np.ndarray:
        positive = np.array(self.positive_levels, dtype=np.float64)
        return np.concatenate([-positive[:0:-1], positive])

    @property
    def max_value(self) -> float:
        return max(self.positive_levels)

    def quantize(self, x, alpha=1.0) -> np.ndarray:
        values = _check_real(x).astype(np.float64)
        alpha_array = check_alpha(alpha)
        return nearest_level(values / alpha_array, self.levels()) * alpha_array


def _check_bits(bits: int, minimum: int) -> int:
    bits = _check_int("bits", bits)
    if not minimum <= bits <= 16:
        raise ValueError(f"bits must be in {minimum}..16, got {bits}")
    return bits


def uniform(bits: int) -> LevelSetQuantizer:
    """Symmetric mid-tread uniform quantizer: ``0, ±1, ..., ±(2**(bits-1) - 1)``, normalized."""
    bits = _check_bits(bits, 2)
    top = (1 << (bits - 1)) - 1
    return LevelSetQuantizer(f"uniform{bits}", tuple(np.arange(top + 1) / top))


def power_of_two(bits: int) -> LevelSetQuantizer:
    """Power-of-two levels ``0, 2**-(n-1), ..., 1/2, 1`` with ``n = 2**(bits-1) - 1`` nonzero levels."""
    bits = _check_bits(bits, 2)
    count = (1 << (bits - 1)) - 1
    return LevelSetQuantizer(f"pot{bits}", (0.0, *np.ldexp(1.0, -np.arange(count)[::-1]).tolist()))


def apot(bits: int) -> LevelSetQuantizer:
    """Additive powers-of-two with two groups (Li et al., ICLR 2020).

    The ``bits - 1`` magnitude bits are split between two groups, ``ceil`` and ``floor`` of half. Group
    ``i`` with ``b_i`` bits holds ``{0} ∪ {2**-(i + 2 j) : j = 0 .. 2**b_i - 2}``; a level is the sum of one
    term from each group, and the set is normalized so the largest level is 1.
    """
    bits = _check_bits(bits, 3)
    magnitude_bits = bits - 1
    group_bits = ((magnitude_bits + 1) // 2, magnitude_bits // 2)
    groups = []
    for group, width in enumerate(group_bits):
        exponents = group + 2 * np.arange((1 << width) - 1)
        groups.append(np.concatenate([[0.0], np.ldexp(1.0, -exponents)]))
    sums = np.unique(np.add.outer(groups[0], groups[1]).ravel())
    return LevelSetQuantizer(f"apot{bits}", tuple((sums / sums[-1]).tolist()))
