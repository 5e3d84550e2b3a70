"""The distribution difference aligner (DDA) and MSE-optimal scales.

DDA picks ``alpha = lambda(fmt) * sigma``. ``lambda`` minimizes the expected squared error of quantizing a
unit-variance reference distribution (Gaussian or Laplace) onto the exact level set of the format. The
expected error is computed in closed form, cell by cell, and the minimum is the global one: a dense
logarithmic search over the clipping point, then golden-section refinement around the best grid point.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from .format import ESBFormat, _check_real

__all__ = [
    "DISTRIBUTIONS",
    "expected_mse",
    "optimal_scale",
    "lambda_for",
    "fit_alpha",
    "mse_optimal_scale",
]

DISTRIBUTIONS = ("gaussian", "laplace")

_erfc = np.frompyfunc(math.erfc, 1, 1)
_LAPLACE_B = 1.0 / math.sqrt(2.0)  # unit variance: 2 b**2 = 1
_SEARCH_POINTS = 2048
_CLIP_RANGE = (0.05, 16.0)  # clipping point searched, in units of sigma


def _check_distribution(dist: str) -> str:
    if dist not in DISTRIBUTIONS:
        raise ValueError(f"dist must be one of {', '.join(DISTRIBUTIONS)}, got {dist!r}")
    return dist


def _tail_error(t: np.ndarray, q: np.ndarray, dist: str) -> np.ndarray:
    """``2 * integral from t to infinity of (x - q)**2 p(x) dx`` for a symmetric unit-variance ``p``."""
    if dist == "gaussian":
        density = np.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
        survival = 0.5 * _erfc(t / math.sqrt(2.0)).astype(np.float64)
        # integral of x**2 p is survival + t p(t); of x p is p(t).
        return 2.0 * ((1.0 + q * q) * survival + (t - 2.0 * q) * density)
    b = _LAPLACE_B
    decay = 0.5 * np.exp(-t / b)
    return 2.0 * decay * ((t * t + 2.0 * b * t + 2.0 * b * b) - 2.0 * q * (t + b) + q * q)


def expected_mse(positive_levels, scale, dist: str = "gaussian") -> np.ndarray:
    """Expected squared error of nearest-level quantization of a unit-variance symmetric distribution.

    Parameters
    ----------
    positive_levels : array
        The non-negative levels of a symmetric quantizer (0 included), in any order.
    scale : float or array
        Multiplier of the levels; the result has the shape of ``scale``.
    dist : {"gaussian", "laplace"}
        Reference distribution. For an unsigned quantizer, this is the error on ``|X|``, which is the same.
    """
    _check_distribution(dist)
    levels = np.unique(np.asarray(positive_levels, dtype=np.float64))
    if levels.size == 0 or levels[0] < 0:
        raise ValueError("positive_levels must be non-empty and non-negative")
    scale_array = np.asarray(scale, dtype=np.float64)
    scales = scale_array.reshape(-1, 1)
    level_grid = scales * levels  # (scales, levels)
    lower = np.concatenate([np.zeros_like(scales), 0.5 * (level_grid[:, 1:] + level_grid[:, :-1])], axis=1)
    upper_inner = lower[:, 1:]
    # Each cell [lower, upper) maps to its level; the last cell is unbounded.
    error = _tail_error(lower, level_grid, dist)
    error[:, :-1] -= _tail_error(upper_inner, level_grid[:, :-1], dist)
    return error.sum(axis=1).reshape(scale_array.shape)


def _golden_section(function, low: float, high: float, tolerance: float = 1e-12) -> float:
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = function(c), function(d)
    while (b - a) > tolerance * max(1.0, abs(b)):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = function(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = function(d)
    return 0.5 * (a + b)


def _grid_then_refine(objective_on_grid, objective, max_level: float) -> tuple[float, float]:
    """Global minimum over scales: dense log grid of clipping points, then golden section."""
    clip = np.geomspace(*_CLIP_RANGE, _SEARCH_POINTS)
    scales = clip / max_level
    errors = objective_on_grid(scales)
    best = int(np.argmin(errors))
    low = scales[max(best - 1, 0)]
    high = scales[min(best + 1, scales.size - 1)]
    refined = _golden_section(objective, low, high)
    refined_error = float(objective(refined))
    if refined_error > errors[best]:
        return float(scales[best]), float(errors[best])
    return refined, refined_error


def optimal_scale(positive_levels, dist: str = "gaussian") -> tuple[float, float]:
    """The scale that minimizes :func:`expected_mse` globally, and that minimum error."""
    _check_distribution(dist)
    levels = np.unique(np.asarray(positive_levels, dtype=np.float64))
    max_level = float(levels[-1])
    if max_level <= 0:
        raise ValueError("positive_levels must contain a level > 0")
    return _grid_then_refine(
        lambda scales: expected_mse(levels, scales, dist),
        lambda scale: float(expected_mse(levels, scale, dist)),
        max_level,
    )


@cache
def _lambda_cached(bits: int, k: int, signed: bool, dist: str) -> float:
    fmt = ESBFormat(bits, k, signed)
    levels = fmt.levels()
    return optimal_scale(levels[levels >= 0], dist)[0]


def lambda_for(fmt: ESBFormat, dist: str = "gaussian") -> float:
    """DDA's ``lambda``: ``alpha = lambda * sigma`` minimizes the expected error for ``dist``.

    Computed once per (format, distribution) by a global search and cached.
    """
    if not isinstance(fmt, ESBFormat):
        raise TypeError(f"fmt must be an ESBFormat, got {type(fmt).__name__}")
    return _lambda_cached(fmt.bits, fmt.k, fmt.signed, _check_distribution(dist))


def mse_optimal_scale(values, quantize_with_scale, max_level: float) -> tuple[float, float]:
    """Scale minimizing the mean squared error of ``quantize_with_scale(values, scale)`` on the data.

    The search covers clipping points from ``max|values| / 64`` to ``1.25 * max|values|``, then refines.
    Returns ``(scale, mse)``.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    peak = float(np.max(np.abs(data))) if data.size else 0.0
    if peak == 0.0:
        return 1.0, 0.0

    def error(scale: float) -> float:
        return float(np.mean((data - quantize_with_scale(data, scale)) ** 2))

    clip = np.geomspace(peak / 64.0, 1.25 * peak, 192)
    scales = clip / max_level
    errors = np.array([error(s) for s in scales])
    best = int(np.argmin(errors))
    refined = _golden_section(error, scales[max(best - 1, 0)], scales[min(best + 1, scales.size - 1)], 1e-9)
    refined_error = error(refined)
    if refined_error > errors[best]:
        return float(scales[best]), float(errors[best])
    return refined, refined_error


