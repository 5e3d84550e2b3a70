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

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from amaranth import Shape, signed
from amaranth.lib import data

from .config import AcceleratorConfig
from .errors import ParameterError
from .regmap import ENGINE_ERRORS, engine_error

__all__ = ["DESCRIPTOR_BEATS", "DESCRIPTOR_BYTES", "DESCRIPTOR_CRC_OFFSET", "DESCRIPTOR_CRC_RESIDUE", "ENGINE_ERRORS",
           "GEOMETRY_ADDRESS_BITS", "GEOMETRY_COUNT_BITS", "GEOMETRY_SIZE_BITS", "MEMORY_BEAT_BITS",
           "MEMORY_BEAT_BYTES", "REQUANT_MULTIPLIER_BITS", "REQUANT_SHIFT_RANGE", "SelfTestLayer",
           "array_input_layout", "array_output_layout", "buffer_word_bits", "descriptor_image", "descriptor_intact",
           "descriptor_layout", "engine_error", "geometry_layout", "load_crc", "memory_read_layout",
           "memory_request_layout", "memory_word_bytes", "memory_write_layout", "pack", "pack_memory_words",
           "read_descriptor", "recodable", "recoded_term_bits", "requant_input_layout", "requant_params_layout",
           "run_beats", "stationary_input_layout", "transfer_layout", "unpack", "unpack_memory_words",
           "weight_encoding", "weight_fields", "weight_row_layout"]


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
    coordinates ``Y = stride * oy - pad_top`` and ``X = stride * ox - pad_left`` change by ``p_steps[i]``,
    ``y_steps[i]`` and ``x_steps[i]``; they start at ``p_origin``, ``-pad_top``, ``-pad_left`` (a band of a tiled
    layer has its own ``pad_top``: 0 but for the first band). A chunk ``(ky, kx, g)``
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
        "pad_top": 3, "pad_left": 3,
        "in_height": size, "in_width": size,
        "kernel_h": 4, "kernel_w": 4, "groups": count,
        "group_step": signed(address), "kx_step": signed(address), "ky_step": signed(address),
        "row_blocks": count,
        "pixel_blocks": 2 * size,
        "block": 7,
        "pool": 1,
        "output_pixels": 2 * size,
    })


#: The memory streams' beat (docs/memory.md): 128 bits, the width of the ZCU102's S_AXI_HP ports.
MEMORY_BEAT_BITS = 128
MEMORY_BEAT_BYTES = MEMORY_BEAT_BITS // 8
#: A memory request's beat address (4 GiB) and length in beats.
MEMORY_ADDRESS_BITS = 28
MEMORY_LENGTH_BITS = 20


def memory_request_layout() -> data.StructLayout:
    """A read or write request of the memory streams: ``beats`` beats from beat ``address`` (byte address / 16)."""
    return data.StructLayout({"address": MEMORY_ADDRESS_BITS, "beats": MEMORY_LENGTH_BITS})


def memory_read_layout() -> data.StructLayout:
    """One beat of read data, in request order; ``error`` marks a beat the memory could not read (its data is
    garbage; the engine stops with :data:`ENGINE_ERRORS` ``read``)."""
    return data.StructLayout({"data": MEMORY_BEAT_BITS, "error": 1})


def memory_write_layout() -> data.StructLayout:
    """One beat of write data: ``strobe`` has a bit per byte that the memory writes (others keep their value)."""
    return data.StructLayout({"data": MEMORY_BEAT_BITS, "strobe": MEMORY_BEAT_BYTES})


