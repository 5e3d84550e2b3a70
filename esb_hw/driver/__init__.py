"""The host driver: runs a compiled program on the esb-hw system, in simulation or on the board (docs/system.md).

One driver, :class:`Accelerator`, over a small bus interface (:class:`Bus`) with two implementations:

- :class:`esb_hw.driver.pynq_bus.PynqBus` on a PYNQ image (``MMIO``, ``allocate`` with flush and invalidate, the
  ``Interrupt`` of the block design's AXI interrupt controller);
- :class:`esb_hw.sim.axi_bus.CocotbBus` in simulation (cocotbext-axi ``AxiLiteMaster`` on the registers, ``AxiRam`` as
  DDR).

The driver is ``async`` because cocotb is; on the board, :meth:`Accelerator.run_blocking` runs it with
``asyncio``. It needs only the standard library, NumPy and :mod:`esb_hw.regmap`, so ``deploy/`` carries it to a
board without Amaranth.

A program travels as a :class:`ProgramBundle` (``.npz``): the memory image compiled at address 0, where the
descriptors and the output are, how many descriptors and layers, the config's id, and optionally the expected
output bytes. The hardware adds ``MEMORY_BASE`` (the buffer's physical address) to every address, so one bundle
runs wherever the buffer lands, and stays inside ``MEMORY_SIZE`` bytes from it: the driver sets the window to the
bundle's image, never past its own buffer (docs/system.md, "The memory window").
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import CheckFailed, EsbError, InputError
from ..npzfile import write_npz
from ..regmap import MAGIC, REGMAP_VERSION, by_name, engine_error

__all__ = ["Accelerator", "Buffer", "Bus", "DriverError", "DriverTimeout", "ProgramBundle", "RunFailed", "RunResult"]

#: MEMORY_BASE must be 4 KiB aligned (the AXI master splits bursts at 4 KiB from address bits below it).
BASE_ALIGNMENT = 4096
#: The AXI master's address reach.
ADDRESS_LIMIT = 1 << 40
#: The memory window's granule (MEMORY_SIZE counts whole 16-byte beats).
WINDOW_GRANULE = 16
#: The descriptor's bytes in memory (esb_hw.layouts.DESCRIPTOR_BYTES; the driver does not import Amaranth).
DESCRIPTOR_BYTES = 128


class DriverError(EsbError):
    """The hardware or the program is not what the driver expects (wrong bitstream, wrong config, bad buffer)."""


class RunFailed(DriverError):
    """The hardware ended a run with an error; ``code``, ``name``, ``descriptor`` and ``result`` say which."""

    def __init__(self, message: str, code: int, name: str, descriptor: int, result: RunResult):
        super().__init__(message)
        self.code, self.name, self.descriptor, self.result = code, name, descriptor, result


class DriverTimeout(DriverError):
    """The hardware did not finish within the timeout; ``tiles_done`` says how far it got, ``aborted`` whether the
    driver's abort then stopped it (the accelerator is idle) or not (it is still busy), ``error`` the ERROR
    register after the abort (9, ``aborted``, when the abort ended the run)."""

    def __init__(self, message: str, tiles_done: int, aborted: bool = False, error: int = 0):
        super().__init__(message)
        self.tiles_done, self.aborted, self.error = tiles_done, aborted, error


class Buffer(Protocol):
    """Memory the accelerator reaches: ``physical_address``, ``size`` bytes."""

    physical_address: int
    size: int

    def write(self, offset: int, data: bytes) -> None: ...
    def read(self, offset: int, size: int) -> bytes: ...
    def flush(self) -> None: ...  # make the CPU's writes visible to the accelerator
    def invalidate(self) -> None: ...  # make the accelerator's writes visible to the CPU


class Bus(Protocol):
    """What the driver needs from a platform: 32-bit register access, memory, time and (optionally) the
    interrupt."""

    has_interrupt: bool

    async def read(self, offset: int) -> int: ...
    async def write(self, offset: int, value: int) -> None: ...
    def allocate(self, size: int) -> Buffer: ...
    async def wait_interrupt(self, timeout: float) -> bool: ...  # True if it came within ``timeout`` seconds
    async def sleep(self, seconds: float) -> None: ...
    def now(self) -> float: ...  # seconds (simulated time in simulation)


@dataclasses.dataclass(frozen=True)
class ProgramBundle:
    """A compiled program, as the driver runs it (``esb_hw.compiler.program.to_bundle`` makes one)."""

    image: bytes
    program_address: int
    descriptors: int
    layers: int
    output_address: int
    output_bytes: int
    config_id: int
    array: tuple[int, int]
    expected: bytes | None = None
    name: str = "program"

    def save(self, path: str | Path) -> None:
        """Write the bundle as an ``.npz`` whose bytes depend only on its contents (fixed zip timestamps)."""
        arrays = {key: np.asarray(value) for key, value in dataclasses.asdict(self).items()
                  if key not in ("image", "expected", "name")}
        arrays["image"] = np.frombuffer(self.image, np.uint8)
        arrays["name"] = np.asarray(self.name)
        if self.expected is not None:
            arrays["expected"] = np.frombuffer(self.expected, np.uint8)
        write_npz(path, arrays)

    @classmethod
    def load(cls, path: str | Path) -> ProgramBundle:
        """Read a bundle; a missing or malformed file raises :class:`~esb_hw.errors.InputError`."""
        try:
            with np.load(path, allow_pickle=False) as archive:
                keys = set(archive.files)
                needed = {"image", "program_address", "descriptors", "layers", "output_address", "output_bytes",
                          "config_id", "array"}
                if not needed <= keys:
                    raise InputError(f"{path}: not a program bundle (missing {', '.join(sorted(needed - keys))})")
                bundle = cls(image=archive["image"].astype(np.uint8).tobytes(),
                             program_address=int(archive["program_address"]), descriptors=int(archive["descriptors"]),
                             layers=int(archive["layers"]), output_address=int(archive["output_address"]),
                             output_bytes=int(archive["output_bytes"]), config_id=int(archive["config_id"]),
                             array=tuple(int(value) for value in archive["array"]),
                             expected=archive["expected"].tobytes() if "expected" in keys else None,
                             name=str(archive["name"]) if "name" in keys else Path(path).stem)
        except InputError:
            raise
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InputError(f"{path}: not a readable program bundle ({error})") from None
        if bundle.output_address + bundle.output_bytes > len(bundle.image):
            raise InputError(f"{path}: the output region lies outside the image")
        if bundle.program_address + bundle.descriptors * DESCRIPTOR_BYTES > len(bundle.image):
            raise InputError(f"{path}: the descriptors lie outside the image")
        return bundle

    @property
    def memory_size(self) -> int:
        """The memory window the bundle runs in: its image, in whole 16-byte beats."""
        return len(self.image) + -len(self.image) % WINDOW_GRANULE


@dataclasses.dataclass
class RunResult:
    """What a run left: the output bytes and the hardware's counters."""

    output: bytes
    cycles: int
    beats_read: int
    beats_written: int
    tiles_done: int
    layer_cycles: list[int]
    error: int = 0
    failed_descriptor: int = 0
    error_detail: int = 0  # with error outside_window, the transfer (esb_hw.regmap.WINDOW_DETAILS)
    window_refused: int = 0  # the bus guard's sticky count of refused requests (WINDOW_REFUSED)
    interrupt: bool = False  # the run's end was signalled by the interrupt (not found by polling)

    def check(self, bundle: ProgramBundle) -> None:
        """Raise :class:`~esb_hw.errors.CheckFailed` unless the output equals ``bundle.expected``."""
        if bundle.expected is None:
            raise InputError(f"{bundle.name}: the bundle carries no expected output")
        if self.output != bundle.expected:
            got, want = np.frombuffer(self.output, np.uint8), np.frombuffer(bundle.expected, np.uint8)
            wrong = np.flatnonzero(got != want)
            raise CheckFailed(f"{bundle.name}: {wrong.size} of {want.size} output bytes differ from the golden model "
                              f"(first at byte {wrong[0]}: {got[wrong[0]]} != {want[wrong[0]]})")


