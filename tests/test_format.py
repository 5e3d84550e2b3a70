"""ESBFormat and quantize (esb_hw/quant/format.py) against docs/number-format.md, with slow scalar references."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from esb_hw.quant import ESBFormat, quantize


def valid_formats(max_bits=9):
    formats = []
    for signed in (True, False):
        for bits in range(1, max_bits + 1):
            for k in range(bits + 1):
                e = bits - k - int(signed)
                if 0 <= e <= 4 and e + k > 0:
                    formats.append(ESBFormat(bits, k, signed))
    return formats


FORMATS = valid_formats()


def reference_magnitude_level(fmt, magnitude_code):
    """docs/number-format.md verbatim, for one magnitude code."""
    exponent, mantissa = magnitude_code >> fmt.k, magnitude_code & ((1 << fmt.k) - 1)
    return mantissa if exponent == 0 else ((1 << fmt.k) + mantissa) << (exponent - 1)


def reference_levels(fmt):
    magnitudes = {reference_magnitude_level(fmt, c) for c in range(1 << (fmt.bits - fmt.sign_bits))}
    levels = magnitudes | ({-m for m in magnitudes} if fmt.signed else set())
    return sorted(level / 2**fmt.k for level in levels)


def reference_project(fmt, z):
    """Nearest level by exhaustive search; a tie goes to the level that is an even multiple of the step of
    z's binade (docs/number-format.md)."""
    levels = reference_levels(fmt)
    distances = [abs(z - level) for level in levels]
    best = min(distances)
    candidates = [level for level, d in zip(levels, distances, strict=True) if d == best]
    if len(candidates) == 1:
        return candidates[0]
    binade = 0 if z == 0 else min(max(math.frexp(abs(z))[1] - 1, 0), max(2**fmt.exponent_bits - 2, 0))
    step = 2.0 ** (binade - fmt.k)
    even = [c for c in candidates if (abs(c) / step) % 2 == 0]
    assert len(even) == 1, (fmt, z, candidates)
    return even[0]


def check_projection(fmt, values, alpha=1.0):
    """Compare the vectorized projection with the reference; returns the list of mismatches."""
    got = fmt.project(np.asarray(values, dtype=np.float64), alpha)
    mismatches = []
    for value, result in zip(np.ravel(values), np.ravel(got), strict=True):
        expected = reference_project(fmt, float(value) / alpha)
        if result != expected:
            mismatches.append((float(value), float(result), expected))
    return mismatches


# ---- the number format ---------------------------------------------------------------------------
def test_worked_example_esb_5_2():
    fmt = ESBFormat(5, 2)
    positive = fmt.levels()[fmt.levels() >= 0]
    expected = [0, .25, .5, .75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 5, 6, 7]
    assert positive.tolist() == expected
    assert fmt.exponent_bits == 2 and fmt.max_level == 28


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_levels_match_reference(fmt):
    assert fmt.levels().tolist() == reference_levels(fmt)
    assert fmt.max_level == max(abs(level) for level in reference_levels(fmt)) * 2**fmt.k


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_max_level_formula(fmt):
    e, k = fmt.exponent_bits, fmt.k
    expected = (2 ** (k + 1) - 1) * 2 ** (2**e - 2) if e >= 1 else 2**k - 1
    assert fmt.max_level == expected


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_every_code_decodes_and_reencodes(fmt):
    codes = np.arange(fmt.code_count)
    levels = fmt.level(codes)
    for code, level in zip(codes.tolist(), levels.tolist(), strict=True):
        magnitude_code = code & ((1 << (fmt.bits - fmt.sign_bits)) - 1)
        negative = fmt.signed and code >> (fmt.bits - 1)
        expected = reference_magnitude_level(fmt, magnitude_code)
        assert level == (-expected if negative else expected)
    canonical = np.where(levels == 0, 0, codes)
    assert np.array_equal(fmt.code_of_level(levels), canonical)
    assert fmt.code_of_level(levels).dtype == fmt.code_dtype


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_significand_shift_view(fmt):
    codes = np.arange(fmt.code_count)
    negative, significand, shift = fmt.significand_shift(codes)
    magnitude = significand << shift
    assert np.array_equal(np.where(negative, -magnitude, magnitude), fmt.level(codes))
    assert significand.max() <= fmt.max_significand < 2**fmt.significand_bits
    assert shift.max() == fmt.max_shift and fmt.max_shift < 2 ** max(fmt.shift_bits, 1)
    assert fmt.max_level < 2**fmt.level_bits


