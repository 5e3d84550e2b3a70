"""CRC-32 over memory beats, a whole beat per cycle: the engine's check that a descriptor arrived as the compiler
wrote it (:data:`esb_hw.layouts.DESCRIPTOR_CRC_RESIDUE`)."""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...errors import ParameterError
from ..checks import require_bool, require_int

__all__ = ["CRC32_POLYNOMIAL", "Crc32", "crc32_matrix"]

#: zlib's CRC-32, reflected: 0x04C11DB7 with its bits reversed.
CRC32_POLYNOMIAL = 0xEDB88320
#: The register after an intact descriptor image: ``~DESCRIPTOR_CRC_RESIDUE`` (zlib's final XOR undone).
INTACT_REGISTER = 0xDEBB20E3


def crc32_matrix(data_bits: int) -> list[int]:
    """For each of the 32 register bits after one update, the inputs it is the XOR of, as a bit mask over the old
    register (bits 0..31) and the data (bits 32..): the bit-serial reflected update, data bit 0 first (byte 0's
    bit 0: little-endian bytes, as zlib takes them)."""
    register = [1 << bit for bit in range(32)]
    for index in range(data_bits):
        feedback = register[0] ^ (1 << (32 + index))
        register = [register[bit + 1] if bit < 31 else 0 for bit in range(32)]
        register = [value ^ feedback if CRC32_POLYNOMIAL >> bit & 1 else value for bit, value in enumerate(register)]
    return register


class Crc32(wiring.Component):
    """The CRC-32 register (zlib's, before its final XOR) over ``data_bits``-bit words.

    Parameters
    ----------
    data_bits : int
        Bits taken per cycle (a multiple of 8; 8..1024).
    input_register : bool
        Register ``clear``, ``enable`` and ``data`` first: the XOR trees then start at flip-flops, not at the
        stream's handshake, and every update comes one cycle later, in the same order.

    Attributes
    ----------
    clear : In(1)
        Restart: the register becomes 0xFFFFFFFF (wins over ``enable``).
    enable : In(1)
        Take ``data`` this cycle.
    data : In(data_bits)
        Bytes little-endian: byte 0 in bits 7..0, taken first.
    value : Out(32)
        The register; zlib's ``crc32`` of the bytes taken is ``value ^ 0xFFFFFFFF``.
    intact : Out(1)
        ``value`` is the residue of a message followed by its own CRC (little-endian): 0xDEBB20E3.

    Latency: ``value`` shows a word one cycle after it is taken (two with ``input_register``), and a ``clear``
    likewise. Throughput: one word per cycle. Each register bit is one XOR of about half the register and data bits
    (no carry chain).
    """

    def __init__(self, data_bits: int = 128, *, input_register: bool = False):
        require_int("data_bits", data_bits, 8, 1024)
        if data_bits % 8:
            raise ParameterError(f"data_bits must be a multiple of 8, got {data_bits}")
        self.data_bits = data_bits
        self.input_register = require_bool("input_register", input_register)
        super().__init__({"clear": In(1), "enable": In(1), "data": In(data_bits), "value": Out(32, init=0xFFFFFFFF),
                          "intact": Out(1)})

    def elaborate(self, platform):
        m = Module()
        clear, enable, data = self.clear, self.enable, self.data
        if self.input_register:
            clear, enable, data = Signal(name="clear_in"), Signal(name="enable_in"), Signal(self.data_bits)
            m.d.sync += [clear.eq(self.clear), enable.eq(self.enable), data.eq(self.data)]
        inputs = Signal(32 + self.data_bits)
        m.d.comb += inputs.eq(Cat(self.value, data))
        updated = Cat(*((inputs & mask).xor() for mask in crc32_matrix(self.data_bits)))
        with m.If(clear):
            m.d.sync += self.value.eq(0xFFFFFFFF)
        with m.Elif(enable):
            m.d.sync += self.value.eq(updated)
        m.d.comb += self.intact.eq(self.value == INTACT_REGISTER)
        return m
