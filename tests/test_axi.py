# amaranth: UnusedElaboratable=no
"""BurstSplitter and AxiMaster (esb_hw/hw/bus/axi.py) in Amaranth's simulator against an AXI4 slave model with
random back-pressure on all five channels: bursts of at most 256 beats that never cross 4 KiB and start at
``base + 16 * address``, read beats in order with SLVERR/DECERR as ``error``, writes with their strobes, one
response per write request carrying its bursts' errors, and the outstanding-read limit."""

import random

import pytest
from amaranth.sim import Simulator

from esb_hw.errors import ParameterError
from esb_hw.hw.bus.axi import AxiMaster, BurstSplitter
from esb_hw.sim.axi_slave import Slave
from esb_hw.sim.streams import get_many, put, put_many

BASE = 0x12_3456_7000
CYCLE_LIMIT = 20_000


def reference_bursts(base, address, beats):
    """The bursts a request must become: (byte address, beats, last)."""
    bursts = []
    while beats:
        size = min(beats, 256 - address % 256)
        beats -= size
        bursts.append((base + 16 * address, size, beats == 0))
        address += size
    return bursts


REQUESTS = [(0, 1), (255, 2), (250, 300), (256, 256), (1000, 0), (7, 1000), (0x0FF_FF00, 513), (0x0FF_FFFF, 1)]


async def watchdog(ctx):
    """A background testbench: a hang fails the test instead of running forever."""
    for _ in range(CYCLE_LIMIT):
        await ctx.tick()
    raise AssertionError(f"the testbench did not finish within {CYCLE_LIMIT} cycles")


def test_splitter_cuts_at_256_beats_and_4_kib():
    dut = BurstSplitter()
    seen = []

    async def source(ctx):
        ctx.set(dut.base, BASE | 0xABC)  # low 12 bits ignored
        await put_many(ctx, dut.request, [{"address": a, "beats": b} for a, b in REQUESTS], rng=random.Random(1),
                       idle=0.3)

    async def sink(ctx):
        total = sum(len(reference_bursts(BASE, a, b)) for a, b in REQUESTS)
        for payload in await get_many(ctx, dut.burst, total, rng=random.Random(2), stall=0.3):
            seen.append((payload.address, payload.length + 1, bool(payload.last)))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(source)
    simulator.add_testbench(sink)
    simulator.add_testbench(watchdog, background=True)
    simulator.run()
    expected = [burst for a, b in REQUESTS for burst in reference_bursts(BASE, a, b)]
    assert seen == expected


#: The largest window: the guard lets every request through (the engine reaches 4 GiB).
WHOLE = (1 << 40) - 16


def run_master(body, slave_options=None, outstanding_reads=16, feeder=None, feeders=(), memory_size=WHOLE,
               dut=None, watchers=()):
    """Run ``body`` (and ``feeder``/``feeders``, testbenches that offer requests and data meanwhile, and
    ``watchers``, background ones) against the slave, in a window of ``memory_size`` bytes; returns the slave."""
    dut = dut or AxiMaster(outstanding_reads=outstanding_reads)
    slave = Slave(dut.axi, random.Random(5), **(slave_options or {}))
    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(slave.reads, background=True)
    simulator.add_testbench(slave.writes, background=True)

    async def testbench(ctx):
        ctx.set(dut.base, BASE)
        ctx.set(dut.memory_size, memory_size)
        await ctx.tick().repeat(2)  # the window counts from the cycle after it is set
        await body(ctx, dut, slave)

    simulator.add_testbench(testbench)
    for function in ([feeder] if feeder else []) + list(feeders):
        async def feed(ctx, function=function):
            await ctx.tick().repeat(2)  # the window (memory_size) counts from the cycle after it is set
            await function(ctx, dut)
        simulator.add_testbench(feed)
    for function in watchers:
        async def watch(ctx, function=function):
            await function(ctx, dut)
        simulator.add_testbench(watch, background=True)
    simulator.run()  # the slave raises if the testbenches hang
    return slave


