"""A Python stand-in for the system behind PYNQ's objects, for the driver's tests (there is no board here): the
registers are esb_hw.regmap.RegisterModel (built from the same table as the hardware's register file), a device
memory separate from the CPU's view of each buffer (so a missing flush or invalidate shows), and a run that executes
the compiled program with the compiler's NumPy twin."""

from __future__ import annotations

import asyncio

import numpy as np

from esb_hw.compiler.program import program_error, run_in_numpy
from esb_hw.contract.checks import window_failure
from esb_hw.layouts import buffer_word_bits, memory_word_bytes
from esb_hw.regmap import MAGIC, REGMAP_VERSION, RegisterModel, by_name, config_id


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
    output (a wrong answer for the checkers to catch). ``CONTROL.abort`` ends a run with error 9 at once, or, with
    ``abort_stuck``, never (a memory that withholds an answer)."""

    def __init__(self, program, *, finish_after=2, error=0, magic=MAGIC, config=None, address=0x3000_0000,
                 corrupt_output=False, abort_stuck=False):
        self.program, self.finish_after, self.error = program, finish_after, error
        self.corrupt_output, self.abort_stuck = corrupt_output, abort_stuck
        self.aborts, self.configured_error = 0, error
        self.registers = RegisterModel()
        for port, value in (("magic", magic), ("version", REGMAP_VERSION), ("array_rows", program.config.rows),
                            ("array_cols", program.config.cols),
                            ("config_id", config_id((config or program.config).to_dict()))):
            self.registers.drive(port, value)
        self.origin = address  # the device memory holds 16 MiB from the first buffer's address
        self.device = bytearray(0x100_0000)
        self.next_address = address
        self.busy = self.done = False
        self.polls_left = None
        self.calls = []
        self.interrupt = FakeInterrupt()
        self.starts = 0
        self._drive_status()

    # ---- pynq.allocate -------------------------------------------------------------------------------------
    def allocate(self, shape, dtype):
        array = np.zeros(shape, dtype).view(FakeArray)
        array.physical_address, array.system = self.next_address, self
        self.next_address += 1 << 20
        return array

    # ---- MMIO ----------------------------------------------------------------------------------------------
    def read(self, address):
        if address == offset("STATUS") and self.busy and self.polls_left is not None:
            self.polls_left -= 1
            if self.polls_left <= 0:
                self._finish()
        if address == offset("LAYER_CYCLES"):
            self.registers.drive("layer_cycles", 1000 + self.registers["layer_select"])
        return self.registers.read(address)

    def write(self, address, value):
        self.calls.append(("write", address, value))
        self.registers.write(address, value)
        if self.registers["control_abort"]:
            if self.busy and not self.abort_stuck:
                self.aborts += 1
                self.error = 9  # aborted
                self._end(store=False)
            if not self.busy:
                self.registers.clear("control_abort")
        if self.registers["control_ap_start"] and not self.busy:
            self.registers.clear("control_ap_start")  # the engine takes the start
            self._start()
        self._drive_status()

    def _drive_status(self):
        idle = not self.busy and not self.registers["control_ap_start"]
        for port, value in (("status_busy", self.busy), ("status_done", self.done),
                            ("status_error", self.error != 0 and self.done), ("control_ap_idle", idle),
                            ("control_ap_ready", idle)):
            self.registers.drive(port, int(value))

    def _start(self):
        assert not self.busy
        self.starts += 1
        self.busy, self.done, self.error = True, False, self.configured_error
        self.polls_left = self.finish_after
        self.base = self.registers["memory_base_lo"] << 12 | self.registers["memory_base_hi"] << 32
        if self.finish_after == 0:
            self._finish()

    def _finish(self):
        self._end(store=True)

    def _end(self, store):
        start = self.base - self.origin
        size = len(self.program.image)
        address, length = self.program.regions["descriptors"]
        window = self.registers["memory_size_lo"] << 4 | self.registers["memory_size_hi"] << 32
        detail, failed = 0, 1
        device = self.device[start + address:start + address + length]
        if window == 0 or address + length > window:
            self.error, failed = 10, 0  # outside_window, the program
        elif device != self.program.image[address:address + length]:  # zeros or stale descriptors: corrupted
            self.error = 11
            failed = next(index for index in range(len(self.program.tiles))
                          if device[index * 128:(index + 1) * 128]
                          != self.program.image[address + index * 128:address + (index + 1) * 128])
        elif not self.error:  # the checker's verdict, as the compiler's twin gives it
            descriptors = [tile.descriptor for tile in self.program.tiles]
            self.error, index = program_error(self.program.config, descriptors, memory_size=window)
            if self.error == 10:
                failed = index
                sizes = {name: memory_word_bytes(bits) for name, bits in buffer_word_bits(self.program.config).items()}
                detail = window_failure(descriptors[index], sizes, window)
        if store and not self.error:
            memory = bytearray(self.device[start:start + size])
            assert self.registers["program_address"] == self.program.program_address
            run_in_numpy(self.program, memory)
            if self.corrupt_output:
                memory[self.program.output_region()[0]] ^= 1
            self.device[start:start + size] = memory
        for port, value in (("error", self.error), ("error_detail", detail if self.error == 10 else 0),
                            ("failed_descriptor", failed if self.error else 0),
                            ("cycles", 12345), ("tiles_done", len(self.program.tiles) if store else 0)):
            self.registers.drive(port, value)
        self.busy, self.done = False, True
        self._drive_status()
        self.registers.set("control_ap_done")
        if self.registers["ier_done"]:
            self.registers.set("isr_done")
            if self.registers["gie"]:
                self.interrupt.event.set()
