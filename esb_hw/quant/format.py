"""The ESB number format (docs/number-format.md) and its integer view for hardware (docs/arithmetic.md).

A b-bit ESB code is ``[sign][E: e bits][m: k bits]``. Its integer level is ``m`` when ``E == 0`` and
``(2**k + m) << (E - 1)`` otherwise; its real value is ``(-1)**sign * alpha * level / 2**k``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

__all__ = ["ESBFormat", "SignificandShift", "MAX_BITS", "MAX_EXPONENT_BITS", "check_alpha"]

#: Largest exponent field docs/number-format.md allows.
MAX_EXPONENT_BITS = 4
#: Largest code width. Keeps every level exact in int64 and float64: Lmax < 2**(k + 1 + 14) <= 2**46.
MAX_BITS = 32


class SignificandShift(NamedTuple):
    """The shift-add view of codes: ``|level| == significand << shift``, negated when ``negative``."""

    negative: np.ndarray
    significand: np.ndarray
    shift: np.ndarray


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def check_alpha(alpha, *, name: str = "alpha") -> np.ndarray:
    """Return ``alpha`` as a float64 array after checking that every entry is finite and positive."""
    try:
        array = np.asarray(alpha, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a positive finite number or array of them, got {alpha!r}") from None
    if array.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {alpha!r}")
    if not np.all(array > 0):
        raise ValueError(f"{name} must be > 0, got {alpha!r}")
    return array


class _FloatLayout(NamedTuple):
    integer: type
    mantissa_bits: int
    bias: int


_FLOAT_LAYOUT = {
    np.dtype(np.float32): _FloatLayout(np.int32, 23, 127),
    np.dtype(np.float64): _FloatLayout(np.int64, 52, 1023),
}


def _check_real(x, name: str = "x") -> np.ndarray:
    array = np.asarray(x)
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    if array.dtype not in _FLOAT_LAYOUT:  # float32 stays float32; everything else computes in float64
        array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{name} must be finite, found {array[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    return array


@dataclass(frozen=True)
class ESBFormat:
    """An Elastic Significant Bit number format.

    Parameters
    ----------
    bits : int
        Total code width, ``1 <= bits <= 32``.
    k : int
        Significand bits kept after the implicit leading one, ``k >= 0``.
    signed : bool
        Whether the code has a sign bit (weights are signed, activations unsigned).

    The exponent width ``e = bits - k - signed`` must lie in ``0..4``. ``e = 0`` gives plain integers,
    ``e = 1`` uniform levels and ``k = 0`` powers of two.
    """

    bits: int
    k: int
    signed: bool = True

    def __post_init__(self):
        bits = _check_int("bits", self.bits)
        k = _check_int("k", self.k)
        if not isinstance(self.signed, bool | np.bool_):
            raise TypeError(f"signed must be a bool, got {type(self.signed).__name__} {self.signed!r}")
        if not 1 <= bits <= MAX_BITS:
            raise ValueError(f"bits must be in 1..{MAX_BITS}, got {bits}")
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        sign_bits = int(bool(self.signed))
        e = bits - k - sign_bits
        if e < 0:
            raise ValueError(
                f"k must be in 0..{bits - sign_bits} for a {'signed' if self.signed else 'unsigned'} "
                f"{bits}-bit format (bits - k - sign = exponent bits >= 0), got {k}"
            )
        if e > MAX_EXPONENT_BITS:
            raise ValueError(
                f"exponent bits e = bits - k - sign = {e} must be in 0..{MAX_EXPONENT_BITS}; "
                f"with bits={bits}, k must be in {max(0, bits - sign_bits - MAX_EXPONENT_BITS)}.."
                f"{bits - sign_bits}, got {k}"
            )
        if e + k == 0:
            raise ValueError(f"bits={bits} leaves no magnitude bits: the format could only represent zero")
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "signed", bool(self.signed))

    def __str__(self) -> str:
        return f"ESB({self.bits},{self.k}{'' if self.signed else ',unsigned'})"

    # ---- derived widths -------------------------------------------------------------------------
    @property
    def sign_bits(self) -> int:
        return int(self.signed)

    @property
    def exponent_bits(self) -> int:
        """``e``: the width of the exponent field."""
        return self.bits - self.k - self.sign_bits

    @property
    def magnitude_bits(self) -> int:
        return self.exponent_bits + self.k

    @property
    def max_level(self) -> int:
        """``Lmax``: the largest integer level."""
        if self.exponent_bits == 0:
            return (1 << self.k) - 1
        return ((1 << (self.k + 1)) - 1) << ((1 << self.exponent_bits) - 2)

    @property
    def max_value(self) -> float:
        """The largest real level for alpha = 1: ``Lmax / 2**k``."""
        return self.max_level / (1 << self.k)

    @property
    def max_significand(self) -> int:
        return (1 << (self.k + 1)) - 1 if self.exponent_bits >= 1 else (1 << self.k) - 1

    @property
    def significand_bits(self) -> int:
        """Width of the significand including the implicit one: ``k + 1``, or ``k`` when ``e = 0``."""
        return self.k + 1 if self.exponent_bits >= 1 else self.k

    @property
    def max_shift(self) -> int:
        return max((1 << self.exponent_bits) - 2, 0)

    @property
    def shift_bits(self) -> int:
        """Width of the shift amount ``max(E - 1, 0)``."""
        return self.max_shift.bit_length()

    @property
    def level_bits(self) -> int:
        """Width of an unsigned magnitude level."""
        return self.max_level.bit_length()

    @property
    def code_count(self) -> int:
        return 1 << self.bits

    @property
    def code_dtype(self) -> np.dtype:
        for dtype in (np.uint8, np.uint16, np.uint32):
            if self.bits <= np.iinfo(dtype).bits:
                return np.dtype(dtype)
        raise AssertionError("unreachable: bits <= MAX_BITS")

    # ---- level sets -----------------------------------------------------------------------------
    @cached_property
    def _magnitude_levels(self) -> np.ndarray:
        codes = np.arange(1 << self.magnitude_bits, dtype=np.int64)
        return self._magnitude_level_of(codes)

    def integer_levels(self) -> np.ndarray:
        """All distinct integer levels, sorted ascending (int64; negative ones too when signed)."""
        magnitudes = self._magnitude_levels
        if self.signed:
            return np.concatenate([-magnitudes[:0:-1], magnitudes])
        return magnitudes.copy()

    def levels(self) -> np.ndarray:
        """All distinct real levels for alpha = 1, sorted ascending (float64)."""
        return self.integer_levels() / float(1 << self.k)

    # ---- code <-> integer level -----------------------------------------------------------------
    def _magnitude_level_of(self, magnitude_codes: np.ndarray) -> np.ndarray:
        exponent = magnitude_codes >> self.k
        mantissa = magnitude_codes & ((1 << self.k) - 1)
        normal = exponent != 0
        significand = np.where(normal, mantissa | (1 << self.k), mantissa)
        return significand << np.maximum(exponent - 1, 0)

    def _magnitude_code(self, magnitude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Magnitude codes of non-negative integer levels, and whether each input was a level at all."""
        in_range = magnitude <= self.max_level
        if self.exponent_bits == 0:
            return magnitude, in_range
        normal = magnitude >= (1 << self.k)
        _, width = np.frexp(magnitude.astype(np.float64))  # exact: levels stay below 2**53
        shift = np.where(normal, width - 1 - self.k, 0)
        significand = magnitude >> shift
        exact = in_range & ((significand << shift) == magnitude)
        code = np.where(normal, ((shift + 1) << self.k) | (significand - (1 << self.k)), magnitude)
        return code, exact

    def check_codes(self, codes, name: str = "codes") -> np.ndarray:
        """Return ``codes`` as int64 after checking the dtype is integer and every code fits in ``bits``."""
        array = np.asarray(codes)
        if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"{name} must be an integer array, got dtype {array.dtype}")
        if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} must be in 0..{self.code_count - 1} for {self}, got {array.max()}")
        array = array.astype(np.int64)
        if array.size and (array.min() < 0 or array.max() >= self.code_count):
            bad = array[(array < 0) | (array >= self.code_count)].flat[0]
            raise ValueError(f"{name} must be in 0..{self.code_count - 1} for {self}, got {bad}")
        return array

    def _sign_and_magnitude(self, codes) -> tuple[np.ndarray, np.ndarray]:
        array = self.check_codes(codes)
        magnitude = array & ((1 << self.magnitude_bits) - 1)
        negative = (array >> self.magnitude_bits).astype(bool) if self.signed else np.zeros(array.shape, bool)
        return negative, magnitude

    def level(self, codes) -> np.ndarray:
        """Signed integer level of each code (int64). Negative zero gives 0."""
        negative, magnitude = self._sign_and_magnitude(codes)
        magnitude_level = self._magnitude_level_of(magnitude)
        return np.where(negative, -magnitude_level, magnitude_level)

    def significand_shift(self, codes) -> SignificandShift:
        """Split codes into ``(negative, significand, shift)`` with ``|level| = significand << shift``.

        ``significand = (E != 0) << k | m`` and ``shift = max(E - 1, 0)`` (docs/arithmetic.md).
        """
        negative, magnitude = self._sign_and_magnitude(codes)
        exponent = magnitude >> self.k
        mantissa = magnitude & ((1 << self.k) - 1)
        significand = np.where(exponent != 0, mantissa | (1 << self.k), mantissa)
        return SignificandShift(negative, significand, np.maximum(exponent - 1, 0))

    def code_of_level(self, levels) -> np.ndarray:
        """Canonical code of exact integer levels. Zero maps to the all-zeros code.

        Raises ``ValueError`` if a value is not a level of this format.
        """
        array = np.asarray(levels)
        if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"levels must be an integer array, got dtype {array.dtype}")
        array = array.astype(np.int64)
        magnitude = np.abs(array)
        code, exact = self._magnitude_code(magnitude)
        if not self.signed:
            exact &= array >= 0
        if not np.all(exact):
            bad = array[~exact].flat[0]
            raise ValueError(f"{bad} is not an integer level of {self}")
        if self.signed:
            code = np.where(array < 0, code | (1 << self.magnitude_bits), code)
        return code.astype(self.code_dtype)

    # ---- real <-> code --------------------------------------------------------------------------
    def _project_checked(self, values: np.ndarray, alpha_array: np.ndarray) -> np.ndarray:
        if values.dtype == np.float32 and self.max_level.bit_length() > 24:
            # Levels wider than float32's 24-bit significand are not exact in float32.
            values, alpha_array = values.astype(np.float64), alpha_array.astype(np.float64)
        z = values / alpha_array
        magnitude = np.abs(z)
        if self.exponent_bits == 0:
            rounded = np.rint(magnitude * (1 << self.k)) / (1 << self.k)
        else:
            # The binade floor(log2|z|) is the biased exponent field of the float; powers of two are built
            # from exponent fields directly, so the scaling is exact and needs no log2 or ldexp.
            layout = _FLOAT_LAYOUT[values.dtype]
            biased = magnitude.view(layout.integer) >> layout.mantissa_bits
            np.clip(biased, layout.bias, layout.bias + self.max_shift, out=biased)
            up = ((2 * layout.bias + self.k) - biased) << layout.mantissa_bits  # 2**(k - binade)
            down = (biased - self.k) << layout.mantissa_bits  # 2**(binade - k)
            rounded = np.rint(magnitude * up.view(values.dtype))
            rounded *= down.view(values.dtype)
        np.minimum(rounded, self.max_value, out=rounded)
        if not self.signed:
            rounded[np.signbit(z)] = 0.0
        else:
            np.copysign(rounded, z, out=rounded)
        rounded += 0.0  # turns -0.0 into +0.0
        return rounded

    def project(self, x, alpha=1.0) -> np.ndarray:
        """Real levels ``level / 2**k`` nearest to ``x / alpha``, ties to even on the grid (docs/number-format.md).

        Returns float32 for float32 ``x`` and float64 otherwise.
        """
        values = _check_real(x)
        return self._project_checked(values, check_alpha(alpha).astype(values.dtype))

    def encode(self, x, alpha=1.0) -> np.ndarray:
        """Codes of the levels nearest to ``x / alpha`` (ties to even). Zero gets the all-zeros code."""
        projected = self.project(x, alpha)
        integer_level = np.ldexp(projected.astype(np.float64), self.k).astype(np.int64)
        return self.code_of_level(integer_level)

    def decode(self, codes, alpha=1.0, dtype=np.float64) -> np.ndarray:
        """Real values ``alpha * level / 2**k`` of codes, as ``dtype``. Negative zero decodes to +0."""
        alpha_array = check_alpha(alpha).astype(dtype)
        magnitude = np.ldexp(self.level(codes).astype(dtype), -self.k)
        return (magnitude * alpha_array).astype(dtype, copy=False)

    def quantize(self, x, alpha=1.0) -> np.ndarray:
        """``alpha`` times the projection of ``x / alpha``: the fake-quantized tensor (float32 stays float32 when
        the format's levels are exact in float32, up to 24 significant bits; float64 otherwise)."""
        values = _check_real(x)
        projected = self._project_checked(values, check_alpha(alpha).astype(values.dtype))
        return projected * check_alpha(alpha).astype(projected.dtype)
