"""The system's AXI4-Lite register block (the map: :mod:`esb_hw.regmap`, docs/system.md)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...config import AcceleratorConfig
from ...regmap import ADDRESS_BITS, DATA_BITS, MAGIC, REGISTERS, REGMAP_VERSION, by_name, config_id
from ..checks import require_instance
from .axi import AXI_ADDRESS_BITS, axi_lite_signature

__all__ = ["ControlRegisters"]


class ControlRegisters(wiring.Component):
    """AXI4-Lite slave holding the engine's control, status, counters and interrupt.

    Parameters
    ----------
    config : AcceleratorConfig
        Its array size and :func:`~esb_hw.regmap.config_id` are read-only registers.

    Attributes
    ----------
    axi : In(axi_lite_signature())
        12 address bits, 32 data bits; every response is OKAY, unmapped offsets read 0 and ignore writes.
        WSTRB is honoured byte by byte.
    start : Out(1)
        One cycle: the engine's start (a pending ``ap_start`` once the engine is idle).
    program_address : Out(32), program_length : Out(16), base : Out(40), layer_select : Out(8)
        The RW registers.
    busy, done : In(1); error : In(4); failed_descriptor, tiles_done : In(16);
    cycles, beats_read, beats_written, layer_cycles : In(32)
        The engine's status and counters.
    interrupt : Out(1)
        ``GIE & IER.done & ISR.done``, registered.

    Latency: a write takes effect one cycle after both its address and data arrive, then B is offered; a read
    answers one cycle after AR. Throughput: one access per two cycles.
    """

    def __init__(self, config: AcceleratorConfig):
        require_instance("config", config, AcceleratorConfig)
        self.config = config
        super().__init__({
            "axi": In(axi_lite_signature(ADDRESS_BITS, DATA_BITS)),
            "start": Out(1), "program_address": Out(32), "program_length": Out(16), "base": Out(AXI_ADDRESS_BITS),
            "layer_select": Out(8),
            "busy": In(1), "done": In(1), "error": In(4), "failed_descriptor": In(16), "tiles_done": In(16),
            "cycles": In(32), "beats_read": In(32), "beats_written": In(32), "layer_cycles": In(32),
            "interrupt": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        axi = self.axi

        # Writes: address and data may come in either order; the write happens once both are held.
        write_address, write_data, write_strobe = Signal(ADDRESS_BITS), Signal(DATA_BITS), Signal(DATA_BITS // 8)
        have_address, have_data = Signal(), Signal()
        m.d.comb += [axi.awready.eq(~have_address), axi.wready.eq(~have_data)]
        with m.If(axi.awvalid & axi.awready):
            m.d.sync += [write_address.eq(axi.awaddr), have_address.eq(1)]
        with m.If(axi.wvalid & axi.wready):
            m.d.sync += [write_data.eq(axi.wdata), write_strobe.eq(axi.wstrb), have_data.eq(1)]
        writing = Signal()
        m.d.comb += writing.eq(have_address & have_data & ~axi.bvalid)
        with m.If(writing):
            m.d.sync += [have_address.eq(0), have_data.eq(0), axi.bvalid.eq(1)]
        with m.Elif(axi.bready):
            m.d.sync += axi.bvalid.eq(0)
        m.d.comb += axi.bresp.eq(0)
        byte_mask = Cat(*(strobe.replicate(8) for strobe in write_strobe))
        written = write_data & byte_mask  # the bits this write sets (for W1C and W1S fields)

        def writes(name):
            return writing & (write_address[2:] == by_name(name).offset >> 2)

        def mask(name):
            return sum(field.mask for field in by_name(name).fields)

        # Read-write registers: storage of 32 bits, only the field bits kept.
        stored = {}
        for name in ("GIE", "IER", "PROGRAM_ADDRESS", "PROGRAM_LENGTH", "MEMORY_BASE_LO", "MEMORY_BASE_HI",
                     "LAYER_SELECT"):
            stored[name] = register = Signal(DATA_BITS, name=f"reg_{name.lower()}")
            with m.If(writes(name)):
                m.d.sync += register.eq(((register & ~byte_mask) | (write_data & byte_mask)) & mask(name))
        m.d.comb += [self.program_address.eq(stored["PROGRAM_ADDRESS"]),
                     self.program_length.eq(stored["PROGRAM_LENGTH"]),
                     self.base.eq(Cat(stored["MEMORY_BASE_LO"], stored["MEMORY_BASE_HI"][:8])),
                     self.layer_select.eq(stored["LAYER_SELECT"])]

        # Control: ap_start waits for the engine to be idle; ap_done is cleared by reading CONTROL.
        pending, ap_done, done_sticky, isr = Signal(), Signal(), Signal(), Signal()
        control = by_name("CONTROL")
        m.d.comb += self.start.eq(pending & ~self.busy)
        with m.If(writes("CONTROL") & written[control.field("ap_start").lsb]):
            m.d.sync += pending.eq(1)
        with m.Elif(self.start):
            m.d.sync += pending.eq(0)
        with m.If(self.start):
            m.d.sync += done_sticky.eq(0)
        with m.If(self.done):
            m.d.sync += done_sticky.eq(1)
        reading_control = Signal()
        m.d.comb += reading_control.eq(axi.arvalid & axi.arready & (axi.araddr[2:] == control.offset >> 2))
        with m.If(self.done):
            m.d.sync += ap_done.eq(1)
        with m.Elif(reading_control):
            m.d.sync += ap_done.eq(0)
        with m.If(self.done & stored["IER"][0]):
            m.d.sync += isr.eq(1)
        with m.Elif(writes("ISR") & written[by_name("ISR").field("done").lsb]):
            m.d.sync += isr.eq(0)
        m.d.sync += self.interrupt.eq(stored["GIE"][0] & stored["IER"][0] & isr)

        idle = Signal()
        m.d.comb += idle.eq(~self.busy & ~pending)
        values = {
            "CONTROL": Cat(pending, ap_done, idle, idle),
            "ISR": isr,
            "STATUS": Cat(self.busy, done_sticky, self.error != 0),
            "ERROR": self.error, "FAILED_DESCRIPTOR": self.failed_descriptor, "TILES_DONE": self.tiles_done,
            "CYCLES": self.cycles, "BEATS_READ": self.beats_read, "BEATS_WRITTEN": self.beats_written,
            "LAYER_CYCLES": self.layer_cycles,
            "MAGIC": Const(MAGIC, 32), "VERSION": Const(REGMAP_VERSION, 16),
            "ARRAY": Const(self.config.rows | self.config.cols << 8, 16),
            "CONFIG_ID": Const(config_id(self.config.to_dict()), 32),
            **stored,
        }
        missing = {register.name for register in REGISTERS} - set(values)
        assert not missing, f"registers without a value: {missing}"

        # Reads: answered one cycle after AR, held until taken.
        m.d.comb += [axi.arready.eq(~axi.rvalid), axi.rresp.eq(0)]
        with m.If(axi.arvalid & axi.arready):
            m.d.sync += axi.rvalid.eq(1)
            with m.Switch(axi.araddr[2:]):
                for name, value in values.items():
                    with m.Case(by_name(name).offset >> 2):
                        m.d.sync += axi.rdata.eq(value)
                with m.Default():
                    m.d.sync += axi.rdata.eq(0)
        with m.Elif(axi.rready):
            m.d.sync += axi.rvalid.eq(0)
        return m
