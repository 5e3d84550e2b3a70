# amaranth: UnusedElaboratable=no
"""OutputBuffer (esb_hw/hw/core/output_buffer.py): order, latency and back-pressure in Amaranth's simulator."""

import random

import pytest
from amaranth.sim import Simulator

from esb_hw.errors import ParameterError
from esb_hw.hw.core.output_buffer import OutputBuffer, output_buffer_structure
from esb_hw.sim.streams import get_many


def run(words, depth, write_gaps, stall, seed=0):
    """Write ``words`` (never into a full buffer), read them with random back-pressure; return what came out
    and the cycle at which each came out."""
    buffer = OutputBuffer(16, depth=depth)
    received, write_cycles = [], []
    rng = random.Random(seed)

    async def writer(ctx):
        queue, cycle, outstanding = list(words), 0, 0
        while queue:
            taken = ctx.get(buffer.o.valid) and ctx.get(buffer.o.ready)
            outstanding -= taken
            write = outstanding < depth and rng.random() >= write_gaps
            ctx.set(buffer.w_en, int(write))
            ctx.set(buffer.w_data, queue[0] if write else rng.getrandbits(16))
            if write:
                queue.pop(0)
                outstanding += 1
                write_cycles.append(cycle)
            await ctx.tick()
            cycle += 1
        ctx.set(buffer.w_en, 0)

    async def reader(ctx):
        received.extend(await get_many(ctx, buffer.o, len(words), rng=random.Random(seed + 1), stall=stall))

    simulator = Simulator(buffer)
    simulator.add_clock(1e-8)
    simulator.add_testbench(writer, background=True)
    simulator.add_testbench(reader)
    simulator.run()
    return received, write_cycles


@pytest.mark.parametrize("depth, gaps, stall", [(2, 0.0, 0.0), (4, 0.3, 0.6), (32, 0.0, 0.8), (32, 0.5, 0.1)])
def test_words_come_out_in_order(depth, gaps, stall):
    words = [random.Random(depth).getrandbits(16) for _ in range(100)]
    received, _ = run(words, depth, gaps, stall)
    assert received == words


def test_first_word_latency_is_two_cycles():
    buffer = OutputBuffer(8, depth=4)
    seen = []

    async def testbench(ctx):
        ctx.set(buffer.o.ready, 1)
        ctx.set(buffer.w_data, 0xA5)
        ctx.set(buffer.w_en, 1)
        await ctx.tick()
        ctx.set(buffer.w_en, 0)
        for _ in range(3):
            seen.append((ctx.get(buffer.o.valid), ctx.get(buffer.o.payload)))
            await ctx.tick()

    simulator = Simulator(buffer)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    assert seen[0][0] == 0 and seen[1] == (1, 0xA5) and seen[2][0] == 0


def test_order_check_catches_a_swap():
    words = list(range(10))
    received, _ = run(words, 4, 0.0, 0.5)
    received[3], received[4] = received[4], received[3]
    assert [index for index, (got, want) in enumerate(zip(received, words, strict=True)) if got != want] == [3, 4]


def test_structure():
    assert output_buffer_structure(200, 32) == {"register_bits": 6 + 6 + 1, "bram36": 3}  # yosys: 3
    assert output_buffer_structure(30, 32)["bram36"] == 0.5  # one RAMB18
    assert output_buffer_structure(144, 2)["bram36"] == 2


@pytest.mark.parametrize("depth, message", [(1, "depth must be an int in 2..512, got 1"),
                                            (24, "depth must be a power of two in 2..512, got 24")])
def test_depth_is_checked(depth, message):
    with pytest.raises(ParameterError, match=message):
        OutputBuffer(8, depth=depth)
