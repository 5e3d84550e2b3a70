# amaranth: UnusedElaboratable=no
"""Crc32 (esb_hw/hw/core/crc.py) against zlib, and the descriptor image's CRC (esb_hw/layouts.py): the register
equals zlib's CRC on random messages, an intact descriptor image leaves the residue, and every single flipped bit
of an image (all 1,024, in the hardware) and every pair of flipped bits (in zlib) is caught."""

import itertools
import random
import zlib

import numpy as np
import pytest
from amaranth.sim import Simulator

from esb_hw.compiler.program import compile_program
from esb_hw.data import shipped_config
from esb_hw.errors import ParameterError
from esb_hw.hw.core.crc import Crc32, crc32_matrix
from esb_hw.layouts import DESCRIPTOR_BYTES, descriptor_image, descriptor_intact, read_descriptor
from esb_hw.sim.layer_core import random_layer

CONFIG = shipped_config("default")
DESCRIPTORS = [tile.descriptor for tile in compile_program(
    CONFIG, [random_layer(CONFIG, np.random.default_rng(3), "conv2d", 12, 5, 3, 1, 1, True)], (5, 12, 10)).tiles]


def run_crc(messages: list[bytes], data_bits: int = 128, input_register: bool = False) -> list[tuple[int, int]]:
    """Per message (whole words): the register's zlib value and ``intact`` after it (one cycle later with the
    input register)."""
    dut = Crc32(data_bits, input_register=input_register)
    step = data_bits // 8
    results = []

    async def testbench(ctx):
        rng = random.Random(1)
        for message in messages:
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            for offset in range(0, len(message), step):
                while rng.random() < 0.3:  # idle cycles, random data while enable is low
                    ctx.set(dut.data, rng.getrandbits(data_bits))
                    await ctx.tick()
                ctx.set(dut.enable, 1)
                ctx.set(dut.data, int.from_bytes(message[offset:offset + step], "little"))
                await ctx.tick()
                ctx.set(dut.enable, 0)
            if input_register:
                ctx.set(dut.data, rng.getrandbits(data_bits))  # random data while enable is low
                await ctx.tick()
            results.append((ctx.get(dut.value) ^ 0xFFFFFFFF, ctx.get(dut.intact)))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return results


@pytest.mark.parametrize("input_register", [False, True], ids=["direct", "registered"])
@pytest.mark.parametrize("data_bits", [8, 32, 128])
def test_the_register_is_zlibs_crc(data_bits, input_register):
    rng = random.Random(data_bits)
    messages = [bytes(rng.getrandbits(8) for _ in range(data_bits // 8 * count)) for count in (1, 2, 5, 8)]
    messages += [bytes(data_bits // 8), b"\xff" * (data_bits // 8)]
    results = run_crc(messages, data_bits, input_register)
    assert [value for value, _ in results] == [zlib.crc32(message) for message in messages]


def test_the_registered_input_shows_a_word_two_cycles_after_it_is_taken():
    """The latency the engine's settle state relies on: not after one cycle, after two."""
    dut = Crc32(32, input_register=True)
    seen = []

    async def testbench(ctx):
        ctx.set(dut.enable, 1)
        ctx.set(dut.data, 0x12345678)
        await ctx.tick()
        ctx.set(dut.enable, 0)
        for _ in range(2):
            seen.append(ctx.get(dut.value) ^ 0xFFFFFFFF)
            await ctx.tick()

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    assert seen == [0, zlib.crc32((0x12345678).to_bytes(4, "little"))]


def test_an_intact_descriptor_image_leaves_the_residue_and_every_flipped_bit_is_caught():
    image = descriptor_image(DESCRIPTORS[0])
    assert len(image) == DESCRIPTOR_BYTES and descriptor_intact(image)
    assert read_descriptor(image) == DESCRIPTORS[0]
    flipped = [bytes(byte ^ (1 << bit % 8) if index == bit // 8 else byte for index, byte in enumerate(image))
               for bit in range(8 * DESCRIPTOR_BYTES)]
    results = run_crc([image, *flipped])
    assert results[0][1] == 1
    assert [intact for _, intact in results[1:]] == [0] * len(flipped)
    assert not any(descriptor_intact(message) for message in flipped)


def test_every_pair_of_flipped_bits_is_caught():
    image = bytearray(descriptor_image(DESCRIPTORS[1]))
    value = int.from_bytes(image, "little")
    for first, second in itertools.combinations(range(8 * DESCRIPTOR_BYTES), 2):
        changed = value ^ (1 << first) ^ (1 << second)
        assert not descriptor_intact(changed.to_bytes(DESCRIPTOR_BYTES, "little")), (first, second)


def test_a_wrong_matrix_is_caught():
    """The zlib comparison fails for a matrix with one input dropped (a planted bug)."""
    matrix = crc32_matrix(32)
    assert matrix[5] & (1 << 40)
    wrong = list(matrix)
    wrong[5] ^= 1 << 40
    data = 1 << 8  # data bit 8 is input 40
    state = 0xFFFFFFFF

    def update(rows):
        inputs = state | data << 32
        return sum((bin(inputs & row).count("1") & 1) << bit for bit, row in enumerate(rows))

    expected = zlib.crc32((data).to_bytes(4, "little")) ^ 0xFFFFFFFF
    assert update(matrix) == expected and update(wrong) != expected


def test_parameters_are_checked():
    with pytest.raises(ParameterError, match="multiple of 8"):
        Crc32(12)
    with pytest.raises(ParameterError, match="data_bits"):
        Crc32(4)
    with pytest.raises(ParameterError, match="input_register must be a bool, got int 1"):
        Crc32(32, input_register=1)
