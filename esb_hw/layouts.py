"""Every bit layout shared by the hardware, the compiler and the testbenches, and how to pack them.

The hardware declares its stream payloads with these layouts; the compiler and the tests build and read
payloads only through :func:`pack` and :func:`unpack`, never with bit offsets of their own. A layout's first
field (or element 0) sits in the low bits, as in ``amaranth.lib.data``.

Layouts
-------
:func:`array_input_layout`
    One beat into :class:`~esb_hw.hw.core.array.PEArray`: ``activations[c]`` (``cols`` unsigned codes),
    ``weights[r][c]`` (``rows x cols`` weights, ``weight.bits`` each, encoded as :func:`weight_encoding` says:
    the ESB code, or for uniform formats the level in two's complement) and ``last`` (closes a tile).
:func:`array_output_layout`
    One beat out of it: ``rows`` exact sums, ``signed(accumulator_bits)`` each, row 0 in the low bits.
:func:`requant_params_layout`, :func:`requant_input_layout`
    One output channel's ``(bias, M, S)``, and an accumulator with them: the input of
    :class:`~esb_hw.hw.core.requant.Requantizer`.
:class:`SelfTestLayer`
    The built-in test layer the compiler hands to the self-checking top (:mod:`esb_hw.hw.debug.selftest`):
    packed input beats and the packed output beat expected for each tile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from amaranth import Shape, signed
from amaranth.lib import data

from .config import AcceleratorConfig
from .errors import ParameterError

__all__ = ["GEOMETRY_ADDRESS_BITS", "GEOMETRY_COUNT_BITS", "GEOMETRY_SIZE_BITS", "REQUANT_MULTIPLIER_BITS",
           "REQUANT_SHIFT_RANGE", "SelfTestLayer", "array_input_layout", "array_output_layout", "geometry_layout",
           "pack", "recodable", "recoded_term_bits", "requant_input_layout", "requant_params_layout",
           "stationary_input_layout", "unpack", "weight_encoding", "weight_fields", "weight_row_layout"]


def array_input_layout(config: AcceleratorConfig) -> data.StructLayout:
    """One input beat of the PE array: ``activations``, ``weights`` and ``last``, in that order from bit 0."""
    return data.StructLayout({
        "activations": data.ArrayLayout(config.activation_format.bits, config.cols),
        "weights": data.ArrayLayout(data.ArrayLayout(config.weight_format.bits, config.cols), config.rows),
        "last": 1,
    })


#: Weight encodings of the array's input beat.
WEIGHT_ENCODINGS = ("code", "twos")


def recoded_term_bits(activation, weight) -> int:
    """Signed bits the widest radix-4 recoded term needs (:mod:`esb_hw.hw.arith.recoded`): for 3 and 4 bits the
    product itself; for 5 bits ``top_folded`` down to ``-16a - 1``, for 6 bits ``-32a - 1`` (``folded`` is at
    least ``-8a - 1``, smaller)."""
    multiple = {5: 16, 6: 32}.get(weight.bits, weight.max_level)
    return (activation.max_level * multiple).bit_length() + 1


def recodable(activation, weight) -> bool:
    """Whether radix-4 recoded products take these formats (:mod:`esb_hw.hw.arith.recoded`): a uniform weight
    (``e <= 1``) of 3 to 6 bits, whose recoded terms fit the product width (always but for tiny activations)."""
    if not (weight.exponent_bits <= 1 and 3 <= weight.bits <= 6):
        return False
    return recoded_term_bits(activation, weight) <= (activation.max_level * weight.max_level).bit_length() + 1


def weight_encoding(config: AcceleratorConfig) -> str:
    """How a beat carries each weight: ``"code"``, the ESB code ``[sign][E][m]``; or ``"twos"``, the signed level
    in two's complement, for the radix-4 recoded products of uniform formats (``e <= 1``, 3 to 6 bits, PE
    variant ``esb``; :mod:`esb_hw.hw.arith.recoded`). Both fit in ``weight.bits``: a
    uniform level's magnitude is at most ``2**(bits - 1) - 1``."""
    if config.pe_variant == "esb" and recodable(config.activation_format, config.weight_format):
        return "twos"
    return "code"


def weight_fields(config: AcceleratorConfig, codes) -> np.ndarray:
    """The beat's weight field values (int64) for ESB weight ``codes``, per :func:`weight_encoding`."""
    codes = np.asarray(codes)
    if weight_encoding(config) == "code":
        return codes.astype(np.int64)
    levels = config.weight_format.level(codes)
    return levels & ((1 << config.weight_format.bits) - 1)