def _offset(name: str) -> int:
    return by_name(name).offset


def _field(name: str, field: str, value: int) -> int:
    item = by_name(name).field(field)
    return (value & item.mask) >> item.lsb


class Accelerator:
    """The esb-hw system behind ``bus``.

    Parameters
    ----------
    bus : Bus
    poll_interval : float
        Seconds between status reads while polling.
    memory_limit : int, optional
        The most bytes the driver allocates for a program (a board's contiguous memory); a bundle whose image needs
        more is refused with :class:`~esb_hw.errors.InputError`. None: as much as each bundle needs.
    """

    def __init__(self, bus: Bus, *, poll_interval: float = 1e-4, memory_limit: int | None = None):
        self.bus = bus
        self.poll_interval = poll_interval
        self.memory_limit = memory_limit
        self._buffer: Buffer | None = None
        self.identity: dict | None = None

    async def identify(self) -> dict:
        """Read MAGIC, VERSION, ARRAY and CONFIG_ID; raise :class:`DriverError` if this is no esb-hw system."""
        magic = await self.bus.read(_offset("MAGIC"))
        if magic != MAGIC:
            raise DriverError(f"no esb-hw system at this address: MAGIC reads 0x{magic:08X}, expected 0x{MAGIC:08X} "
                              "(wrong bitstream, or the wrong IP)")
        version = await self.bus.read(_offset("VERSION"))
        if version != REGMAP_VERSION:
            raise DriverError(f"register map version {version}, this driver speaks version {REGMAP_VERSION}")
        array = await self.bus.read(_offset("ARRAY"))
        self.identity = {"version": version, "rows": _field("ARRAY", "rows", array),
                         "cols": _field("ARRAY", "cols", array), "config_id": await self.bus.read(_offset("CONFIG_ID"))}
        return self.identity

    async def abort(self, timeout: float = 1e-3) -> bool:
        """Abort the run (``CONTROL.abort``) and wait up to ``timeout`` seconds for the accelerator to be idle; True
        if it is. The transfers in flight end first, so a memory that withholds an answer holds the abort too. The
        aborted run's ``done`` (``ap_done``, ``ISR``) is cleared, so the next run waits for its own."""
        await self.bus.write(_offset("CONTROL"), 1 << by_name("CONTROL").field("abort").lsb)
        deadline = self.bus.now() + timeout
        while _field("STATUS", "busy", await self._status()):
            if self.bus.now() >= deadline:
                return False
            await self.bus.sleep(self.poll_interval)
        await self.bus.write(_offset("ISR"), 1)
        await self.bus.read(_offset("CONTROL"))  # clears ap_done
        return True

    async def _status(self) -> int:
        return await self.bus.read(_offset("STATUS"))

    async def _wait_idle(self, timeout: float, what: str) -> None:
        deadline = self.bus.now() + timeout
        while _field("STATUS", "busy", await self._status()):
            if self.bus.now() >= deadline:
                tiles = await self.bus.read(_offset("TILES_DONE"))
                raise DriverTimeout(f"{what}: the accelerator is still busy after {timeout:g} s ({tiles} tiles done)",
                                    tiles)
            await self.bus.sleep(self.poll_interval)

    def _buffer_for(self, size: int, name: str = "the program") -> Buffer:
        if self.memory_limit is not None and size > self.memory_limit:
            raise InputError(f"{name}: its image needs {size:,} bytes, more than the {self.memory_limit:,} bytes "
                             "this driver may allocate (memory_limit)")
        if self._buffer is None or self._buffer.size < size:
            try:
                buffer = self.bus.allocate(size)
            except (MemoryError, RuntimeError, OSError) as error:  # PYNQ: the contiguous memory is exhausted
                raise InputError(f"{name}: its image needs {size:,} bytes of contiguous memory, which the board "
                                 f"could not allocate ({error})") from None
            address = buffer.physical_address
            if address % BASE_ALIGNMENT or address + size > ADDRESS_LIMIT:
                raise DriverError(f"buffer at 0x{address:X} is not 4 KiB aligned below 2**40, as the accelerator's "
                                  "MEMORY_BASE must be")
            self._buffer = buffer
        return self._buffer

    async def run(self, bundle: ProgramBundle, *, timeout: float = 10.0, use_interrupt: bool = True,
                  progress=None, abort_timeout: float = 1e-3) -> RunResult:
        """Load ``bundle``'s image, run it and return the output bytes and counters.

        The end of the run is awaited by the interrupt when the bus has one and ``use_interrupt`` is set, else by
        polling STATUS every ``poll_interval`` seconds. ``progress(tiles_done, descriptors)``, if given, is called
        at each poll (it implies polling). A run that has not ended after ``timeout`` seconds is aborted
        (:meth:`abort`, waiting up to ``abort_timeout`` seconds) before :class:`DriverTimeout` is raised.

        Raises
        ------
        DriverError
            The hardware is not an esb-hw system, or was built for another config than the program's.
        DriverTimeout
            The run (or an earlier run still going) did not end within ``timeout`` seconds.
        RunFailed
            The hardware reported an error; the message names it and the descriptor.
        """
        identity = self.identity or await self.identify()
        if identity["config_id"] != bundle.config_id:
            raise DriverError(f"{bundle.name} was compiled for config id 0x{bundle.config_id:08X} "
                              f"({bundle.array[0]}x{bundle.array[1]}); the hardware's is 0x{identity['config_id']:08X} "
                              f"({identity['rows']}x{identity['cols']}): rebuild one for the other")
        await self._wait_idle(timeout, "before the run")
        buffer = self._buffer_for(bundle.memory_size, bundle.name)
        buffer.write(0, bundle.image)
        buffer.flush()
        bus, address = self.bus, buffer.physical_address
        # The window: the bundle's image, never past the buffer.
        window = min(bundle.memory_size, buffer.size - buffer.size % WINDOW_GRANULE)
        await bus.write(_offset("MEMORY_BASE_LO"), address & 0xFFFF_F000)
        await bus.write(_offset("MEMORY_BASE_HI"), address >> 32)
        await bus.write(_offset("MEMORY_SIZE_LO"), window & 0xFFFF_FFF0)
        await bus.write(_offset("MEMORY_SIZE_HI"), window >> 32)
        await bus.write(_offset("PROGRAM_ADDRESS"), bundle.program_address)
        await bus.write(_offset("PROGRAM_LENGTH"), bundle.descriptors)
        interrupt = use_interrupt and bus.has_interrupt and progress is None
        await bus.write(_offset("ISR"), 1)
        await bus.write(_offset("IER"), 1 if interrupt else 0)
        await bus.write(_offset("GIE"), 1 if interrupt else 0)
        await bus.read(_offset("CONTROL"))  # clears a stale ap_done
        await bus.write(_offset("CONTROL"), 1)
        started = bus.now()
        by_interrupt = False
        if interrupt:
            by_interrupt = await bus.wait_interrupt(timeout)
        remaining = max(0.0, timeout - (bus.now() - started))
        while True:
            status = await self._status()
            if _field("STATUS", "done", status) and not _field("STATUS", "busy", status):
                break
            if bus.now() - started >= timeout or (interrupt and remaining == 0.0):
                stopped = await self.abort(abort_timeout)
                error = await bus.read(_offset("ERROR"))
                if stopped and error == 0:
                    break  # the run ended on its own just as the abort came: its result is whole
                tiles = await bus.read(_offset("TILES_DONE"))
                what = ("aborted; the accelerator is idle" if stopped else
                        f"the abort did not end it within {abort_timeout:g} s (the memory withholds an answer); "
                        "the next run waits for it")
                raise DriverTimeout(f"{bundle.name}: no result after {timeout:g} s ({tiles} of {bundle.descriptors} "
                                    f"tiles done); {what}", tiles, stopped, error)
            if progress is not None:
                progress(await bus.read(_offset("TILES_DONE")), bundle.descriptors)
            await bus.sleep(self.poll_interval)
        if interrupt:
            await bus.write(_offset("ISR"), 1)
        await bus.read(_offset("CONTROL"))  # clears ap_done
        counters = {name: await bus.read(_offset(name.upper())) for name in
                    ("cycles", "beats_read", "beats_written", "tiles_done", "error", "failed_descriptor",
                     "error_detail", "window_refused")}
        layer_cycles = []
        for layer in range(bundle.layers):
            await bus.write(_offset("LAYER_SELECT"), layer)
            layer_cycles.append(await bus.read(_offset("LAYER_CYCLES")))
        buffer.invalidate()
        result = RunResult(buffer.read(bundle.output_address, bundle.output_bytes), layer_cycles=layer_cycles,
                           interrupt=by_interrupt, **counters)
        if result.error:
            name = engine_error(result.error).split(":", 1)[0]
            raise RunFailed(f"{bundle.name}: the accelerator stopped with error {result.error} "
                            f"({engine_error(result.error, result.error_detail)}) at descriptor "
                            f"{result.failed_descriptor}", result.error, name, result.failed_descriptor, result)
        return result

    def run_blocking(self, bundle: ProgramBundle, **options) -> RunResult:
        """:meth:`run` for plain Python (the board)."""
        return asyncio.run(self.run(bundle, **options))
