# amaranth: UnusedElaboratable=no
"""The memory window's two defences, each alone (docs/system.md, "The memory window"): the layer engine behind the
AXI master (esb_hw.hw.system.connect_memory, as in the system) runs in Amaranth's simulator against an AXI4 slave
model, with a program one of whose descriptors points a transfer outside the window (its CRC is valid: a compiler
bug, or a hostile program). With the descriptor checker's window checks removed, the bus guard refuses the request;
with the bus guard removed, the checker refuses the descriptor; with both, the bursts do leave the window (so the
test can fail). No burst outside the window ever reaches the slave while either defence stands."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
from amaranth import C, Elaboratable, Module
from amaranth.sim import Simulator

from esb_hw.compiler.program import compile_program
from esb_hw.hw.bus.axi import AxiMaster
from esb_hw.hw.core.checker import ERROR_CODES, DescriptorChecker
from esb_hw.hw.core.engine import Engine
from esb_hw.hw.system import connect_memory
from esb_hw.layouts import DESCRIPTOR_BYTES, descriptor_image
from esb_hw.sim.axi_slave import Slave
from esb_hw.sim.layer_core import SMALL_ENGINE_CONFIG, random_layer

CONFIG = SMALL_ENGINE_CONFIG
BASE = 0x8_0010_0000  # MEMORY_BASE: DDR_HIGH on the ZCU102, 4 KiB aligned
CYCLES = 40_000


class EngineOnBus(Elaboratable):
    """The engine and the AXI master wired as in the system (without the registers)."""

    def __init__(self):
        self.engine, self.master = Engine(CONFIG), AxiMaster()

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine, m.submodules.master = self.engine, self.master
        connect_memory(m, self.engine, self.master)
        return m


def good_program():
    layer = random_layer(CONFIG, np.random.default_rng(8), "conv2d", 6, 5, 3, 1, 1, False)
    x = np.random.default_rng(9).integers(0, CONFIG.activation_format.code_count, (5, 6, 6))
    return compile_program(CONFIG, [layer], (5, 6, 6), x)


def program_with(transfer: str, field: str, value: int, descriptor_index: int = 0):
    """A one-layer program, and its image with descriptor ``descriptor_index``'s ``transfer.field`` set to
    ``value`` (the descriptor's CRC recomputed, so that only the window checks can catch it)."""
    program = good_program()
    descriptor = copy.deepcopy(program.tiles[descriptor_index].descriptor)
    descriptor[transfer][field] = value
    image = bytearray(program.image)
    at = program.program_address + descriptor_index * DESCRIPTOR_BYTES
    image[at:at + DESCRIPTOR_BYTES] = descriptor_image(descriptor)
    return program, bytes(image)


def run_on_bus(program, image: bytes) -> dict:
    """Run the program in a window of the program's size; the engine's status, and every burst the slave saw."""
    dut = EngineOnBus()
    slave = Slave(dut.master.axi, random.Random(3), cycle_limit=CYCLES + 1000)
    slave.memory.update({BASE + offset: byte for offset, byte in enumerate(image)})
    result = {}

    async def testbench(ctx):
        engine = dut.engine
        ctx.set(dut.master.base, BASE)
        ctx.set(dut.master.memory_size, program.memory_size)
        ctx.set(engine.memory_size, program.memory_size)
        ctx.set(engine.program_address, program.program_address)
        ctx.set(engine.program_length, len(program.tiles))
        ctx.set(engine.start, 1)
        await ctx.tick()
        ctx.set(engine.start, 0)
        for _ in range(CYCLES):
            *_, done = await ctx.tick().sample(engine.done)
            if done:
                break
        else:
            raise AssertionError(f"the engine did not finish within {CYCLES} cycles")
        await ctx.tick()
        result.update({name: ctx.get(getattr(engine, name)) for name in
                       ("error", "error_detail", "failed_descriptor", "tiles_done")})
        result["refused"] = ctx.get(dut.master.refused_requests)

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(slave.reads, background=True)
    simulator.add_testbench(slave.writes, background=True)
    simulator.add_testbench(testbench)
    simulator.run()
    end = BASE + program.memory_size
    result["outside"] = [(hex(address), beats) for address, beats in slave.ar + slave.aw
                         if not (BASE <= address and address + 16 * beats <= end)]
    return result


def without_checker_window(monkeypatch):
    """The checker with its window checks removed: after the product checks it reports at once."""
    def no_window(self, m, *_args):
        with m.State("window_load_0"):
            m.next = "report"
    monkeypatch.setattr(DescriptorChecker, "_window", no_window)


def without_bus_guard(monkeypatch):
    monkeypatch.setattr(AxiMaster, "_outside", lambda self, room, beats: C(0, 1))


OUTSIDE = {"outputs": 1 << 24, "activations": 1 << 24}  # 16 MiB past the base: far outside the program's window
DETAILS = {"outputs": (4, 6), "activations": (1, 5)}  # (the checker's detail, the guard's)


def test_a_good_program_runs_exactly_in_its_window():
    program = good_program()
    result = run_on_bus(program, program.image)
    assert (result["error"], result["tiles_done"], result["refused"], result["outside"]) == (0, len(program.tiles),
                                                                                           0, [])


@pytest.mark.parametrize("transfer", ["outputs", "activations"])
@pytest.mark.parametrize("defence", ["both", "checker_only", "guard_only", "none"])
def test_each_defence_alone_keeps_the_engine_inside_its_window(transfer, defence, monkeypatch):
    if defence in ("guard_only", "none"):
        without_checker_window(monkeypatch)
    if defence in ("checker_only", "none"):
        without_bus_guard(monkeypatch)
    program, image = program_with(transfer, "address", OUTSIDE[transfer])
    result = run_on_bus(program, image)
    checker_detail, guard_detail = DETAILS[transfer]
    if defence == "none":  # the test can fail: with no defence, the bursts leave the window
        assert result["outside"], result
        return
    assert result["outside"] == [], "a burst left the window"
    assert result["error"] == ERROR_CODES["outside_window"]
    assert result["failed_descriptor"] == 0
    if defence == "guard_only":  # each run of the transfer is a request, refused on its own
        runs = program.tiles[0].descriptor[transfer]["segments"]
        assert (result["error_detail"], result["refused"]) == (guard_detail, runs)
    else:
        assert (result["error_detail"], result["refused"]) == (checker_detail, 0)