def weight_row_layout(config: AcceleratorConfig) -> data.StructLayout:
    """One weight load into :class:`~esb_hw.hw.core.stationary.StationaryArray`: the ``cols`` weights of array row
    ``row`` (encoded as :func:`weight_encoding` says)."""
    return data.StructLayout({"row": range(config.rows), "weights": data.ArrayLayout(config.weight_format.bits,
                                                                                     config.cols)})


def stationary_input_layout(config: AcceleratorConfig, entries: int) -> data.StructLayout:
    """One beat into :class:`~esb_hw.hw.core.stationary.StationaryArray`: ``cols`` activation codes, the running
    sum ``entry`` they add to, ``swap`` (this beat and the next use the weights loaded since the last swap),
    ``first`` (the entry restarts) and ``last`` (the entry's sums leave on the output)."""
    return data.StructLayout({"activations": data.ArrayLayout(config.activation_format.bits, config.cols),
                              "entry": range(entries), "swap": 1, "first": 1, "last": 1})


#: Bits of the sequencer's sizes and counts (up to 4095 pixels a side, 255 channel groups or row blocks).
GEOMETRY_SIZE_BITS = 12
GEOMETRY_COUNT_BITS = 8
#: Bits of a signed address delta or activation-word address (16 Mi words).
GEOMETRY_ADDRESS_BITS = 25


def geometry_layout() -> data.StructLayout:
    """What :class:`~esb_hw.hw.core.sequencer.Sequencer` needs of a layer (computed by
    :func:`esb_hw.compiler.lowering.geometry`): the output-pixel walk and the address arithmetic.

    The walk has four nested counters, outermost first, with ``limits`` ``(y, x, dy, dx)``: raster order is
    ``(Ho, Wo, 1, 1)``; with pooling ``(Ho // 2, Wo // 2, 2, 2)``, so that each 2x2 window's four pixels are
    consecutive. When counter ``i`` steps (and the inner ones wrap), the pixel's word offset ``P`` and its input
    coordinates ``Y = stride * oy - padding`` and ``X = stride * ox - padding`` change by ``p_steps[i]``,
    ``y_steps[i]`` and ``x_steps[i]``; they start at ``p_origin``, ``-padding``, ``-padding``. A chunk ``(ky, kx, g)``
    adds ``K`` to ``P``: ``K`` changes by ``group_step`` (``H * W``) when ``g`` steps, by ``kx_step`` when ``kx`` steps
    and ``g`` wraps, by ``ky_step`` when ``ky`` steps. The beat reads word ``P + K``, or zeros when
    ``Y + ky`` or ``X + kx`` is outside the ``in_height x in_width`` input. Pixels go in blocks of ``block``
    (the last one shorter), ``pixel_blocks`` of them per row block. ``pool`` takes the maximum of each four
    consecutive codes per channel; ``output_pixels`` is the number of output words per row block (pixels, or
    pooling windows), which is also the distance between two row blocks' outputs in the output buffer.
    """
    size, count, address = GEOMETRY_SIZE_BITS, GEOMETRY_COUNT_BITS, GEOMETRY_ADDRESS_BITS
    return data.StructLayout({
        "limits": data.ArrayLayout(size, 4),
        "p_origin": signed(address),
        "p_steps": data.ArrayLayout(signed(address), 4),
        "y_steps": data.ArrayLayout(signed(size + 2), 4),
        "x_steps": data.ArrayLayout(signed(size + 2), 4),
        "padding": 3,
        "in_height": size, "in_width": size,
        "kernel_h": 3, "kernel_w": 3, "groups": count,
        "group_step": signed(address), "kx_step": signed(address), "ky_step": signed(address),
        "row_blocks": count,
        "pixel_blocks": 2 * size,
        "block": 7,
        "pool": 1,
        "output_pixels": 2 * size,
    })


#: DESIGN.md §2: ``M`` has at most 16 bits and ``1 <= S <= 48`` (the golden model's ``MULTIPLIER_BITS`` and
#: ``SHIFT_RANGE``; ``tests/test_layouts.py`` checks that they agree).
REQUANT_MULTIPLIER_BITS = 16
REQUANT_SHIFT_RANGE = (1, 48)


def requant_params_layout(config: AcceleratorConfig) -> data.StructLayout:
    """One output channel's requantization constants (DESIGN.md §2): ``bias`` in accumulator units (as wide as
    the accumulator: a bias outside its range is rejected by the compiler), ``multiplier`` ``M`` and ``shift``
    ``S``."""
    return data.StructLayout({
        "bias": signed(config.accumulator_bits),
        "multiplier": REQUANT_MULTIPLIER_BITS,
        "shift": REQUANT_SHIFT_RANGE[1].bit_length(),
    })