READS = [(0, 3), (250, 20), (4096, 300), (17, 1), (0x40, 0)]


@pytest.mark.parametrize("outstanding", [1, 16])
def test_reads_in_order_with_bursts_checked(outstanding):
    results = {}

    async def requests(ctx, dut):
        await put_many(ctx, dut.read_request, [{"address": a, "beats": b} for a, b in READS], rng=random.Random(3),
                       idle=0.2)

    async def body(ctx, dut, slave):
        expected = [slave.data(BASE + 16 * (a + i)) for a, b in READS for i in range(b)]
        beats = await get_many(ctx, dut.read_data, len(expected), rng=random.Random(4), stall=0.3)
        results["data"] = [beat.data for beat in beats]
        results["errors"] = [beat.error for beat in beats]
        results["expected"] = expected

    slave = run_master(body, outstanding_reads=outstanding, feeder=requests)
    assert "data" in results, "the reads did not finish"
    assert results["data"] == results["expected"]
    assert not any(results["errors"])
    assert slave.ar == [burst[:2] for a, b in READS for burst in reference_bursts(BASE, a, b)]
    assert slave.max_in_flight <= outstanding


def test_read_errors_mark_their_beats():
    bad = (BASE + 16 * 260, BASE + 16 * 262)
    decode = (BASE + 16 * 5000, BASE + 16 * 5001)
    results = {}

    async def body(ctx, dut, slave):
        await put(ctx, dut.read_request, {"address": 250, "beats": 20})
        beats = await get_many(ctx, dut.read_data, 20, rng=random.Random(4), stall=0.3)
        await put(ctx, dut.read_request, {"address": 4999, "beats": 3})
        beats += await get_many(ctx, dut.read_data, 3)
        results["errors"] = [beat.error for beat in beats]

    run_master(body, {"bad_reads": [bad], "decode_error": [decode]})
    assert "errors" in results, "the reads did not finish"
    assert [index for index, error in enumerate(results["errors"]) if error] == [10, 11, 21]


@pytest.mark.parametrize(("writes", "expected"), [
    ([(3, 2), (250, 12), (600, 260)], [0, 0, 1]),  # the last request has a bad burst
    # A bad first burst of a three-burst request, then good requests: the error belongs to its request only.
    ([(600, 260), (3, 2), (250, 12)], [1, 0, 0]),
])
def test_writes_with_strobes_and_one_response_per_request(writes, expected):
    rng = random.Random(9)
    beats = [(rng.getrandbits(128), rng.getrandbits(16)) for a, b in writes for _ in range(b)]
    results = {}

    async def requests(ctx, dut):
        await put_many(ctx, dut.write_request, [{"address": a, "beats": b} for a, b in writes])

    async def data(ctx, dut):  # apart from the requests, as the engine's storer sends them
        await put_many(ctx, dut.write_data, [{"data": d, "strobe": s} for d, s in beats], rng=random.Random(6),
                       idle=0.3)

    async def body(ctx, dut, slave):
        responses = await get_many(ctx, dut.write_response, len(writes), rng=random.Random(7), stall=0.3)
        results["responses"] = [response.error for response in responses]

    slave = run_master(body, {"bad_writes": [(BASE + 16 * 605, BASE + 16 * 606)]}, feeders=[requests, data])
    assert "responses" in results, "the writes did not finish"
    assert results["responses"] == expected
    addresses = [BASE + 16 * (a + i) for a, b in writes for i in range(b)]
    bad = BASE + 16 * 605
    good = [(address, beat) for address, beat in zip(addresses, beats, strict=True)
            if not bad - 16 * 255 <= address <= bad + 16 * 255]  # away from the bad burst, whose beats may not land
    for address, (value, strobe) in good:
        for lane in range(16):
            if strobe >> lane & 1:
                assert slave.memory[address + lane] == value >> (8 * lane) & 0xFF
            else:
                assert address + lane not in slave.memory
    assert slave.aw == [burst[:2] for a, b in writes for burst in reference_bursts(BASE, a, b)]


