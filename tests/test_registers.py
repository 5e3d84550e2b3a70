# amaranth: UnusedElaboratable=no
"""esb_hw/hw/bus/registers.py in Amaranth's simulator, through the AXI4-Lite port. RegisterFile against
esb_hw.regmap.RegisterModel (both built from the one table) on random accesses and hardware events; ControlRegisters:
constants, read-write registers with byte strobes, address and data in either order, ap_start held until the engine
is idle, ap_done cleared by reading, ISR write-one-to-clear, the interrupt, unmapped offsets."""

import random

import pytest
from amaranth.sim import Simulator

from esb_hw.data import shipped_config
from esb_hw.hw.bus.registers import ControlRegisters, RegisterFile
from esb_hw.regmap import (
    CLEARED_BY_HARDWARE,
    MAGIC,
    REGISTERS,
    REGMAP_VERSION,
    SET_BY_HARDWARE,
    Field,
    Register,
    RegisterModel,
    by_name,
    config_id,
    port_name,
)

CONFIG = shipped_config("default")


def offset(name):
    return by_name(name).offset


class Lite:
    """An AXI4-Lite master for the Amaranth testbench, with random gaps (``rng``)."""

    def __init__(self, ctx, axi, rng):
        self.ctx, self.axi, self.rng = ctx, axi, rng

    async def idle(self):
        for _ in range(self.rng.randrange(3)):
            await self.ctx.tick()

    async def write(self, address, value, strobe=0xF, order="together"):
        ctx, axi = self.ctx, self.axi
        await self.idle()
        phases = {"together": [("aw", "w")], "address_first": [("aw",), ("w",)], "data_first": [("w",), ("aw",)]}
        for phase in phases[order]:
            if "aw" in phase:
                ctx.set(axi.awaddr, address)
                ctx.set(axi.awvalid, 1)
            if "w" in phase:
                ctx.set(axi.wdata, value)
                ctx.set(axi.wstrb, strobe)
                ctx.set(axi.wvalid, 1)
            pending = set(phase)
            while pending:
                _, _, awready, wready = await ctx.tick().sample(axi.awready, axi.wready)
                if "aw" in pending and awready:
                    pending.discard("aw")
                    ctx.set(axi.awvalid, 0)
                    ctx.set(axi.awaddr, self.rng.getrandbits(12))  # noise while not valid
                if "w" in pending and wready:
                    pending.discard("w")
                    ctx.set(axi.wvalid, 0)
                    ctx.set(axi.wdata, self.rng.getrandbits(32))
        ctx.set(axi.bready, 1)
        while True:
            _, _, bvalid, bresp = await ctx.tick().sample(axi.bvalid, axi.bresp)
            if bvalid:
                break
        ctx.set(axi.bready, 0)
        assert bresp == 0

    async def read(self, address):
        ctx, axi = self.ctx, self.axi
        await self.idle()
        ctx.set(axi.araddr, address)
        ctx.set(axi.arvalid, 1)
        while True:
            _, _, arready = await ctx.tick().sample(axi.arready)
            if arready:
                break
        ctx.set(axi.arvalid, 0)
        ctx.set(axi.araddr, self.rng.getrandbits(12))
        ctx.set(axi.rready, 1)
        while True:
            _, _, rvalid, rdata, rresp = await ctx.tick().sample(axi.rvalid, axi.rdata, axi.rresp)
            if rvalid:
                break
        ctx.set(axi.rready, 0)
        assert rresp == 0
        return rdata


