"""AXI4 and AXI4-Lite port signatures, and :class:`AxiMaster`, which maps the engine's memory streams to AXI4
bursts (docs/memory.md, docs/system.md).

Signatures are seen from the master: ``Out`` members are driven by the master. Member names are the AXI signal
names in lower case (``awaddr``, ``wlast``, ...), so ``s_axi`` and ``m_axi`` ports become ``s_axi_awaddr`` and so
on in the Verilog wrapper that Vivado reads (:func:`esb_hw.hw.system.wrapper_verilog`).
"""

from __future__ import annotations

from amaranth import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ...errors import ParameterError
from ...layouts import (
    MEMORY_ADDRESS_BITS,
    MEMORY_BEAT_BITS,
    MEMORY_BEAT_BYTES,
    MEMORY_LENGTH_BITS,
    memory_read_layout,
    memory_request_layout,
    memory_write_layout,
)
from ..checks import require_int

__all__ = ["AXI_ADDRESS_BITS", "AxiMaster", "BurstSplitter", "axi4_signature", "axi_lite_signature", "burst_layout"]

#: Address bits of the AXI4 master: the ZCU102's DDR sits below 2**40 (DDR_LOW at 0, DDR_HIGH at 0x8_0000_0000).
AXI_ADDRESS_BITS = 40
#: Largest INCR burst (AXI4) and the boundary no burst may cross.
MAX_BURST_BEATS = 256
BOUNDARY_BYTES = 4096
#: AXI response codes with bit 1 set (SLVERR, DECERR) are errors.
RESPONSE_ERROR_BIT = 1


def axi_lite_signature(address_bits: int = 12, data_bits: int = 32) -> wiring.Signature:
    """AXI4-Lite, seen from the master."""
    return wiring.Signature({
        "awaddr": Out(address_bits), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wvalid": Out(1), "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(address_bits), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
        "rdata": In(data_bits), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    })


def axi4_signature(address_bits: int = AXI_ADDRESS_BITS, data_bits: int = MEMORY_BEAT_BITS,
                   id_bits: int = 1) -> wiring.Signature:
    """AXI4 (bursts, one ID), seen from the master."""
    members = {}
    for channel in ("aw", "ar"):
        members.update({f"{channel}id": Out(id_bits), f"{channel}addr": Out(address_bits), f"{channel}len": Out(8),
                        f"{channel}size": Out(3), f"{channel}burst": Out(2), f"{channel}lock": Out(1),
                        f"{channel}cache": Out(4), f"{channel}prot": Out(3), f"{channel}qos": Out(4),
                        f"{channel}valid": Out(1), f"{channel}ready": In(1)})
        if channel == "aw":
            members.update({"wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wlast": Out(1),
                            "wvalid": Out(1), "wready": In(1),
                            "bid": In(id_bits), "bresp": In(2), "bvalid": In(1), "bready": Out(1)})
    members.update({"rid": In(id_bits), "rdata": In(data_bits), "rresp": In(2), "rlast": In(1), "rvalid": In(1),
                    "rready": Out(1)})
    return wiring.Signature(members)


def burst_layout() -> data.StructLayout:
    """One burst: its byte ``address``, AXI ``length`` (beats - 1), whether it is the ``last`` of its request, and
    ``drop``: its request leaves the memory window, so the burst must not reach the bus (the bus guard)."""
    return data.StructLayout({"address": AXI_ADDRESS_BITS, "length": 8, "last": 1, "drop": 1})


