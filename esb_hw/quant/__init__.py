"""ESB quantization (NumPy only): the number format, DDA, baselines and the integer golden model.

Public API (docs/number-format.md):

- :class:`ESBFormat` with ``levels()``, ``encode(x, alpha)``, ``decode(codes, alpha)`` and the integer view
  (``level``, ``significand_shift``, ``max_level``);
- :func:`quantize` for the projection onto the level set;
- :func:`lambda_for` and :func:`fit_alpha` for DDA;
- :class:`ActivationQuantizer` for unsigned activations with a power-of-two scale;
- :mod:`esb_hw.quant.golden` for the integer arithmetic (docs/arithmetic.md).
"""

from .activation import ActivationQuantizer
from .dda import expected_mse, fit_alpha, lambda_for, optimal_scale
from .format import ESBFormat, SignificandShift


def quantize(x, fmt: ESBFormat, alpha):
    """Project ``x`` onto the levels of ``fmt`` scaled by ``alpha`` (docs/number-format.md).

    Vectorized, ties to even on the grid of each value's binade, clipped to ``±alpha * Lmax / 2**k``.
    ``alpha`` is a positive finite scalar or an array broadcastable to ``x`` (per-channel scales).
    Returns float32 for float32 ``x`` and float64 otherwise.
    """
    if not isinstance(fmt, ESBFormat):
        raise TypeError(f"fmt must be an ESBFormat, got {type(fmt).__name__}")
    return fmt.quantize(x, alpha)


__all__ = [
    "ActivationQuantizer",
    "ESBFormat",
    "SignificandShift",
    "expected_mse",
    "fit_alpha",
    "lambda_for",
    "optimal_scale",
    "quantize",
]
