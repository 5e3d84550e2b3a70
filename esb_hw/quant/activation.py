"""Activation quantization: unsigned codes with a power-of-two scale (docs/arithmetic.md).

An activation's real value is ``La * 2**-f``: the integer level of an unsigned format times a power-of-two
scale, so requantization needs no divider. ``f`` (``frac_bits``) is calibrated from sample data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .format import ESBFormat, _check_int, _check_real

__all__ = ["ActivationQuantizer", "FRAC_BITS_RANGE"]

#: The frac_bits searched by calibration and accepted by the constructor.
FRAC_BITS_RANGE = (-32, 64)
_CALIBRATION_SAMPLES = 1 << 20


@dataclass(frozen=True)
class ActivationQuantizer:
    """Unsigned activations: ``value = level * 2**-frac_bits``.

    Parameters
    ----------
    fmt : ESBFormat
        An unsigned format; ``e = 0`` is a plain integer (``ESBFormat(8, 8, signed=False)`` is uint8).
    frac_bits : int
        ``f`` in the scale ``2**-f``; may be negative for large activations.
    """

    fmt: ESBFormat
    frac_bits: int

    def __post_init__(self):
        if not isinstance(self.fmt, ESBFormat):
            raise TypeError(f"fmt must be an ESBFormat, got {type(self.fmt).__name__}")
        if self.fmt.signed:
            raise ValueError(f"fmt must be unsigned (signed=False) for activations, got {self.fmt}")
        frac_bits = _check_int("frac_bits", self.frac_bits)
        low, high = FRAC_BITS_RANGE
        if not low <= frac_bits <= high:
            raise ValueError(f"frac_bits must be in {low}..{high}, got {frac_bits}")
        object.__setattr__(self, "frac_bits", frac_bits)

    @property
    def scale(self) -> float:
        """``s_a = 2**-f``: the real value of integer level 1."""
        return math.ldexp(1.0, -self.frac_bits)

    @property
    def alpha(self) -> float:
        """The equivalent ESB alpha (docs/number-format.md): ``2**(k - f)``."""
        return math.ldexp(1.0, self.fmt.k - self.frac_bits)

    def quantize(self, x) -> np.ndarray:
        return self.fmt.quantize(x, self.alpha)

    def encode(self, x) -> np.ndarray:
        return self.fmt.encode(x, self.alpha)

    def decode(self, codes) -> np.ndarray:
        return self.fmt.decode(codes, self.alpha)

    def level(self, codes) -> np.ndarray:
        """Integer levels ``La`` of codes (int64)."""
        return self.fmt.level(codes)

    @classmethod
    def calibrate(cls, samples, fmt: ESBFormat, method: str = "mse") -> ActivationQuantizer:
        """Choose ``frac_bits`` from sample activations.

        ``"mse"`` minimizes the squared error on the samples (ties go to the larger ``f``, finer steps);
        ``"max"`` takes the largest ``f`` whose top level still covers ``max(samples)``. At most 2**20
        samples are used, picked deterministically (evenly spaced) from larger inputs.
        """
        if method not in ("mse", "max"):
            raise ValueError(f"method must be 'mse' or 'max', got {method!r}")
        if not isinstance(fmt, ESBFormat):
            raise TypeError(f"fmt must be an ESBFormat, got {type(fmt).__name__}")
        if fmt.signed:
            raise ValueError(f"fmt must be unsigned (signed=False) for activations, got {fmt}")
        data = _check_real(samples, "samples").astype(np.float64).ravel()
        if data.size == 0:
            raise ValueError("samples must not be empty")
        if data.size > _CALIBRATION_SAMPLES:
            data = data[:: math.ceil(data.size / _CALIBRATION_SAMPLES)]
        data = np.maximum(data, 0.0)
        peak = float(data.max())
        low, high = FRAC_BITS_RANGE
        if peak == 0.0:
            return cls(fmt, 0)
        # Largest f whose top level max_level * 2**-f still covers the peak.
        covering = math.floor(math.log2(fmt.max_level / peak))
        covering = min(max(covering, low), high)
        if method == "max":
            return cls(fmt, covering)
        best_f, best_error = covering, math.inf
        for f in range(covering, min(covering + 24, high) + 1):
            error = float(np.mean((data - fmt.quantize(data, math.ldexp(1.0, fmt.k - f))) ** 2))
            if error <= best_error:
                best_f, best_error = f, error
        return cls(fmt, best_f)