class BurstSplitter(wiring.Component):
    """Cuts requests (docs/memory.md) into INCR bursts of at most 256 beats that never cross a 4 KiB boundary.

    Attributes
    ----------
    base : In(40)
        Byte address of beat 0; bits 11:0 are ignored (4 KiB aligned), so only a request's first burst can start
        inside a 4 KiB page, and every later one starts on a page boundary.
    outside : In(1)
        The bus guard's verdict on the request taken, valid in the cycle after it is taken: every burst of the
        request carries it as ``drop``.
    request : In(stream.Signature(memory_request_layout()))
        Taken when idle; a request of 0 beats makes no burst.
    burst : Out(stream.Signature(burst_layout()))

    Latency: a request's first burst is offered two cycles after it is taken. Throughput: one burst per cycle
    within a request.
    """

    def __init__(self):
        super().__init__({
            "base": In(AXI_ADDRESS_BITS),
            "outside": In(1),
            "request": In(stream.Signature(memory_request_layout())),
            "burst": Out(stream.Signature(burst_layout())),
        })

    def elaborate(self, platform):
        m = Module()
        address = Signal(MEMORY_ADDRESS_BITS)
        left = Signal(MEMORY_LENGTH_BITS)  # beats of the request from the offered burst on
        beats = Signal(range(MAX_BURST_BEATS + 1))  # the offered burst's
        byte_address = Signal(AXI_ADDRESS_BITS)
        drop = Signal()
        page_beats = MAX_BURST_BEATS  # a 4 KiB page holds 256 beats
        m.d.comb += [self.burst.payload.address.eq(byte_address), self.burst.payload.length.eq(beats - 1),
                     self.burst.payload.last.eq(left == beats), self.burst.payload.drop.eq(drop)]
        rest = Signal(MEMORY_LENGTH_BITS)
        m.d.comb += rest.eq(left - beats)
        with m.FSM(name="splitter"):
            with m.State("idle"):
                m.d.comb += self.request.ready.eq(1)
                with m.If(self.request.valid):
                    m.d.sync += [address.eq(self.request.payload.address), left.eq(self.request.payload.beats)]
                    with m.If(self.request.payload.beats != 0):
                        m.next = "prepare"
            with m.State("prepare"):
                to_boundary = Signal(range(page_beats + 1))
                m.d.comb += to_boundary.eq(page_beats - address[:8])
                m.d.sync += [byte_address.eq(Cat(C(0, 4), address[:8], self.base[12:] + address[8:])),
                             beats.eq(Mux(left < to_boundary, left, to_boundary)), drop.eq(self.outside)]
                m.next = "issue"
            with m.State("issue"):
                m.d.comb += self.burst.valid.eq(1)
                with m.If(self.burst.ready):
                    # Not the last burst: it ended on a page boundary, so the next one starts the next page.
                    m.d.sync += [left.eq(rest), byte_address.eq(Cat(C(0, 12), byte_address[12:] + 1)),
                                 beats.eq(Mux(rest < page_beats, rest, page_beats))]
                    with m.If(left == beats):
                        m.next = "idle"
        return m


class _Guard:
    """The bus guard of one direction: when a request is taken, the room left in the window after its first beat
    (``limit - address``, signed) and its beats are registered; in the next cycle the verdict is one compare of
    registers, ``room < beats``, which the splitters register in turn. One subtract and one compare per direction,
    off the data path."""

    def __init__(self, name: str):
        self.room = Signal(signed(MEMORY_ADDRESS_BITS + 2), name=f"{name}_room")
        self.beats = Signal(MEMORY_LENGTH_BITS, name=f"{name}_beats")

    def take(self, m: Module, limit, request) -> None:
        with m.If(request.valid & request.ready):
            m.d.sync += [self.room.eq(limit - request.payload.address), self.beats.eq(request.payload.beats)]


