"""The driver's bus on a PYNQ image: registers through ``MMIO``, memory from ``pynq.allocate``, and the interrupt
through PYNQ's ``Interrupt`` (the block design routes it through an AXI interrupt controller, as PYNQ requires).

``pynq`` is imported only when no objects are handed in, so the tests run this class against fakes.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from . import DriverError

__all__ = ["DEFAULT_IP_NAME", "PynqBuffer", "PynqBus"]

#: The system's instance name in the generated block design.
DEFAULT_IP_NAME = "esb_system_0"


class PynqBuffer:
    """A ``pynq.allocate`` buffer of bytes: ``write``/``read`` touch the CPU's view; ``flush`` and ``invalidate``
    hand it to and from the accelerator."""

    def __init__(self, array):
        self.array = array
        self.size = int(array.nbytes)
        self.physical_address = int(array.physical_address)

    def write(self, offset: int, data: bytes) -> None:
        self.array[offset:offset + len(data)] = np.frombuffer(data, np.uint8)

    def read(self, offset: int, size: int) -> bytes:
        return bytes(self.array[offset:offset + size])

    def flush(self) -> None:
        self.array.flush()

    def invalidate(self) -> None:
        self.array.invalidate()


class PynqBus:
    """Registers at ``mmio`` (a ``pynq.MMIO`` or the IP's ``.mmio``), memory from ``allocate``, the optional
    ``interrupt`` (a ``pynq.Interrupt``).

    Use :meth:`from_overlay` on the board.
    """

    def __init__(self, mmio, *, allocate=None, interrupt=None):
        self.mmio = mmio
        if allocate is None:
            from pynq import allocate
        self._allocate = allocate
        self.interrupt = interrupt
        self.has_interrupt = interrupt is not None

    @classmethod
    def from_overlay(cls, bitfile: str, name: str = DEFAULT_IP_NAME, *, use_interrupt: bool = True) -> PynqBus:
        """Load ``bitfile`` (its ``.hwh`` beside it) and find the system ``name`` in it. A missing bitfile raises
        :class:`~esb_hw.errors.InputError`."""
        if not Path(bitfile).is_file():
            raise InputError(f"{bitfile}: no bitstream (run build.py --vivado, or copy it here)")
        from pynq import Overlay

        overlay = Overlay(bitfile)
        if name not in overlay.ip_dict:
            raise DriverError(f"{bitfile}: no IP called {name!r} (found: {', '.join(sorted(overlay.ip_dict))})")
        ip = getattr(overlay, name)
        interrupt = getattr(ip, "interrupt", None) if use_interrupt else None
        return cls(ip.mmio, interrupt=interrupt)

    async def read(self, offset: int) -> int:
        return int(self.mmio.read(offset)) & 0xFFFF_FFFF

    async def write(self, offset: int, value: int) -> None:
        self.mmio.write(offset, int(value) & 0xFFFF_FFFF)

    def allocate(self, size: int) -> PynqBuffer:
        return PynqBuffer(self._allocate(shape=(size,), dtype=np.uint8))

    async def wait_interrupt(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.interrupt.wait(), timeout)
        except asyncio.TimeoutError:  # noqa: UP041 - PYNQ images run Python 3.10, where it is not TimeoutError
            return False
        return True

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def now(self) -> float:
        return time.monotonic()
