"""The system: the layer engine behind AXI4-Lite registers and an AXI4 master, with an interrupt and status LEDs
(docs/system.md), and the Verilog wrapper with the port names and interface attributes Vivado reads.

:class:`System` is the Amaranth top (clock ``clk``, synchronous reset ``rst``, ports ``s_axi__awaddr`` ...).
:func:`wrapper_verilog` writes module ``esb_system`` around it: ``ap_clk``, ``ap_rst_n`` (active low), ``s_axi_*``,
``m_axi_*``, ``interrupt`` and ``leds``, each with ``X_INTERFACE_INFO`` (and ``X_INTERFACE_PARAMETER`` on the
first port of an interface), so that a block design can add it as a module reference and infer its interfaces.
The simulations run the same wrapper.
"""

from __future__ import annotations

from amaranth import Cat, Module, Shape, Signal
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import AcceleratorConfig
from ..errors import ParameterError
from ..regmap import ADDRESS_BITS, DATA_BITS
from .bus.axi import AXI_ADDRESS_BITS, AxiMaster, axi4_signature, axi_lite_signature
from .bus.registers import ControlRegisters
from .checks import require_instance, require_int
from .clocking import heartbeat_bit
from .core.engine import Engine

__all__ = ["LED_MEANINGS", "SYSTEM_NAME", "System", "connect_memory", "system_verilog", "wrapper_verilog"]

#: The wrapper's module name (the block design's module reference).
SYSTEM_NAME = "esb_system"
#: What each of ``leds[0..3]`` shows.
LED_MEANINGS = ("heartbeat (about 1 Hz)", "busy", "done without error", "error")


