"""Independent tests of the integer golden model (``esb_hw.quant.golden``) against docs/number-format.md and §2.

Every expected value comes either from the slow reference implementations in this file (plain Python loops
over Python ints, written from the text of docs/arithmetic.md and sharing no code with the module under test) or from
small tables worked out by hand from the spec. The references themselves are checked against the numbers the
spec states (the ESB(5, 2) worked example, ``Lmax``, the power-of-two level set), and the comparison helpers
are shown to be able to fail.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from fractions import Fraction

import numpy as np
import pytest

from esb_hw.quant import ActivationQuantizer, ESBFormat, fit_alpha, lambda_for
from esb_hw.quant.golden import (
    AddParams,
    RequantParams,
    add_params,
    bound_level,
    conv2d,
    flatten,
    fold_scales,
    global_sum_pool,
    linear,
    max_pool,
    max_pool2x2,
    pool_params,
    requant_params,
    requantize,
    residual_add,
    sum_pool,
)

W4 = ESBFormat(4, 1)  # signed weights: e = 2, levels 0, ±1, ±2, ±3, ±4, ±6, ±8, ±12
A8 = ESBFormat(8, 8, signed=False)  # plain uint8 activations: e = 0, codes == levels 0..255
A16 = ESBFormat(16, 16, signed=False)  # plain uint16: e = 0, levels 0..65535
U41 = ESBFormat(4, 1, signed=False)
U52 = ESBFormat(5, 2, signed=False)
U62 = ESBFormat(6, 2, signed=False)
U30 = ESBFormat(3, 0, signed=False)  # powers of two
U16_12 = ESBFormat(16, 12, signed=False)  # e = 4, Lmax = (2**13 - 1) << 14


# ---- reference model, written from docs/arithmetic.md only ------------------------------------------------------


def ref_exponent_bits(fmt: ESBFormat) -> int:
    return fmt.bits - fmt.k - (1 if fmt.signed else 0)


def ref_level(code: int, fmt: ESBFormat) -> int:
    """§1: ``[sign][E][m]``; ``L = m`` if ``E == 0`` else ``(2**k + m) << (E - 1)``; negative zero is 0."""
    k, e = fmt.k, ref_exponent_bits(fmt)
    magnitude = code % (2 ** (e + k))
    exponent, mantissa = magnitude // 2**k, magnitude % 2**k
    level = mantissa if exponent == 0 else (2**k + mantissa) * 2 ** (exponent - 1)
    negative = fmt.signed and (code // 2 ** (e + k)) % 2 == 1
    return -level if negative else level


@functools.cache
def _ref_tables(bits: int, k: int) -> tuple[list[int], dict[int, int]]:
    """Sorted distinct levels of an unsigned format, and the smallest code of each level."""
    fmt = ESBFormat(bits, k, signed=False)
    code_of: dict[int, int] = {}
    for code in range(2**bits):
        code_of.setdefault(ref_level(code, fmt), code)
    return sorted(code_of), code_of


def ref_levels(fmt: ESBFormat) -> list[int]:
    assert not fmt.signed
    return _ref_tables(fmt.bits, fmt.k)[0]


def ref_code(fmt: ESBFormat, level: int) -> int:
    assert not fmt.signed
    return _ref_tables(fmt.bits, fmt.k)[1][level]


def ref_nearest_ties_up(value: int, levels: list[int]) -> int:
    """§2: the nearest level, ties going up (``levels`` sorted, ``value`` already clamped into range)."""
    i = bisect.bisect_left(levels, value)
    if i < len(levels) and levels[i] == value:
        return value
    if i == 0:
        return levels[0]
    if i == len(levels):
        return levels[-1]
    below, above = levels[i - 1], levels[i]
    return above if above - value <= value - below else below


def ref_nearest_ties_up_scan(value: int, levels: list[int]) -> int:
    """The same by brute force, to check the bisect version."""
    best = None
    for level in levels:
        if best is None or abs(level - value) < abs(best - value) or (
            abs(level - value) == abs(best - value) and level > best
        ):
            best = level
    return best


def random_levels(rng, fmt: ESBFormat, shape) -> np.ndarray:
    codes = rng.integers(0, 2**fmt.bits, size=shape)
    return np.array([ref_level(int(c), fmt) for c in codes.ravel()], dtype=np.int64).reshape(shape)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def ref_conv2d(x, w, stride=1, padding=0) -> np.ndarray:
    """Cross-correlation, NCHW, zero padding, one output pixel at a time with Python ints."""
    stride_h, stride_w = _pair(stride)
    pad_h, pad_w = _pair(padding)
    xl, wl = x.tolist(), w.tolist()
    batch, channels, height, width = x.shape
    kernels, _, kernel_h, kernel_w = w.shape
    out_h = (height + 2 * pad_h - kernel_h) // stride_h + 1
    out_w = (width + 2 * pad_w - kernel_w) // stride_w + 1
    out = []
    for n in range(batch):
        for k in range(kernels):
            for oh in range(out_h):
                for ow in range(out_w):
                    total = 0
                    for c in range(channels):
                        for r in range(kernel_h):
                            ih = oh * stride_h + r - pad_h
                            if not 0 <= ih < height:
                                continue
                            for s in range(kernel_w):
                                iw = ow * stride_w + s - pad_w
                                if 0 <= iw < width:
                                    total += xl[n][c][ih][iw] * wl[k][c][r][s]
                    out.append(total)
    return np.array(out, dtype=np.int64).reshape(batch, kernels, out_h, out_w)


def ref_linear(x, w) -> np.ndarray:
    xl, wl = x.tolist(), w.tolist()
    out = [[sum(a * b for a, b in zip(row, weights, strict=True)) for weights in wl] for row in xl]
    return np.array(out, dtype=np.int64).reshape(x.shape[0], w.shape[0])


def ref_requantize(acc, bias, multiplier, shift, fmt: ESBFormat, relu=True, channel_axis=1) -> np.ndarray:
    """§2 requantization, element by element with Python ints. Parameters are lists (length 1 broadcasts)."""
    bias, multiplier, shift = (list(np.ravel(p).tolist()) for p in (bias, multiplier, shift))
    levels = ref_levels(fmt)
    top = levels[-1]
    out = np.empty(acc.shape, dtype=np.int64)
    for index in np.ndindex(acc.shape):
        c = index[channel_axis] if len(multiplier) > 1 else 0
        y = ((int(acc[index]) + bias[c]) * multiplier[c] + (1 << (shift[c] - 1))) >> shift[c]
        if relu:
            y = max(y, 0)
        y = min(max(y, 0), top)
        out[index] = ref_code(fmt, ref_nearest_ties_up(y, levels))
    return out


# ---- comparison helpers ----------------------------------------------------------------------------------


def assert_exact(got, expected, dtype=np.int64):
    """``got`` must be an ndarray of ``dtype`` and the same shape, equal element for element."""
    assert isinstance(got, np.ndarray), f"expected an ndarray, got {type(got).__name__}"
    assert got.dtype == dtype, f"dtype mismatch: got {got.dtype}, expected {np.dtype(dtype)}"
    assert got.shape == expected.shape, f"shape mismatch: got {got.shape}, expected {expected.shape}"
    if not np.array_equal(got, expected):
        bad = tuple(int(i) for i in np.argwhere(got != expected)[0])
        raise AssertionError(f"value mismatch at {bad}: got {got[bad]}, expected {expected[bad]}")


def assert_codes(got, expected):
    """Codes: any integer dtype, values equal to the reference."""
    assert isinstance(got, np.ndarray) and np.issubdtype(got.dtype, np.integer), f"not integer codes: {got!r}"
    assert_exact(got.astype(np.int64), expected)


def test_assert_exact_catches_an_off_by_one_accumulator():
    rng = np.random.default_rng(7)
    x = random_levels(rng, A8, (1, 2, 5, 5))
    w = random_levels(rng, W4, (3, 2, 3, 3))
    got = conv2d(x, w, padding=1)
    expected = ref_conv2d(x, w, padding=1)
    assert_exact(got, expected)
    wrong = expected.copy()
    wrong[0, 1, 2, 3] += 1
    with pytest.raises(AssertionError, match=r"value mismatch at \(0, 1, 2, 3\)"):
        assert_exact(got, wrong)
    with pytest.raises(AssertionError, match="dtype mismatch"):
        assert_exact(got.astype(np.int32), expected)
    with pytest.raises(AssertionError, match="shape mismatch"):
        assert_exact(got[:, :, 1:], expected)


def test_assert_codes_catches_a_wrong_code():
    acc = np.arange(0, 200, dtype=np.int64).reshape(1, 200)
    params = RequantParams(np.array([0]), np.array([2]), np.array([1]))
    got = requantize(acc, params, U41)
    expected = ref_requantize(acc, [0], [2], [1], U41)
    assert_codes(got, expected)
    wrong = expected.copy()
    wrong[0, 5] = ref_code(U41, 4)  # 5 is a tie between 4 and 6: rounding it down is wrong
    with pytest.raises(AssertionError, match=r"value mismatch at \(0, 5\)"):
        assert_codes(got, wrong)


# ---- the reference against the numbers of the spec -------------------------------------------------------


def test_reference_matches_spec_worked_example_and_lmax():
    # §1 worked example: the positive real levels / alpha of ESB(5, 2).
    example = [0, .25, .5, .75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 5, 6, 7]
    fmt = ESBFormat(5, 2)
    positive = sorted({ref_level(c, fmt) / 4 for c in range(32)} - {-v for v in example[1:]})
    assert positive == example
    # Lmax = (2**(k+1) - 1) << (2**e - 2) for e >= 1, 2**k - 1 for e = 0.
    for fmt in (U41, U52, U62, U30, U16_12, ESBFormat(4, 2, signed=False)):
        e = ref_exponent_bits(fmt)
        assert ref_levels(fmt)[-1] == ((2 ** (fmt.k + 1) - 1) << (2**e - 2)), fmt
    assert ref_levels(A8) == list(range(256))
    assert ref_levels(U30) == [0, 1, 2, 4, 8, 16, 32, 64]
    assert ref_levels(U41) == [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192]
    assert sorted({ref_level(c, W4) for c in range(16)}) == [
        -12, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 12]


@pytest.mark.parametrize("fmt", [U41, U52, U62, U30, A8, U16_12], ids=str)
def test_reference_codes_are_monotone_in_level(fmt):
    # §2 justifies max-pooling on codes: an unsigned format's codes are monotone in level.
    table = [ref_level(c, fmt) for c in range(2**fmt.bits)]
    assert all(a < b for a, b in zip(table, table[1:], strict=False))


def test_reference_nearest_matches_brute_force():
    for fmt in (U41, U52, U30, ESBFormat(5, 1, signed=False)):
        levels = ref_levels(fmt)
        for value in range(levels[-1] + 1):
            assert ref_nearest_ties_up(value, levels) == ref_nearest_ties_up_scan(value, levels)


# ---- conv2d ---------------------------------------------------------------------------------------------

STRIDES = [1, 2, (2, 1)]
PADDINGS = [0, 1, 2, (1, 0)]
KERNELS = [(1, 1), (3, 3), (2, 3), (3, 1), (1, 2)]


@pytest.mark.parametrize("padding", PADDINGS, ids=str)
@pytest.mark.parametrize("stride", STRIDES, ids=str)
def test_conv2d_matches_loop_reference(stride, padding):
    rng = np.random.default_rng(1000 + 10 * STRIDES.index(stride) + PADDINGS.index(padding))
    pad_h, pad_w = _pair(padding)
    for kernel_h, kernel_w in KERNELS:
        for act in (A8, U41, U52):
            batch, channels, kernels = (int(v) for v in rng.integers(1, 4, size=3))
            height = int(rng.integers(max(1, kernel_h - 2 * pad_h), 8))
            width = int(rng.integers(max(1, kernel_w - 2 * pad_w), 8))
            x = random_levels(rng, act, (batch, channels, height, width))
            w = random_levels(rng, W4, (kernels, channels, kernel_h, kernel_w))
            assert_exact(conv2d(x, w, stride=stride, padding=padding), ref_conv2d(x, w, stride, padding))


@pytest.mark.parametrize("act", [A8, U41, U16_12], ids=str)
@pytest.mark.parametrize("sign", [1, -1])
def test_conv2d_extreme_levels(act, sign):
    x_max = ref_levels(act)[-1]
    w_max = max(ref_level(c, W4) for c in range(16))
    assert w_max == 12
    x = np.full((2, 3, 5, 4), x_max, dtype=np.int64)
    w = np.full((2, 3, 3, 3), sign * w_max, dtype=np.int64)
    w[1, :, ::2, ::2] *= -1  # second kernel mixes both extremes
    for stride, padding in ((1, 0), (2, 1), ((2, 1), (1, 0)), (1, 2)):
        got = conv2d(x, w, stride=stride, padding=padding)
        assert_exact(got, ref_conv2d(x, w, stride, padding))
    # Without padding every window is full: the first kernel gives C*R*S * x_max * w_max everywhere.
    got = conv2d(x, w)
    assert np.all(got[:, 0] == 27 * x_max * sign * w_max)


def test_conv2d_exact_beyond_float64_precision():
    # Levels of ESB(20,16,unsigned) (up to ~2**31) times ESB(12,7) (up to ~2**22): sums well past 2**53,
    # where a float computation would round. The accumulator must still be exact (int64).
    rng = np.random.default_rng(11)
    x = random_levels(rng, ESBFormat(20, 16, signed=False), (2, 3, 6, 5))
    w = random_levels(rng, ESBFormat(12, 7), (3, 3, 3, 3))
    x[0, :, :3, :3] = ref_level(2**20 - 1, ESBFormat(20, 16, signed=False))
    w[0] = ref_level(2**11 - 1, ESBFormat(12, 7))
    x[0, 0, 3, 3] = w[0, 0, 2, 2] = 1  # an odd product in the window of output (0, 0, 2, 2)
    expected = ref_conv2d(x, w, 1, 1)
    assert_exact(conv2d(x, w, stride=1, padding=1), expected)
    big = int(expected[0, 0, 2, 2])
    assert big > 2**53 and int(float(big)) != big, "test data never leaves the float64-exact range"


def test_conv2d_accepts_narrow_integer_dtypes():
    rng = np.random.default_rng(12)
    x = random_levels(rng, A8, (1, 2, 6, 6))
    w = random_levels(rng, W4, (2, 2, 3, 3))
    got = conv2d(x.astype(np.uint8), w.astype(np.int8), stride=2, padding=1)
    assert_exact(got, ref_conv2d(x, w, 2, 1))


def test_conv2d_rejects_bad_arguments():
    x = np.zeros((1, 2, 4, 4), dtype=np.int64)
    w = np.zeros((3, 2, 3, 3), dtype=np.int64)
    with pytest.raises(ValueError, match="channels"):
        conv2d(x, np.zeros((3, 1, 3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv2d(x, np.zeros((3, 2, 5, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="stride"):
        conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="padding"):
        conv2d(x, w, padding=-1)
    with pytest.raises(TypeError, match="x must be an integer array"):
        conv2d(x.astype(np.float64), w)
    with pytest.raises(TypeError, match="w must be an integer array"):
        conv2d(x, w.astype(bool))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        conv2d(x[0], w)


# ---- linear, flatten ------------------------------------------------------------------------------------


def test_linear_matches_loop_reference():
    rng = np.random.default_rng(21)
    for _ in range(20):
        batch, inputs, outputs = int(rng.integers(1, 4)), int(rng.integers(1, 40)), int(rng.integers(1, 9))
        x = random_levels(rng, U52 if rng.random() < 0.5 else A8, (batch, inputs))
        w = random_levels(rng, W4, (outputs, inputs))
        assert_exact(linear(x, w), ref_linear(x, w))
    x = np.full((2, 64), 255, dtype=np.int64)
    w = np.full((3, 64), 12, dtype=np.int64)
    w[1] = -12
    got = linear(x.astype(np.uint8), w.astype(np.int8))
    assert_exact(got, ref_linear(x, w))
    assert got[0, 0] == 64 * 255 * 12 and got[1, 1] == -64 * 255 * 12


def test_linear_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="linear needs x"):
        linear(np.zeros((2, 5), dtype=np.int64), np.zeros((3, 4), dtype=np.int64))
    with pytest.raises(TypeError, match="x must be an integer array"):
        linear(np.zeros((2, 5)), np.zeros((3, 5), dtype=np.int64))


def test_flatten_is_nchw_c_order():
    rng = np.random.default_rng(31)
    x = rng.integers(0, 256, size=(2, 3, 4, 5))
    got = flatten(x)
    assert got.shape == (2, 60)
    for n in range(2):
        for c in range(3):
            for h in range(4):
                for w in range(5):
                    assert got[n, c * 20 + h * 5 + w] == x[n, c, h, w]
    # A flattened feature map feeds linear exactly like the loop reference on the same ordering.
    weights = random_levels(rng, W4, (4, 60))
    expected = ref_linear(np.array([[x[n, c, h, w] for c in range(3) for h in range(4) for w in range(5)]
                                    for n in range(2)]), weights)
    assert_exact(linear(got, weights), expected)
    assert flatten(np.arange(6).reshape(2, 3)).tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="batch axis"):
        flatten(np.int64(3))


# ---- max-pool -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [U41, U52, U62, A8, U30], ids=str)
def test_max_pool_on_codes_equals_pool_on_levels(fmt):
    rng = np.random.default_rng(41 + fmt.bits * 8 + fmt.k)
    for height, width in ((2, 2), (4, 6), (5, 4), (4, 7), (7, 5), (3, 3)):
        levels = random_levels(rng, fmt, (2, 3, height, width))
        codes = np.vectorize(lambda v: ref_code(fmt, int(v)), otypes=[np.int64])(levels)
        expected = np.empty((2, 3, height // 2, width // 2), dtype=np.int64)
        for n, c, i, j in np.ndindex(expected.shape):
            pooled = max(int(levels[n, c, 2 * i + di, 2 * j + dj]) for di in (0, 1) for dj in (0, 1))
            expected[n, c, i, j] = ref_code(fmt, pooled)
        assert_codes(max_pool2x2(codes.astype(np.uint8 if fmt.bits <= 8 else np.uint16)), expected)


def test_max_pool_rejects_bad_input():
    with pytest.raises(ValueError, match="H and W >= 2"):
        max_pool2x2(np.zeros((1, 1, 1, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="NCHW"):
        max_pool2x2(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(TypeError, match="codes must be an integer array"):
        max_pool2x2(np.zeros((1, 1, 2, 2)))


# ---- requantize -----------------------------------------------------------------------------------------

REQUANT_FORMATS = [U41, U52, U62, U30, A8, A16, U16_12]


def _random_requant_case(rng, fmt, shape, channel_axis):
    """Random per-channel (bias, M, S) and accumulators whose outputs span below 0 to beyond Lmax."""
    channels = shape[channel_axis]
    multiplier = rng.integers(1, 2**16, size=channels)
    multiplier[rng.random(channels) < 0.1] = 0
    multiplier[rng.random(channels) < 0.1] = 2**16 - 1
    shift = rng.integers(1, 49, size=channels)
    bias = rng.integers(-5000, 5000, size=channels)
    top = ref_levels(fmt)[-1]
    view = [1] * len(shape)
    view[channel_axis] = channels
    per_unit = (np.ldexp(1.0, shift) / np.maximum(multiplier, 1)).reshape(view)
    target = rng.uniform(-0.3, 1.3, size=shape) * top
    acc = np.clip(np.round(target * per_unit), -(2.0**61), 2.0**61).astype(np.int64) - bias.reshape(view)
    return acc, bias, multiplier, shift


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("fmt", REQUANT_FORMATS, ids=str)
def test_requantize_matches_reference_per_channel(fmt, relu):
    rng = np.random.default_rng(51 + REQUANT_FORMATS.index(fmt) + 100 * relu)
    acc, bias, multiplier, shift = _random_requant_case(rng, fmt, (2, 6, 5, 4), 1)
    params = RequantParams(bias, multiplier, shift)
    got = requantize(acc, params, fmt, relu=relu)
    expected = ref_requantize(acc, bias, multiplier, shift, fmt, relu=relu)
    assert_codes(got, expected)
    top_code = ref_code(fmt, ref_levels(fmt)[-1])
    assert np.any(expected == 0) and np.any(expected == top_code)
    assert np.any((expected != 0) & (expected != top_code)), "no unsaturated outputs"


@pytest.mark.parametrize(("shape", "channel_axis"), [
    ((5, 3, 4), 0), ((3, 4, 5), -1), ((3, 4, 5), 2), ((2, 7), 1), ((2, 7), -1), ((4, 3, 2, 6), 3),
    ((4, 3, 2, 6), -3),
])
def test_requantize_channel_axis(shape, channel_axis):
    rng = np.random.default_rng(61 + len(shape) * 10 + channel_axis)
    for fmt in (U52, A8):
        acc, bias, multiplier, shift = _random_requant_case(rng, fmt, shape, channel_axis)
        params = RequantParams(bias, multiplier, shift)
        got = requantize(acc, params, fmt, channel_axis=channel_axis)
        assert_codes(got, ref_requantize(acc, bias, multiplier, shift, fmt, channel_axis=channel_axis))


def test_requantize_single_channel_params_broadcast():
    rng = np.random.default_rng(71)
    acc = rng.integers(-3000, 30000, size=(2, 5, 3, 3))
    params = RequantParams(np.int64(17), np.int64(1000), np.int64(17))
    assert params.channels == 1
    assert_codes(requantize(acc, params, U52), ref_requantize(acc, [17], [1000], [17], U52))


# Hand-derived from §1: U41 levels by code 0..15 are 0 1 2 3 4 6 8 12 16 24 32 48 64 96 128 192;
# U52 levels are 0..7, then 8 10 12 14 (codes 8..11), 16 20 24 28 (12..15), 32 40 48 56 (16..19), ...,
# 256 320 384 448 (28..31); U30 levels are 0 1 2 4 8 16 32 64 (codes 0..7).
# Pairs are (y after rounding and clamping, expected code); ties between two levels go UP.
TIES_UP = {
    "U41": (U41, [(0, 0), (1, 1), (3, 3), (4, 4), (5, 5), (7, 6), (9, 6), (10, 7), (11, 7), (14, 8), (20, 9),
                  (28, 10), (40, 11), (56, 12), (80, 13), (112, 14), (160, 15), (191, 15), (192, 15), (500, 15)]),
    "U52": (U52, [(7, 7), (9, 9), (11, 10), (13, 11), (15, 12), (17, 12), (18, 13), (44, 18), (416, 31),
                  (447, 31), (10**6, 31)]),
    "U30": (U30, [(3, 3), (5, 3), (6, 4), (12, 5), (24, 6), (48, 7), (47, 6), (100, 7)]),
}


@pytest.mark.parametrize("name", sorted(TIES_UP))
def test_requantize_encodes_nearest_level_ties_up(name):
    fmt, table = TIES_UP[name]
    acc = np.array([[y for y, _ in table]], dtype=np.int64)
    expected = np.array([[code for _, code in table]], dtype=np.int64)
    # M = 2, S = 1: y = (2 * acc + 1) >> 1 = acc, so acc is the integer to encode.
    params = RequantParams(np.array([0]), np.array([2]), np.array([1]))
    assert_codes(requantize(acc, params, fmt, channel_axis=0), expected)
    assert_codes(ref_requantize(acc, [0], [2], [1], fmt, channel_axis=0), expected)


def test_requantize_rounds_half_up_before_encoding():
    # M = 1, S = 3, bias 0: y = (acc + 4) >> 3, so acc = 8 * q + 4 is exactly q + 1/2 and goes up.
    table = [(3, 0), (4, 1), (11, 1), (12, 2), (19, 2), (20, 3), (-4, 0), (-5, 0), (2043, 255), (2044, 255)]
    acc = np.array([[a for a, _ in table]], dtype=np.int64)
    params = RequantParams(np.array([0]), np.array([1]), np.array([3]))
    assert_codes(requantize(acc, params, A8, channel_axis=0), np.array([[y for _, y in table]]))
    # With bias -4: acc = 8 is (8 - 4 + 4) >> 3 = 1.
    params = RequantParams(np.array([-4]), np.array([1]), np.array([3]))
    assert_codes(requantize(np.array([[8, 7]]), params, A8, channel_axis=0), np.array([[1, 0]]))
    # Double rounding is what §2 specifies: 9 * 1 / 2 = 4.5 rounds to 5, which then ties up to level 6 of U41
    # (code 5), although 4.5 itself is nearer to level 4.
    params = RequantParams(np.array([0]), np.array([1]), np.array([1]))
    acc = np.array([[9, 7, 19]])
    assert_codes(requantize(acc, params, U41, channel_axis=0), np.array([[5, 4, 7]]))


def test_requantize_relu_and_clamp():
    # ReLU and the clamp to [0, Lmax] both take negatives to 0, and values above Lmax saturate.
    acc = np.array([[-10**9, -1, 0, 1, 255, 256, 10**9]], dtype=np.int64).T
    params = RequantParams(np.array([0]), np.array([2]), np.array([1]))
    for relu in (True, False):
        assert_codes(requantize(acc, params, A8, relu=relu), np.array([[0, 0, 0, 1, 255, 255, 255]]).T)
        assert_codes(requantize(acc, params, U41, relu=relu), np.array([[0, 0, 0, 1, 15, 15, 15]]).T)


@pytest.mark.parametrize("fmt", [A8, A16], ids=str)
def test_requantize_plain_integer_codes_equal_levels(fmt):
    rng = np.random.default_rng(81 + fmt.bits)
    top = 2**fmt.k - 1
    acc = rng.integers(-100, top + 100, size=(3, 4, 5))
    params = RequantParams(np.zeros(4, dtype=np.int64), np.full(4, 2), np.ones(4, dtype=np.int64))
    got = requantize(acc, params, fmt)
    assert_codes(got, np.clip(acc, 0, top))


def test_requantize_huge_accumulators_are_exact():
    # acc around 2**47 with M = 65535: (acc + bias) * M is about 2**63, past int64. Python ints are exact.
    rng = np.random.default_rng(91)
    multiplier = 2**16 - 1
    acc = rng.integers(2**46, 2**48, size=(1, 40), dtype=np.int64)
    acc[0, :10] *= -1
    # Exact ties: acc * M = q * 2**48 + 2**47 (M is odd, so invertible mod 2**48), i.e. t = q + 1/2.
    tie = (2**47 * pow(multiplier, -1, 2**48)) % 2**48
    q = (tie * multiplier - 2**47) // 2**48
    acc[0, 10:13] = [tie - 1, tie, tie + 1]
    assert any(abs(int(a)) * multiplier >= 2**63 for a in acc.ravel())
    for fmt in (A16, U16_12):
        for shift in (48, 1):
            params = RequantParams(np.array([0]), np.array([multiplier]), np.array([shift]))
            for relu in (True, False):
                got = requantize(acc, params, fmt, relu=relu, channel_axis=0)
                expected = ref_requantize(acc, [0], [multiplier], [shift], fmt, relu=relu, channel_axis=0)
                assert_codes(got, expected)
        # The tie rounds up to q + 1, one below rounds down to q (checked by hand, plain format).
        params = RequantParams(np.array([0]), np.array([multiplier]), np.array([48]))
        got = requantize(acc[:, 10:13], params, A16, channel_axis=0)
        assert got.astype(np.int64).tolist() == [[q, q + 1, q + 1]]
    # S = 1 saturates everything positive; nonzero huge negative inputs give 0.
    params = RequantParams(np.array([0]), np.array([multiplier]), np.array([1]))
    got = requantize(acc, params, A16, channel_axis=0)
    assert got.astype(np.int64).tolist() == [[0] * 10 + [65535] * 30]


def test_requantize_exact_across_the_int64_headroom():
    # Accumulators and biases from 2**40 to 2**63 - 1, with per-channel M and S: always the Python-int result.
    values = []
    for power in range(40, 64):
        values += [2**power - 1, -(2**power - 1), 2**power - 3 * 2**20]
    acc = np.array(values, dtype=np.int64).reshape(-1, 1).repeat(4, axis=1)
    bias, multiplier, shift = [0, 2**40, -(2**45), 2**61], [1, 3, 65535, 40000], [48, 47, 48, 30]
    params = RequantParams(np.array(bias), np.array(multiplier), np.array(shift))
    for fmt in (A16, U16_12):
        got = requantize(acc, params, fmt)
        assert_codes(got, ref_requantize(acc, bias, multiplier, shift, fmt))


@pytest.mark.parametrize(("acc", "bias"), [(-(2**63), 2**40), (2**40, -(2**63))])
def test_requantize_most_negative_int64(acc, bias):
    # (acc + bias) * M with M = 2 is far below zero, so y is 0 by the §2 formula in Python ints.
    params = RequantParams(np.array([bias]), np.array([2]), np.array([1]))
    acc = np.array([[acc]], dtype=np.int64)
    expected = ref_requantize(acc, [bias], [2], [1], A8)
    assert expected.tolist() == [[0]]
    assert_codes(requantize(acc, params, A8), expected)


def test_requantize_rejects_bad_arguments():
    params = RequantParams(np.zeros(3, dtype=np.int64), np.ones(3, dtype=np.int64), np.ones(3, dtype=np.int64))
    acc = np.zeros((2, 3, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="unsigned"):
        requantize(acc, params, ESBFormat(4, 1))
    with pytest.raises(ValueError, match="params has 3 channels but acc has 4"):
        requantize(acc, params, A8, channel_axis=2)
    with pytest.raises(ValueError, match="channel_axis 3 is out of range"):
        requantize(acc, params, A8, channel_axis=3)
    with pytest.raises(TypeError, match="params must be RequantParams"):
        requantize(acc, (0, 1, 1), A8)
    with pytest.raises(TypeError, match="acc must be an integer array"):
        requantize(acc.astype(np.float32), params, A8)


# ---- RequantParams, requant_params, fold_scales -------------------------------------------------------


def test_requant_params_accepts_the_extremes():
    params = RequantParams(np.array([-(2**40), 2**40]), np.array([0, 2**16 - 1]), np.array([1, 48]))
    assert params.channels == 2
    assert params.multiplier.tolist() == [0, 65535] and params.shift.tolist() == [1, 48]
    assert params.effective_scale().tolist() == [0.0, 65535 / 2**48]


@pytest.mark.parametrize(("kwargs", "error", "pattern"), [
    ({"multiplier": 2**16}, ValueError, "multiplier must be in 0..65535, got 65536"),
    ({"multiplier": -1}, ValueError, "multiplier must be in 0..65535, got -1"),
    ({"shift": 0}, ValueError, "shift must be in 1..48, got 0"),
    ({"shift": 49}, ValueError, "shift must be in 1..48, got 49"),
    ({"bias": 1.0}, TypeError, "bias must be an integer array"),
    ({"multiplier": 3.0}, TypeError, "multiplier must be an integer array"),
    ({"shift": np.float32(8)}, TypeError, "shift must be an integer array"),
    ({"shift": True}, TypeError, "shift must be an integer array"),
])
def test_requant_params_validation(kwargs, error, pattern):
    fields = {"bias": np.array([0, 0]), "multiplier": np.array([5, 7]), "shift": np.array([4, 4])}
    fields.update({name: np.array([value, value]) for name, value in kwargs.items()})
    with pytest.raises(error, match=pattern):
        RequantParams(**fields)


def _check_multiplier_shift(params: RequantParams, scales):
    for m, s, scale in zip(params.multiplier.tolist(), params.shift.tolist(), scales, strict=True):
        assert isinstance(m, int) and 0 <= m < 2**16 and 1 <= s <= 48
        if scale == 0:
            assert m == 0
        else:
            yield Fraction(m, 2**s), Fraction(scale), s, m


def test_requant_params_normal_range():
    rng = np.random.default_rng(101)
    scales = np.exp2(rng.uniform(-32, 14.99, size=2000))
    scales[:4] = [2.0**-32, 1.0, 0.5, 32767.5]
    params = requant_params(scales)
    assert params.channels == scales.size and np.all(params.bias == 0)
    for implemented, wanted, shift, m in _check_multiplier_shift(params, scales):
        assert abs(implemented - wanted) <= wanted * Fraction(1, 2**15)
        # Docstring: S is the largest shift keeping M < 2**16, so M keeps 16 significant bits unless S = 48.
        assert shift == 48 or m >= 2**15
    assert params.effective_scale().tolist()[:3] == [2.0**-32, 1.0, 0.5]
    assert params.multiplier[3] == 65535 and params.shift[3] == 1


def test_requant_params_small_scales_use_the_finest_shift():
    rng = np.random.default_rng(102)
    scales = np.exp2(rng.uniform(-48.5, -33, size=300))
    for implemented, wanted, shift, _ in _check_multiplier_shift(requant_params(scales), scales):
        assert shift == 48
        assert abs(implemented - wanted) <= Fraction(1, 2**49)  # M = nearest integer to scale * 2**48


def test_requant_params_zero_scale_and_bias_rounding():
    params = requant_params([0.0, 0.25, 0.0], bias=[2.4, -7.6, 1e6 + 0.5])
    assert params.multiplier.tolist()[0] == 0 and params.multiplier.tolist()[2] == 0
    assert params.effective_scale().tolist() == [0.0, 0.25, 0.0]
    assert params.bias.tolist()[:2] == [2, -8]
    assert abs(params.bias.tolist()[2] - (1e6 + 0.5)) == 0.5
    assert requant_params(0.0).multiplier.tolist() == [0]


@pytest.mark.parametrize(("scale", "pattern"), [
    (-1.0, "real_scale must be finite and >= 0, got -1.0"),
    (-1e-30, "real_scale must be finite and >= 0"),
    (float("nan"), "real_scale must be finite and >= 0, got nan"),
    (float("inf"), "real_scale must be finite and >= 0, got inf"),
    (2.0**15, "real_scale 32768.0 is too large"),
    (1e9, "too large"),
    (2.0**-50, "too small"),
    (1e-300, "too small"),
])
def test_requant_params_rejects_bad_scales(scale, pattern):
    with pytest.raises(ValueError, match=pattern):
        requant_params(scale)
    with pytest.raises(ValueError, match="real_scale"):
        requant_params([0.5, scale])


def test_requant_params_rejects_bad_bias_and_shape():
    with pytest.raises(ValueError, match="bias must be finite"):
        requant_params(0.5, bias=float("nan"))
    with pytest.raises(ValueError, match="real_scale must be a scalar or 1-d"):
        requant_params(np.ones((2, 2)))


def test_fold_scales():
    rng = np.random.default_rng(111)
    weight_scale = rng.uniform(1e-3, 0.1, size=8)
    input_scale, output_scale = 2.0**-5, 2.0**-3
    bias = rng.normal(0, 0.5, size=8)
    params = fold_scales(weight_scale, input_scale, output_scale, bias)
    units = [Fraction(input_scale) * Fraction(ws) for ws in weight_scale]
    wanted = [unit / Fraction(output_scale) for unit in units]
    for implemented, want, _, _ in _check_multiplier_shift(params, [float(w) for w in wanted]):
        assert abs(implemented - want) <= want * Fraction(1, 2**15)
    for b_int, b_real, unit in zip(params.bias.tolist(), bias, units, strict=True):
        exact = Fraction(b_real) / unit  # the bias in accumulator units, rounded to the nearest integer
        assert abs(b_int - exact) <= Fraction(1, 2) + abs(exact) * Fraction(1, 2**52)
    plain = fold_scales(0.01, 0.5, 0.25)
    assert plain.bias.tolist() == [0] and plain.channels == 1
    for bad in ((0.0, 0.5, 0.25), (0.01, -0.5, 0.25), (0.01, 0.5, 0.0), (float("nan"), 0.5, 0.25)):
        with pytest.raises(ValueError, match="scales must be finite and > 0"):
            fold_scales(*bad)


# ---- the integer pipeline against the float layer -------------------------------------------------------

U = Fraction(1, 2**53)  # unit roundoff of float64


def float_layer_violations(y, acc, abs_acc, float_out, bias_real, bias_int, multiplier, shift, units, s_out,
                           top, terms):
    """Elements where ``|y * s_out - clip(float_out, 0, top * s_out)|`` exceeds the derived bound.

    With ``r = unit / s_out`` (exact: every scale but alpha is a power of two), ``t = (acc + B) * M / 2**S``
    and the exact float layer ``F = (unit * acc + b) / s_out`` in output levels:

    - ``|floor(t + 1/2) - t| <= 1/2`` (the rounding of §2);
    - ``t - F = (M / 2**S - r) * (acc + B) + r * (B - b / unit)``, so
      ``|t - F| <= |M / 2**S - r| * |acc + B| + r * |B - b / unit|``;
    - ReLU + clamp to ``[0, Lmax]`` is 1-Lipschitz, so it never increases the distance;
    - the float64 conv of the dequantized tensors (``terms`` products, each weight rounded once when
      dequantized, plus the bias) is off from the exact sum by at most
      ``gamma(terms + 2) * (sum |x| |w| + |b|)`` with ``gamma(n) = n u / (1 - n u)`` (Higham, Thm 3.1 /
      the dot-product bound), and clipping does not increase that either.
    """
    gamma = (terms + 2) * U / (1 - (terms + 2) * U)
    s_out_q = Fraction(s_out)
    violations, worst_extra = [], Fraction(0)
    for index in np.ndindex(acc.shape):
        c = index[1]
        unit = units[c]
        rate = unit / s_out_q
        total = int(acc[index]) + bias_int[c]
        extra = abs(Fraction(multiplier[c], 2 ** shift[c]) - rate) * abs(total)
        extra += rate * abs(bias_int[c] - Fraction(bias_real[c]) / unit)
        float_error = gamma * (unit * int(abs_acc[index]) + abs(Fraction(bias_real[c])))
        bound = s_out_q * (Fraction(1, 2) + extra) + float_error
        worst_extra = max(worst_extra, bound / s_out_q - Fraction(1, 2))
        target = Fraction(float(np.clip(float_out[index], 0.0, top * s_out)))
        if abs(int(y[index]) * s_out_q - target) > bound:
            violations.append(index)
    return violations, worst_extra


@pytest.mark.parametrize("per_channel", [False, True])
def test_integer_pipeline_approximates_float_layer(per_channel):
    rng = np.random.default_rng(121 + per_channel)
    batch, channels, height, width, kernels, kh, kw = 2, 3, 7, 6, 5, 3, 3
    stride, padding = 1, 1
    # Weights: Gaussian, ESB(4, 1) with DDA alpha (per tensor via lambda_for, or per output channel).
    w_real = rng.normal(0.0, 0.2, size=(kernels, channels, kh, kw))
    if per_channel:
        alpha = fit_alpha(w_real, W4, per_channel_axis=0)
        alpha_c = np.asarray(alpha, dtype=np.float64).reshape(kernels)
    else:
        alpha = lambda_for(W4) * math.sqrt(float(np.mean(w_real**2)))
        alpha_c = np.full(kernels, alpha)
    w_codes = W4.encode(w_real, alpha)
    lw = np.vectorize(lambda c: ref_level(int(c), W4), otypes=[np.int64])(w_codes)
    weight_scale = alpha_c / 2**W4.k  # real value of weight level 1, per channel
    # Activations: uint8 levels with s_a = 2**-5.
    quantizer = ActivationQuantizer(A8, 5)
    x_real = np.abs(rng.normal(0.0, 3.0, size=(batch, channels, height, width)))
    la = quantizer.level(quantizer.encode(x_real))
    s_a = 2.0**-5
    # The float layer on the dequantized tensors, in float64: conv + real bias + ReLU.
    x_deq = la * s_a
    w_deq = lw * weight_scale[:, None, None, None]
    bias_real = rng.normal(0.0, 0.5, size=kernels)
    padded = np.pad(x_deq, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out_h, out_w = height + 2 * padding - kh + 1, width + 2 * padding - kw + 1
    float_out = np.zeros((batch, kernels, out_h, out_w))
    for r in range(kh):
        for s in range(kw):
            window = padded[:, :, r:r + out_h, s:s + out_w]
            float_out += np.einsum("nchw,kc->nkhw", window, w_deq[:, :, r, s])
    float_out = np.maximum(float_out + bias_real[None, :, None, None], 0.0)
    s_out = 2.0 ** math.floor(math.log2(float(float_out.max()) / 200))
    top = A8.max_level
    assert top == 255
    # The integer pipeline.
    acc = conv2d(la, lw, stride=stride, padding=padding)
    assert_exact(acc, ref_conv2d(la, lw, stride, padding))
    params = fold_scales(weight_scale, s_a, s_out, bias_real)
    y = requantize(acc, params, A8, relu=True).astype(np.int64)
    assert_exact(y, ref_requantize(acc, params.bias, params.multiplier, params.shift, A8))
    # The bound.
    units = [Fraction(s_a) * Fraction(float(ws)) for ws in weight_scale]
    abs_acc = ref_conv2d(la, np.abs(lw), stride, padding)
    args = (acc, abs_acc, float_out, bias_real.tolist(), params.bias.tolist(), params.multiplier.tolist(),
            params.shift.tolist(), units, s_out, top, channels * kh * kw)
    violations, worst_extra = float_layer_violations(y, *args)
    assert violations == []
    # The bound is tight: well under one output level, so an off-by-one output cannot hide in it.
    assert worst_extra <= Fraction(1, 4), float(worst_extra)
    inside = (y > 0) & (y < top)
    assert inside.mean() > 0.3 and np.any(y == 0), "degenerate test data"
    # ... and the checker does fail on a wrong output: move one unsaturated output a level away.
    index = tuple(int(i) for i in np.argwhere(inside)[len(np.argwhere(inside)) // 2])
    wrong = y.copy()
    target = float(np.clip(float_out[index], 0.0, top * s_out))
    wrong[index] += 1 if y[index] * s_out >= target else -1
    bad, _ = float_layer_violations(wrong, *args)
    assert bad == [index]


def test_requant_params_takes_the_largest_shift_that_fits():
    # M = round(scale * 2**20) = 65535 still fits 16 bits, so S = 20 (not 19, which loses a bit).
    params = requant_params([65535.25 / 2**20])
    assert (int(params.multiplier[0]), int(params.shift[0])) == (65535, 20)


# ---- the operators of residual networks and MobileNets (issue 20): depthwise, residual add, pooling, bounds ----
def _onnx_reference(op: str, inputs: dict, **attributes) -> np.ndarray:
    """``op`` run by onnx.reference on float64 copies of integer arrays (exact below 2**53)."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    names = list(inputs)
    node = helper.make_node(op, names, ["y"], **attributes)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.DOUBLE, None) for n in names],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ReferenceEvaluator(model).run(None, {n: np.asarray(v, dtype=np.float64) for n, v in inputs.items()})[0]


