"""A Python stand-in for the system behind PYNQ's objects, for the driver's tests (there is no board here): the
register semantics of docs/system.md, a device memory separate from the CPU's view of each buffer (so a missing
flush or invalidate shows), and a run that executes the compiled program with the compiler's NumPy twin."""

from __future__ import annotations

import asyncio

import numpy as np

from esb_hw.compiler.program import run_in_numpy
from esb_hw.regmap import MAGIC, REGMAP_VERSION, by_name, config_id


def offset(name):
    return by_name(name).offset


class FakeArray(np.ndarray):
    """What ``pynq.allocate`` returns: an array with a physical address, whose ``flush`` copies it to the device
    and ``invalidate`` copies the device back."""

    def flush(self):
        start = self.physical_address - self.system.origin
        self.system.device[start:start + self.nbytes] = self.tobytes()
        self.system.calls.append("flush")

    def invalidate(self):
        start = self.physical_address - self.system.origin
        self[:] = np.frombuffer(bytes(self.system.device[start:start + self.nbytes]), np.uint8)
        self.system.calls.append("invalidate")


class FakeInterrupt:
    def __init__(self):
        self.event = asyncio.Event()

    async def wait(self):
        await self.event.wait()
        self.event.clear()


class FakeSystem:
    """``program`` runs when started; ``finish_after`` status reads later it ends (``None``: never); ``error``
    makes it end with that code at ``failed_descriptor`` 1; ``corrupt_output`` flips one bit of the last layer's
    output (a wrong answer for the checkers to catch)."""

    def __init__(self, program, *, finish_after=2, error=0, magic=MAGIC, config=None, address=0x3000_0000,
                 corrupt_output=False):
        self.program, self.finish_after, self.error = program, finish_after, error
        self.corrupt_output = corrupt_output
        self.registers = {offset("MAGIC"): magic, offset("VERSION"): REGMAP_VERSION,
                          offset("ARRAY"): program.config.rows | program.config.cols << 8,
                          offset("CONFIG_ID"): config_id((config or program.config).to_dict())}
        self.origin = address  # the device memory holds 16 MiB from the first buffer's address
        self.device = bytearray(0x100_0000)
        self.next_address = address
        self.busy = self.done = False
        self.polls_left = None
        self.calls = []
        self.interrupt = FakeInterrupt()
        self.starts = 0

    # ---- pynq.allocate -------------------------------------------------------------------------------------
    def allocate(self, shape, dtype):
        array = np.zeros(shape, dtype).view(FakeArray)
        array.physical_address, array.system = self.next_address, self
        self.next_address += 1 << 20
        return array

    # ---- MMIO ----------------------------------------------------------------------------------------------
    def read(self, address):
        if address == offset("STATUS"):
            if self.busy and self.polls_left is not None:
                self.polls_left -= 1
                if self.polls_left <= 0:
                    self._finish()
            return int(self.busy) | int(self.done) << 1 | int(self.error != 0 and self.done) << 2
        if address == offset("CONTROL"):
            done = self.registers.pop("ap_done", 0)
            return int(done) << 1 | int(not self.busy) << 2 | int(not self.busy) << 3
        if address == offset("LAYER_CYCLES"):
            return 1000 + self.registers.get(offset("LAYER_SELECT"), 0)
        return self.registers.get(address, 0)

    def write(self, address, value):
        self.calls.append(("write", address, value))
        if address == offset("CONTROL") and value & 1:
            self._start()
        elif address == offset("ISR"):
            self.registers[address] = self.registers.get(address, 0) & ~value
        else:
            self.registers[address] = value

    def _start(self):
        assert not self.busy
        self.starts += 1
        self.busy, self.done = True, False
        self.polls_left = self.finish_after
        base = self.registers[offset("MEMORY_BASE_LO")] | self.registers[offset("MEMORY_BASE_HI")] << 32
        self.base = base
        if self.finish_after == 0:
            self._finish()

    def _finish(self):
        start = self.base - self.origin
        size = len(self.program.image)
        address, length = self.program.regions["descriptors"]
        if bytes(self.device[start + address:start + address + length]) != self.program.image[address:address + length]:
            self.error = 1  # the hardware would read zeros or stale descriptors: zero_size
        if not self.error:
            memory = bytearray(self.device[start:start + size])
            assert self.registers[offset("PROGRAM_ADDRESS")] == self.program.program_address
            run_in_numpy(self.program, memory)
            if self.corrupt_output:
                memory[self.program.output_region()[0]] ^= 1
            self.device[start:start + size] = memory
        self.registers.update({offset("ERROR"): self.error, offset("FAILED_DESCRIPTOR"): 1 if self.error else 0,
                               offset("CYCLES"): 12345, offset("TILES_DONE"): len(self.program.tiles),
                               "ap_done": 1})
        self.busy, self.done = False, True
        if self.registers.get(offset("IER"), 0) & 1:
            self.registers[offset("ISR")] = 1
            if self.registers.get(offset("GIE"), 0) & 1:
                self.interrupt.event.set()
