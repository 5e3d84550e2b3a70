"""The exact accumulator at the end of each dot-product row: a gated ternary adder and its register."""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..checks import require_bool, require_int
from .ternary import TernaryAdder

__all__ = ["Accumulator"]


class Accumulator(wiring.Component):
    """``accumulator = (restart ? 0 : accumulator) + addends[0] + addends[1] + carries[0] + carries[1]`` on
    cycles with ``accumulate``.

    The restart is folded into the adder's LUTs (:class:`~esb_hw.hw.arith.ternary.TernaryAdder` with
    ``gated``), so with ``primitives`` the whole update, two addends and two carries included, is one LUT6_2
    per bit on a CARRY8 chain: the adder tree before it stops at two sums (:mod:`esb_hw.hw.arith.tree`).

    Parameters
    ----------
    width : int
        Signed accumulator width, ``1..64``; the caller sizes it so that no sum overflows (docs/arithmetic.md).
    addend_bits : int
        Signed width of each addend; a wider addend is truncated to ``width`` (its value must fit, as a row's
        tree sums always do).
    primitives : bool
        Build the adder from UltraScale(+) ``LUT6_2``/``CARRY8``; else plain ``+``.
    entries : int
        Running sums kept, ``1..64``: 1 is one register; more are a distributed RAM (``ram_style =
        "distributed"``: a 32-entry sum of up to 14 bits is one RAM32M16 of 8 LUTs) read and written at
        ``entry``, so that one row accumulates a block of ``entries`` outputs with the same weights.

    Attributes
    ----------
    addends : In(ArrayLayout(signed(addend_bits), 2))
    carries : In(2)
        Two 1-bit addends (the pending signs of the adder tree).
    accumulate : In(1)
        The register loads ``total`` (its only clock enable).
    restart : In(1)
        Drop the old value: ``total = addends[0] + addends[1] + carries[0] + carries[1]``.
    total : Out(signed(width))
        The next value, combinational.
    accumulator : Out(signed(width))
        The running sum (of entry ``entry``).
    entry : In(range(entries))
        Only when ``entries > 1``: the running sum read into ``total`` and written on ``accumulate``.

    Latency: ``total`` is combinational; ``accumulator`` holds it one cycle later. Throughput: one pair of
    addends per cycle. The sums have no reset: the first use of each is a restart.
    """

    def __init__(self, *, width: int, addend_bits: int, primitives: bool = False, entries: int = 1):
        require_int("width", width, 1, 64)
        require_int("addend_bits", addend_bits, 1)
        require_bool("primitives", primitives)
        require_int("entries", entries, 1, 64)
        self.width = width
        self.primitives = primitives
        self.entries = entries
        ports = {"addends": In(data.ArrayLayout(signed(addend_bits), 2)), "carries": In(2), "accumulate": In(1),
                 "restart": In(1), "total": Out(signed(width)), "accumulator": Out(signed(width))}
        if entries > 1:
            ports["entry"] = In(range(entries))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        if self.entries > 1:
            m.submodules.sums = sums = Memory(shape=signed(self.width), depth=self.entries, init=[],
                                              attrs={"ram_style": "distributed"})
            read, write = sums.read_port(domain="comb"), sums.write_port()
            m.d.comb += [read.addr.eq(self.entry), write.addr.eq(self.entry), write.data.eq(self.total),
                         write.en.eq(self.accumulate)]
            value = read.data
        else:
            value = Signal(signed(self.width), reset_less=True)  # data: no reset, its first use is a restart
            with m.If(self.accumulate):
                m.d.sync += value.eq(self.total)
        m.d.comb += self.accumulator.eq(value)
        m.submodules.adder = adder = TernaryAdder(width=self.width, primitives=self.primitives, gated=True)
        m.d.comb += [adder.x.eq(value), adder.y.eq(self.addends[0]), adder.z.eq(self.addends[1]),
                     adder.c0.eq(self.carries[0]), adder.ci.eq(self.carries[1]), adder.clear_x.eq(self.restart),
                     self.total.eq(adder.sum[: self.width].as_signed())]
        return m