class System(wiring.Component):
    """The layer engine with its host interface.

    Parameters
    ----------
    config : AcceleratorConfig
        A square array (the engine's requirement).
    primitives : bool
        Build the arithmetic from UltraScale(+) primitives (synthesis).
    heartbeat : int, optional
        The free-running counter bit on ``leds[0]``; by default about 1 Hz at ``config.clock_mhz``.

    Attributes
    ----------
    s_axi : In(axi_lite_signature())
        The registers (:class:`~.bus.registers.ControlRegisters`).
    m_axi : Out(axi4_signature())
        Memory (:class:`~.bus.axi.AxiMaster`): 40-bit addresses, 128-bit data.
    interrupt : Out(1)
        Level, high while an enabled interrupt is pending (cleared by writing ISR).
    leds : Out(4)
        :data:`LED_MEANINGS`.

    Latency and throughput: the engine's; the AXI master adds a cycle to each request.
    """

    def __init__(self, config: AcceleratorConfig, *, primitives: bool = False, heartbeat: int | None = None):
        require_instance("config", config, AcceleratorConfig)
        if config.rows != config.cols:
            raise ParameterError(f"the system needs a square array (the layer engine's), got {config.rows}x"
                                 f"{config.cols}")
        self.config = config
        self.engine = Engine(config, primitives=primitives)  # validates the rest of the config
        self.heartbeat = heartbeat_bit(config.clock_mhz) if heartbeat is None else require_int(
            "heartbeat", heartbeat, 1, 40)
        super().__init__({
            "s_axi": In(axi_lite_signature(ADDRESS_BITS, DATA_BITS)),
            "m_axi": Out(axi4_signature()),
            "interrupt": Out(1),
            "leds": Out(4),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self.engine
        m.submodules.registers = registers = ControlRegisters(self.config)
        m.submodules.master = master = AxiMaster()
        wiring.connect(m, wiring.flipped(self.s_axi), registers.axi)
        wiring.connect(m, master.axi, wiring.flipped(self.m_axi))
        connect_memory(m, engine, master)
        m.d.comb += [engine.start.eq(registers.start), engine.abort.eq(registers.abort),
                     engine.program_address.eq(registers.program_address),
                     engine.program_length.eq(registers.program_length), engine.layer_select.eq(registers.layer_select),
                     master.base.eq(registers.base), self.interrupt.eq(registers.interrupt),
                     engine.memory_size.eq(registers.memory_size), master.memory_size.eq(registers.memory_size),
                     registers.refused_requests.eq(master.refused_requests)]
        for name in ("busy", "done", "error", "error_detail", "failed_descriptor", "tiles_done", "cycles",
                     "beats_read", "beats_written", "layer_cycles"):
            m.d.comb += getattr(registers, name).eq(getattr(engine, name))

        beat = Signal(self.heartbeat + 1)
        m.d.sync += beat.eq(beat + 1)
        finished_ok, failed = Signal(), Signal()
        with m.If(engine.start):
            m.d.sync += [finished_ok.eq(0), failed.eq(0)]
        with m.Elif(engine.done):
            m.d.sync += [finished_ok.eq(engine.error == 0), failed.eq(engine.error != 0)]
        m.d.comb += self.leds.eq(Cat(beat[-1], engine.busy, finished_ok, failed))
        return m


def connect_memory(m: Module, engine: Engine, master: AxiMaster) -> None:
    """The engine's memory streams to the AXI master, and the bus guard's refusals back to the engine (both must
    be given the same ``memory_size``)."""
    for name in ("read_request", "write_request", "write_data"):
        wiring.connect(m, getattr(engine, name), getattr(master, name))
    for name in ("read_data", "write_response"):
        wiring.connect(m, getattr(master, name), getattr(engine, name))
    m.d.comb += [engine.read_refused.eq(master.read_refused), engine.write_refused.eq(master.write_refused)]


# ---- the Verilog wrapper -----------------------------------------------------------------------------------------

_CORE_NAME = f"{SYSTEM_NAME}_core"


def _interface_parameter(interface: str, config: AcceleratorConfig) -> str:
    if interface == "s_axi":
        return (f"PROTOCOL AXI4LITE, DATA_WIDTH {DATA_BITS}, ADDR_WIDTH {ADDRESS_BITS}, ID_WIDTH 0, "
                "READ_WRITE_MODE READ_WRITE, HAS_BURST 0, HAS_LOCK 0, HAS_CACHE 0, HAS_QOS 0, HAS_REGION 0")
    return (f"PROTOCOL AXI4, DATA_WIDTH 128, ADDR_WIDTH {AXI_ADDRESS_BITS}, ID_WIDTH 1, MAX_BURST_LENGTH 256, "
            "NUM_READ_OUTSTANDING 16, NUM_WRITE_OUTSTANDING 8, READ_WRITE_MODE READ_WRITE, HAS_BURST 1, "
            "HAS_LOCK 1, HAS_CACHE 1, HAS_PROT 1, HAS_QOS 1, HAS_REGION 0, HAS_WSTRB 1, HAS_BRESP 1, HAS_RRESP 1")


def wrapper_ports(system: System) -> list[tuple[str, str, int, str]]:
    """The wrapper's ports as ``(name, direction, width, core port)``: clock, reset, then every member."""
    ports = [("ap_clk", "input", 1, "clk"), ("ap_rst_n", "input", 1, "rst")]
    for path, member, _value in system.signature.flatten(system):
        direction = "input" if member.flow == In else "output"
        core = "__".join(path)
        ports.append(("_".join(path), direction, Shape.cast(member.shape).width, core))
    return ports


def wrapper_verilog(system: System) -> str:
    """Module ``esb_system`` around ``esb_system_core`` (:func:`system_verilog`), with Vivado's interface
    attributes; ``ap_rst_n`` low resets the core synchronously."""
    lines = [f"// {SYSTEM_NAME}: the esb-hw system ({system.config.name}, {system.config.rows}x{system.config.cols}) "
             "with the port names and interface attributes Vivado reads.",
             "// Generated by esb_hw/hw/system.py; do not edit.", f"module {SYSTEM_NAME} ("]
    declarations = []
    seen = set()
    for name, direction, width, _core in wrapper_ports(system):
        attributes = []
        if name == "ap_clk":
            attributes = ['X_INTERFACE_INFO = "xilinx.com:signal:clock:1.0 ap_clk CLK"',
                          'X_INTERFACE_PARAMETER = "ASSOCIATED_BUSIF s_axi:m_axi, ASSOCIATED_RESET ap_rst_n"']
        elif name == "ap_rst_n":
            attributes = ['X_INTERFACE_INFO = "xilinx.com:signal:reset:1.0 ap_rst_n RST"',
                          'X_INTERFACE_PARAMETER = "POLARITY ACTIVE_LOW"']
        elif name == "interrupt":
            attributes = ['X_INTERFACE_INFO = "xilinx.com:signal:interrupt:1.0 interrupt INTERRUPT"',
                          'X_INTERFACE_PARAMETER = "SENSITIVITY LEVEL_HIGH"']
        elif name.startswith(("s_axi_", "m_axi_")):
            interface, signal = name[:5], name[6:]
            attributes = [f'X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 {interface} {signal.upper()}"']
            if interface not in seen:
                seen.add(interface)
                mode = "slave" if interface == "s_axi" else "master"
                attributes.append(f'X_INTERFACE_MODE = "{mode}"')
                attributes.append(f'X_INTERFACE_PARAMETER = "{_interface_parameter(interface, system.config)}"')
        rng = f"[{width - 1}:0] " if width > 1 else ""
        declarations.append("".join(f"  (* {attribute} *)\n" for attribute in attributes)
                            + f"  {direction} wire {rng}{name}")
    lines.append(",\n".join(declarations))
    lines.append(");")
    connections = []
    for name, _direction, _width, core in wrapper_ports(system):
        connections.append(f"    .{core}({'~ap_rst_n' if name == 'ap_rst_n' else name})")
    lines += [f"  {_CORE_NAME} core (", ",\n".join(connections), "  );", "endmodule", ""]
    return "\n".join(lines)


def system_verilog(system: System) -> str:
    """The whole system's Verilog: the Amaranth core (``esb_system_core``) followed by the wrapper."""
    core = verilog.convert(system, name=_CORE_NAME, emit_src=False)
    return core + "\n" + wrapper_verilog(system)
