"""A ternary adder: three operands and two 1-bit carries in one carry chain (docs/architecture.md lever).

With ``primitives=True`` each sum bit is one UltraScale+ ``LUT6_2`` feeding a ``CARRY8`` (UG974): the LUT's O5
is the majority of ``x_i, y_i, z_i`` (the carry-save carry into bit ``i + 1``) and its O6 is
``x_i ^ y_i ^ z_i ^ c_i``, the propagate of the final binary addition, whose generate input is ``c_i`` itself.
Two binary adders would take two LUTs per bit; this takes one. ``c0`` enters as bit 0's carry-save carry and
``ci`` as the chain's carry-in, so a ternary adder also absorbs two pending product signs.

With ``primitives=False`` it is ``x + y + z + c0 + ci`` in plain Amaranth, for simulation and other vendors.
``tests/test_ternary.py`` proves the two equal with yosys (SAT on a miter, using yosys's own models of the
primitives) and simulates the primitive netlist against the golden sums.
"""

from __future__ import annotations

from amaranth import Cat, Const, Instance, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..checks import require_bool, require_int

__all__ = ["TernaryAdder", "LUT6_2_INIT", "LUT6_2_INIT_GATED"]


def _lut6_2_init(gated: bool) -> int:
    """O6 (I5 = 1, upper 32 bits) = x ^ I1 ^ I2 ^ I3; O5 (lower 32 bits) = majority(x, I1, I2), where
    x = I0, or ``I0 & ~I4`` when ``gated`` (I4 clears the first operand: an accumulator's restart)."""
    init = 0
    for index in range(64):
        i0, i1, i2, i3, i4, i5 = ((index >> bit) & 1 for bit in range(6))
        x = i0 & (1 - i4) if gated else i0
        bit = (x ^ i1 ^ i2 ^ i3) if i5 else (x & i1) | (x & i2) | (i1 & i2)
        init |= bit << index
    return init


LUT6_2_INIT = _lut6_2_init(False)
LUT6_2_INIT_GATED = _lut6_2_init(True)


class TernaryAdder(wiring.Component):
    """``sum = x + y + z + c0 + ci``, signed, combinational.

    Parameters
    ----------
    width : int
        Signed width of each operand.
    primitives : bool
        Build from ``LUT6_2`` and ``CARRY8`` (UltraScale+ only) instead of ``+``.
    gated : bool
        Add an input ``clear_x`` that replaces ``x`` by 0 (inside the same LUTs): an accumulator's restart.

    Attributes
    ----------
    x, y, z : In(signed(width))
    c0, ci : In(1)
        Two extra 1-bit addends.
    clear_x : In(1)
        Only when ``gated``.
    sum : Out(signed(width + 2))

    Latency 0.
    """

    def __init__(self, *, width: int, primitives: bool, gated: bool = False):
        require_int("width", width, 1)
        require_bool("primitives", primitives)
        require_bool("gated", gated)
        self.width = width
        self.primitives = primitives
        self.gated = gated
        ports = {"x": In(signed(width)), "y": In(signed(width)), "z": In(signed(width)), "c0": In(1), "ci": In(1),
                 "sum": Out(signed(width + 2))}
        if gated:
            ports["clear_x"] = In(1)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        if not self.primitives:
            x = Mux(self.clear_x, 0, self.x) if self.gated else self.x
            m.d.comb += self.sum.eq(x + self.y + self.z + self.c0 + self.ci)
            return m
        width = self.width + 2
        extended = [Signal(signed(width), name=f"{name}_extended") for name in "xyz"]
        m.d.comb += [wide.eq(narrow) for wide, narrow in zip(extended, (self.x, self.y, self.z), strict=True)]
        propagate = Signal(width)
        majority = Signal(width)
        carry_save = Cat(self.c0, majority[: width - 1])
        for bit in range(width):
            m.submodules[f"lut_{bit}"] = Instance(
                "LUT6_2", p_INIT=Const(LUT6_2_INIT_GATED if self.gated else LUT6_2_INIT, 64),
                i_I0=extended[0][bit], i_I1=extended[1][bit], i_I2=extended[2][bit], i_I3=carry_save[bit],
                i_I4=self.clear_x if self.gated else Const(0, 1), i_I5=Const(1, 1),
                o_O6=propagate[bit], o_O5=majority[bit])
        carry_in = self.ci
        for low in range(0, width, 8):
            used = min(8, width - low)
            outputs, carries = Signal(8, name=f"o_{low}"), Signal(8, name=f"co_{low}")
            m.submodules[f"carry_{low}"] = Instance(
                "CARRY8", p_CARRY_TYPE="SINGLE_CY8",
                i_CI=carry_in, i_CI_TOP=Const(0, 1),
                i_DI=Cat(carry_save[low: low + used], Const(0, 8 - used)),
                i_S=Cat(propagate[low: low + used], Const(0, 8 - used)),
                o_O=outputs, o_CO=carries)
            m.d.comb += self.sum[low: low + used].eq(outputs[:used])
            carry_in = carries[used - 1]
        return m