@pytest.mark.parametrize(("stride", "padding", "multiplier"), [(1, 1, 1), (2, 1, 1), (1, 0, 2), (2, 1, 2)])
def test_depthwise_conv2d_equals_onnx_and_per_channel_convolutions(stride, padding, multiplier):
    rng = np.random.default_rng(stride * 10 + padding + multiplier)
    channels = 5
    x = random_levels(rng, A8, (2, channels, 7, 6))
    w = random_levels(rng, W4, (channels * multiplier, 1, 3, 3))
    out = conv2d(x, w, stride=stride, padding=padding, groups=channels)
    pads = [padding] * 4
    reference = _onnx_reference("Conv", {"x": x, "w": w}, group=channels, strides=[stride, stride], pads=pads)
    assert out.dtype == np.int64 and np.array_equal(out, reference.astype(np.int64))
    for k in range(channels * multiplier):  # and each output channel reads its own input channel only
        c = k // multiplier
        assert np.array_equal(out[:, k:k + 1], conv2d(x[:, c:c + 1], w[k:k + 1], stride=stride, padding=padding))


def test_grouped_conv2d_equals_onnx_and_rejects_bad_groups():
    rng = np.random.default_rng(7)
    x, w = random_levels(rng, U41, (1, 6, 5, 5)), random_levels(rng, W4, (4, 3, 3, 3))
    assert np.array_equal(conv2d(x, w, padding=1, groups=2),
                          _onnx_reference("Conv", {"x": x, "w": w}, group=2, pads=[1, 1, 1, 1]).astype(np.int64))
    assert np.array_equal(conv2d(x[:, :3], w[:, :3], groups=1), conv2d(x[:, :3], w[:, :3]))
    for groups, message in ((4, "groups = 4 must divide the 6 input and 4 output channels"),
                            (0, "groups must be a positive int, got 0"), (True, "groups must be a positive int")):
        with pytest.raises(ValueError, match=re.escape(message)):
            conv2d(x, w, groups=groups)
    with pytest.raises(ValueError, match=re.escape("x has 6 channels in 3 groups of 2, but w expects 3 per group")):
        conv2d(x, random_levels(rng, W4, (6, 3, 3, 3)), groups=3)