def requant_input_layout(config: AcceleratorConfig) -> data.StructLayout:
    """One value into a :class:`~esb_hw.hw.core.requant.Requantizer`: an accumulator and its channel's
    :func:`requant_params_layout`."""
    return data.StructLayout({"accumulator": signed(config.accumulator_bits),
                              "params": requant_params_layout(config)})


def array_output_layout(config: AcceleratorConfig) -> data.ArrayLayout:
    """One output beat of the PE array: the ``rows`` sums of a tile, row 0 in the low bits."""
    return data.ArrayLayout(signed(config.accumulator_bits), config.rows)


@dataclass(frozen=True)
class SelfTestLayer:
    """A layer baked into the self-test ROMs.

    Attributes
    ----------
    beats : tuple of int
        Input beats, packed as :func:`array_input_layout`.
    expected : tuple of int
        One output beat per tile, packed as :func:`array_output_layout`.
    """

    beats: tuple[int, ...]
    expected: tuple[int, ...]

    def __post_init__(self):
        for name in ("beats", "expected"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values:
                raise ParameterError(f"{name} must be a non-empty tuple of ints")
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
                raise ParameterError(f"{name} must hold ints >= 0 (packed payloads)")

    @property
    def tiles(self) -> int:
        return len(self.expected)


def pack(layout, value, *, where: str = "value") -> int:
    """The bits of ``value`` laid out as ``layout``, as a non-negative ``int``.

    Parameters
    ----------
    layout : amaranth.lib.data.Layout or shape-castable
        A struct layout takes a mapping with every field; an array layout a sequence of its length; a plain
        shape an ``int`` in its range (negative values only for signed shapes).
    value
        The value; missing and extra fields, wrong lengths and out-of-range numbers are errors.
    where : str
        Names the value in error messages; nested fields are appended (``beat.weights[2][5]``).

    Raises
    ------
    ParameterError
        Naming the first field that is wrong.
    """
    if isinstance(layout, data.Layout):
        if isinstance(layout, data.ArrayLayout):
            if not isinstance(value, Sequence) and not hasattr(value, "__len__"):
                raise ParameterError(f"{where} must be a sequence of {layout.length}, got {type(value).__name__}")
            if len(value) != layout.length:
                raise ParameterError(f"{where} must have {layout.length} elements, got {len(value)}")
            items = [(index, f"{where}[{index}]") for index in range(layout.length)]
        else:
            if not isinstance(value, Mapping):
                raise ParameterError(f"{where} must be a mapping of fields, got {type(value).__name__}")
            names = [name for name, _ in layout]
            extra = sorted(set(value) - set(names))
            if extra:
                raise ParameterError(f"{where} has unknown fields {', '.join(map(str, extra))}; "
                                     f"fields: {', '.join(names)}")
            missing = [name for name in names if name not in value]
            if missing:
                raise ParameterError(f"{where} lacks the fields {', '.join(missing)}")
            items = [(name, f"{where}.{name}") for name in names]
        bits = 0
        for key, label in items:
            field = layout[key]
            bits |= pack(field.shape, value[key], where=label) << field.offset
        return bits
    shape = Shape.cast(layout)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{where} must be an integer, got {value!r}") from None
    if number != value:
        raise ParameterError(f"{where} must be an integer, got {value!r}")
    low = -(1 << (shape.width - 1)) if shape.signed else 0
    high = (1 << (shape.width - 1)) - 1 if shape.signed else (1 << shape.width) - 1
    if not low <= number <= high:
        raise ParameterError(f"{where} must be in {low}..{high} ({shape}), got {number}")
    return number & ((1 << shape.width) - 1)


def unpack(layout, bits: int):
    """The inverse of :func:`pack`: a dict for a struct, a list for an array, an ``int`` for a plain shape
    (sign-extended when the shape is signed). Bits above the layout's size are ignored."""
    bits = int(bits)
    if bits < 0:
        raise ParameterError(f"bits must be >= 0, got {bits}")
    if isinstance(layout, data.Layout):
        fields = {key: unpack(field.shape, bits >> field.offset) for key, field in layout}
        return list(fields.values()) if isinstance(layout, data.ArrayLayout) else fields
    shape = Shape.cast(layout)
    number = bits & ((1 << shape.width) - 1)
    if shape.signed and shape.width and number >> (shape.width - 1):
        number -= 1 << shape.width
    return number