def compare_with_the_model(registers, operations: int, seed: int):
    """Random bus writes (random strobes, unmapped offsets too), reads and hardware events, one at a time, on the
    RegisterFile and the RegisterModel of ``registers``; every read and every field's value must agree. Returns the
    number of reads compared."""
    dut = RegisterFile(registers)
    model = RegisterModel(registers)
    rng = random.Random(seed)
    ports = {port_name(register, field): field for register in registers for field in register.fields}
    offsets = [register.offset for register in registers] + [0xFF0]
    checked = []

    async def testbench(ctx):
        lite = Lite(ctx, dut.axi, rng)
        for _ in range(operations):
            kind = rng.choice(("write", "write", "read", "read", "event"))
            if kind == "write":
                address, value, strobe = rng.choice(offsets), rng.getrandbits(32), rng.getrandbits(4)
                await lite.write(address, value, strobe)
                model.write(address, value, strobe)
            elif kind == "read":
                address = rng.choice(offsets)
                assert await lite.read(address) == model.read(address), f"read 0x{address:03X}"
                checked.append(address)
            else:
                port = rng.choice(sorted(ports))
                field = ports[port]
                if field.access == "RO":
                    value = rng.getrandbits(field.width)
                    ctx.set(getattr(dut, port), value)
                    model.drive(port, value)
                    await ctx.tick()
                elif field.access in SET_BY_HARDWARE + CLEARED_BY_HARDWARE:
                    strobe = getattr(dut, f"{port}_set" if field.access in SET_BY_HARDWARE else f"{port}_clear")
                    ctx.set(strobe, 1)
                    await ctx.tick()
                    ctx.set(strobe, 0)
                    (model.set if field.access in SET_BY_HARDWARE else model.clear)(port)
            for port, field in ports.items():
                if field.access != "RO":
                    assert ctx.get(getattr(dut, port)) == model[port], f"{port} after a {kind}"

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return len(checked)


def test_the_register_file_behaves_as_the_model():
    assert compare_with_the_model(REGISTERS, 600, seed=1) > 150


def test_every_access_kind_against_the_model():
    """One register per access kind, several fields and a 20-bit field at bit 12, so that each kind meets strobes."""
    registers = (
        Register("A", 0x00, "", (Field("rw", 0, 12, "RW", ""), Field("hi", 12, 20, "RW", ""))),
        Register("B", 0x04, "", (Field("w1c", 0, 1, "W1C", ""), Field("cor", 9, 1, "COR", ""),
                                 Field("w1s", 17, 1, "W1S", ""), Field("ro", 24, 8, "RO", ""))),
    )
    assert compare_with_the_model(registers, 400, seed=2) > 100


@pytest.mark.parametrize(("access", "wrong"), [("W1C", "clears on any write"), ("RW", "ignores strobes")])
def test_the_comparison_catches_a_wrong_model(access, wrong, monkeypatch):
    """The checker itself: a model that clears a W1C flag on any write, or writes every byte, is caught."""
    original = RegisterModel.write

    def broken(self, offset, value, strobe=0xF):
        if wrong == "clears on any write":
            for port, field in self.fields.items():
                if field.access == "W1C" and self.registers.get(offset) and field in self.registers[offset].fields:
                    self.values[port] = 0
        original(self, offset, value, 0xF if wrong == "ignores strobes" else strobe)

    monkeypatch.setattr(RegisterModel, "write", broken)
    with pytest.raises(AssertionError):
        compare_with_the_model(REGISTERS, 600, seed=1)


def test_set_wins_over_a_clear_in_the_same_cycle():
    dut = RegisterFile(REGISTERS)

    async def testbench(ctx):
        lite = Lite(ctx, dut.axi, random.Random(0))
        ctx.set(dut.control_ap_done_set, 1)  # held while CONTROL is read: the read's clear loses
        assert await lite.read(offset("CONTROL")) & 0b10 == 0b10
        await ctx.tick()
        assert ctx.get(dut.control_ap_done) == 1
        ctx.set(dut.control_ap_done_set, 0)
        assert await lite.read(offset("CONTROL")) & 0b10 == 0b10
        assert await lite.read(offset("CONTROL")) & 0b10 == 0  # cleared by the read before
        ctx.set(dut.control_ap_start_clear, 1)  # held while ap_start is written: the write wins for a cycle
        await lite.write(offset("CONTROL"), 1)
        await ctx.tick()
        assert ctx.get(dut.control_ap_start) == 0  # then the held clear takes it
        seen.append("done")

    seen = []

    async def watch(ctx):
        async for _, _, start in ctx.tick().sample(dut.control_ap_start):
            seen.append(start)

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(watch, background=True)
    simulator.add_testbench(testbench)
    simulator.run()
    assert seen[-1] == "done" and 1 in seen


def simulate(body):
    dut = ControlRegisters(CONFIG)
    simulator = Simulator(dut)
    simulator.add_clock(1e-8)

    async def testbench(ctx):
        await body(ctx, dut, Lite(ctx, dut.axi, random.Random(3)))

    simulator.add_testbench(testbench)
    simulator.run()