def memory_word_bytes(bits: int) -> int:
    """Bytes a buffer word of ``bits`` takes in memory: the next power of two; 16 or fewer share a beat, wider ones
    span whole beats. Word ``i`` of a region starts at byte ``i * memory_word_bytes(bits)``, little-endian."""
    if bits < 1:
        raise ParameterError(f"a word needs at least 1 bit, got {bits}")
    return 1 << max(0, (-(-bits // 8) - 1).bit_length())


def pack_memory_words(bits: int, words) -> bytes:
    """Words of ``bits`` (non-negative ints) as their memory bytes (:func:`memory_word_bytes`)."""
    size = memory_word_bytes(bits)
    blob = bytearray()
    for index, word in enumerate(words):
        if not 0 <= int(word) < 1 << bits:
            raise ParameterError(f"word {index} must be in 0..{(1 << bits) - 1}, got {word}")
        blob += int(word).to_bytes(size, "little")
    return bytes(blob)


def unpack_memory_words(bits: int, blob: bytes, count: int) -> list[int]:
    """The inverse of :func:`pack_memory_words`: ``count`` words from the start of ``blob`` (bits above ``bits``
    ignored)."""
    size = memory_word_bytes(bits)
    if len(blob) < count * size:
        raise ParameterError(f"{count} words of {size} bytes need {count * size} bytes, got {len(blob)}")
    mask = (1 << bits) - 1
    return [int.from_bytes(blob[index * size: (index + 1) * size], "little") & mask for index in range(count)]


def buffer_word_bits(config: AcceleratorConfig) -> dict[str, int]:
    """Bits of a word of each layer-engine buffer: ``activation`` and ``output`` (``cols`` codes), ``weight``
    (``cols`` weights) and ``param`` (:func:`requant_params_layout`)."""
    activation = config.activation_format.bits * config.cols
    return {"activation": activation, "weight": config.weight_format.bits * config.cols,
            "param": requant_params_layout(config).size, "output": config.activation_format.bits * config.rows}


#: Bits of a descriptor's word counts and segment counts.
TRANSFER_WORD_BITS = 20
TRANSFER_SEGMENT_BITS = 8


def transfer_layout() -> data.StructLayout:
    """A descriptor's memory region: ``segments`` runs of ``words`` buffer words, the first at byte ``address``
    and each ``stride`` bytes after the one before (addresses and strides are multiples of the word's
    :func:`memory_word_bytes`). The buffer holds the runs back to back from word 0."""
    return data.StructLayout({"address": 32, "stride": 32, "words": TRANSFER_WORD_BITS,
                              "segments": TRANSFER_SEGMENT_BITS})


#: A descriptor's place in memory: 8 beats (128 bytes), descriptors back to back from the program address.
DESCRIPTOR_BEATS = 8
DESCRIPTOR_BYTES = DESCRIPTOR_BEATS * MEMORY_BEAT_BYTES
#: The last 4 bytes of a descriptor's image hold the CRC-32 (zlib's: reflected, polynomial 0x04C11DB7, initial and
#: final value 0xFFFFFFFF) of the 124 bytes before them, little-endian. The CRC-32 of a whole intact image is then
#: this constant, whatever the descriptor, so the engine checks it on the beats as they arrive.
DESCRIPTOR_CRC_RESIDUE = 0x2144DF1C
DESCRIPTOR_CRC_OFFSET = DESCRIPTOR_BYTES - 4


def descriptor_image(descriptor: Mapping, *, where: str = "descriptor") -> bytes:
    """A descriptor's memory image: :func:`descriptor_layout` packed from bit 0, zeros up to byte
    :data:`DESCRIPTOR_CRC_OFFSET`, then the CRC-32 of those bytes (:data:`DESCRIPTOR_CRC_RESIDUE`)."""
    body = pack(descriptor_layout(), descriptor, where=where).to_bytes(DESCRIPTOR_CRC_OFFSET, "little")
    return body + zlib.crc32(body).to_bytes(4, "little")


def descriptor_intact(image: bytes) -> bool:
    """Whether a descriptor's image passes the engine's CRC check (any single changed bit, and any burst of up to
    32 changed bits, fails it)."""
    if len(image) != DESCRIPTOR_BYTES:
        raise ParameterError(f"a descriptor's image has {DESCRIPTOR_BYTES} bytes, got {len(image)}")
    return zlib.crc32(image) == DESCRIPTOR_CRC_RESIDUE


def read_descriptor(image: bytes) -> dict:
    """The descriptor in an image (:func:`unpack` of its layout; the CRC is not checked)."""
    return unpack(descriptor_layout(), int.from_bytes(image[:DESCRIPTOR_CRC_OFFSET], "little"))


def descriptor_layout() -> data.StructLayout:
    """One tile of a layer, as the engine reads it from memory (docs/memory.md).

    ``geometry`` is the sequencer's walk; ``in_channels`` and ``stride`` are checked against the config
    (``in_channels * kernel_h * kernel_w <= max_reduction``, ``stride`` 1 or 2); ``layer`` indexes the per-layer
    cycle counters; ``barrier`` makes the engine finish every earlier tile's output before it loads this one (the
    first tile of a layer that reads an earlier layer's output); ``reuse_weights`` keeps the previous tile's
    weights and parameters (the same row blocks: the weight and parameter transfers are not made). The four
    transfers fill the activation, weight and parameter buffers and empty the output buffer (``segments`` =
    ``row_blocks``, ``words`` = ``output_pixels``). ``weights_crc`` is :func:`load_crc` of the parameter and weight
    transfers: the engine refuses a load whose beats do not match it.
    """
    return data.StructLayout({
        "geometry": geometry_layout(),
        "in_channels": GEOMETRY_SIZE_BITS, "stride": 2, "layer": 8, "barrier": 1, "reuse_weights": 1,
        "activations": transfer_layout(), "weights": transfer_layout(), "params": transfer_layout(),
        "outputs": transfer_layout(), "weights_crc": 32,
    })


def run_beats(address: int, length: int) -> tuple[int, int]:
    """The bytes ``[start, end)`` of the whole memory beats a run of ``length`` bytes from byte ``address``
    touches."""
    start = address - address % MEMORY_BEAT_BYTES
    end = address + length
    return start, end + -end % MEMORY_BEAT_BYTES


def load_crc(memory, descriptor: Mapping, config: AcceleratorConfig) -> int:
    """CRC-32 (zlib's) of the whole beats the parameter transfer and then the weight transfer read from ``memory``
    (bytes indexed by byte offset from ``MEMORY_BASE``): what the engine's loader computes as the beats arrive,
    beats shared with a neighbour's bytes included. Weights and parameters do not change while a program runs, so
    the compiler can write it into each descriptor."""
    bits = buffer_word_bits(config)
    crc = 0
    for name, buffer in (("params", "param"), ("weights", "weight")):
        transfer = descriptor[name]
        for segment in range(transfer["segments"]):
            start, end = run_beats(transfer["address"] + segment * transfer["stride"],
                                   transfer["words"] * memory_word_bytes(bits[buffer]))
            crc = zlib.crc32(bytes(memory[start:end]), crc)
    return crc


# The engine's error codes live in the pure-Python register map (the driver needs them on the board).


#: docs/arithmetic.md: ``M`` has at most 16 bits and ``1 <= S <= 48`` (the golden model's ``MULTIPLIER_BITS`` and
#: ``SHIFT_RANGE``; ``tests/test_layouts.py`` checks that they agree).
REQUANT_MULTIPLIER_BITS = 16
REQUANT_SHIFT_RANGE = (1, 48)


def requant_params_layout(config: AcceleratorConfig) -> data.StructLayout:
    """One output channel's requantization constants (docs/arithmetic.md): ``bias`` in accumulator units (as wide as
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