def test_negative_zero_decodes_to_zero():
    fmt = ESBFormat(4, 1)
    negative_zero = 1 << 3
    assert fmt.level(negative_zero) == 0
    decoded = fmt.decode(np.array([negative_zero]), 0.5)
    assert decoded[0] == 0 and not np.signbit(decoded[0])
    assert fmt.encode(np.array([-1e-9, -0.0]), 1.0).tolist() == [0, 0]


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.k == 0 and f.exponent_bits >= 2], ids=str)
def test_k0_is_power_of_two(fmt):
    positive = fmt.integer_levels()[fmt.integer_levels() >= 0].tolist()
    assert positive == [0] + [2**i for i in range(2**fmt.exponent_bits - 1)]


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f.exponent_bits == 1], ids=str)
def test_one_exponent_bit_is_uniform(fmt):
    positive = fmt.integer_levels()[fmt.integer_levels() >= 0].tolist()
    assert positive == list(range(2 ** (fmt.k + 1)))


# ---- projection: the paper's Fig. 4 and properties -------------------------------------------------
FIG4_INPUT = [[2.17, 1.62, 1.24, 0.76, 0.68], [1.91, 2.72, 3.06, 2.81, 2.37],
              [2.21, 2.67, 1.33, 1.46, 0.59], [4.00, 4.38, 1.67, 2.98, 0.61]]
FIG4_OUTPUT = [[2.19, 1.56, 1.25, 0.78, 0.63], [1.88, 2.50, 3.13, 2.50, 2.50],
               [2.19, 2.50, 1.25, 1.56, 0.63], [3.75, 4.38, 1.56, 3.13, 0.63]]


def test_paper_fig4_example():
    got = quantize(np.array(FIG4_INPUT), ESBFormat(5, 2), 0.625)
    # The paper prints 2 decimals, rounding half up (0.625 -> 0.63).
    assert np.all(np.abs(got - np.array(FIG4_OUTPUT)) <= 0.005 + 1e-12)
    assert np.all(np.isin(got / 0.625, ESBFormat(5, 2).levels()))


def test_fig4_checker_rejects_a_wrong_grid():
    """The Fig. 4 comparison can fail: ESB(5,3), a different level set, does not reproduce it."""
    got = quantize(np.array(FIG4_INPUT), ESBFormat(5, 3), 0.625)
    assert not np.all(np.abs(got - np.array(FIG4_OUTPUT)) <= 0.005 + 1e-12)


formats = st.sampled_from(FORMATS)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def format_and_values(draw):
    fmt = draw(formats)
    levels = fmt.levels()
    midpoints = (levels[1:] + levels[:-1]) / 2 if levels.size > 1 else levels
    near_grid = st.one_of(st.sampled_from(levels.tolist()), st.sampled_from(midpoints.tolist()),
                          st.floats(-2 * fmt.max_value - 1, 2 * fmt.max_value + 1), finite)
    values = draw(hnp.arrays(np.float64, st.integers(1, 24), elements=near_grid))
    return fmt, values


@given(format_and_values())
def test_projection_equals_brute_force_with_ties_to_even(case):
    fmt, values = case
    assert check_projection(fmt, values) == []


@given(format_and_values(), st.floats(1e-3, 1e3))
def test_quantize_outputs_are_levels_idempotent_and_round_trip(case, alpha):
    fmt, values = case
    values = values * alpha
    projected = fmt.project(values, alpha)
    assert np.all(np.isin(projected, fmt.levels()))
    quantized = quantize(values, fmt, alpha)
    assert np.array_equal(quantized, projected * alpha)
    assert np.array_equal(quantize(quantized, fmt, alpha), quantized)
    assert np.array_equal(fmt.decode(fmt.encode(values, alpha), alpha), quantized)


@given(format_and_values(), st.floats(1e-3, 1e3))
def test_quantize_is_monotone(case, alpha):
    fmt, values = case
    ordered = np.sort(values)
    assert np.all(np.diff(quantize(ordered, fmt, alpha)) >= 0)


@pytest.mark.parametrize("fmt", [ESBFormat(4, 1), ESBFormat(5, 2, signed=False), ESBFormat(8, 8, False)], ids=str)
def test_float32_matches_float64_on_float32_inputs(fmt):
    values = np.random.default_rng(7).standard_normal(20000).astype(np.float32) * 3
    got32 = quantize(values, fmt, np.float32(0.5))
    assert got32.dtype == np.float32
    assert np.array_equal(got32, quantize(values.astype(np.float64), fmt, 0.5))


def test_per_channel_alpha_broadcasts():
    fmt = ESBFormat(4, 1)
    weights = np.random.default_rng(3).standard_normal((3, 5))
    alpha = np.array([[0.1], [0.5], [2.0]])
    expected = np.stack([quantize(row, fmt, a) for row, a in zip(weights, alpha[:, 0], strict=True)])
    assert np.array_equal(quantize(weights, fmt, alpha), expected)


def test_brute_force_checker_catches_a_wrong_projection(monkeypatch):
    fmt = ESBFormat(4, 1)
    original = ESBFormat.project

    def off_by_one_step(self, x, alpha=1.0):
        return original(self, x, alpha) + 0.5

    monkeypatch.setattr(ESBFormat, "project", off_by_one_step)
    assert check_projection(fmt, np.array([0.3, 1.0])) != []