def test_constants_and_unmapped_offsets():
    async def body(ctx, dut, lite):
        assert await lite.read(offset("MAGIC")) == MAGIC
        assert await lite.read(offset("VERSION")) == REGMAP_VERSION
        assert await lite.read(offset("ARRAY")) == CONFIG.rows | CONFIG.cols << 8
        assert await lite.read(offset("CONFIG_ID")) == config_id(CONFIG.to_dict())
        await lite.write(0xFFC, 0x1234)
        assert await lite.read(0xFFC) == 0 and await lite.read(0x4C) == 0
        await lite.write(offset("MAGIC"), 0)
        assert await lite.read(offset("MAGIC")) == MAGIC
    simulate(body)


def test_read_write_registers_with_strobes_and_either_order():
    async def body(ctx, dut, lite):
        await lite.write(offset("PROGRAM_ADDRESS"), 0x12345670, order="address_first")
        assert await lite.read(offset("PROGRAM_ADDRESS")) == 0x12345670
        assert ctx.get(dut.program_address) == 0x12345670
        await lite.write(offset("PROGRAM_ADDRESS"), 0xAABBCCDD, strobe=0b0101, order="data_first")
        assert await lite.read(offset("PROGRAM_ADDRESS")) == 0x12BB56DD
        await lite.write(offset("PROGRAM_LENGTH"), 0xFFFF_0007)
        assert await lite.read(offset("PROGRAM_LENGTH")) == 7 and ctx.get(dut.program_length) == 7
        await lite.write(offset("MEMORY_BASE_LO"), 0x8765_4321)
        await lite.write(offset("MEMORY_BASE_HI"), 0x1_23)
        assert await lite.read(offset("MEMORY_BASE_LO")) == 0x8765_4000  # 4 KiB aligned
        assert await lite.read(offset("MEMORY_BASE_HI")) == 0x23
        assert ctx.get(dut.base) == 0x23_8765_4000
        await lite.write(offset("LAYER_SELECT"), 0x105)
        assert ctx.get(dut.layer_select) == 5
    simulate(body)


def test_status_and_counters_follow_the_engine():
    async def body(ctx, dut, lite):
        for name, port, value in (("CYCLES", dut.cycles, 0xDEADBEEF), ("BEATS_READ", dut.beats_read, 77),
                                  ("BEATS_WRITTEN", dut.beats_written, 5), ("TILES_DONE", dut.tiles_done, 9),
                                  ("LAYER_CYCLES", dut.layer_cycles, 1234), ("FAILED_DESCRIPTOR", dut.failed_descriptor,
                                                                             3)):
            ctx.set(port, value)
            assert await lite.read(offset(name)) == value, name
        ctx.set(dut.error, 6)
        ctx.set(dut.busy, 1)
        assert await lite.read(offset("ERROR")) == 6
        assert await lite.read(offset("STATUS")) == 0b101  # busy, error
    simulate(body)


def test_start_waits_for_idle_and_done_interrupt_cycle():
    async def body(ctx, dut, lite):
        starts = []

        ctx.set(dut.busy, 1)  # an earlier run is going: the start is held
        await lite.write(offset("IER"), 1)
        await lite.write(offset("GIE"), 1)
        await lite.write(offset("CONTROL"), 1)
        assert await lite.read(offset("CONTROL")) & 0b101 == 0b001  # ap_start pending, not idle
        for _ in range(5):
            _, _, start = await ctx.tick().sample(dut.start)
            starts.append(start)
        assert not any(starts)
        ctx.set(dut.busy, 0)
        _, _, start = await ctx.tick().sample(dut.start)  # the start goes out once idle, for one cycle
        assert start
        ctx.set(dut.busy, 1)
        _, _, start = await ctx.tick().sample(dut.start)
        assert not start
        assert await lite.read(offset("CONTROL")) & 0b1 == 0
        assert ctx.get(dut.interrupt) == 0
        ctx.set(dut.busy, 0)
        ctx.set(dut.done, 1)
        await ctx.tick()
        ctx.set(dut.done, 0)
        await ctx.tick()
        assert ctx.get(dut.interrupt) == 1
        assert await lite.read(offset("STATUS")) & 0b11 == 0b10  # done, not busy
        assert await lite.read(offset("ISR")) == 1
        assert await lite.read(offset("CONTROL")) == 0b1110  # ap_done, ap_idle, ap_ready
        assert await lite.read(offset("CONTROL")) == 0b1100  # ap_done was cleared by the read
        await lite.write(offset("ISR"), 0)  # write 1 to clear: zero bits change nothing
        await lite.write(offset("ISR"), 0xFFFF_FFFE, strobe=0b1111)
        await ctx.tick()
        assert ctx.get(dut.interrupt) == 1 and await lite.read(offset("ISR")) == 1
        await lite.write(offset("ISR"), 1)
        await ctx.tick()
        assert ctx.get(dut.interrupt) == 0 and await lite.read(offset("ISR")) == 0
        assert await lite.read(offset("STATUS")) & 0b10  # STATUS.done stays until the next start
    simulate(body)


