# amaranth: UnusedElaboratable=no
"""Rom (esb_hw/hw/debug/rom.py): registered reads, the LUT6 mapping's INIT words and the register model.

The mapped netlist also runs end to end in the board-top test (tests/test_top.py) on Verilator, with the LUT6
model of esb_hw/sim/models/xilinx_primitives.v.
"""

import random
import re

import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from esb_hw.errors import ParameterError
from esb_hw.hw.debug.rom import Rom, rom_register_bits

WORDS = tuple(random.Random(3).getrandbits(12) for _ in range(40))


def read_all(rom: Rom, addresses):
    seen = []

    async def testbench(ctx):
        for address in addresses:
            ctx.set(rom.addr, address)
            ctx.set(rom.en, 1)
            await ctx.tick()
            seen.append(ctx.get(rom.data))
        ctx.set(rom.en, 0)
        ctx.set(rom.addr, 0)
        await ctx.tick()
        seen.append(ctx.get(rom.data))  # held without en

    simulator = Simulator(rom)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return seen


def test_memory_reads_every_word_and_holds():
    addresses = list(range(len(WORDS)))[::-1]
    assert read_all(Rom(WORDS, width=12), addresses) == [WORDS[a] for a in addresses] + [WORDS[0]]


def lut_contents(rom: Rom) -> dict[int, int]:
    """Bit -> INIT of the mapped LUT6s, read from the elaborated netlist."""
    text = rtlil.convert(rom, emit_src=False)
    cells = re.findall(r"cell \\LUT6 \\(\S+)\n\s+parameter \\INIT 64'([01]+)", text)
    return {int(name.split("$")[0].rsplit("_", 1)[1]): int(init, 2) for name, init in cells}


def test_mapped_luts_hold_the_columns():
    rom = Rom(WORDS, width=12, primitives=True)
    assert rom.mapped
    inits = lut_contents(rom)
    assert sorted(inits) == list(range(12))
    for address in range(64):
        word = sum(((inits[bit] >> address) & 1) << bit for bit in range(12))
        assert word == (WORDS[address] if address < len(WORDS) else 0), address


def test_column_check_catches_a_wrong_word():
    inits = lut_contents(Rom(WORDS, width=12, primitives=True))
    inits[5] ^= 1 << 7  # bit 5 of word 7
    words = [sum(((inits[bit] >> address) & 1) << bit for bit in range(12)) for address in range(len(WORDS))]
    assert [a for a, (got, want) in enumerate(zip(words, WORDS, strict=True)) if got != want] == [7]


def test_big_roms_stay_memories():
    assert not Rom(tuple(range(65)), width=8, primitives=True).mapped


def test_register_model():
    assert rom_register_bits(WORDS, 12, primitives=True) == 12
    assert rom_register_bits((0b0110, 0b0110, 0b0010), 4, primitives=False) == 2  # two distinct non-zero columns
    assert rom_register_bits(tuple(range(100)), 8, primitives=True) == 7  # a memory: bit 7 is all zero


@pytest.mark.parametrize("words, kwargs, message", [
    ((), {}, "words must be a non-empty tuple of ints"),
    ((1, 16), {}, r"words must be ints in 0..2\*\*4 - 1"),
    ((1,), {"width": 0}, "width must be an int >= 1, got 0"),
    ((1,), {"primitives": None}, "primitives must be a bool, got NoneType None"),
])
def test_parameters_are_checked(words, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        Rom(words, **{"width": 4, **kwargs})
