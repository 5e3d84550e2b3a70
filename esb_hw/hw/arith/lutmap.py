"""Hand-mapped LUTs: a small boolean function as one UltraScale(+) ``LUT6`` primitive (UG974).

Used where ABC's mapping of a known two-level structure costs more LUTs than the structure needs. Every
mapped block has a plain-Amaranth twin, and tests prove the two equal with a yosys SAT miter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from amaranth import Const, Instance, Module, Signal

from ...errors import ParameterError

__all__ = ["LUT_INPUTS", "lut_init", "map_lut"]

LUT_INPUTS = 6


def lut_init(function: Callable[[tuple[int, ...]], int], inputs: int) -> int:
    """The 64-bit INIT of a LUT6 computing ``function(bits)`` of its first ``inputs`` inputs (I0 first)."""
    if not 0 <= inputs <= LUT_INPUTS:
        raise ParameterError(f"a LUT6 has 0..{LUT_INPUTS} inputs, got {inputs}")
    init = 0
    for index in range(1 << LUT_INPUTS):
        bits = tuple((index >> position) & 1 for position in range(inputs))
        init |= (int(function(bits)) & 1) << index
    return init


def map_lut(m: Module, name: str, inputs: Sequence, function: Callable[[tuple[int, ...]], int]) -> Signal:
    """Instantiate one LUT6 computing ``function`` of ``inputs`` (at most 6; unused pins tied to 0)."""
    output = Signal(name=name)
    if len(inputs) > LUT_INPUTS:
        raise ParameterError(f"a LUT6 has 0..{LUT_INPUTS} inputs, got {len(inputs)} for {name}")
    pins = list(inputs) + [Const(0, 1)] * (LUT_INPUTS - len(inputs))
    m.submodules[name] = Instance(
        "LUT6", p_INIT=Const(lut_init(function, len(inputs)), 64),
        **{f"i_I{position}": pin for position, pin in enumerate(pins)}, o_O=output)
    return output