def test_interrupt_needs_global_and_done_enable():
    async def body(ctx, dut, lite):
        await lite.write(offset("IER"), 1)  # GIE off
        ctx.set(dut.done, 1)
        await ctx.tick()
        ctx.set(dut.done, 0)
        await ctx.tick()
        assert ctx.get(dut.interrupt) == 0 and await lite.read(offset("ISR")) == 1
        await lite.write(offset("ISR"), 1)
        await lite.write(offset("IER"), 0)
        await lite.write(offset("GIE"), 1)
        ctx.set(dut.done, 1)
        await ctx.tick()
        ctx.set(dut.done, 0)
        await ctx.tick()
        assert ctx.get(dut.interrupt) == 0 and await lite.read(offset("ISR")) == 0  # IER off: no status either
    simulate(body)


def test_responses_wait_for_ready_and_a_second_write_waits_behind_them():
    async def body(ctx, dut, lite):
        axi = dut.axi
        ctx.set(axi.awaddr, offset("PROGRAM_ADDRESS"))
        ctx.set(axi.awvalid, 1)
        ctx.set(axi.wdata, 0x40)
        ctx.set(axi.wstrb, 0xF)
        ctx.set(axi.wvalid, 1)
        await ctx.tick().until(axi.awready & axi.wready)
        ctx.set(axi.awvalid, 0)
        ctx.set(axi.wvalid, 0)
        for _ in range(5):  # BREADY low: B stays offered
            _, _, bvalid, bresp = await ctx.tick().sample(axi.bvalid, axi.bresp)
        assert bvalid and bresp == 0
        # A second write arrives while the first B is untaken: it is held, not lost.
        ctx.set(axi.awaddr, offset("PROGRAM_LENGTH"))
        ctx.set(axi.awvalid, 1)
        ctx.set(axi.wdata, 9)
        ctx.set(axi.wvalid, 1)
        await ctx.tick().until(axi.awready & axi.wready)
        ctx.set(axi.awvalid, 0)
        ctx.set(axi.wvalid, 0)
        ctx.set(axi.bready, 1)
        await ctx.tick().until(axi.bvalid)
        await ctx.tick().until(axi.bvalid)  # the second write's B
        ctx.set(axi.bready, 0)
        # A read whose R is not taken for a while keeps its data.
        ctx.set(axi.araddr, offset("PROGRAM_LENGTH"))
        ctx.set(axi.arvalid, 1)
        await ctx.tick().until(axi.arready)
        ctx.set(axi.arvalid, 0)
        for _ in range(4):
            _, _, rvalid, rdata = await ctx.tick().sample(axi.rvalid, axi.rdata)
        assert rvalid and rdata == 9
        ctx.set(axi.rready, 1)
        await ctx.tick()
        ctx.set(axi.rready, 0)
        assert await lite.read(offset("PROGRAM_ADDRESS")) == 0x40
    simulate(body)


def test_abort_is_held_until_the_engine_is_idle():
    async def body(ctx, dut, lite):
        await lite.write(offset("CONTROL"), 1 << 8)  # while idle: nothing to abort, it clears at once
        await ctx.tick()
        assert ctx.get(dut.abort) == 0 and await lite.read(offset("CONTROL")) >> 8 & 1 == 0
        ctx.set(dut.busy, 1)
        await lite.write(offset("CONTROL"), 0)  # a zero changes nothing
        await lite.write(offset("CONTROL"), 1 << 8)
        for _ in range(5):
            await ctx.tick()
            assert ctx.get(dut.abort) == 1
        assert await lite.read(offset("CONTROL")) >> 8 & 1 == 1
        ctx.set(dut.busy, 0)
        await ctx.tick()
        await ctx.tick()
        assert ctx.get(dut.abort) == 0 and await lite.read(offset("CONTROL")) >> 8 & 1 == 0
    simulate(body)