def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def test_residual_add_is_the_rounded_scaled_sum():
    """Against the definition in exact rationals: y = round_half_up((La*Ma + Lb*Mb) / 2**S), then the clamp."""
    rng = np.random.default_rng(3)
    params = AddParams(40000, 23000, 17)
    a, b = random_levels(rng, A8, (2, 3, 4, 4)), random_levels(rng, A8, (2, 3, 4, 4))
    codes = residual_add(a, b, params, A8)
    expected = [min(255, max(0, _round_half_up(Fraction(int(p) * 40000 + int(q) * 23000, 2**17))))
                for p, q in zip(a.ravel(), b.ravel(), strict=True)]
    assert codes.dtype == A8.code_dtype and codes.ravel().tolist() == expected
    assert 0 < codes.min() or codes.max() == 255  # the vectors reach the clamp or stay inside: both are checked


def test_residual_add_ties_saturation_and_esb_outputs():
    one = AddParams(1, 1, 1)  # (a + b + 1) >> 1: the mean, ties up
    assert residual_add(np.array([1, 2, 3, 0]), np.array([0, 1, 2, 0]), one, A8).tolist() == [1, 2, 3, 0]
    assert residual_add(np.array([255]), np.array([255]), AddParams(2, 2, 1), A8).tolist() == [255]  # saturates
    # ESB(4,1) unsigned outputs: 5 -> 6, 7 -> 8 (ties up), 13 -> 12
    assert U41.level(residual_add(np.array([5, 7, 13]), np.zeros(3, dtype=int), AddParams(2, 0, 1), U41)).tolist() \
        == [6, 8, 12]
    # an upper bound keeps the nearest level within it: 7 with a bound of 7 is 6, not 8
    assert U41.level(residual_add(np.array([7]), np.array([0]), AddParams(2, 0, 1), U41, upper=7)).tolist() == [6]


