# amaranth: UnusedElaboratable=no
"""UARTTransmitter (esb_hw/hw/debug/uart.py): 8N1 frames at the configured divisor, in Amaranth's simulator."""

import pytest
from amaranth.sim import Simulator

from esb_hw.errors import ParameterError
from esb_hw.hw.debug.uart import UARTTransmitter
from esb_hw.sim.streams import put_many


def transmit(data: bytes, clocks_per_bit: int) -> list[int]:
    """Send ``data`` and sample the line once per cycle until it has been idle for two frames."""
    uart = UARTTransmitter(clocks_per_bit=clocks_per_bit)
    line = []

    async def source(ctx):
        await put_many(ctx, uart.i, list(data))

    async def monitor(ctx):
        for _ in range(12 * clocks_per_bit * (len(data) + 2)):
            line.append(ctx.get(uart.tx))
            await ctx.tick()

    simulator = Simulator(uart)
    simulator.add_clock(1e-8)
    simulator.add_testbench(source, background=True)
    simulator.add_testbench(monitor)
    simulator.run()
    return line


def decode(line: list[int], clocks_per_bit: int) -> bytes:
    """An 8N1 receiver: find each start bit, sample mid-bit, check the stop bit."""
    received, index = [], 0
    while index < len(line):
        if line[index] == 0:
            centre = index + clocks_per_bit // 2
            bits = [line[centre + (bit + 1) * clocks_per_bit] for bit in range(9)]
            assert bits[8] == 1, f"no stop bit after byte {len(received)}"
            received.append(sum(bit << position for position, bit in enumerate(bits[:8])))
            index = centre + 9 * clocks_per_bit
        else:
            index += 1
    return bytes(received)


@pytest.mark.parametrize("clocks_per_bit", [1, 3, 8])
def test_bytes_arrive_intact(clocks_per_bit):
    data = b"ESB\x00\xff\x55"
    line = transmit(data, clocks_per_bit)
    assert line[0] == 1  # idle high
    assert decode(line, clocks_per_bit) == data


def test_receiver_catches_a_flipped_bit():
    line = transmit(b"A", 4)
    start = line.index(0)
    line[start + 4 * 2 + 2] ^= 1  # data bit 1, mid-bit
    assert decode(line, 4) == bytes([ord("A") ^ 0b10])


def test_divisor_is_checked():
    with pytest.raises(ParameterError, match="clocks_per_bit must be an int >= 1, got 0"):
        UARTTransmitter(clocks_per_bit=0)