def _channels(array: np.ndarray, axis: int | None) -> tuple[np.ndarray, int | None]:
    if axis is None:
        return array.reshape(1, -1), None
    if not -array.ndim <= axis < array.ndim:
        raise ValueError(f"per_channel_axis must be in {-array.ndim}..{array.ndim - 1} for a "
                         f"{array.ndim}-d tensor, got {axis}")
    axis = axis % array.ndim
    return np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1), axis


def fit_alpha(w, fmt: ESBFormat, per_channel_axis: int | None = None, method: str = "dda",
              dist: str = "gaussian"):
    """Pick ``alpha`` for quantizing ``w`` with ``fmt``.

    Parameters
    ----------
    w : array
        Real tensor (weights, or activation samples for an unsigned format).
    fmt : ESBFormat
    per_channel_axis : int or None
        ``None`` for one alpha per tensor; otherwise one alpha per index along this axis, returned with a
        shape that broadcasts against ``w`` (size 1 on every other axis).
    method : {"dda", "mse"}
        ``"dda"``: ``lambda_for(fmt, dist) * sigma``, where ``sigma`` is the root mean square (the standard
        deviation about zero, the centre of the quantizer). ``"mse"``: minimize the squared error on ``w``.
    dist : {"gaussian", "laplace"}
        Reference distribution for ``"dda"``.

    A channel that is all zeros gets ``alpha = 1`` (any positive alpha quantizes it exactly).
    """
    if not isinstance(fmt, ESBFormat):
        raise TypeError(f"fmt must be an ESBFormat, got {type(fmt).__name__}")
    if method not in ("dda", "mse"):
        raise ValueError(f"method must be 'dda' or 'mse', got {method!r}")
    _check_distribution(dist)
    array = _check_real(w, "w").astype(np.float64)
    if array.size == 0:
        raise ValueError("w must not be empty")
    if per_channel_axis is not None and (isinstance(per_channel_axis, bool)
                                         or not isinstance(per_channel_axis, int | np.integer)):
        raise TypeError(f"per_channel_axis must be an int or None, got {per_channel_axis!r}")
    rows, axis = _channels(array, per_channel_axis)
    alphas = np.empty(rows.shape[0])
    for index, row in enumerate(rows):
        rms = math.sqrt(float(np.mean(row * row)))
        if rms == 0.0:
            alphas[index] = 1.0
        elif method == "dda":
            alphas[index] = lambda_for(fmt, dist) * rms
        else:
            alphas[index] = mse_optimal_scale(row, fmt.quantize, fmt.max_value)[0]
    if axis is None:
        return float(alphas[0])
    shape = [1] * array.ndim
    shape[axis] = array.shape[axis]
    return alphas.reshape(shape)