class AxiMaster(wiring.Component):
    """The engine's memory streams (docs/memory.md) as an AXI4 master.

    A request of ``beats`` beats from beat ``address`` becomes INCR bursts of 16-byte beats at byte address
    ``base + 16 * address``, each of at most 256 beats and never crossing a 4 KiB boundary
    (:class:`BurstSplitter`). Reads: up to ``outstanding_reads`` bursts in flight; the R beats pass straight to
    ``read_data``, with ``error`` set for SLVERR and DECERR. Writes: bursts go out on AW (up to
    ``outstanding_writes`` whose response is pending) independently of W, which never waits for AW; W beats carry
    the stream's ``strobe`` as WSTRB, and one ``write_response`` per request says whether any of its bursts had an
    error response. Requests must have at least one beat (the engine's checker refuses zero sizes): a 0-beat
    request makes no burst and no response. IDs are 0 (responses
    in order); ARCACHE/AWCACHE are 0b0011 (normal, non-cacheable, bufferable).

    The bus guard: a request whose bytes do not all lie in ``[base, base + memory_size)`` makes no burst (a window
    of 4 GiB or more counts as 4 GiB plus the size's bits 31:4: never more than the window, and all the engine's
    first beats reach; ``base + memory_size`` must not pass 2**40, which the driver ensures). A refused read gets
    its beats with ``error`` set (after every earlier read's beats); a refused write's data beats are taken and
    dropped, and it gets an error response (after every earlier write's). Each refusal pulses ``read_refused`` or
    ``write_refused`` and counts in ``refused_requests``.

    Parameters
    ----------
    outstanding_reads : int
        Read bursts in flight at most (1..64).
    outstanding_writes : int
        Write bursts whose response is pending, at most (a power of two, 2..64).

    Attributes
    ----------
    base : In(40)
        Byte address of beat 0 (bits 11:0 are ignored); hold it while requests are in flight.
    memory_size : In(40)
        The window's size in bytes (bits 3:0 are ignored); a change counts from the next cycle on. Hold it while
        requests are in flight.
    read_refused, write_refused : Out(1)
        One cycle per refused request, one cycle after its last burst is dropped (with that burst's first error
        beat, or with the request's error response).
    refused_requests : Out(16)
        Refused requests since reset, stopping at 65535 (the register map's ``WINDOW_REFUSED``).
    read_request, write_request, write_data : In(stream)
    read_data, write_response : Out(stream)
        The engine's streams, flipped (the engine connects to them directly).
    axi : Out(axi4_signature())
        The AXI4 master port (40-bit addresses, 128-bit data).

    Latency: a request's first burst reaches AR/AW two cycles after the request is taken; R beats pass
    combinationally. Throughput: one beat per cycle each way; one idle W cycle between bursts.
    """

    def __init__(self, *, outstanding_reads: int = 16, outstanding_writes: int = 8):
        require_int("outstanding_reads", outstanding_reads, 1, 64)
        require_int("outstanding_writes", outstanding_writes, 2, 64)
        if outstanding_writes & (outstanding_writes - 1):
            raise ParameterError(f"outstanding_writes must be a power of two, got {outstanding_writes}")
        self.outstanding_reads, self.outstanding_writes = outstanding_reads, outstanding_writes
        super().__init__({
            "base": In(AXI_ADDRESS_BITS), "memory_size": In(AXI_ADDRESS_BITS),
            "read_refused": Out(1), "write_refused": Out(1), "refused_requests": Out(16),
            "read_request": In(stream.Signature(memory_request_layout())),
            "read_data": Out(stream.Signature(memory_read_layout())),
            "write_request": In(stream.Signature(memory_request_layout())),
            "write_data": In(stream.Signature(memory_write_layout())),
            "write_response": Out(stream.Signature(data.StructLayout({"error": 1}))),
            "axi": Out(axi4_signature()),
        })

    def _address_channel(self, m: Module, channel: str, burst):
        axi = self.axi
        m.d.comb += [getattr(axi, f"{channel}addr").eq(burst.address), getattr(axi, f"{channel}len").eq(burst.length),
                     getattr(axi, f"{channel}size").eq((MEMORY_BEAT_BYTES - 1).bit_length()),
                     getattr(axi, f"{channel}burst").eq(1),  # INCR
                     getattr(axi, f"{channel}cache").eq(0b0011)]

    def elaborate(self, platform):
        m = Module()
        axi = self.axi
        assert BOUNDARY_BYTES == MAX_BURST_BEATS * MEMORY_BEAT_BYTES  # the splitter's page is 256 beats
        # The window in beats, registered (a change of ``memory_size`` counts from the next cycle on). A window of
        # 4 GiB or more becomes 4 GiB plus its low bits: at most the window, and at least the 4 GiB that the
        # requests' first beats reach (an OR, not a 29-bit multiplexer).
        limit = Signal(MEMORY_ADDRESS_BITS + 1)
        m.d.sync += limit.eq(Cat(self.memory_size[4:32], self.memory_size[32:].any()))

        # ---- reads -------------------------------------------------------------------------------------------
        m.submodules.read_splitter = reads = BurstSplitter()
        wiring.connect(m, wiring.flipped(self.read_request), reads.request)
        read_guard = _Guard("read")
        read_guard.take(m, limit, self.read_request)
        m.d.comb += reads.outside.eq(self._outside(read_guard.room, read_guard.beats))
        in_flight = Signal(range(self.outstanding_reads + 1))
        self._address_channel(m, "ar", reads.burst.payload)
        room = in_flight != self.outstanding_reads
        # A dropped burst is taken once every earlier burst's beats are in; its beats then go out with ``error``.
        faking, fake_left = Signal(), Signal(8)
        dropped = reads.burst.payload.drop
        m.d.comb += [axi.arvalid.eq(reads.burst.valid & ~dropped & room),
                     reads.burst.ready.eq(Mux(dropped, ~faking & (in_flight == 0), axi.arready & room)),
                     reads.base.eq(self.base)]
        issued, finished = Signal(), Signal()
        m.d.comb += [issued.eq(axi.arvalid & axi.arready), finished.eq(axi.rvalid & axi.rready & axi.rlast)]
        m.d.sync += in_flight.eq(in_flight + issued - finished)
        taken_dropped = reads.burst.valid & reads.burst.ready & dropped
        m.d.sync += self.read_refused.eq(taken_dropped & reads.burst.payload.last)  # registered: off the paths
        with m.If(taken_dropped):
            m.d.sync += [faking.eq(1), fake_left.eq(reads.burst.payload.length)]
        with m.If(faking & self.read_data.ready):
            m.d.sync += fake_left.eq(fake_left - 1)
            with m.If(fake_left == 0):
                m.d.sync += faking.eq(0)
        m.d.comb += [self.read_data.valid.eq(faking | axi.rvalid),
                     self.read_data.payload.data.eq(axi.rdata),  # an error beat's data is garbage
                     self.read_data.payload.error.eq(faking | axi.rresp[RESPONSE_ERROR_BIT]),
                     axi.rready.eq(self.read_data.ready & ~faking)]

        # ---- writes ------------------------------------------------------------------------------------------
        # Two splitters cut each request the same way: one for AW, one for the W bursts' lengths, so that W never
        # waits for an AW handshake (a slave may wait for WVALID before raising AWREADY). A request goes to both at
        # once, and both take the one verdict of the write guard.
        m.submodules.write_splitter = writes = BurstSplitter()
        m.submodules.data_splitter = data_bursts = BurstSplitter()
        write_guard = _Guard("write")
        write_guard.take(m, limit, self.write_request)
        write_outside = self._outside(write_guard.room, write_guard.beats)
        m.d.comb += [writes.base.eq(self.base), data_bursts.base.eq(self.base), writes.outside.eq(write_outside),
                     data_bursts.outside.eq(write_outside),
                     writes.request.payload.eq(self.write_request.payload),
                     data_bursts.request.payload.eq(self.write_request.payload),
                     writes.request.valid.eq(self.write_request.valid & data_bursts.request.ready),
                     data_bursts.request.valid.eq(self.write_request.valid & writes.request.ready),
                     self.write_request.ready.eq(writes.request.ready & data_bursts.request.ready)]
        # Per burst issued on AW: whether it ends its request, for the B side.
        m.submodules.ends = ends = fifo.SyncFIFOBuffered(width=1, depth=self.outstanding_writes)
        self._address_channel(m, "aw", writes.burst.payload)
        write_dropped = writes.burst.payload.drop
        answering = Signal()  # a dropped request's error response can go: every earlier burst has its response
        m.d.comb += answering.eq((ends.w_level == 0) & ~self.write_response.valid)
        m.d.comb += [axi.awvalid.eq(writes.burst.valid & ~write_dropped & ends.w_rdy),
                     writes.burst.ready.eq(Mux(write_dropped, answering, axi.awready & ends.w_rdy)),
                     ends.w_data.eq(writes.burst.payload.last), ends.w_en.eq(axi.awvalid & axi.awready)]
        refusing = Signal()  # the last burst of a dropped write is taken: its error response goes now
        m.d.comb += refusing.eq(writes.burst.valid & writes.burst.ready & write_dropped & writes.burst.payload.last)
        m.d.sync += self.write_refused.eq(refusing)

        sending, dropping = Signal(), Signal()  # a W burst is under way; it is a dropped one (its beats are eaten)
        beats_left = Signal(8)  # beats of the current W burst after this one
        m.d.comb += data_bursts.burst.ready.eq(~sending)
        with m.If(~sending & data_bursts.burst.valid):
            m.d.sync += [sending.eq(1), dropping.eq(data_bursts.burst.payload.drop),
                         beats_left.eq(data_bursts.burst.payload.length)]
        m.d.comb += [axi.wvalid.eq(sending & ~dropping & self.write_data.valid),
                     axi.wdata.eq(self.write_data.payload.data), axi.wstrb.eq(self.write_data.payload.strobe),
                     axi.wlast.eq(beats_left == 0),
                     self.write_data.ready.eq(sending & (dropping | axi.wready))]
        with m.If(self.write_data.valid & self.write_data.ready):
            m.d.sync += beats_left.eq(beats_left - 1)
            with m.If(beats_left == 0):
                m.d.sync += sending.eq(0)

        failed = Signal()  # an error response among the request's bursts so far
        answer = Signal()
        # B is taken only once its burst's entry has come through the FIFO (a B may follow its AW at once).
        m.d.comb += [axi.bready.eq(~self.write_response.valid & ends.r_rdy), ends.r_en.eq(axi.bvalid & axi.bready),
                     answer.eq(axi.bvalid & axi.bready & ends.r_data)]
        error_response = axi.bresp[RESPONSE_ERROR_BIT]
        with m.If(axi.bvalid & axi.bready):
            m.d.sync += failed.eq(Mux(ends.r_data, 0, failed | error_response))
        with m.If(answer | refusing):
            m.d.sync += [self.write_response.valid.eq(1),
                         self.write_response.payload.error.eq(failed | error_response | refusing)]
        with m.Elif(self.write_response.ready):
            m.d.sync += self.write_response.valid.eq(0)

        # ---- the guard's count ----------------------------------------------------------------------------------
        count = self.refused_requests
        with m.If(self.read_refused | self.write_refused):
            with m.If(count[1:].all()):  # 65534 or more: it stops at 65535
                m.d.sync += count.eq(0xFFFF)
            with m.Else():
                m.d.sync += count.eq(count + self.read_refused + self.write_refused)
        return m

    def _outside(self, room, beats):
        """The guard's verdict: the request's beats do not all fit the room left in the window after its first
        beat (a negative room: the first beat is already outside). A room of ``2**20`` beats or more holds any
        request, so the compare is as wide as ``beats``."""
        width = len(beats)
        return room[-1] | (~room[width:-1].any() & (room[:width] < beats))
