"""The array's output buffer: a block-RAM FIFO whose read side is the only logic the consumer's ``ready`` drives."""

from __future__ import annotations

from amaranth import Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...errors import ParameterError
from ..checks import require_int

__all__ = ["OutputBuffer", "output_buffer_structure"]


def output_buffer_structure(width: int, depth: int) -> dict[str, int]:
    """What :class:`OutputBuffer` builds: ``register_bits`` (write and read pointers with a wrap bit each, the
    output valid flag) and ``bram36``: 72-bit slices of RAMB36 in simple dual port, a last slice of up to 36 bits a
    RAMB18 (half a BRAM36). yosys 0.70 was measured at 3 for 200 bits and 11.5 for 864 bits (this gives 12)."""
    pointer_bits = (depth - 1).bit_length()
    full, rest = divmod(width, 72)
    return {"register_bits": 2 * (pointer_bits + 1) + 1,
            "bram36": full + (0.5 if 0 < rest <= 36 else 1.0 if rest else 0.0)}


class OutputBuffer(wiring.Component):
    """A first-word-fall-through FIFO of ``depth`` entries in block RAM.

    The block RAM's own output latch is the stream's payload register, so ``o.ready`` reaches only the RAM's
    read enable, the read pointer and ``o.valid``: a few dozen pins, however wide the data.
    The writer must never write into a full buffer; the PE array guarantees that with credits.

    Parameters
    ----------
    layout : amaranth shape or layout
        One entry, e.g. :func:`esb_hw.layouts.array_output_layout`.
    depth : int
        Entries, a power of two in ``2..512``.

    Attributes
    ----------
    w_data : In(layout)
    w_en : In(1)
        Write ``w_data`` this cycle.
    o : Out(stream.Signature(layout))
        The entries in write order.

    Latency: an entry written at cycle ``t`` is on ``o`` from cycle ``t + 2`` (one cycle for the write pointer
    to move, one to read the RAM): :attr:`LATENCY`. Throughput: one write and one read per cycle.
    """

    #: Cycles from a write to the entry on ``o``.
    LATENCY = 2

    def __init__(self, layout, *, depth: int):
        require_int("depth", depth, 2, 512)
        if depth & (depth - 1):
            raise ParameterError(f"depth must be a power of two in 2..512, got {depth}")
        self.layout = layout
        self.depth = depth
        self.width = Shape.cast(layout).width
        super().__init__({"w_data": In(layout), "w_en": In(1), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.memory = memory = Memory(shape=self.width, depth=self.depth, init=[],
                                              attrs={"ram_style": "block"})
        write, read = memory.write_port(), memory.read_port(transparent_for=())
        # One wrap bit more than the address: equal pointers mean empty (the writer never overfills).
        write_pointer = Signal(range(2 * self.depth))
        read_pointer = Signal(range(2 * self.depth))
        fetch = Signal()
        m.d.comb += [write.addr.eq(write_pointer), write.data.eq(self.w_data), write.en.eq(self.w_en),
                     fetch.eq((write_pointer != read_pointer) & (~self.o.valid | self.o.ready)),
                     read.addr.eq(read_pointer), read.en.eq(fetch), self.o.payload.eq(read.data)]
        with m.If(self.w_en):
            m.d.sync += write_pointer.eq(write_pointer + 1)
        with m.If(fetch):
            m.d.sync += [read_pointer.eq(read_pointer + 1), self.o.valid.eq(1)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
