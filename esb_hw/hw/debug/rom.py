"""A read-only memory with a registered read port, as LUT6s where that is cheapest."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...errors import ParameterError
from ..arith.lutmap import LUT_INPUTS, map_lut
from ..checks import require_bool, require_int

__all__ = ["Rom", "rom_register_bits"]


def rom_register_bits(words, width: int, *, primitives: bool) -> int:
    """Read-register flip-flops that synthesis keeps for :class:`Rom` (yosys 0.70, measured): every bit when the
    contents are mapped LUT6s (yosys merges no instantiated LUTs), else one per distinct bit column, all-zero
    columns left out (identical columns give identical flip-flops, which it merges)."""
    if primitives and len(words) <= 1 << LUT_INPUTS:
        return width
    columns = {tuple((word >> bit) & 1 for word in words) for bit in range(width)}
    return len(columns - {(0,) * len(words)})


class Rom(wiring.Component):
    """``data <= words[addr]`` on cycles with ``en``.

    With ``primitives`` and at most 64 words, every data bit is one hand-mapped ``LUT6`` of the address (its
    INIT is the bit's column) before the read register: synthesis of ``amaranth.lib.memory`` ROMs of random
    contents was measured at several LUTs per bit (yosys 0.70 lets ABC share logic between the columns). Else an
    ``amaranth.lib.memory.Memory`` read port.

    Parameters
    ----------
    words : tuple of int
        The contents, each ``0 <= word < 2**width``; at least one.
    width : int
        Bits per word, ``>= 1``.
    primitives : bool
        Map to ``LUT6`` (UltraScale(+) and 7-series) when there are at most 64 words.

    Attributes
    ----------
    addr : In(range(len(words)))
    en : In(1)
        Load the read register this cycle.
    data : Out(width)
        The read register (0 after reset).

    Latency 1 cycle; one read per cycle. An address past the last word reads 0.
    """

    def __init__(self, words: tuple[int, ...], *, width: int, primitives: bool = False):
        require_int("width", width, 1)
        require_bool("primitives", primitives)
        if not isinstance(words, tuple) or not words:
            raise ParameterError("words must be a non-empty tuple of ints")
        if any(isinstance(word, bool) or not isinstance(word, int) or not 0 <= word < 1 << width for word in words):
            raise ParameterError(f"words must be ints in 0..2**{width} - 1")
        self.words = words
        self.width = width
        self.primitives = primitives
        super().__init__({"addr": In(range(len(words))), "en": In(1), "data": Out(width)})

    @property
    def mapped(self) -> bool:
        """Whether the contents are hand-mapped LUT6s."""
        return self.primitives and len(self.words) <= 1 << LUT_INPUTS

    def elaborate(self, platform):
        m = Module()
        if not self.mapped:
            m.submodules.memory = memory = Memory(shape=self.width, depth=len(self.words), init=self.words)
            port = memory.read_port()
            m.d.comb += [port.addr.eq(self.addr), port.en.eq(self.en), self.data.eq(port.data)]
            return m
        address = [self.addr[bit] for bit in range(len(self.addr))]
        words = self.words
        selected = Signal(self.width)
        for bit in range(self.width):
            def column(bits, bit=bit):
                index = sum(value << position for position, value in enumerate(bits))
                return (words[index] >> bit) & 1 if index < len(words) else 0

            m.d.comb += selected[bit].eq(map_lut(m, f"bit_{bit}", address, column))
        with m.If(self.en):
            m.d.sync += self.data.eq(selected)
        return m
