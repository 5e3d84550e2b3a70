"""The system's AXI4-Lite register block (the map: :mod:`esb_hw.regmap`, docs/system.md)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...config import AcceleratorConfig
from ...errors import ParameterError
from ...regmap import (
    ADDRESS_BITS,
    CLEARED_BY_HARDWARE,
    DATA_BITS,
    MAGIC,
    REGISTERS,
    REGMAP_VERSION,
    SET_BY_HARDWARE,
    Field,
    Register,
    config_id,
    port_name,
)
from ..checks import require_instance
from .axi import AXI_ADDRESS_BITS, axi_lite_signature

__all__ = ["ControlRegisters", "RegisterFile"]


class RegisterFile(wiring.Component):
    """An AXI4-Lite register file whose behaviour is built from a register table (:data:`esb_hw.regmap.REGISTERS`):
    each field acts as its access kind says (:data:`esb_hw.regmap.ACCESS`); nothing is written per register.

    Parameters
    ----------
    registers : tuple of :class:`esb_hw.regmap.Register`
        The map.

    Attributes
    ----------
    axi : In(axi_lite_signature(12, 32))
        Every response is OKAY; unmapped offsets read 0 and ignore writes; WSTRB is honoured byte by byte.
    <port> : one per field (:func:`esb_hw.regmap.port_name`), as wide as the field
        ``RW``: Out, the stored value. ``RO``: In, the value read. ``W1C``, ``COR``, ``W1S``: Out, the flag.
    <port>_set : In(1), for ``W1C`` and ``COR`` fields
        Set the flag this cycle (it wins over a clear in the same cycle).
    <port>_clear : In(1), for ``W1S`` fields
        Clear the flag this cycle (a write of 1 in the same cycle wins).

    Latency: a write takes effect one cycle after both its address and data arrive, then B is offered; a read
    answers one cycle after AR (a ``COR`` field clears on that cycle). Throughput: one access per two cycles.
    """

    def __init__(self, registers: tuple[Register, ...] = REGISTERS):
        self.registers = registers
        members = {"axi": In(axi_lite_signature(ADDRESS_BITS, DATA_BITS))}
        for register in registers:
            for field in register.fields:
                port = port_name(register, field)
                members[port] = (In if field.access == "RO" else Out)(field.width)
                if field.access in SET_BY_HARDWARE + CLEARED_BY_HARDWARE and field.width != 1:
                    raise ParameterError(f"field {register.name}.{field.name}: a {field.access} field is one bit, "
                                         f"got {field.width}")
                if field.access in SET_BY_HARDWARE:
                    members[f"{port}_set"] = In(1)
                elif field.access in CLEARED_BY_HARDWARE:
                    members[f"{port}_clear"] = In(1)
                elif field.access not in ("RW", "RO"):
                    raise ParameterError(f"field {register.name}.{field.name}: unknown access {field.access!r}")
        super().__init__(members)

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
        written = write_data & byte_mask  # the bits this write sets to 1

        reading = Signal()
        m.d.comb += [axi.arready.eq(~axi.rvalid), axi.rresp.eq(0), reading.eq(axi.arvalid & axi.arready)]
        with m.If(reading):
            m.d.sync += axi.rvalid.eq(1)
        with m.Elif(axi.rready):
            m.d.sync += axi.rvalid.eq(0)

        with m.If(reading):
            with m.Switch(axi.araddr[2:]):
                for register in self.registers:
                    with m.Case(register.offset >> 2):
                        m.d.sync += axi.rdata.eq(self._word(register))
                with m.Default():
                    m.d.sync += axi.rdata.eq(0)
        for register in self.registers:
            selected = register.offset >> 2
            written_here = writing & (write_address[2:] == selected)
            read_here = reading & (axi.araddr[2:] == selected)
            for field in register.fields:
                self._act(m, register, field, written_here, read_here,
                          written[field.lsb:field.lsb + field.width], byte_mask[field.lsb:field.lsb + field.width])
        return m

    def _word(self, register: Register):
        """The register's read value: its fields at their bits, zeros elsewhere."""
        pieces, position = [], 0
        for field in sorted(register.fields, key=lambda field: field.lsb):
            if field.lsb > position:
                pieces.append(Const(0, field.lsb - position))
            pieces.append(getattr(self, port_name(register, field)))
            position = field.lsb + field.width
        return Cat(*pieces)

    def _act(self, m: Module, register: Register, field: Field, written_here, read_here, written_bits, selected_bits):
        """The field's access kind, as logic (:data:`esb_hw.regmap.ACCESS`)."""
        port = port_name(register, field)
        value = getattr(self, port)
        if field.access == "RW":
            with m.If(written_here):
                m.d.sync += value.eq((value & ~selected_bits) | written_bits)
        elif field.access in SET_BY_HARDWARE:
            cleared = (written_here & written_bits[0]) if field.access == "W1C" else read_here
            with m.If(getattr(self, f"{port}_set")):
                m.d.sync += value.eq(1)
            with m.Elif(cleared):
                m.d.sync += value.eq(0)
        elif field.access in CLEARED_BY_HARDWARE:
            with m.If(written_here & written_bits[0]):
                m.d.sync += value.eq(1)
            with m.Elif(getattr(self, f"{port}_clear")):
                m.d.sync += value.eq(0)


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
    abort : Out(1)
        ``CONTROL.abort``: held from the host's write until the engine is idle.
    program_address : Out(32), program_length : Out(16), base : Out(40), memory_size : Out(40),
    layer_select : Out(8)
        The RW registers.
    busy, done : In(1); error : In(4); error_detail : In(3); failed_descriptor, tiles_done : In(16);
    refused_requests : In(16)
        The bus guard's count (``WINDOW_REFUSED``).
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
            "start": Out(1), "abort": Out(1), "program_address": Out(32), "program_length": Out(16),
            "base": Out(AXI_ADDRESS_BITS), "memory_size": Out(AXI_ADDRESS_BITS), "layer_select": Out(8),
            "busy": In(1), "done": In(1), "error": In(4), "error_detail": In(3), "failed_descriptor": In(16),
            "tiles_done": In(16), "refused_requests": In(16),
            "cycles": In(32), "beats_read": In(32), "beats_written": In(32), "layer_cycles": In(32),
            "interrupt": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.file = registers = RegisterFile(REGISTERS)
        wiring.connect(m, wiring.flipped(self.axi), registers.axi)
        # The RW registers drive the engine.
        m.d.comb += [self.program_address.eq(registers.program_address),
                     self.program_length.eq(registers.program_length),
                     self.base.eq(Cat(Const(0, 12), registers.memory_base_lo, registers.memory_base_hi)),
                     self.memory_size.eq(Cat(Const(0, 4), registers.memory_size_lo, registers.memory_size_hi)),
                     self.layer_select.eq(registers.layer_select)]
        # CONTROL: ap_start (W1S) is taken once the engine is idle; ap_done (COR) is set when a run ends.
        m.d.comb += [self.start.eq(registers.control_ap_start & ~self.busy),
                     registers.control_ap_start_clear.eq(self.start),
                     registers.control_ap_done_set.eq(self.done)]
        # CONTROL.abort (W1S) goes to the engine until it is idle.
        m.d.comb += [self.abort.eq(registers.control_abort), registers.control_abort_clear.eq(~self.busy)]
        idle = ~self.busy & ~registers.control_ap_start
        m.d.comb += [registers.control_ap_idle.eq(idle), registers.control_ap_ready.eq(idle)]
        # ISR.done (W1C) is set when a run ends while IER.done is on; the interrupt line is registered.
        m.d.comb += registers.isr_done_set.eq(self.done & registers.ier_done)
        m.d.sync += self.interrupt.eq(registers.gie & registers.ier_done & registers.isr_done)
        # STATUS.done holds from the end of a run to the next start.
        done_sticky = Signal()
        with m.If(self.start):
            m.d.sync += done_sticky.eq(0)
        with m.If(self.done):
            m.d.sync += done_sticky.eq(1)
        m.d.comb += [registers.status_busy.eq(self.busy), registers.status_done.eq(done_sticky),
                     registers.status_error.eq(self.error != 0)]
        # The engine's status and counters, and the constants.
        m.d.comb += [registers.error.eq(self.error), registers.error_detail.eq(self.error_detail),
                     registers.window_refused.eq(self.refused_requests),
                     registers.failed_descriptor.eq(self.failed_descriptor),
                     registers.tiles_done.eq(self.tiles_done), registers.cycles.eq(self.cycles),
                     registers.beats_read.eq(self.beats_read), registers.beats_written.eq(self.beats_written),
                     registers.layer_cycles.eq(self.layer_cycles),
                     registers.magic.eq(MAGIC), registers.version.eq(REGMAP_VERSION),
                     registers.array_rows.eq(self.config.rows), registers.array_cols.eq(self.config.cols),
                     registers.config_id.eq(config_id(self.config.to_dict()))]
        return m
