"""The driver's bus in cocotb: cocotbext-axi's ``AxiLiteMaster`` on the system's ``s_axi`` port, an ``AxiRam`` on
its ``m_axi`` port as DDR, and the ``interrupt`` pin (esb_hw/driver). The simulation twin of
:class:`esb_hw.driver.pynq_bus.PynqBus`: the same driver code runs over either.
"""

from __future__ import annotations

import logging
import random

from cocotb.triggers import First, RisingEdge, Timer
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

__all__ = ["CocotbBus", "RamBuffer", "random_pauses"]

#: The first buffer's address: above the low 256 MiB, as a CMA region would be.
FIRST_BUFFER = 0x1000_0000


def random_pauses(rng: random.Random, probability: float):
    """An endless pause generator for cocotbext-axi: True (pause) with ``probability`` each cycle."""
    while True:
        yield rng.random() < probability


class RamBuffer:
    """A window of the ``AxiRam`` (coherent: flush and invalidate do nothing)."""

    def __init__(self, ram: AxiRam, physical_address: int, size: int):
        self.ram, self.physical_address, self.size = ram, physical_address, size

    def write(self, offset: int, data: bytes) -> None:
        self.ram.write(self.physical_address + offset, data)

    def read(self, offset: int, size: int) -> bytes:
        return bytes(self.ram.read(self.physical_address + offset, size))

    def flush(self) -> None:
        pass

    def invalidate(self) -> None:
        pass


class CocotbBus:
    """Registers through ``AxiLiteMaster`` on ``s_axi``, memory as an ``AxiRam`` of ``memory_bytes`` on ``m_axi``.

    ``pause`` > 0 adds random back-pressure and idle cycles on all five channels of both ports (seeded by
    ``seed``).
    """

    def __init__(self, dut, *, memory_bytes: int = 1 << 30, pause: float = 0.0, seed: int = 1,
                 use_interrupt: bool = True):
        self.dut = dut
        reset = dut.ap_rst_n
        self.lite = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi"), dut.ap_clk, reset, reset_active_level=False)
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.ap_clk, reset, reset_active_level=False,
                          size=memory_bytes)
        for model in (self.lite.write_if, self.lite.read_if, self.ram.write_if, self.ram.read_if):
            model.log.setLevel(logging.WARNING)  # one INFO line per access otherwise
        self.has_interrupt = use_interrupt
        self._next = FIRST_BUFFER
        if pause:
            rng = random.Random(seed)
            for interface in (self.lite.write_if, self.ram.write_if):
                for channel in (interface.aw_channel, interface.w_channel, interface.b_channel):
                    channel.set_pause_generator(random_pauses(random.Random(rng.random()), pause))
            for interface in (self.lite.read_if, self.ram.read_if):
                for channel in (interface.ar_channel, interface.r_channel):
                    channel.set_pause_generator(random_pauses(random.Random(rng.random()), pause))

    async def read(self, offset: int) -> int:
        return int.from_bytes((await self.lite.read(offset, 4)).data, "little")

    async def write(self, offset: int, value: int) -> None:
        await self.lite.write(offset, int(value).to_bytes(4, "little"))

    def allocate(self, size: int) -> RamBuffer:
        address = self._next
        self._next += -(-size // 4096) * 4096 + 4096
        if self._next > self.ram.size:
            raise MemoryError(f"the AxiRam of {self.ram.size} bytes has no room for {size} more")
        return RamBuffer(self.ram, address, size)

    async def wait_interrupt(self, timeout: float) -> bool:
        if int(self.dut.interrupt.value):
            return True
        edge = RisingEdge(self.dut.interrupt)
        return (await First(edge, Timer(max(timeout, 1e-9), unit="sec", round_mode="ceil"))) is edge

    async def sleep(self, seconds: float) -> None:
        await Timer(seconds, unit="sec", round_mode="ceil")

    def now(self) -> float:
        return get_sim_time(unit="sec")
