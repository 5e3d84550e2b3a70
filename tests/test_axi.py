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


class Slave:
    """An AXI4 slave with random ready/valid gaps, a sparse byte memory and error ranges."""

    def __init__(self, axi, rng, *, bad_reads=(), bad_writes=(), decode_error=(), aw_after_w=False, b_rate=0.5):
        self.axi, self.rng = axi, rng
        self.aw_after_w, self.b_rate = aw_after_w, b_rate  # AWREADY only once WVALID was seen; B answer rate
        self.offered = {}  # channel -> payload offered and not taken in the last cycle
        self.memory = {}
        self.bad_reads, self.bad_writes, self.decode_error = bad_reads, bad_writes, decode_error
        self.ar, self.aw = [], []
        self.w_beats, self.applied = [], []
        self.max_in_flight = 0

    def check_stable(self, channel, valid, ready, payload):
        """AXI: once VALID is high it stays high, with the same payload, until READY."""
        if channel in self.offered:
            assert valid and payload == self.offered[channel], f"{channel}: VALID dropped or payload changed"
            del self.offered[channel]
        if valid and not ready:
            self.offered[channel] = payload

    def check_burst(self, address, length):
        beats = length + 1
        assert beats <= 256 and address % 16 == 0
        assert address // 4096 == (address + 16 * beats - 1) // 4096, f"burst at {address:#x} crosses 4 KiB"

    def data(self, address):
        return int.from_bytes(bytes(self.memory.get(address + i, (address + i * 7) & 0xFF) for i in range(16)),
                              "little")

    def response(self, address, bad):
        if any(low <= address < high for low, high in self.decode_error):
            return 3
        return 2 if any(low <= address < high for low, high in bad) else 0

    async def reads(self, ctx):
        axi, rng = self.axi, self.rng
        pending = []  # bursts accepted, not yet answered
        beat = 0
        for _cycle in range(CYCLE_LIMIT):
            ctx.set(axi.arready, rng.random() < 0.6)
            if pending and rng.random() < 0.7:
                address, length = pending[0]
                ctx.set(axi.rvalid, 1)
                ctx.set(axi.rdata, self.data(address + 16 * beat))
                ctx.set(axi.rresp, self.response(address + 16 * beat, self.bad_reads))
                ctx.set(axi.rlast, beat == length)
            else:
                ctx.set(axi.rvalid, 0)
                ctx.set(axi.rdata, rng.getrandbits(128))
                ctx.set(axi.rlast, rng.getrandbits(1))
                ctx.set(axi.rresp, rng.getrandbits(2))
            _, _, arvalid, arready, araddr, arlen, rvalid, rready = await ctx.tick().sample(
                axi.arvalid, axi.arready, axi.araddr, axi.arlen, axi.rvalid, axi.rready)
            self.check_stable("ar", arvalid, arready, (araddr, arlen))
            if rvalid and rready:
                beat += 1
                if beat == pending[0][1] + 1:
                    pending.pop(0)
                    beat = 0
            if arvalid and arready:
                self.check_burst(araddr, arlen)
                self.ar.append((araddr, arlen + 1))
                pending.append((araddr, arlen))
            self.max_in_flight = max(self.max_in_flight, len(pending))
        raise AssertionError(f"the testbench did not finish within {CYCLE_LIMIT} cycles")

    async def writes(self, ctx):
        axi, rng = self.axi, self.rng
        bursts, responses = [], []  # accepted AW; B responses owed
        beat, failed = 0, 0
        lengths = []  # W burst lengths, as the W beats show them (WLAST), checked against AW in order
        seen_wvalid = False
        while True:
            ctx.set(axi.awready, rng.random() < 0.6 and (seen_wvalid or not self.aw_after_w))
            ctx.set(axi.wready, rng.random() < 0.6)
            if responses and rng.random() < self.b_rate:
                ctx.set(axi.bvalid, 1)
                ctx.set(axi.bresp, responses[0])
            else:
                ctx.set(axi.bvalid, 0)
                ctx.set(axi.bresp, rng.getrandbits(2))
            _, _, awvalid, awready, awaddr, awlen, wvalid, wready, wdata, wstrb, wlast, bvalid, bready = \
                await ctx.tick().sample(axi.awvalid, axi.awready, axi.awaddr, axi.awlen, axi.wvalid, axi.wready,
                                        axi.wdata, axi.wstrb, axi.wlast, axi.bvalid, axi.bready)
            self.check_stable("aw", awvalid, awready, (awaddr, awlen))
            self.check_stable("w", wvalid, wready, (wdata, wstrb, wlast))
            seen_wvalid = seen_wvalid or wvalid
            if bvalid and bready:
                responses.pop(0)
            if awvalid and awready:
                self.check_burst(awaddr, awlen)
                self.aw.append((awaddr, awlen + 1))
                bursts.append((awaddr, awlen))
            if wvalid and wready:
                self.w_beats.append((wdata, wstrb, wlast))
                beat += 1
                if wlast:
                    lengths.append(beat)
                    beat = 0
            # Apply each burst once both its AW and its W beats are in (W may come first).
            while bursts and len(lengths) > 0 and len(self.applied) < len(self.aw) and \
                    len(self.applied) < len(lengths):
                index = len(self.applied)
                address, length = self.aw[index]
                assert lengths[index] == length, f"burst {index}: {lengths[index]} W beats for AWLEN+1 = {length}"
                start = sum(lengths[:index])
                failed = 0
                for offset, (data, strobe, _) in enumerate(self.w_beats[start:start + length]):
                    here = address + 16 * offset
                    failed = max(failed, self.response(here, self.bad_writes))
                    if not failed:
                        for lane in range(16):
                            if strobe >> lane & 1:
                                self.memory[here + lane] = data >> (8 * lane) & 0xFF
                self.applied.append(index)
                responses.append(failed)


def run_master(body, slave_options=None, outstanding_reads=16, feeder=None, feeders=()):
    """Run ``body`` (and ``feeder``/``feeders``, testbenches that offer requests and data meanwhile) against the
    slave; returns the slave."""
    dut = AxiMaster(outstanding_reads=outstanding_reads)
    slave = Slave(dut.axi, random.Random(5), **(slave_options or {}))
    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(slave.reads, background=True)
    simulator.add_testbench(slave.writes, background=True)

    async def testbench(ctx):
        ctx.set(dut.base, BASE)
        await body(ctx, dut, slave)

    simulator.add_testbench(testbench)
    for function in ([feeder] if feeder else []) + list(feeders):
        async def feed(ctx, function=function):
            await function(ctx, dut)
        simulator.add_testbench(feed)
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