def test_add_params_fold_the_scales():
    params = add_params(2.0**-4, 2.0**-5, 2.0**-4)  # ratios 1 and 1/2
    assert (params.multiplier_a, params.multiplier_b, params.shift) == (32768, 16384, 15)
    params = add_params(0.0123, 0.0456, 0.05)
    ratios = (0.0123 / 0.05, 0.0456 / 0.05)
    assert max(params.multiplier_a, params.multiplier_b) >= 1 << 15  # 16 significant bits on the larger ratio
    assert abs(params.multiplier_a / 2**params.shift - ratios[0]) <= 2.0**-(params.shift + 1)
    assert abs(params.multiplier_b / 2**params.shift - ratios[1]) <= 2.0**-(params.shift + 1)
    for args, message in (((1.0, 1.0, 0.0), "scales must be finite and > 0"),
                          ((1e6, 1.0, 1.0), "a scale ratio of 1000000.0 needs M >= 2**16 at S = 1"),
                          ((1.0, 1e-12, 1.0), "rounds to M = 0")):
        with pytest.raises(ValueError, match=re.escape(message)):
            add_params(*args)
    for kwargs, message in (({"multiplier_a": 1 << 16}, "multiplier_a must be in 0..65535"),
                            ({"shift": 0}, "shift must be in 1..48, got 0"), ({"multiplier_b": 1.5}, "must be an int")):
        with pytest.raises((ValueError, TypeError), match=re.escape(message)):
            AddParams(**{"multiplier_a": 1, "multiplier_b": 1, "shift": 1, **kwargs})
    with pytest.raises(ValueError, match="the same shape"):
        residual_add(np.zeros((2, 2), dtype=int), np.zeros(4, dtype=int), params, A8)


