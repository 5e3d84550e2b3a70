"""Layer files (``LAYER.npz``) for ``esb-hw sim``: what they hold, and how to write one from a float layer.

A layer file is a ``numpy.savez`` archive with these entries (every integer may be any NumPy integer dtype; the
reader converts to int64):

============  =====================  ========================================================================
key           shape                  meaning
============  =====================  ========================================================================
``kind``      scalar string          ``"conv2d"`` or ``"linear"``
``x``         CHW, NCHW (N = 1), NC  input activation **codes** of the unsigned ``ESB(a_bits, a_k)`` format,
                                     ``0 .. 2**a_bits - 1`` (``a_k = a_bits``: plain unsigned integers); only
                                     the first layer of a ``--program`` needs it
``w_codes``   OIHW or OI             weight **codes** of the signed ``ESB(w_bits, w_k)`` format (sign in the
                                     top bit), ``0 .. 2**w_bits - 1``; output channels first
``bias``      (O,)                   int, in **accumulator units** (one unit = one input level times one
                                     weight level), within the config's accumulator width
``M``         (O,)                   int multiplier, ``0 .. 65535``
``S``         (O,)                   int shift, ``1 .. 48``
``stride``    scalar                 1 or 2
``padding``   scalar                 0 .. 7 (zeros on every side)
``relu``      scalar                 0 or 1 (the unsigned output clamps negatives anyway)
``pool``      scalar                 0 or 1: a 2x2 max-pool after requantization (conv2d only)
``w_bits``,   scalars                the weight format ``ESB(w_bits, w_k)``
``w_k``
``a_bits``,   scalars                the activation format ``ESB(a_bits, a_k)``, input and output
``a_k``
============  =====================  ========================================================================

Each output channel ``o`` computes ``acc = sum(level(x) * level(w))`` exactly, then
``y = clamp(((acc + bias[o]) * M[o] + 2**(S[o] - 1)) >> S[o], 0, max level)``, encoded in the activation format
(docs/arithmetic.md). From float scales: a weight code is worth ``w_scale[o] * level`` (``w_scale = alpha /
2**w_k``), an input code ``x_scale * level`` and an output code ``y_scale * level``; then
``M[o] / 2**S[o] ~= x_scale * w_scale[o] / y_scale`` (``S`` the largest shift in 1..48 that keeps ``M`` below
``2**16``) and ``bias[o] = round(real_bias[o] / (x_scale * w_scale[o]))``. :func:`layer_from_float` does all of
this; :func:`save_layer` writes the file. ``examples/write_layer.py`` is a complete example.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError
from .npzfile import write_npz
from .quant import ESBFormat, fit_alpha, golden

__all__ = ["layer_from_float", "save_layer"]


def save_layer(path: str | Path, *, kind: str, w_codes, bias, M, S, w_format: ESBFormat, a_format: ESBFormat,
               x=None, stride: int = 1, padding: int = 0, relu: bool = True, pool: bool = False,
               force: bool = False) -> Path:
    """Write a layer file (the keys of the module docstring) deterministically; refuse to replace an existing file
    unless ``force``. Checks the shapes and code ranges first (:class:`InputError` naming the key)."""
    path = Path(path)
    if path.exists() and not force:
        raise InputError(f"{path} exists; not replaced (pass force, --force in the examples, to replace it)")
    if kind not in ("conv2d", "linear"):
        raise InputError(f"kind must be 'conv2d' or 'linear', got {kind!r}")
    w_codes = np.asarray(w_codes)
    if w_codes.ndim != (4 if kind == "conv2d" else 2):
        raise InputError(f"w_codes of a {kind} must be {'OIHW' if kind == 'conv2d' else 'OI'}, got shape "
                         f"{w_codes.shape}")
    arrays = {"kind": np.array(kind), "w_codes": _codes(w_codes, w_format, "w_codes")}
    for key, value in (("bias", bias), ("M", M), ("S", S)):
        value = np.asarray(value)
        if value.shape != (w_codes.shape[0],) or value.dtype.kind not in "iu":
            raise InputError(f"{key} must be {w_codes.shape[0]} integers (one per output channel), got "
                             f"{value.dtype} of shape {value.shape}")
        arrays[key] = value.astype(np.int64)
    golden.RequantParams(arrays["bias"], arrays["M"], arrays["S"])  # M and S ranges
    if not 1 <= stride <= 2 or not 0 <= padding <= 7 or (pool and kind != "conv2d"):
        raise InputError(f"stride must be 1 or 2, padding 0..7 and pool only on a conv2d; got stride {stride}, "
                         f"padding {padding}, pool {pool} on a {kind}")
    if x is not None:
        arrays["x"] = _codes(np.asarray(x), a_format, "x")
        channels = arrays["x"].shape[-3] if kind == "conv2d" and arrays["x"].ndim >= 3 else arrays["x"].shape[-1]
        if kind == "conv2d" and arrays["x"].ndim not in (3, 4) or kind == "linear" and arrays["x"].ndim != 2:
            raise InputError(f"x of a {kind} must be {'CHW or NCHW' if kind == 'conv2d' else 'NC'}, got shape "
                             f"{arrays['x'].shape}")
        if channels != w_codes.shape[1]:
            raise InputError(f"x has {channels} input channels, w_codes expects {w_codes.shape[1]}")
    arrays.update({key: np.int64(value) for key, value in (
        ("stride", stride), ("padding", padding), ("relu", relu), ("pool", pool), ("w_bits", w_format.bits),
        ("w_k", w_format.k), ("a_bits", a_format.bits), ("a_k", a_format.k))})
    write_npz(path, arrays)
    return path


def _codes(values: np.ndarray, fmt: ESBFormat, key: str) -> np.ndarray:
    if values.dtype.kind not in "iu" or (values.size and (values.min() < 0 or values.max() >= fmt.code_count)):
        raise InputError(f"{key} must be integer codes 0..{fmt.code_count - 1} of {fmt}")
    return values.astype(np.int64)


def layer_from_float(weight, bias, *, x_scale: float, y_scale: float, w_format: ESBFormat,
                     per_channel: bool = True) -> dict:
    """Quantize a float layer's weights (DDA, one ``alpha`` per output channel by default) and fold the scales:
    returns ``w_codes``, ``bias``, ``M``, ``S`` and ``w_scale`` (the real value of one weight level per output
    channel), ready for :func:`save_layer`. ``weight`` is OIHW or OI, ``bias`` real per output channel (or
    ``None``)."""
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim not in (2, 4):
        raise InputError(f"weight must be OIHW or OI, got shape {weight.shape}")
    alpha = fit_alpha(weight, w_format, per_channel_axis=0 if per_channel else None)
    w_scale = np.broadcast_to(np.asarray(alpha, dtype=np.float64).reshape(-1), (weight.shape[0],)) / 2**w_format.k
    params = golden.fold_scales(weight_scale=w_scale, input_scale=x_scale, output_scale=y_scale, bias=bias)
    return {"w_codes": w_format.encode(weight, alpha).astype(np.int64), "bias": params.bias, "M": params.multiplier,
            "S": params.shift, "w_scale": w_scale}
