"""What the descriptor checker computes, as data: the hardware builds its checks from this table
(:class:`esb_hw.hw.core.checker.DescriptorChecker`), and the cycle model counts its cycles from the same table
(:func:`checker_cycles`).

A term names a descriptor field (``"in_channels"``, ``"geometry.kernel_h"``, ``"geometry.limits.0"``,
``"activations.words"``), a config value (``"config.rows"``) or ``"walk_pixels"`` (the pixel walk's length:
``output_pixels``, four times that with pooling).
"""

from __future__ import annotations

from ..config import AcceleratorConfig
from ..layouts import buffer_word_bits, memory_word_bytes

__all__ = ["ENGINE_REACH", "PRODUCT_CHECKS", "WINDOW_CHECKS", "checker_cycles", "term_value", "transfer_end",
           "window_failure", "window_limit"]

#: The product checks, in priority order: ``(error, factors, relation, addends)``. The check passes when
#: ``product(factors) <relation> sum(addends)``. The checker multiplies by shift and add, one factor at a time.
PRODUCT_CHECKS: tuple[tuple[str, tuple[str, ...], str, tuple[str, ...]], ...] = (
    ("reduction_too_long", ("in_channels", "geometry.kernel_h", "geometry.kernel_w"), "<=",
     ("config.max_reduction",)),
    ("does_not_fit", ("activations.segments", "activations.words"), "<=", ("config.activation_words",)),
    ("does_not_fit", ("weights.words",), "<=", ("config.weight_words",)),
    ("does_not_fit", ("params.words",), "<=", ("config.param_words",)),
    ("does_not_fit", ("outputs.segments", "outputs.words"), "<=", ("config.output_words",)),
    ("inconsistent", ("geometry.in_height", "geometry.in_width"), "==", ("activations.words",)),
    ("inconsistent", ("geometry.groups", "config.cols"), ">=", ("in_channels",)),
    ("inconsistent", ("geometry.groups", "config.cols"), "<", ("in_channels", "config.cols")),
    ("inconsistent", ("geometry.limits.0", "geometry.limits.1"), "==", ("geometry.output_pixels",)),
    ("inconsistent", ("geometry.pixel_blocks", "geometry.block"), ">=", ("walk_pixels",)),
    ("inconsistent", ("geometry.pixel_blocks", "geometry.block"), "<", ("walk_pixels", "geometry.block")),
    ("inconsistent", ("geometry.row_blocks", "geometry.kernel_h", "geometry.kernel_w", "geometry.groups",
                      "config.rows"), "==", ("weights.words",)),
    ("inconsistent", ("geometry.row_blocks", "config.rows"), "==", ("params.words",)),
)

#: The window checks, after the product checks and in this order: ``(ERROR_DETAIL, descriptor field, buffer)``
#: (:data:`esb_hw.regmap.WINDOW_DETAILS`; the buffer names the word size, :func:`esb_hw.layouts.buffer_word_bits`).
#: A transfer passes when :func:`transfer_end` is at most :func:`window_limit`. Every transfer is checked, also the
#: weights and parameters of a tile that reuses its predecessor's (they are not loaded, but they are still data the
#: program names).
WINDOW_CHECKS: tuple[tuple[int, str, str], ...] = (
    (1, "activations", "activation"), (2, "weights", "weight"), (3, "params", "param"), (4, "outputs", "output"))
#: The engine's reach past MEMORY_BASE: addresses and strides are 32-bit byte offsets, and a request's beat address
#: has 28 bits. A larger window is clamped to it.
ENGINE_REACH = 1 << 32


def window_limit(memory_size: int) -> int:
    """The last byte offset + 1 a transfer may touch: ``MEMORY_SIZE`` (a multiple of 16), at most 4 GiB."""
    return min(int(memory_size), ENGINE_REACH)


def transfer_end(transfer: dict, word_bytes: int) -> int:
    """One past the last byte of a transfer (exact: no wrap; ``segments >= 1``): ``address + stride *
    (segments - 1) + words * word_bytes``. Its beats end at the next multiple of 16, which a window of whole
    beats (``MEMORY_SIZE`` is a multiple of 16) also holds."""
    return transfer["address"] + transfer["stride"] * (transfer["segments"] - 1) + transfer["words"] * word_bytes


def window_failure(descriptor: dict, word_bytes: dict[str, int], memory_size: int) -> int:
    """The ``ERROR_DETAIL`` of the first transfer of ``descriptor`` that leaves the window, or 0 if none does
    (``word_bytes``: buffer name -> bytes of a word in memory)."""
    limit = window_limit(memory_size)
    for detail, name, buffer in WINDOW_CHECKS:
        if transfer_end(descriptor[name], word_bytes[buffer]) > limit:
            return detail
    return 0


#: Relations of the checks, as Python (for :func:`checker_cycles`; the hardware compares the same way).
RELATIONS = {"<=": lambda a, b: a <= b, "==": lambda a, b: a == b, ">=": lambda a, b: a >= b,
             "<": lambda a, b: a < b}


def term_value(term: str, descriptor: dict, config: AcceleratorConfig) -> int:
    """The value of a term for a descriptor given as a dict (:func:`esb_hw.layouts.unpack` of it)."""
    if term.startswith("config."):
        return int(getattr(config, term.removeprefix("config.")))
    if term == "walk_pixels":
        pixels = descriptor["geometry"]["output_pixels"]
        return 4 * pixels if descriptor["geometry"]["pool"] else pixels
    value = descriptor
    for part in term.split("."):
        value = value[int(part)] if part.isdigit() else value[part]
    return int(value)


def checker_cycles(descriptor: dict, config: AcceleratorConfig, *, immediate_error: bool = False,
                   memory_size: int | None = None) -> int:
    """Cycles from the checker's ``start`` to its ``done`` for ``descriptor`` (exact; they depend on the values, as
    the multiplier stops when the rest of a factor is zero): the start, the immediate checks, then per product check
    a load, per further factor a setup and one cycle per bit of the factor plus one, and a compare; then per window
    check (after one cycle to start them) a load, two cycles for the span, a setup, one cycle per bit of
    ``segments - 1`` plus one, and a compare; ``done`` comes in the cycle after the last. ``immediate_error``: an
    immediate check fails (the rest is skipped). ``memory_size``: the window (None: every transfer is inside it)."""
    cycles = 2  # the start, the immediate checks
    if immediate_error:
        return cycles
    for _error, factors, relation, addends in PRODUCT_CHECKS:
        values = [term_value(term, descriptor, config) for term in factors]
        cycles += 1 + sum(2 + value.bit_length() for value in values[1:]) + 1
        product = 1
        for value in values:
            product *= value
        if not RELATIONS[relation](product, sum(term_value(term, descriptor, config) for term in addends)):
            return cycles
    word_bytes = {name: memory_word_bytes(bits) for name, bits in buffer_word_bits(config).items()}
    cycles += 1  # the window checks' start (their index)
    for _detail, name, buffer in WINDOW_CHECKS:
        # a load, the span (a multiplication by 1: two cycles), a setup, the stride's multiplication, a compare
        cycles += 1 + 2 + 1 + (descriptor[name]["segments"] - 1).bit_length() + 1 + 1
        if memory_size is not None and transfer_end(descriptor[name], word_bytes[buffer]) > window_limit(memory_size):
            break
    return cycles