def test_residual_add_with_zero_points_is_the_rounded_sum_of_real_values():
    """Inputs and output with zero points (tensors without ReLU): y = zy + round_half_up(((La - za) * Ma + (Lb - zb) *
    Mb) / 2**S), clamped, in exact rationals; the offset folds the zero points in exactly."""
    rng = np.random.default_rng(5)
    zero_points = (128, 100, 120)
    params = add_params(0.03, 0.05, 0.035, zero_points)
    assert params.offset == (120 << params.shift) - 128 * params.multiplier_a - 100 * params.multiplier_b
    a, b = random_levels(rng, A8, (3, 2, 5, 5)), random_levels(rng, A8, (3, 2, 5, 5))
    for relu in (False, True):
        codes = residual_add(a, b, params, A8, relu=relu)
        ma, mb = params.multiplier_a, params.multiplier_b
        real = [120 + _round_half_up(Fraction((int(p) - 128) * ma + (int(q) - 100) * mb, 2**params.shift))
                for p, q in zip(a.ravel(), b.ravel(), strict=True)]
        expected = [min(255, max(0, value)) for value in real]
        assert codes.ravel().tolist() == expected
        assert min(real) < 0 < max(real) - 255 or relu  # the vectors reach both clamps
    for bad in ((-1, 0, 0), (0, 0), (0, 0, 1 << 16), (0, True, 0)):
        with pytest.raises(ValueError, match="zero_points must be three levels"):
            add_params(0.1, 0.1, 0.1, bad)
    with pytest.raises(ValueError, match="offset must be below 2"):
        AddParams(1, 1, 1, 1 << 56)


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(3, 2, 1), (2, None, 0), (3, 1, 1), ((2, 3), (1, 2), 1)])
def test_max_pool_equals_onnx_on_codes(kernel, stride, padding):
    """Codes are monotone in levels and level 0 is the least, so zero padding equals ONNX's -inf padding."""
    rng = np.random.default_rng(7)
    for fmt in (A8, U41):
        codes = rng.integers(0, fmt.code_count, (2, 3, 9, 8)).astype(fmt.code_dtype)
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        sh, sw = (kh, kw) if stride is None else ((stride, stride) if isinstance(stride, int) else stride)
        levels = fmt.level(codes)
        reference = _onnx_reference("MaxPool", {"x": levels}, kernel_shape=[kh, kw], strides=[sh, sw],
                                    pads=[padding] * 4)
        out = max_pool(codes, kernel, stride, padding)
        assert out.dtype == codes.dtype and np.array_equal(fmt.level(out), reference.astype(np.int64))
    assert np.array_equal(max_pool(codes, 2), max_pool2x2(codes))
    for args, message in (((codes, 3, 2, 3), "padding 3 must be smaller than the kernel"),
                          ((codes, 0), "kernel and stride must be >= 1"),
                          ((codes[0], 2), "needs NCHW codes"), ((codes, 12), "is larger than the padded input")):
        with pytest.raises(ValueError, match=re.escape(message)):
            max_pool(*args)


