"""cocotb run of the whole system (``esb_system``: the wrapper Vivado sees) through the host driver, touching only
its AXI4-Lite, AXI4 and interrupt ports (:mod:`esb_hw.sim.axi_bus`).

Parameters (``load_params()``): ``bundles`` (program bundle files), ``runs`` (in order, on one system without a
reset between them: ``bundle`` index, ``timeout`` seconds of simulated time, ``interrupt`` flag, ``poison``
``[offset, bytes]`` of the buffer whose reads answer SLVERR, or null, ``stall`` ``{"channel": "r"|"w"|"b",
"after": beats, "cycles": n, "excused": true}``: the memory stops that channel for ``n`` cycles once ``after`` beats
of the run have moved on it (the watchdog ignores it unless ``excused`` is false), or null; ``abort_timeout``
seconds for the driver's abort), ``pause`` (probability of a pause on every channel each cycle), ``seed``,
``memory_bytes``, ``progress_file`` ("" for none) and ``watchdog_cycles``. Around each run's image lie canary
bytes, checked after the run (``canaries_intact``), and every AR and AW burst of the run is checked against the
run's memory window, the bundle's image (``outside``: the bursts that leave it).

A watchdog fails the test when the engine is busy and no beat has moved on ``m_axi`` for ``watchdog_cycles``
cycles (outside a planned stall), naming the run and the bus state it hung in: a hang fails in seconds, not at the
driver's timeout.

Writes ``results.json`` into the run directory: per run the outcome (``ok``, ``RunFailed``, ``DriverTimeout``,
...), the message, the output bytes (hex) and counters, whether the interrupt rose at the end and was low after
the driver cleared it; and the bursts seen on AR and AW (count, longest, any crossing a 4 KiB boundary).
"""

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from esb_hw.driver import Accelerator, DriverError, ProgramBundle
from esb_hw.sim import PARAMS_ENV, load_params
from esb_hw.sim.axi_bus import CocotbBus

CLOCK_NS = 10


