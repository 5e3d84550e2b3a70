"""A self-checking accelerator: the PE array runs a built-in test layer and reports pass or fail.

The test layer's beats and expected sums come from the golden model at build time and are baked into
on-chip ROMs, so a bare board with a JTAG cable can prove the array computes exactly (DESIGN.md §3, rung 5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..compiler.gemm import gemm_stimulus, pack_outputs
from ..config import AcceleratorConfig
from .array import PEArray, input_layout
from .uart import UARTTransmitter

__all__ = ["SelfTest", "SelfTestLayer", "build_test_layer", "report_line"]

COUNT_DIGITS = 4  # hex digits of the tile and error counts in the report line


@dataclass(frozen=True)
class SelfTestLayer:
    """Packed beats and expected outputs of the built-in layer."""

    beats: tuple[int, ...]
    expected: tuple[int, ...]  # packed output payloads, one per tile

    @property
    def tiles(self) -> int:
        return len(self.expected)


def build_test_layer(config: AcceleratorConfig, *, tiles: int = 16, seed: int = 2022) -> SelfTestLayer:
    """Two tiles of the largest products everywhere (positive, then negative sums), then random codes for a
    ``rows x reduction x (tiles - 2)`` GEMM, with ``reduction = min(4 cols, max_reduction)``.

    The extreme tiles exercise every product path at its largest level and the accumulator's sign; sums at
    the full ``max_reduction`` (the accumulator's top bits) are checked in simulation (tests/test_pe.py,
    tests/test_array.py), not in the ROM, which would grow by ``max_reduction / cols`` beats."""
    rng = np.random.default_rng(seed)
    reduction = min(4 * config.cols, config.max_reduction)
    weights = rng.integers(0, config.weight_format.code_count, (config.rows, reduction))
    activations = rng.integers(0, config.activation_format.code_count, (reduction, max(tiles - 2, 1)))
    top_activation = config.activation_format.code_of_level(np.array([config.activation_format.max_level]))[0]
    beats, expected = [], []
    for sign in (+1, -1):
        weight_code = config.weight_format.code_of_level(np.array([sign * config.weight_format.max_level]))[0]
        stimulus = gemm_stimulus(config, np.full((config.rows, reduction), weight_code),
                                 np.full((reduction, 1), top_activation))
        beats += stimulus.beats
        expected += stimulus.expected
    stimulus = gemm_stimulus(config, weights, activations)
    beats += stimulus.beats
    expected += stimulus.expected
    packed = [pack_outputs(sums, config.accumulator_bits) for sums in expected]
    return SelfTestLayer(tuple(beats), tuple(packed))


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
        From :func:`build_test_layer`; tests pass a corrupted one to see the failure path.
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
    always ready), then ``10 * clocks_per_bit`` cycles per report character.
    """

    def __init__(self, config: AcceleratorConfig, layer: SelfTestLayer, *, clocks_per_bit: int, heartbeat_bit: int,
                 primitives: bool = False):
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
        m.submodules.beats = beat_rom = Memory(shape=input_layout(config).size, depth=len(layer.beats),
                                               init=layer.beats)
        m.submodules.expected = expected_rom = Memory(shape=config.rows * config.accumulator_bits,
                                                      depth=layer.tiles, init=layer.expected)
        m.submodules.uart = uart = UARTTransmitter(clocks_per_bit=self.clocks_per_bit)
        beat_port = beat_rom.read_port()
        expected_port = expected_rom.read_port()

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
