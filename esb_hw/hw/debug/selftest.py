"""A self-checking accelerator: the PE array runs a built-in test layer and reports pass or fail.

The test layer's beats and expected sums come from the compiler
(:func:`esb_hw.compiler.selftest.build_test_layer`, once per build) and are baked into on-chip ROMs, so a bare
board with a JTAG cable can prove the array computes exactly (docs/architecture.md, rung 5).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...config import AcceleratorConfig
from ...errors import ParameterError
from ...layouts import SelfTestLayer, array_input_layout, array_output_layout
from ..checks import require_bool, require_instance, require_int
from ..core.array import PEArray
from .rom import Rom, rom_register_bits
from .uart import UARTTransmitter

__all__ = ["SelfTest", "report_line", "selftest_register_bits"]

COUNT_DIGITS = 4  # hex digits of the tile and error counts in the report line


def selftest_register_bits(config: AcceleratorConfig, layer: SelfTestLayer, *, clocks_per_bit: int,
                           heartbeat_bit: int, primitives: bool = True) -> int:
    """Flip-flops that :class:`SelfTest` adds to its :class:`~esb_hw.hw.core.array.PEArray`, as synthesis keeps
    them: the ROM read registers (:func:`~esb_hw.hw.debug.rom.rom_register_bits`), the counters, the FSM and the
    UART (its constant stop bit removed), less the array input-register bits that become copies of merged ROM
    columns."""
    line = len(report_line(True, 0, 0))
    beat_bits = array_input_layout(config).size
    beat_registers = rom_register_bits(layer.beats, beat_bits, primitives=primitives)
    roms = beat_registers + rom_register_bits(layer.expected, array_output_layout(config).size,
                                              primitives=primitives)
    counters = ((heartbeat_bit + 1) + len(layer.beats).bit_length() + 2 * layer.tiles.bit_length()
                + line.bit_length())
    flags = 1 + 1 + 1 + 2 + 2  # beat_valid, start_seen, run_after_reset, passed/failed, FSM state
    uart = 9 + (10).bit_length() + (max(clocks_per_bit, 2) - 1).bit_length()
    merged_in_array = beat_bits - beat_registers  # the array's input register follows the ROM's columns
    return roms + counters + flags + uart - merged_in_array


def report_line(passed: bool, tiles: int, errors: int) -> bytes:
    """The UART line, e.g. ``b"ESB-HW SELFTEST PASS tiles=0010 errors=0000\\r\\n"`` (counts in hex)."""
    verdict = "PASS" if passed else "FAIL"
    return f"ESB-HW SELFTEST {verdict} tiles={tiles:0{COUNT_DIGITS}X} errors={errors:0{COUNT_DIGITS}X}\r\n".encode()


class SelfTest(wiring.Component):
    """Run the test layer through a :class:`PEArray`, compare every tile, report on LEDs and UART.

    Parameters
    ----------
    config : AcceleratorConfig
    layer : SelfTestLayer
        From :func:`esb_hw.compiler.selftest.build_test_layer`; tests pass a corrupted one to see the failure
        path. At most ``16**4 - 1`` tiles (the report prints four hex digits).
    clocks_per_bit : int
        UART divisor, ``round(f_clk / baud)``.
    heartbeat_bit : int
        The free-running counter bit that drives ``heartbeat`` (toggles every ``2**heartbeat_bit`` cycles).
    primitives : bool
        Passed to :class:`PEArray`: UltraScale(+) ternary adders.

    Attributes
    ----------
    start : In(1)
        A rising edge starts a new run when none is in progress (synchronize and debounce outside). A run
        also starts by itself one cycle after reset.
    heartbeat, busy, passed, failed : Out(1)
        Status for LEDs: ``passed``/``failed`` hold the last verdict until the next run starts.
    uart_tx : Out(1)
        One :func:`report_line` per run, 8N1.

    Timing: a run takes ``len(layer.beats) + pipeline latency`` cycles plus stalls (none: the checker is
    always ready), then ``10 * clocks_per_bit + 1`` cycles per report character.
    """

    def __init__(self, config: AcceleratorConfig, layer: SelfTestLayer, *, clocks_per_bit: int, heartbeat_bit: int,
                 primitives: bool = False):
        require_instance("config", config, AcceleratorConfig)
        require_instance("layer", layer, SelfTestLayer)
        require_int("layer.tiles", layer.tiles, 1, 16 ** COUNT_DIGITS - 1)
        require_int("clocks_per_bit", clocks_per_bit, 1)
        require_int("heartbeat_bit", heartbeat_bit, 1, 63)
        require_bool("primitives", primitives)
        beat_bits, tile_bits = array_input_layout(config).size, array_output_layout(config).size
        if max(layer.beats).bit_length() > beat_bits or max(layer.expected).bit_length() > tile_bits:
            raise ParameterError(f"layer payloads do not fit this config's beats ({beat_bits} bits in, "
                                 f"{tile_bits} bits out)")
        last = array_input_layout(config)["last"].offset
        closing = sum((beat >> last) & 1 for beat in layer.beats)
        if closing != layer.tiles or not (layer.beats[-1] >> last) & 1:
            raise ParameterError(f"layer has {layer.tiles} expected tiles but {closing} beats flagged last, or its "
                                 "final beat does not close a tile")
        self.config = config
        self.primitives = primitives
        self.layer = layer
        self.clocks_per_bit = clocks_per_bit
        self.heartbeat_bit = heartbeat_bit
        super().__init__({
            "start": In(1), "heartbeat": Out(1), "busy": Out(1), "passed": Out(1), "failed": Out(1),
            "uart_tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        config, layer = self.config, self.layer
        m = Module()
        m.submodules.array = array = PEArray(config, primitives=self.primitives)
        m.submodules.beats = beat_port = Rom(layer.beats, width=array_input_layout(config).size,
                                             primitives=self.primitives)
        m.submodules.expected = expected_port = Rom(layer.expected, width=array_output_layout(config).size,
                                                    primitives=self.primitives)
        m.submodules.uart = uart = UARTTransmitter(clocks_per_bit=self.clocks_per_bit)

        heartbeat = Signal(self.heartbeat_bit + 1)
        m.d.sync += heartbeat.eq(heartbeat + 1)
        m.d.comb += [self.heartbeat.eq(heartbeat[-1]), self.uart_tx.eq(uart.tx)]

        # Feeder: the ROM read port holds its data while the array is not ready.
        next_beat = Signal(range(len(layer.beats) + 1))
        beat_valid = Signal()
        feeding = Signal()
        m.d.comb += [array.i.payload.eq(beat_port.data), array.i.valid.eq(beat_valid),
                     beat_port.addr.eq(next_beat)]
        m.d.comb += beat_port.en.eq(~beat_valid | array.i.ready)
        with m.If(~beat_valid | array.i.ready):
            m.d.sync += beat_valid.eq(feeding & (next_beat < len(layer.beats)))
            with m.If(feeding & (next_beat < len(layer.beats))):
                m.d.sync += next_beat.eq(next_beat + 1)

        # Checker: always ready; the expected ROM is read one tile ahead.
        tiles_seen = Signal(range(layer.tiles + 1))
        errors = Signal(range(layer.tiles + 1))
        m.d.comb += [array.o.ready.eq(1), expected_port.en.eq(1),
                     expected_port.addr.eq(Mux(array.o.valid, tiles_seen + 1, tiles_seen))]
        with m.If(array.o.valid):
            m.d.sync += tiles_seen.eq(tiles_seen + 1)
            with m.If(array.o.payload.as_value() != expected_port.data):
                m.d.sync += errors.eq(errors + 1)

        # Control: run after reset and on each start edge; then print the verdict.
        start_seen = Signal()
        run_after_reset = Signal(init=1)
        m.d.sync += [start_seen.eq(self.start), run_after_reset.eq(0)]
        message_index = Signal(range(len(report_line(True, 0, 0)) + 1))
        # FSM outputs are decoded outside the states (continuous assignments), so Icarus sees them at time 0.
        with m.FSM() as control:
            with m.State("IDLE"):
                with m.If(run_after_reset | (self.start & ~start_seen)):
                    m.d.sync += [next_beat.eq(0), tiles_seen.eq(0), errors.eq(0), self.passed.eq(0),
                                 self.failed.eq(0)]
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(tiles_seen == layer.tiles):
                    m.d.sync += [self.passed.eq(errors == 0), self.failed.eq(errors != 0), message_index.eq(0)]
                    m.next = "REPORT"
            with m.State("REPORT"):
                with m.If(uart.i.ready):
                    m.d.sync += message_index.eq(message_index + 1)
                    with m.If(message_index == len(report_line(True, 0, 0)) - 1):
                        m.next = "IDLE"
        m.d.comb += [feeding.eq(control.ongoing("RUN")), self.busy.eq(control.ongoing("RUN")),
                     uart.i.valid.eq(control.ongoing("REPORT")),
                     uart.i.payload.eq(self._report_byte(m, message_index, errors))]
        return m

    def _report_byte(self, m: Module, index, errors):
        """The byte at ``index`` of :func:`report_line` for the current verdict and counts."""
        pass_line, fail_line = report_line(True, 0, 0), report_line(False, 0, 0)
        tiles_text = f"{self.layer.tiles:0{COUNT_DIGITS}X}".encode()
        errors_at = fail_line.index(b"errors=") + len(b"errors=")
        tiles_at = fail_line.index(b"tiles=") + len(b"tiles=")
        byte = Signal(8)
        with m.Switch(index):
            for position in range(len(pass_line)):
                with m.Case(position):
                    if errors_at <= position < errors_at + COUNT_DIGITS:
                        shift = 4 * (COUNT_DIGITS - 1 - (position - errors_at))
                        nibble = (errors >> shift)[:4] if shift < len(errors) else 0
                        m.d.comb += byte.eq(Mux(nibble < 10, ord("0") + nibble, ord("A") - 10 + nibble))
                    elif tiles_at <= position < tiles_at + COUNT_DIGITS:
                        m.d.comb += byte.eq(tiles_text[position - tiles_at])
                    elif pass_line[position] != fail_line[position]:
                        m.d.comb += byte.eq(Mux(errors == 0, pass_line[position], fail_line[position]))
                    else:
                        m.d.comb += byte.eq(pass_line[position])
        return byte