@pytest.mark.parametrize(("kernel", "stride"), [(2, None), (3, 2), ((2, 3), (1, 2))])
def test_sum_pool_is_onnx_average_pool_times_the_window(kernel, stride):
    rng = np.random.default_rng(11)
    x = random_levels(rng, A8, (2, 3, 7, 8))
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    sh, sw = (kh, kw) if stride is None else ((stride, stride) if isinstance(stride, int) else stride)
    reference = _onnx_reference("AveragePool", {"x": x}, kernel_shape=[kh, kw], strides=[sh, sw]) * (kh * kw)
    assert np.array_equal(sum_pool(x, kernel, stride), np.round(reference).astype(np.int64))
    assert np.array_equal(global_sum_pool(x), np.round(_onnx_reference("GlobalAveragePool", {"x": x}) * 56)
                          .astype(np.int64))


def test_average_pool_requantized_is_the_rounded_mean():
    """Global average pool of uint8 levels to uint8 at the same scale: the mean of the 49 levels, rounded (within
    M's 16 significant bits, which move a result by at most 1)."""
    rng = np.random.default_rng(5)
    x = random_levels(rng, A8, (3, 4, 7, 7))
    params = pool_params(49, 2.0**-4, 2.0**-4)
    codes = requantize(global_sum_pool(x), params, A8).astype(np.int64)
    means = x.reshape(3, 4, -1).mean(axis=2)
    assert np.abs(codes[:, :, 0, 0] - means).max() <= 0.5 + 49 * 255 * 2.0**-16
    assert np.array_equal(codes, requantize(global_sum_pool(x), requant_params(1 / 49), A8))
    with pytest.raises(ValueError, match="window must be a positive int"):
        pool_params(0, 1.0, 1.0)
    with pytest.raises(ValueError, match="kernel 8x8 is larger than the input 7x7"):
        sum_pool(x, 8)