def test_the_burst_check_catches_a_crossing():
    slave = Slave(None, random.Random(0))
    with pytest.raises(AssertionError, match="crosses 4 KiB"):
        slave.check_burst(4096 - 16, 1)


def test_parameters_are_checked():
    with pytest.raises(ParameterError, match="outstanding_reads"):
        AxiMaster(outstanding_reads=0)
    with pytest.raises(ParameterError, match="power of two"):
        AxiMaster(outstanding_writes=6)


@pytest.mark.parametrize("options", [{"aw_after_w": True}, {"b_rate": 0.05}], ids=["aw_after_w", "slow_b"])
def test_many_small_writes_under_pressure(options):
    """More bursts than the outstanding limit, with a slave that raises AWREADY only after WVALID (allowed by AXI)
    or answers B rarely (the AW side then waits for room)."""
    writes = [(16 * index + 250 * (index % 3), 1 + index % 3) for index in range(20)]
    rng = random.Random(11)
    beats = [(rng.getrandbits(128), 0xFFFF) for a, b in writes for _ in range(b)]
    results = {}

    async def requests(ctx, dut):
        await put_many(ctx, dut.write_request, [{"address": a, "beats": b} for a, b in writes])

    async def data(ctx, dut):
        await put_many(ctx, dut.write_data, [{"data": d, "strobe": s} for d, s in beats], rng=random.Random(6),
                       idle=0.2)

    async def body(ctx, dut, slave):
        responses = await get_many(ctx, dut.write_response, len(writes), rng=random.Random(7), stall=0.2)
        results["responses"] = [response.error for response in responses]

    slave = run_master(body, options, feeders=[requests, data])
    assert results["responses"] == [0] * len(writes)
    assert slave.aw == [burst[:2] for a, b in writes for burst in reference_bursts(BASE, a, b)]
    addresses = [BASE + 16 * (a + i) for a, b in writes for i in range(b)]
    for address, (value, _) in zip(addresses, beats, strict=True):
        assert bytes(slave.memory[address + lane] for lane in range(16)) == value.to_bytes(16, "little")


def test_the_stability_check_catches_a_dropped_valid():
    slave = Slave(None, random.Random(0))
    slave.check_stable("aw", 1, 0, (0x1000, 3))
    with pytest.raises(AssertionError, match="VALID dropped"):
        slave.check_stable("aw", 0, 0, (0x1000, 3))


# ---- the bus guard ----------------------------------------------------------------------------------------------

#: A window of 1,000 beats.
WINDOW = 16 * 1000


async def count_refusals(ctx, dut, counts):
    """A background testbench: the refusal pulses, per direction."""
    async for _, _, read, write in ctx.tick().sample(dut.read_refused, dut.write_refused):
        counts["read"] += read
        counts["write"] += write


def test_the_guard_refuses_reads_that_leave_the_window():
    """A read whose beats leave the window makes no burst; its beats come back in order with ``error`` set (their
    data is garbage), after the earlier reads' beats; reads inside it, even to its last beat, are untouched."""
    reads = [(0, 3), (990, 20), (4, 2), (999, 1), (1000, 1), (250, 300), (0x0FF_FFFF, 1)]
    inside = [(a, b) for a, b in reads if a + b <= 1000]
    results, counts = {}, {"read": 0, "write": 0}

    async def requests(ctx, dut):
        await put_many(ctx, dut.read_request, [{"address": a, "beats": b} for a, b in reads], rng=random.Random(3),
                       idle=0.2)

    async def body(ctx, dut, slave):
        total = sum(b for _, b in reads)
        beats = await get_many(ctx, dut.read_data, total, rng=random.Random(4), stall=0.3)
        results["beats"] = [(None if beat.error else beat.data, beat.error) for beat in beats]
        results["expected"] = [(slave.data(BASE + 16 * (a + i)), 0) if a + b <= 1000 else (None, 1)
                               for a, b in reads for i in range(b)]
        for _ in range(4):
            await ctx.tick()
        results["count"] = ctx.get(dut.refused_requests)

    slave = run_master(body, feeder=requests, watchers=[lambda ctx, dut: count_refusals(ctx, dut, counts)],
                       memory_size=WINDOW)
    assert results["beats"] == results["expected"]
    assert slave.ar == [burst[:2] for a, b in inside for burst in reference_bursts(BASE, a, b)]
    assert counts == {"read": 3, "write": 0} and results["count"] == 3


