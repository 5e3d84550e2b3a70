"""A UART transmitter (8 data bits, no parity, 1 stop bit) for the self-test's one-line report."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..checks import require_int

__all__ = ["UARTTransmitter"]


class UARTTransmitter(wiring.Component):
    """8N1 serial transmitter.

    Parameters
    ----------
    clocks_per_bit : int
        Clock cycles per bit: ``round(f_clk / baud)``, at least 1.

    Attributes
    ----------
    i : In(stream.Signature(8))
        Bytes to send, least significant bit first.
    tx : Out(1)
        The serial line, idle high.

    Latency: the start bit begins the cycle after a byte is accepted. Throughput: one byte per
    ``10 * clocks_per_bit + 1`` cycles back to back; ``i.ready`` is high only while the line is idle.
    """

    def __init__(self, *, clocks_per_bit: int):
        require_int("clocks_per_bit", clocks_per_bit, 1)
        self.clocks_per_bit = clocks_per_bit
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        frame = Signal(10, init=0x3FF)  # stop bit, 8 data bits, start bit; shifted out LSB first
        bits_left = Signal(range(11))
        timer = Signal(range(max(self.clocks_per_bit, 2)))
        m.d.comb += [self.tx.eq(frame[0]), self.i.ready.eq(bits_left == 0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [frame.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))), bits_left.eq(10),
                         timer.eq(self.clocks_per_bit - 1)]
        with m.Elif(bits_left != 0):
            with m.If(timer == 0):
                m.d.sync += [frame.eq(Cat(frame[1:], Const(1, 1))), bits_left.eq(bits_left - 1),
                             timer.eq(self.clocks_per_bit - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