def test_requantize_with_an_upper_bound_is_relu6():
    # uint8 outputs worth 2**-4: ReLU6 allows levels up to 6 / 2**-4 = 96
    bound = bound_level(6.0, 2.0**-4, A8)
    assert bound == 96 and bound_level(100.0, 2.0**-4, A8) == 255 and bound_level(6.0, 0.7, A8) == 8
    acc = np.array([[-5], [50], [96], [97], [400]])
    params = RequantParams(np.zeros(1, dtype=int), np.ones(1, dtype=int), np.ones(1, dtype=int))  # y = acc / 2
    assert requantize(acc, params, A8, upper=bound, channel_axis=1).ravel().tolist() == [0, 25, 48, 49, 96]
    # ESB outputs: the level nearest 13 is 12, the nearest to 14 is 16 (ties up), a bound of 14 gives 12
    esb = requantize(np.array([[26], [28], [28]]), params, U41, channel_axis=1, upper=14).ravel()
    assert U41.level(esb).tolist() == [12, 12, 12]
    assert U41.level(requantize(np.array([[28]]), params, U41, channel_axis=1)).tolist() == [[16]]
    for upper in (-1, 1.5, True):
        with pytest.raises(ValueError, match="upper must be a level >= 0"):
            requantize(acc, params, A8, upper=upper)
    with pytest.raises(ValueError, match="bound must be finite and >= 0"):
        bound_level(-1.0, 1.0, A8)
