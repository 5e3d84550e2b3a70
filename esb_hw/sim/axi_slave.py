"""An AXI4 slave model for Amaranth's simulator: random back-pressure on all five channels, a sparse byte memory,
error ranges, and checks of the master's protocol (stable payloads while VALID waits, bursts of at most 256 beats
that never cross 4 KiB). Used by ``tests/test_axi.py`` and the memory-window tests of the engine behind the AXI
master (``tests/test_window.py``)."""

from __future__ import annotations

__all__ = ["Slave"]

#: Cycles a slave serves before it fails the test (a hang fails fast instead of running forever).
CYCLE_LIMIT = 20_000


class Slave:
    """An AXI4 slave with random ready/valid gaps, a sparse byte memory and error ranges."""

    def __init__(self, axi, rng, *, bad_reads=(), bad_writes=(), decode_error=(), aw_after_w=False, b_rate=0.5,
                 cycle_limit=CYCLE_LIMIT):
        self.axi, self.rng, self.cycle_limit = axi, rng, cycle_limit
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
        for _cycle in range(self.cycle_limit):
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
        raise AssertionError(f"the testbench did not finish within {self.cycle_limit} cycles")

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