def test_the_guard_refuses_writes_that_leave_the_window():
    """A write that leaves the window makes no burst and writes no byte: its data beats are taken and dropped (the
    next request's data still goes to the next request), and its response is an error, in order."""
    writes = [(3, 2), (995, 10), (250, 12), (1000, 1), (998, 2), (900, 300), (0xFFF_FF00, 600), (10, 3)]
    rng = random.Random(9)
    beats = [(rng.getrandbits(128), 0xFFFF) for a, b in writes for _ in range(b)]
    results, counts = {}, {"read": 0, "write": 0}

    async def requests(ctx, dut):
        await put_many(ctx, dut.write_request, [{"address": a, "beats": b} for a, b in writes])

    async def data(ctx, dut):
        await put_many(ctx, dut.write_data, [{"data": d, "strobe": s} for d, s in beats], rng=random.Random(6),
                       idle=0.3)

    async def body(ctx, dut, slave):
        responses = await get_many(ctx, dut.write_response, len(writes), rng=random.Random(7), stall=0.3)
        results["responses"] = [response.error for response in responses]
        for _ in range(4):
            await ctx.tick()
        results["count"] = ctx.get(dut.refused_requests)

    slave = run_master(body, feeders=[requests, data],
                       watchers=[lambda ctx, dut: count_refusals(ctx, dut, counts)], memory_size=WINDOW)
    assert results["responses"] == [0, 1, 0, 1, 0, 1, 1, 0]  # with refused requests of two and three bursts
    assert slave.aw == [burst[:2] for a, b in writes if a + b <= 1000 for burst in reference_bursts(BASE, a, b)]
    assert all(address < BASE + WINDOW for address in slave.memory), "a byte outside the window was written"
    position = 0
    for address, count in writes:
        for index in range(count):
            value = beats[position + index][0]
            written = bytes(slave.memory.get(BASE + 16 * (address + index) + lane, -1) & 0xFF for lane in range(16))
            if address + count <= 1000:
                assert written == value.to_bytes(16, "little")
        position += count
    assert counts == {"read": 0, "write": 4} and results["count"] == 4


def test_a_zero_window_refuses_everything():
    results = {}

    async def requests(ctx, dut):
        await put_many(ctx, dut.read_request, [{"address": 0, "beats": 1}])

    async def body(ctx, dut, slave):
        beat, = await get_many(ctx, dut.read_data, 1)
        results["error"] = beat.error

    slave = run_master(body, feeder=requests, memory_size=0)
    assert results["error"] == 1 and slave.ar == []


@pytest.mark.parametrize(("memory_size", "beats", "refused"), [
    (1 << 32, 1, False), (1 << 32, 2, True),  # exactly 4 GiB: the last beat of the reach, and one past it
    ((1 << 32) + 16, 2, False), ((1 << 32) + 16, 3, True),  # 4 GiB and a beat: one beat more
    ((1 << 40) - 16, 300, False)])  # the largest window: 4 GiB plus its low bits
def test_a_window_of_4_gib_or_more(memory_size, beats, refused):
    """Past 4 GiB the guard's limit is 4 GiB plus the size's bits 31:4: never more than the window."""
    results = {}

    async def requests(ctx, dut):
        await put_many(ctx, dut.read_request, [{"address": (1 << 28) - 1, "beats": beats}])

    async def body(ctx, dut, slave):
        got = await get_many(ctx, dut.read_data, beats)
        results["errors"] = [beat.error for beat in got]

    slave = run_master(body, feeder=requests, memory_size=memory_size)
    assert results["errors"] == [int(refused)] * beats
    assert (slave.ar == []) is refused
