"""What the descriptor checker computes, as data: the hardware builds its checks from this table
(:class:`esb_hw.hw.core.checker.DescriptorChecker`), and the cycle model counts its cycles from the same table
(:func:`checker_cycles`).

A term names a descriptor field (``"in_channels"``, ``"geometry.kernel_h"``, ``"geometry.limits.0"``,
``"activations.words"``), a config value (``"config.rows"``) or ``"walk_pixels"`` (the pixel walk's length:
``output_pixels``, four times that with pooling).
"""

from __future__ import annotations

from ..config import AcceleratorConfig

__all__ = ["PRODUCT_CHECKS", "checker_cycles", "term_value"]

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


def checker_cycles(descriptor: dict, config: AcceleratorConfig, *, immediate_error: bool = False) -> int:
    """Cycles from the checker's ``start`` to its ``done`` for ``descriptor`` (exact; they depend on the values, as
    the multiplier stops when the rest of a factor is zero): the start, the immediate checks, then per product check
    a load, per further factor a setup and one cycle per bit of the factor plus one, and a compare; ``done`` comes
    in the cycle after the last. ``immediate_error``: an immediate check fails (the products are skipped)."""
    cycles = 2  # the start, the immediate checks
    if not immediate_error:
        for _error, factors, relation, addends in PRODUCT_CHECKS:
            values = [term_value(term, descriptor, config) for term in factors]
            cycles += 1 + sum(2 + value.bit_length() for value in values[1:]) + 1
            product = 1
            for value in values:
                product *= value
            if not RELATIONS[relation](product, sum(term_value(term, descriptor, config) for term in addends)):
                break
    return cycles
