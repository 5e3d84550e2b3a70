"""The exact accumulator at the end of each dot-product row: a gated ternary adder and its register."""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..checks import require_bool, require_int
from .ternary import TernaryAdder

__all__ = ["Accumulator"]


class Accumulator(wiring.Component):
    """``accumulator = (restart ? 0 : accumulator) + addend + carry`` on cycles with ``accumulate``.

    The restart is folded into the adder's LUTs (:class:`~esb_hw.hw.arith.ternary.TernaryAdder` with
    ``gated``), so with ``primitives`` the whole update is one LUT6_2 per bit on a CARRY8 chain.

    Parameters
    ----------
    width : int
        Signed accumulator width, ``1..64``; the caller sizes it so that no sum overflows (DESIGN.md §2).
    addend_bits : int
        Signed width of ``addend``; a wider addend is truncated to ``width`` (its value must fit, as a row's
        tree sum always does).
    primitives : bool
        Build the adder from UltraScale(+) ``LUT6_2``/``CARRY8``; else plain ``+``.

    Attributes
    ----------
    addend : In(signed(addend_bits))
    carry : In(1)
        A 1-bit addend (a pending sign of the adder tree).
    accumulate : In(1)
        The register loads ``total`` (its only clock enable).
    restart : In(1)
        Drop the old value: ``total = addend + carry``.
    total : Out(signed(width))
        The next value, combinational.
    accumulator : Out(signed(width))
        The register.

    Latency: ``total`` is combinational; ``accumulator`` holds it one cycle later. Throughput: one addend per
    cycle. The register has no reset: its first use is a restart.
    """

    def __init__(self, *, width: int, addend_bits: int, primitives: bool = False):
        require_int("width", width, 1, 64)
        require_int("addend_bits", addend_bits, 1)
        require_bool("primitives", primitives)
        self.width = width
        self.primitives = primitives
        super().__init__({"addend": In(signed(addend_bits)), "carry": In(1), "accumulate": In(1),
                          "restart": In(1), "total": Out(signed(width)),
                          "accumulator": Out(signed(width))})

    def elaborate(self, platform):
        m = Module()
        value = Signal(signed(self.width), reset_less=True)  # data: no reset, its first use is a restart
        m.d.comb += self.accumulator.eq(value)
        m.submodules.adder = adder = TernaryAdder(width=self.width, primitives=self.primitives, gated=True)
        m.d.comb += [adder.x.eq(value), adder.y.eq(self.addend), adder.z.eq(0), adder.c0.eq(self.carry),
                     adder.ci.eq(0), adder.clear_x.eq(self.restart),
                     self.total.eq(adder.sum[: self.width].as_signed())]
        with m.If(self.accumulate):
            m.d.sync += value.eq(self.total)
        return m
