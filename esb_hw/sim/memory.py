"""A memory model for the layer engine's memory streams (docs/memory.md), one cycle model for both simulators.

:class:`MemoryModel` serves read requests and write requests from a ``bytearray``:

- at most one beat per cycle each way;
- each request waits a random latency (``latency``, inclusive range of cycles) after it is accepted;
- random stalls: ``request.ready`` and the read data's ``valid`` are held low on random cycles (with probability
  ``stall``); a beat once offered stays offered until taken, as on AXI;
- up to ``outstanding`` requests per direction are accepted ahead of their data;
- a read or a write that touches a beat in ``bad_beats``, or beyond the memory, answers with ``error``;
- while ``paused`` is set it answers nothing: no request, data beat or response is taken or offered (a memory
  that stops answering, for the abort's tests); a beat already offered stays offered.

It counts the beats moved. :meth:`MemoryModel.serve` runs it in an Amaranth testbench; :meth:`MemoryModel.serve_cocotb`
runs it on the emitted Verilog, with the same behaviour cycle for cycle.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from cocotb.triggers import ReadOnly, RisingEdge

from esb_hw.layouts import MEMORY_ADDRESS_BITS, MEMORY_BEAT_BYTES, MEMORY_LENGTH_BITS

__all__ = ["MemoryModel"]


@dataclass
class _Request:
    address: int  # beat address
    beats: int
    due: int  # the cycle its first beat (or its response) may go
    done: int = 0  # beats moved
    error: bool = False


@dataclass
class MemoryModel:
    """The memory behind the engine's streams.

    Parameters
    ----------
    size : int
        Bytes (a multiple of 16).
    rng : random.Random
        Drives the latencies and stalls (seeded: runs repeat exactly).
    latency : (int, int)
        Cycles from a request's acceptance to its first beat (reads) or to its response after the last beat
        (writes).
    stall : float
        Probability of a stall on each cycle of each port.
    outstanding : int
        Requests accepted per direction before the first has finished.
    bad_beats : set of int
        Beat addresses that answer with an error.
    """

    size: int
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    latency: tuple[int, int] = (20, 100)
    stall: float = 0.2
    outstanding: int = 4
    bad_beats: set[int] = field(default_factory=set)
    paused: bool = False

    def __post_init__(self):
        if self.size % MEMORY_BEAT_BYTES:
            raise ValueError(f"size must be a multiple of {MEMORY_BEAT_BYTES}, got {self.size}")
        self.memory = bytearray(self.size)
        self.cycle = 0
        self.reads: deque[_Request] = deque()
        self.writes: deque[_Request] = deque()  # accepted, data still to come
        self.responses: deque[_Request] = deque()  # data done, response due
        self.beats_read = self.beats_written = 0
        self.writes_seen: list[tuple[int, int]] = []  # (byte address, byte count) of every byte written
        self._offering = False  # a read beat is on the bus
        self._answering = False

    @property
    def quiet(self) -> bool:
        """No transaction is in flight: every request taken has all its beats and its response."""
        return not (self.reads or self.writes or self.responses)

    # ---- contents ----------------------------------------------------------------------------------------------
    def write_bytes(self, address: int, blob: bytes) -> None:
        self.memory[address: address + len(blob)] = blob

    def read_bytes(self, address: int, count: int) -> bytes:
        return bytes(self.memory[address: address + count])

    def _bad(self, beat: int) -> bool:
        return beat in self.bad_beats or (beat + 1) * MEMORY_BEAT_BYTES > self.size

    # ---- one cycle ---------------------------------------------------------------------------------------------
    def outputs(self) -> dict:
        """What the memory drives in this cycle (before the edge)."""
        stall = self.rng.random
        read = self.reads[0] if self.reads else None
        if not self._offering:
            self._offering = (read is not None and read.due <= self.cycle and stall() >= self.stall
                              and not self.paused)
        beat_address = read.address + read.done if self._offering else 0
        data, error = 0, 0
        if self._offering:
            if self._bad(beat_address):
                error = 1
            else:
                start = beat_address * MEMORY_BEAT_BYTES
                data = int.from_bytes(self.memory[start: start + MEMORY_BEAT_BYTES], "little")
        if not self._answering:
            self._answering = bool(self.responses) and self.responses[0].due <= self.cycle and not self.paused
        taking = not self.paused
        return {
            "read_request_ready": int(len(self.reads) < self.outstanding and stall() >= self.stall and taking),
            "read_data_valid": int(self._offering), "read_data": data, "read_error": error,
            "write_request_ready": int(len(self.writes) < self.outstanding and stall() >= self.stall and taking),
            "write_data_ready": int(bool(self.writes) and stall() >= self.stall and taking),
            "response_valid": int(self._answering),
            "response_error": int(self._answering and self.responses[0].error),
        }

    def edge(self, driven: dict, sampled: dict) -> None:
        """Update on the clock edge: ``driven`` is what :meth:`outputs` returned, ``sampled`` the engine's
        outputs at the edge (``read_request_valid``, ``read_request_address``, ``read_request_beats``,
        ``read_data_ready``, the same for ``write_request``, ``write_data_valid``, ``write_data``,
        ``write_strobe``, ``response_ready``)."""
        low, high = self.latency
        if driven["read_request_ready"] and sampled["read_request_valid"]:
            self.reads.append(_Request(sampled["read_request_address"], sampled["read_request_beats"],
                                       self.cycle + 1 + self.rng.randint(low, high)))
        if driven["read_data_valid"] and sampled["read_data_ready"]:
            read = self.reads[0]
            read.done += 1
            self.beats_read += 1
            self._offering = False
            if read.done == read.beats:
                self.reads.popleft()
        if driven["write_request_ready"] and sampled["write_request_valid"]:
            self.writes.append(_Request(sampled["write_request_address"], sampled["write_request_beats"], 0))
        if driven["write_data_ready"] and sampled["write_data_valid"]:
            write = self.writes[0]
            beat = write.address + write.done
            if self._bad(beat):
                write.error = True
            else:
                self._store(beat, sampled["write_data"], sampled["write_strobe"])
            write.done += 1
            self.beats_written += 1
            if write.done == write.beats:
                self.writes.popleft()
                write.due = self.cycle + 1 + self.rng.randint(low, high) // 4
                self.responses.append(write)
        if driven["response_valid"] and sampled["response_ready"]:
            self.responses.popleft()
            self._answering = False
        self.cycle += 1

    def _store(self, beat: int, value: int, strobe: int) -> None:
        blob = value.to_bytes(MEMORY_BEAT_BYTES, "little")
        for byte in range(MEMORY_BEAT_BYTES):
            if strobe >> byte & 1:
                address = beat * MEMORY_BEAT_BYTES + byte
                self.memory[address] = blob[byte]
                self.writes_seen.append((address, 1))

    # ---- simulators --------------------------------------------------------------------------------------------
    async def serve(self, ctx, engine) -> None:
        """Serve ``engine``'s ``read_request``, ``read_data``, ``write_request``, ``write_data`` and
        ``write_response`` streams in an Amaranth testbench (runs until the simulation stops)."""
        ports = _amaranth_ports(engine)
        names = list(ports["sampled"])
        while True:
            driven = self.outputs()
            for name, signal in ports["driven"].items():
                ctx.set(signal, driven[name])
            _, _, *values = await ctx.tick().sample(*ports["sampled"].values())
            self.edge(driven, dict(zip(names, (int(value) for value in values), strict=True)))

    async def serve_cocotb(self, dut) -> None:
        """The same on the emitted Verilog (ports as Amaranth flattens them: ``read_request__valid``). Call it
        just after a rising edge; it drives after each edge and samples in the ``ReadOnly`` phase."""
        driven_handles = {name: getattr(dut, port) for name, port in _VERILOG_DRIVEN.items()}
        sampled_handles = {name: getattr(dut, port) for name, port in _VERILOG_SAMPLED.items()}
        request_bits = len(sampled_handles["read_request_address"])
        address_mask = (1 << MEMORY_ADDRESS_BITS) - 1
        while True:
            driven = self.outputs()
            for name, handle in driven_handles.items():
                handle.value = _verilog_value(name, driven)
            await ReadOnly()
            raw = {name: int(handle.value) for name, handle in sampled_handles.items()}
            sampled = dict(raw)
            for direction in ("read_request", "write_request"):
                payload = raw[f"{direction}_address"]
                sampled[f"{direction}_address"] = payload & address_mask
                sampled[f"{direction}_beats"] = payload >> MEMORY_ADDRESS_BITS
            sampled["write_data"] = raw["write_data"] & ((1 << 128) - 1)
            sampled["write_strobe"] = raw["write_data"] >> 128
            assert request_bits == MEMORY_ADDRESS_BITS + MEMORY_LENGTH_BITS
            self.edge(driven, sampled)
            await RisingEdge(dut.clk)


_VERILOG_DRIVEN = {
    "read_request_ready": "read_request__ready", "read_data_valid": "read_data__valid",
    "read_data": "read_data__payload", "write_request_ready": "write_request__ready",
    "write_data_ready": "write_data__ready", "response_valid": "write_response__valid",
    "response_error": "write_response__payload",
}
_VERILOG_SAMPLED = {  # the request payloads are split into address and beats, write data into data and strobe
    "read_request_valid": "read_request__valid", "read_request_address": "read_request__payload",
    "read_data_ready": "read_data__ready", "write_request_valid": "write_request__valid",
    "write_request_address": "write_request__payload",
    "write_data_valid": "write_data__valid", "write_data": "write_data__payload",
    "response_ready": "write_response__ready",
}


def _verilog_value(name: str, driven: dict) -> int:
    if name == "read_data":
        return driven["read_data"] | driven["read_error"] << 128
    return driven[name]


def _amaranth_ports(engine) -> dict:
    return {
        "driven": {
            "read_request_ready": engine.read_request.ready, "read_data_valid": engine.read_data.valid,
            "read_data": engine.read_data.payload.data, "read_error": engine.read_data.payload.error,
            "write_request_ready": engine.write_request.ready, "write_data_ready": engine.write_data.ready,
            "response_valid": engine.write_response.valid, "response_error": engine.write_response.payload.error,
        },
        "sampled": {
            "read_request_valid": engine.read_request.valid,
            "read_request_address": engine.read_request.payload.address,
            "read_request_beats": engine.read_request.payload.beats,
            "read_data_ready": engine.read_data.ready,
            "write_request_valid": engine.write_request.valid,
            "write_request_address": engine.write_request.payload.address,
            "write_request_beats": engine.write_request.payload.beats,
            "write_data_valid": engine.write_data.valid, "write_data": engine.write_data.payload.data,
            "write_strobe": engine.write_data.payload.strobe, "response_ready": engine.write_response.ready,
        },
    }