class Monitor:
    """Every AR and AW handshake, and the cycles where the run ended (a status LED rose) and the interrupt rose."""

    def __init__(self, dut, watchdog_cycles: int):
        self.dut = dut
        self.cycle = 0
        self.bursts = {"ar": [], "aw": []}
        self.ends, self.interrupts = [], []
        self.handshakes = dict.fromkeys(("ar", "r", "aw", "w", "b"), 0)
        self.last_beat = 0  # the last cycle a beat moved on m_axi
        self.watchdog_cycles = watchdog_cycles
        self.run = 0
        self.stall: Stall | None = None
        self.hang: str | None = None

    async def watch(self):
        dut = self.dut
        ended = interrupt = 0
        while True:
            await RisingEdge(dut.ap_clk)
            await ReadOnly()
            self.cycle += 1
            for channel in self.handshakes:
                valid, ready = getattr(dut, f"m_axi_{channel}valid"), getattr(dut, f"m_axi_{channel}ready")
                if int(valid.value) and int(ready.value):
                    self.handshakes[channel] += 1
                    self.last_beat = self.cycle
                    if channel in ("ar", "aw"):
                        self.bursts[channel].append((int(getattr(dut, f"m_axi_{channel}addr").value),
                                                     int(getattr(dut, f"m_axi_{channel}len").value) + 1))
            busy = (int(dut.leds.value) >> 1) & 1
            stalled = self.stall is not None and self.stall.left and self.stall.excused
            if not busy or stalled:
                self.last_beat = self.cycle
            elif self.cycle - self.last_beat > self.watchdog_cycles and self.hang is None:
                self.hang = (f"run {self.run}: the engine is busy and no beat has moved on m_axi for "
                             f"{self.watchdog_cycles:,} cycles (cycle {self.cycle:,}); handshakes so far "
                             f"{self.handshakes}; m_axi valid/ready now: "
                             + ", ".join(f"{channel} {int(getattr(dut, f'm_axi_{channel}valid').value)}/"
                                         f"{int(getattr(dut, f'm_axi_{channel}ready').value)}"
                                         for channel in self.handshakes))
            leds = int(dut.leds.value)
            now_ended = (leds >> 2) & 3 != 0
            if now_ended and not ended:
                self.ends.append(self.cycle)
            ended = now_ended
            now_interrupt = int(dut.interrupt.value)
            if now_interrupt and not interrupt:
                self.interrupts.append(self.cycle)
            interrupt = now_interrupt

    def summary(self) -> dict:
        result = {}
        for channel, bursts in self.bursts.items():
            crossing = [(address, beats) for address, beats in bursts
                        if address // 4096 != (address + 16 * beats - 1) // 4096]
            result[channel] = {"bursts": len(bursts), "longest": max((beats for _, beats in bursts), default=0),
                               "crossing": crossing[:5], "unaligned": sum(address % 16 != 0 for address, _ in bursts)}
        return result


class Stall:
    """Stops one channel of the ``AxiRam`` (``r``, ``w`` or ``b``) for ``cycles`` cycles once ``after`` beats have
    moved on it: a memory that stops answering mid-burst. Its pause generator wraps the channel's own."""

    def __init__(self, dut, bus, channel: str, after: int, cycles: int, excused: bool = True):
        self.dut, self.after, self.cycles, self.excused = dut, after, cycles, excused
        interface = bus.ram.read_if if channel == "r" else bus.ram.write_if
        self.channel = getattr(interface, f"{channel}_channel")
        self.valid, self.ready = getattr(dut, f"m_axi_{channel}valid"), getattr(dut, f"m_axi_{channel}ready")
        self.original = getattr(self.channel, "_pause_generator", None)
        self.left = None  # cycles of the stall still to come, once it has begun
        self.channel.set_pause_generator(self.pauses())
        self.task = cocotb.start_soon(self.watch())

    def pauses(self):
        while True:
            if self.left:
                yield True
            else:
                yield next(self.original) if self.original is not None else False

    async def watch(self):
        beats = 0
        while True:
            await RisingEdge(self.dut.ap_clk)
            await ReadOnly()
            if self.left is None:
                beats += int(self.valid.value) & int(self.ready.value)
                if beats >= self.after:
                    self.left = self.cycles
            elif self.left:
                self.left -= 1

    def remove(self) -> None:
        self.task.cancel()
        if self.original is not None:
            self.channel.set_pause_generator(self.original)
        else:
            self.channel.clear_pause_generator()


CANARY = bytes([0x5A, 0xA5]) * 2048  # 4 KiB before and after each run's image


def poison(bus, offset_range):
    """Reads of ``offset_range`` (bytes of the RAM) answer SLVERR; None restores the RAM."""
    interface = bus.ram.read_if
    if not hasattr(interface, "_clean_read"):
        interface._clean_read = interface._read
    if offset_range is None:
        interface._read = interface._clean_read
        return
    low, high = offset_range

    async def read(address, length):
        if low <= address < high:
            raise ValueError("poisoned for the test")
        return await interface._clean_read(address, length)

    interface._read = read


@cocotb.test()
async def run_system(dut):
    params = load_params()
    run_dir = Path(os.environ[PARAMS_ENV]).parent
    bundles = [ProgramBundle.load(path) for path in params["bundles"]]
    Clock(dut.ap_clk, CLOCK_NS, unit="ns").start()
    dut.ap_rst_n.value = 0
    bus = CocotbBus(dut, memory_bytes=params["memory_bytes"], pause=params["pause"], seed=params["seed"])
    await ClockCycles(dut.ap_clk, 4)
    dut.ap_rst_n.value = 1
    await ClockCycles(dut.ap_clk, 2)
    monitor = Monitor(dut, params.get("watchdog_cycles", 100_000))
    cocotb.start_soon(monitor.watch())
    driver = Accelerator(bus, poll_interval=CLOCK_NS * 64e-9)
    progress_file = Path(params["progress_file"]) if params.get("progress_file") else None

    runs_done = 0

    def progress(tiles, total):
        progress_file.write_text(f"{tiles} {total} {runs_done} {len(params['runs'])}")

    results = []
    for index, run in enumerate(params["runs"]):
        runs_done = index
        bundle = bundles[run["bundle"]]
        buffer = driver._buffer_for(bundle.memory_size)
        bursts_before = {channel: len(bursts) for channel, bursts in monitor.bursts.items()}
        poison(bus, None if run.get("poison") is None else
               (buffer.physical_address + run["poison"][0], buffer.physical_address + sum(run["poison"])))
        ends_before, interrupts_before = len(monitor.ends), len(monitor.interrupts)
        entry = {"run": index}
        below, above = buffer.physical_address - len(CANARY), buffer.physical_address + len(bundle.image)
        bus.ram.write(below, CANARY)
        bus.ram.write(above, CANARY)
        stall = Stall(dut, bus, **run["stall"]) if run.get("stall") else None
        monitor.run, monitor.stall = index, stall

        async def drive(bundle=bundle, run=run):
            try:
                return await driver.run(bundle, timeout=run["timeout"], use_interrupt=run["interrupt"],
                                        progress=progress if progress_file else None,
                                        abort_timeout=run.get("abort_timeout", 1e-3))
            except DriverError as error:
                return error

        driving = cocotb.start_soon(drive())
        while not driving.done() and monitor.hang is None:
            await ClockCycles(dut.ap_clk, 64)
        if monitor.hang is not None:
            raise AssertionError(monitor.hang)  # the driver's task ends with the test
        result = driving.result()
        try:
            if isinstance(result, DriverError):
                raise result
            entry.update(outcome="ok", message="")
        except DriverError as error:
            entry.update(outcome=type(error).__name__, message=str(error), aborted=getattr(error, "aborted", None),
                         error_after_abort=getattr(error, "error", None),
                         tiles_after_abort=getattr(error, "tiles_done", None))
            result = getattr(error, "result", None)
        if stall is not None:
            stall.remove()
        entry["canaries_intact"] = (bytes(bus.ram.read(below, len(CANARY))) == CANARY
                                    and bytes(bus.ram.read(above, len(CANARY))) == CANARY)
        low, high = buffer.physical_address, buffer.physical_address + bundle.memory_size
        entry["outside"] = [[channel, address, beats] for channel, bursts in monitor.bursts.items()
                            for address, beats in bursts[bursts_before[channel]:]
                            if not (low <= address and address + 16 * beats <= high)]
        if result is not None:
            entry.update(output=result.output.hex(), cycles=result.cycles, beats_read=result.beats_read,
                         beats_written=result.beats_written, tiles_done=result.tiles_done,
                         layer_cycles=result.layer_cycles, error=result.error,
                         failed_descriptor=result.failed_descriptor, error_detail=result.error_detail,
                         window_refused=result.window_refused, by_interrupt=result.interrupt)
        await ClockCycles(dut.ap_clk, 3)
        await ReadOnly()
        entry["interrupt_after"] = int(dut.interrupt.value)
        entry["ends"] = monitor.ends[ends_before:]
        entry["interrupts"] = monitor.interrupts[interrupts_before:]
        await RisingEdge(dut.ap_clk)
        results.append(entry)
        if progress_file:
            runs_done = index + 1
            progress(entry.get("tiles_done", 0), bundle.descriptors)
    poison(bus, None)
    summary = {"runs": results, "bursts": monitor.summary(), "cycles": monitor.cycle}
    (run_dir / "results.json").write_text(json.dumps(summary))