def test_ties_go_to_even_on_the_binade_grid():
    fmt = ESBFormat(5, 2)
    # 2.25 lies between 2 (even multiple of 0.5) and 2.5 -> 2; 2.75 between 2.5 and 3 -> 3.
    assert fmt.project(np.array([2.25, 2.75, 0.125, 0.375, 6.5, 7.5])).tolist() == [2, 3, 0, 0.5, 6, 7]


# ---- errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "error", "message"), [
    ((0, 0), ValueError, r"bits must be in 1\.\.32, got 0"),
    ((33, 30), ValueError, r"bits must be in 1\.\.32, got 33"),
    ((4, -1), ValueError, r"k must be >= 0, got -1"),
    ((4, 5), ValueError, r"k must be in 0\.\.3 for a signed 4-bit format"),
    ((8, 1), ValueError, r"exponent bits e = bits - k - sign = 6 must be in 0\.\.4.*k must be in 3\.\.7, got 1"),
    ((1, 0), ValueError, r"bits=1 leaves no magnitude bits"),
    ((4.0, 1), TypeError, r"bits must be an int, got float"),
    ((4, True), TypeError, r"k must be an int, got bool"),
    ((4, 1, 1), TypeError, r"signed must be a bool"),
])
def test_format_validation_messages(args, error, message):
    with pytest.raises(error, match=message):
        ESBFormat(*args)


@pytest.mark.parametrize(("alpha", "message"), [
    (float("nan"), "alpha must be finite"), (float("inf"), "alpha must be finite"),
    (0.0, "alpha must be > 0"), (-1.0, "alpha must be > 0"), ([], "alpha must not be empty"),
])
def test_bad_alpha(alpha, message):
    with pytest.raises(ValueError, match=message):
        quantize(np.ones(3), ESBFormat(4, 1), alpha)


def test_bad_inputs():
    fmt = ESBFormat(4, 1)
    with pytest.raises(ValueError, match=r"x must be finite, found nan at index \(1,\)"):
        quantize(np.array([1.0, np.nan]), fmt, 1.0)
    with pytest.raises(ValueError, match="x must be finite"):
        fmt.encode(np.array([np.inf]), 1.0)
    with pytest.raises(TypeError, match="x must be a real numeric array, got dtype <U1"):
        quantize(np.array(["a"]), fmt, 1.0)
    with pytest.raises(TypeError, match="x must be a real numeric array, got dtype bool"):
        quantize(np.array([True]), fmt, 1.0)
    with pytest.raises(TypeError, match="fmt must be an ESBFormat"):
        quantize(np.ones(2), (4, 1), 1.0)


def test_bad_codes():
    fmt = ESBFormat(4, 1)
    with pytest.raises(TypeError, match="codes must be an integer array, got dtype float64"):
        fmt.decode(np.array([1.0]))
    with pytest.raises(TypeError, match="codes must be an integer array, got dtype bool"):
        fmt.level(np.array([True]))
    with pytest.raises(ValueError, match=r"codes must be in 0\.\.15 for ESB\(4,1\), got 16"):
        fmt.decode(np.array([3, 16]))
    with pytest.raises(ValueError, match=r"codes must be in 0\.\.15 for ESB\(4,1\), got -1"):
        fmt.level(np.array([-1]))
    with pytest.raises(ValueError, match=r"5 is not an integer level of ESB\(4,1\)"):
        fmt.code_of_level(np.array([4, 5]))
    with pytest.raises(ValueError, match=r"-1 is not an integer level of ESB\(4,1,unsigned\)"):
        ESBFormat(4, 1, signed=False).code_of_level(np.array([-1]))


def test_large_k_is_exact():
    fmt = ESBFormat(32, 27)  # e = 4: the widest levels the format allows
    assert fmt.max_level == (2**28 - 1) << 14
    codes = np.array([0, 1, 2**31 - 1, 2**32 - 1], dtype=np.uint32)
    levels = fmt.level(codes)
    assert np.array_equal(fmt.code_of_level(levels), np.where(levels == 0, 0, codes))


def test_format_is_hashable_and_frozen():
    fmt = ESBFormat(4, 1)
    assert {fmt: 1}[ESBFormat(4, 1)] == 1
    with pytest.raises(AttributeError):
        fmt.bits = 5


def test_float32_input_with_levels_wider_than_float32():
    fmt = ESBFormat(26, 25)  # 26 significant bits: not exact in float32
    values = np.array([100.0, -3.0, 0.3], dtype=np.float32)
    quantized = quantize(values, fmt, 1.0)
    assert quantized.dtype == np.float64 and quantized.max() <= fmt.max_value
    assert np.array_equal(fmt.decode(fmt.encode(values, 1.0), 1.0), quantized)
