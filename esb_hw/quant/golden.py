"""The integer golden model (docs/arithmetic.md): the specification every hardware result must equal.

Everything here works on integer arrays (int64), vectorized. Convolution and linear layers take integer
*levels* (``La`` unsigned, ``Lw`` signed) and return exact accumulators. Requantization turns accumulators
into activation *codes* of an unsigned format. Max-pooling works on codes, which are monotone in level.
Layouts are NCHW.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .format import ESBFormat

__all__ = [
    "MULTIPLIER_BITS",
    "SHIFT_RANGE",
    "RequantParams",
    "requant_params",
    "fold_scales",
    "conv2d",
    "linear",
    "requantize",
    "encode_level_ties_up",
    "max_pool2x2",
    "max_pool",
    "flatten",
    "bound_level",
    "AddParams",
    "add_params",
    "residual_add",
    "sum_pool",
    "global_sum_pool",
    "pool_params",
]

#: ``M`` is an unsigned integer of at most this many bits.
MULTIPLIER_BITS = 16
#: Allowed range of the requantization shift ``S``.
SHIFT_RANGE = (1, 48)
_INT64_LIMIT = 1 << 62  # headroom kept below 2**63 before switching to exact Python integers


def _integer_array(value, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array, got dtype {array.dtype}")
    if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} does not fit in int64")
    return array.astype(np.int64)


def _peak(array: np.ndarray) -> int:
    """Largest magnitude as a Python int (np.abs would wrap the most negative int64)."""
    return max(abs(int(array.min())), abs(int(array.max()))) if array.size else 0


@dataclass(frozen=True, eq=False)
class RequantParams:
    """Per-output-channel requantization constants: ``y = ((acc + bias) * M + 2**(S-1)) >> S``.

    Attributes
    ----------
    bias : int64 array
        Added to the accumulator, in accumulator units.
    multiplier : int64 array
        ``M``, in ``0 .. 2**16 - 1``.
    shift : int64 array
        ``S``, in ``1 .. 48``.
    """

    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray

    def __post_init__(self):
        bias = _integer_array(self.bias, "bias")
        multiplier = _integer_array(self.multiplier, "multiplier")
        shift = _integer_array(self.shift, "shift")
        try:
            bias, multiplier, shift = (np.atleast_1d(a) for a in np.broadcast_arrays(bias, multiplier, shift))
        except ValueError:
            raise ValueError(
                f"bias, multiplier and shift must have broadcastable shapes, got {bias.shape}, "
                f"{multiplier.shape} and {shift.shape}"
            ) from None
        if bias.ndim != 1:
            raise ValueError(f"requantization parameters must be 1-d (one per channel), got shape {bias.shape}")
        if multiplier.size and (multiplier.min() < 0 or multiplier.max() >= 1 << MULTIPLIER_BITS):
            raise ValueError(f"multiplier must be in 0..{(1 << MULTIPLIER_BITS) - 1}, got "
                             f"{multiplier[(multiplier < 0) | (multiplier >= 1 << MULTIPLIER_BITS)][0]}")
        low, high = SHIFT_RANGE
        if shift.size and (shift.min() < low or shift.max() > high):
            raise ValueError(f"shift must be in {low}..{high}, got {shift[(shift < low) | (shift > high)][0]}")
        for name, value in (("bias", bias), ("multiplier", multiplier), ("shift", shift)):
            value = value.copy()
            value.flags.writeable = False
            object.__setattr__(self, name, value)

    @property
    def channels(self) -> int:
        return self.bias.size

    def effective_scale(self) -> np.ndarray:
        """The real multiplier ``M / 2**S`` that each channel implements."""
        return np.ldexp(self.multiplier.astype(np.float64), -self.shift.astype(np.int32))


def requant_params(real_scale, bias=None) -> RequantParams:
    """Integer ``(bias, M, S)`` implementing ``y = (acc + bias) * real_scale`` per channel.

    ``S`` is the largest shift in 1..48 for which ``M = round(real_scale * 2**S)`` stays below ``2**16``,
    which keeps the most significant bits of the scale. ``bias`` (real, in accumulator units) is rounded
    to the nearest integer, ties to even. A zero scale gives ``M = 0``.

    Raises ``ValueError`` for a negative or non-finite scale, a scale of ``32767.75`` or more (``M`` would
    exceed ``2**16 - 1`` even at ``S = 1``), and a nonzero scale of ``2**-49`` or less (``M`` would round to
    0 at ``S = 48``; ties go to even).
    """
    scale = np.atleast_1d(np.asarray(real_scale, dtype=np.float64))
    if scale.ndim != 1:
        raise ValueError(f"real_scale must be a scalar or 1-d array, got shape {scale.shape}")
    if not np.all(np.isfinite(scale)) or np.any(scale < 0):
        raise ValueError(f"real_scale must be finite and >= 0, got {scale[~np.isfinite(scale) | (scale < 0)][0]}")
    limit = (1 << MULTIPLIER_BITS) - 1
    low, high = SHIFT_RANGE
    multipliers, shifts = [], []
    for value in scale.tolist():
        if value == 0.0:
            multipliers.append(0)
            shifts.append(low)
            continue
        shift = min(high, math.floor(math.log2((limit + 0.5) / value)))  # then step down until M fits
        while shift >= low and round(value * 2.0**shift) > limit:
            shift -= 1
        if shift < low:
            raise ValueError(f"real_scale {value} is too large: it needs M >= 2**{MULTIPLIER_BITS} at S = {low}")
        multiplier = round(value * 2.0**shift)
        if multiplier == 0:
            raise ValueError(f"real_scale {value} is too small: M rounds to 0 at S = {high}")
        multipliers.append(multiplier)
        shifts.append(shift)
    if bias is None:
        bias_int = np.zeros(scale.size, dtype=np.int64)
    else:
        bias_real = np.asarray(bias, dtype=np.float64)
        if not np.all(np.isfinite(bias_real)):
            raise ValueError("bias must be finite")
        if np.any(np.abs(bias_real) >= 2.0**62):
            raise ValueError("bias must be below 2**62 in magnitude, in accumulator units")
        bias_int = np.broadcast_to(np.round(bias_real).astype(np.int64), scale.shape)
    return RequantParams(bias_int, np.array(multipliers, dtype=np.int64), np.array(shifts, dtype=np.int64))


def fold_scales(weight_scale, input_scale: float, output_scale: float, bias=None) -> RequantParams:
    """Fold real scales into :class:`RequantParams` for one layer.

    An accumulator unit is worth ``input_scale * weight_scale[c]`` (``weight_scale = alpha / 2**k``); an
    output level is worth ``output_scale``. ``bias`` is the layer's real bias per output channel.
    """
    weight_scale = np.atleast_1d(np.asarray(weight_scale, dtype=np.float64)).ravel()
    unit = input_scale * weight_scale
    if not np.all(np.isfinite(unit)) or np.any(unit <= 0) or not output_scale > 0:
        raise ValueError("scales must be finite and > 0")
    bias_acc = None if bias is None else np.asarray(bias, dtype=np.float64) / unit
    return requant_params(unit / output_scale, bias_acc)


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_no_overflow(x: np.ndarray, w: np.ndarray, reduction: int) -> None:
    if _peak(x) * _peak(w) * reduction >= _INT64_LIMIT:
        raise ValueError("the accumulation could overflow int64; inputs are not levels of a supported format")


def conv2d(x, w, stride=1, padding=0, groups: int = 1) -> np.ndarray:
    """Exact integer 2-d convolution (cross-correlation), NCHW.

    Parameters
    ----------
    x : int array (N, C, H, W)
        Activation levels.
    w : int array (K, C / groups, R, S)
        Weight levels.
    stride, padding : int or (int, int)
        Zero padding is level 0.
    groups : int
        ``C`` and ``K`` are cut into ``groups`` equal groups; output channel ``k`` reads the input channels of
        group ``k // (K / groups)`` only. ``groups = C`` (with ``K = C``) is a depthwise convolution.

    Returns
    -------
    int64 array (N, K, Ho, Wo) with ``Ho = (H + 2 * pad_h - R) // stride_h + 1``.
    """
    x = _integer_array(x, "x")
    w = _integer_array(w, "w")
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d needs x of shape (N, C, H, W) and w of shape (K, C, R, S), got "
                         f"{x.shape} and {w.shape}")
    if not isinstance(groups, int | np.integer) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    if groups > 1:
        if x.shape[1] % groups or w.shape[0] % groups:
            raise ValueError(f"groups = {groups} must divide the {x.shape[1]} input and {w.shape[0]} output channels")
        if x.shape[1] // groups != w.shape[1]:
            raise ValueError(f"x has {x.shape[1]} channels in {groups} groups of {x.shape[1] // groups}, but w "
                             f"expects {w.shape[1]} per group")
        inputs, outputs = x.shape[1] // groups, w.shape[0] // groups
        return np.concatenate([conv2d(x[:, g * inputs:(g + 1) * inputs], w[g * outputs:(g + 1) * outputs],
                                      stride, padding) for g in range(groups)], axis=1)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but w expects {w.shape[1]}")
    stride_h, stride_w = _pair(stride, "stride")
    pad_h, pad_w = _pair(padding, "padding")
    if stride_h < 1 or stride_w < 1:
        raise ValueError(f"stride must be >= 1, got {stride!r}")
    if pad_h < 0 or pad_w < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    _, channels, kernel_h, kernel_w = w.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)))
    if padded.shape[2] < kernel_h or padded.shape[3] < kernel_w:
        raise ValueError(f"kernel {kernel_h}x{kernel_w} is larger than the padded input "
                         f"{padded.shape[2]}x{padded.shape[3]}")
    _check_no_overflow(x, w, channels * kernel_h * kernel_w)
    windows = sliding_window_view(padded, (kernel_h, kernel_w), axis=(2, 3))[:, :, ::stride_h, ::stride_w]
    # windows: (N, C, Ho, Wo, R, S); contract over C, R, S.
    out = np.tensordot(windows, w, axes=([1, 4, 5], [1, 2, 3]))
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def linear(x, w) -> np.ndarray:
    """Exact integer fully connected layer: ``x (N, I)`` levels times ``w (O, I)`` levels -> ``(N, O)``."""
    x = _integer_array(x, "x")
    w = _integer_array(w, "w")
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"linear needs x (N, I) and w (O, I), got {x.shape} and {w.shape}")
    _check_no_overflow(x, w, x.shape[1])
    return x @ w.T


def encode_level_ties_up(values, fmt: ESBFormat) -> np.ndarray:
    """Codes of the levels of unsigned ``fmt`` nearest to integers in ``0 .. Lmax``; ties go up."""
    values = _integer_array(values, "values")
    levels = fmt.integer_levels()
    index = np.clip(np.searchsorted(levels, values, side="right"), 1, levels.size - 1)
    below, above = levels[index - 1], levels[index]
    nearest = np.where(values - below >= above - values, above, below)
    nearest = np.where(values <= levels[0], levels[0], np.where(values >= levels[-1], levels[-1], nearest))
    return fmt.code_of_level(nearest)


def requantize(acc, params: RequantParams, fmt: ESBFormat, relu: bool = True, channel_axis: int = 1,
               upper: int | None = None):
    """Accumulators to activation codes (docs/arithmetic.md).

    ``y = ((acc + bias[c]) * M[c] + 2**(S[c]-1)) >> S[c]`` (arithmetic shift), then ReLU if ``relu``,
    then clamp to ``[0, Lmax]`` (and to ``upper``, a level, if given: ReLU6 and other bounds, see
    :func:`bound_level`), then, for an ESB format (``e > 0``), the nearest level with ties up, never above
    ``upper``. Returns codes of ``fmt`` (its ``code_dtype``).
    """
    acc = _integer_array(acc, "acc")
    if not isinstance(params, RequantParams):
        raise TypeError(f"params must be RequantParams, got {type(params).__name__}")
    if not isinstance(fmt, ESBFormat) or fmt.signed:
        raise ValueError(f"fmt must be an unsigned ESBFormat, got {fmt}")
    if acc.ndim == 0 or not -acc.ndim <= channel_axis < acc.ndim:
        raise ValueError(f"channel_axis {channel_axis} is out of range for acc of shape {acc.shape}")
    channels = acc.shape[channel_axis]
    if params.channels not in (1, channels):
        raise ValueError(f"params has {params.channels} channels but acc has {channels} on axis {channel_axis}")
    shape = [1] * acc.ndim
    shape[channel_axis] = params.channels
    bias, multiplier, shift = (a.reshape(shape) for a in (params.bias, params.multiplier, params.shift))
    worst = (_peak(acc) + _peak(bias)) * _peak(multiplier) + (1 << int(shift.max()))
    if worst < _INT64_LIMIT:
        scaled = ((acc + bias) * multiplier + (np.int64(1) << (shift - 1))) >> shift
    else:  # exact, with Python integers
        big = (acc.astype(object) + bias.astype(object)) * multiplier.astype(object)
        scaled = (big + (1 << (shift.astype(object) - 1))) >> shift.astype(object)
    if relu:
        scaled = np.maximum(scaled, 0)
    return _clamp_and_encode(scaled, fmt, upper)


def _clamp_and_encode(values, fmt: ESBFormat, upper: int | None) -> np.ndarray:
    """Clamp integers to ``[0, min(Lmax, upper)]`` and encode them in the unsigned ``fmt`` (nearest level, ties
    up, never above ``upper``)."""
    top = fmt.max_level
    if upper is not None:
        if not isinstance(upper, int | np.integer) or isinstance(upper, bool) or upper < 0:
            raise ValueError(f"upper must be a level >= 0, got {upper!r}")
        top = min(top, int(upper))
    clamped = np.clip(values, 0, top).astype(np.int64)
    if fmt.exponent_bits == 0:
        return clamped.astype(fmt.code_dtype)
    codes = encode_level_ties_up(clamped, fmt)
    if upper is not None:  # the nearest level may lie above the bound: take the largest level within it
        levels = fmt.integer_levels()
        within = levels[np.searchsorted(levels, top, side="right") - 1]
        codes = np.where(fmt.level(codes) > top, fmt.code_of_level(np.int64(within)), codes).astype(fmt.code_dtype)
    return codes


def bound_level(bound: float, output_scale: float, fmt: ESBFormat) -> int:
    """The level of ``fmt`` that a real upper bound (6 for ReLU6) allows: ``floor(bound / output_scale)``, so that
    no output exceeds the bound, at most ``Lmax``."""
    if not (math.isfinite(bound) and bound >= 0 and math.isfinite(output_scale) and output_scale > 0):
        raise ValueError(f"bound must be finite and >= 0 and output_scale > 0, got {bound} and {output_scale}")
    return min(fmt.max_level, math.floor(bound / output_scale))


def max_pool2x2(codes) -> np.ndarray:
    """2x2 max-pool with stride 2 on NCHW codes of an unsigned format; odd trailing rows/columns drop."""
    array = np.asarray(codes)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"codes must be an integer array, got dtype {array.dtype}")
    if array.ndim != 4:
        raise ValueError(f"max_pool2x2 needs NCHW codes, got shape {array.shape}")
    n, c, h, w = array.shape
    if h < 2 or w < 2:
        raise ValueError(f"max_pool2x2 needs H and W >= 2, got {h}x{w}")
    trimmed = array[:, :, : h // 2 * 2, : w // 2 * 2]
    return trimmed.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def max_pool(codes, kernel, stride=None, padding: int = 0) -> np.ndarray:
    """``kernel`` max-pool (stride ``kernel`` by default) on NCHW codes of an unsigned format, with ``padding``
    code-0 rows and columns on every side: level 0 is the format's least, so the padding never wins over a real
    value (as ONNX's -inf padding does not). Output size ``(H + 2 * padding - kh) // sh + 1`` (floor)."""
    array = np.asarray(codes)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"codes must be an integer array, got dtype {array.dtype}")
    if array.ndim != 4:
        raise ValueError(f"max_pool needs NCHW codes, got shape {array.shape}")
    kernel_h, kernel_w = _pair(kernel, "kernel")
    stride_h, stride_w = _pair(kernel if stride is None else stride, "stride")
    if min(kernel_h, kernel_w, stride_h, stride_w) < 1 or padding < 0:
        raise ValueError(f"kernel and stride must be >= 1 and padding >= 0, got {kernel!r}, {stride!r} and {padding}")
    if padding >= min(kernel_h, kernel_w):
        raise ValueError(f"padding {padding} must be smaller than the kernel {kernel_h}x{kernel_w}")
    padded = np.pad(array, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    if padded.shape[2] < kernel_h or padded.shape[3] < kernel_w:
        raise ValueError(f"kernel {kernel_h}x{kernel_w} is larger than the padded input {padded.shape[2]}x"
                         f"{padded.shape[3]}")
    windows = sliding_window_view(padded, (kernel_h, kernel_w), axis=(2, 3))[:, :, ::stride_h, ::stride_w]
    return windows.max(axis=(4, 5))


def flatten(x) -> np.ndarray:
    """``(N, ...) -> (N, prod(...))`` in C order, as NCHW flattens in PyTorch."""
    array = np.asarray(x)
    if array.ndim < 1:
        raise ValueError("flatten needs at least a batch axis")
    return array.reshape(array.shape[0], -1)


@dataclass(frozen=True, eq=False)
class AddParams:
    """Constants of a residual add: ``y = (La * Ma + Lb * Mb + offset + 2**(S-1)) >> S``.

    Attributes
    ----------
    multiplier_a, multiplier_b : int
        ``Ma``, ``Mb`` in ``0 .. 2**16 - 1``: each input's scale relative to the output's, times ``2**S``.
    shift : int
        ``S`` in ``1 .. 48``, shared by both inputs.
    offset : int
        The zero points folded in (:func:`add_params`): ``(zy << S) - za * Ma - zb * Mb``; 0 when no tensor has one.
    """

    multiplier_a: int
    multiplier_b: int
    shift: int
    offset: int = 0

    def __post_init__(self):
        for name in ("multiplier_a", "multiplier_b", "shift", "offset"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {value!r}")
        for name in ("multiplier_a", "multiplier_b"):
            if not 0 <= getattr(self, name) < 1 << MULTIPLIER_BITS:
                raise ValueError(f"{name} must be in 0..{(1 << MULTIPLIER_BITS) - 1}, got {getattr(self, name)}")
        low, high = SHIFT_RANGE
        if not low <= self.shift <= high:
            raise ValueError(f"shift must be in {low}..{high}, got {self.shift}")
        if abs(self.offset) >= 1 << 56:
            raise ValueError(f"offset must be below 2**56 in magnitude, got {self.offset}")


def add_params(a_scale: float, b_scale: float, output_scale: float,
               zero_points: tuple[int, int, int] = (0, 0, 0)) -> AddParams:
    """Fold two inputs' real scales (a level of ``a`` is worth ``a_scale``) and the output's into
    :class:`AddParams`: ``S`` is the largest shift in 1..48 for which both ``M = round(scale / output_scale *
    2**S)`` stay below ``2**16`` (half to even), so that the larger ratio keeps 16 significant bits.

    ``zero_points`` ``(za, zb, zy)``: the levels that stand for real 0 in ``a``, ``b`` and the output (a tensor
    without ReLU, see docs/arithmetic.md); they fold exactly into ``offset``."""
    scales = (a_scale, b_scale, output_scale)
    if not all(math.isfinite(scale) and scale > 0 for scale in scales):
        raise ValueError(f"scales must be finite and > 0, got {a_scale}, {b_scale} and {output_scale}")
    if len(zero_points) != 3 or not all(isinstance(z, int | np.integer) and not isinstance(z, bool) and 0 <= z < 1 << 16
                                        for z in zero_points):
        raise ValueError(f"zero_points must be three levels in 0..65535, got {zero_points!r}")
    ratios = [a_scale / output_scale, b_scale / output_scale]
    limit = (1 << MULTIPLIER_BITS) - 1
    low, high = SHIFT_RANGE
    shift = min(high, math.floor(math.log2((limit + 0.5) / max(ratios))))
    while shift >= low and max(round(r * 2.0**shift) for r in ratios) > limit:
        shift -= 1
    if shift < low:
        raise ValueError(f"a scale ratio of {max(ratios)} needs M >= 2**{MULTIPLIER_BITS} at S = {low}")
    multipliers = [round(r * 2.0**shift) for r in ratios]
    if 0 in multipliers:
        raise ValueError(f"a scale ratio of {min(ratios)} rounds to M = 0 at S = {shift}: the two scales differ "
                         "by more than 16 bits")
    za, zb, zy = (int(z) for z in zero_points)
    return AddParams(multipliers[0], multipliers[1], shift, (zy << shift) - za * multipliers[0] - zb * multipliers[1])


def residual_add(a, b, params: AddParams, fmt: ESBFormat, relu: bool = True, upper: int | None = None):
    """The sum of two tensors of levels (``a``, ``b``: unsigned activation levels of any shape, the same shape) in
    the unsigned ``fmt``: ``y = (La * Ma + Lb * Mb + offset + 2**(S-1)) >> S`` (ties toward plus infinity), then
    ReLU, the clamp (and ``upper``) and the encoding of :func:`requantize`. Returns codes of ``fmt``."""
    a = _integer_array(a, "a")
    b = _integer_array(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"residual_add needs a and b of the same shape, got {a.shape} and {b.shape}")
    if not isinstance(params, AddParams):
        raise TypeError(f"params must be AddParams, got {type(params).__name__}")
    if not isinstance(fmt, ESBFormat) or fmt.signed:
        raise ValueError(f"fmt must be an unsigned ESBFormat, got {fmt}")
    if (_peak(a) + _peak(b)) * ((1 << MULTIPLIER_BITS) - 1) + abs(params.offset) >= _INT64_LIMIT:
        raise ValueError("the sum could overflow int64; inputs are not levels of a supported format")
    rounding = (1 << (params.shift - 1)) + params.offset
    y = (a * params.multiplier_a + b * params.multiplier_b + np.int64(rounding)) >> params.shift
    if relu:
        y = np.maximum(y, 0)
    return _clamp_and_encode(y, fmt, upper)


def sum_pool(x, kernel, stride=None) -> np.ndarray:
    """Exact sums of ``kernel`` windows of NCHW levels ``x`` (stride ``kernel`` by default; no padding, a trailing
    partial window is dropped): the accumulators of a ``k x k`` average pool, which :func:`requantize` scales by
    ``1 / (kh * kw)`` folded into ``M`` (:func:`pool_params`)."""
    x = _integer_array(x, "x")
    if x.ndim != 4:
        raise ValueError(f"sum_pool needs NCHW levels, got shape {x.shape}")
    kernel_h, kernel_w = _pair(kernel, "kernel")
    stride_h, stride_w = _pair(kernel if stride is None else stride, "stride")
    if min(kernel_h, kernel_w, stride_h, stride_w) < 1:
        raise ValueError(f"kernel and stride must be >= 1, got {kernel!r} and {stride!r}")
    if x.shape[2] < kernel_h or x.shape[3] < kernel_w:
        raise ValueError(f"kernel {kernel_h}x{kernel_w} is larger than the input {x.shape[2]}x{x.shape[3]}")
    if _peak(x) * kernel_h * kernel_w >= _INT64_LIMIT:
        raise ValueError("the sums could overflow int64")
    windows = sliding_window_view(x, (kernel_h, kernel_w), axis=(2, 3))[:, :, ::stride_h, ::stride_w]
    return windows.sum(axis=(4, 5), dtype=np.int64)


def global_sum_pool(x) -> np.ndarray:
    """Exact sums over H and W of NCHW levels: ``(N, C, 1, 1)``, the accumulators of a global average pool."""
    x = _integer_array(x, "x")
    if x.ndim != 4:
        raise ValueError(f"global_sum_pool needs NCHW levels, got shape {x.shape}")
    return sum_pool(x, (x.shape[2], x.shape[3]))


def pool_params(window: int, input_scale: float, output_scale: float) -> RequantParams:
    """The :class:`RequantParams` of an average pool over ``window`` levels: ``real_scale = input_scale /
    (window * output_scale)``, no bias (:func:`requant_params`)."""
    if not isinstance(window, int | np.integer) or isinstance(window, bool) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    return requant_params(input_scale / (window * output_scale))
