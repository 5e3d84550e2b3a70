"""The board top level: clocking, reset, LEDs, the start button and the UART around :class:`SelfTest`.

The accelerator clock is the board's default clock when ``config.clock_mhz`` equals it; otherwise an MMCM
(``MMCME4_BASE`` on UltraScale+, ``MMCME3_BASE`` on UltraScale; UG974) makes ``clock_mhz`` from it. Reset is
the board's reset button (when it has one) or the MMCM losing lock, synchronized to the accelerator clock.

LEDs: 0 heartbeat (about 1 Hz), 1 busy, 2 pass, 3 fail. The start input is button 0 (the centre button on
the ZCU102), synchronized; a run also starts after reset. The UART (when the board has one) prints one
line per run at 115200 baud.
"""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer

from ..config import AcceleratorConfig
from ..errors import ParameterError
from ..layouts import SelfTestLayer
from .checks import require_instance
from .clocking import MMCM_PRIMITIVES, ClockError, heartbeat_bit, plan_clock, uart_clocks_per_bit
from .debug.selftest import SelfTest

__all__ = ["SelfTestTop"]

def _buffer(m: Module, name: str, direction: str, port):
    buffer = io.Buffer(direction, port)
    m.submodules[name] = buffer
    return buffer


class SelfTestTop(Elaboratable):
    """Board top level of the self-checking accelerator.

    Parameters
    ----------
    config : AcceleratorConfig
        The accelerator; ``config.clock_mhz`` is the clock it runs at.
    clock : boards.BoardClock
        The board clock resource ``(resource, number, frequency_hz)`` to derive the clock from.
    layer : SelfTestLayer
        The built-in layer, from :func:`esb_hw.compiler.selftest.build_test_layer` (tests pass a corrupted
        one).

    Raises
    ------
    ClockError
        If ``config.clock_mhz`` cannot be made from the board clock.
    """

    def __init__(self, config: AcceleratorConfig, clock, *, layer: SelfTestLayer):
        require_instance("config", config, AcceleratorConfig)
        require_instance("layer", layer, SelfTestLayer)
        if not all(hasattr(clock, field) for field in ("resource", "number", "frequency_hz")):
            raise ParameterError(f"clock must be a boards.BoardClock (resource, number, frequency_hz), got "
                                 f"{type(clock).__name__} {clock!r}")
        self.config = config
        self.clock = clock
        self.layer = layer
        self.clock_plan = plan_clock(clock.frequency_hz / 1e6, config.clock_mhz)
        self.clocks_per_bit = uart_clocks_per_bit(self.clock_plan.output_mhz)
        self.heartbeat_bit = heartbeat_bit(self.clock_plan.output_mhz)

    def _clocking(self, m: Module, platform):
        plan = self.clock_plan
        board_clock = _buffer(m, "clock_buffer", "i", platform.request(self.clock.resource, self.clock.number,
                                                                         dir="-"))
        reset_request = Signal()
        if ("cpu_reset", 0) in platform.resources:
            reset_button = _buffer(m, "reset_buffer", "i", platform.request("cpu_reset", 0, dir="-"))
            m.d.comb += reset_request.eq(reset_button.i)
        m.domains.sync = ClockDomain()
        if not plan.uses_mmcm:
            m.d.comb += ClockSignal("sync").eq(board_clock.i)
            m.submodules.reset_sync = ResetSynchronizer(reset_request, domain="sync")
            return
        family = getattr(platform, "family", None)
        if family not in MMCM_PRIMITIVES:
            raise ClockError(f"no MMCM for the {family} family: set clock_mhz to the board clock, "
                             f"{plan.input_mhz:g} MHz")
        feedback, unbuffered, locked = Signal(), Signal(), Signal()
        m.submodules.mmcm = Instance(
            MMCM_PRIMITIVES[family],
            p_CLKIN1_PERIOD=round(1000.0 / plan.input_mhz, 3),
            p_DIVCLK_DIVIDE=plan.divide,
            p_CLKFBOUT_MULT_F=plan.multiply,
            p_CLKOUT0_DIVIDE_F=plan.output_divide,
            i_CLKIN1=board_clock.i, i_CLKFBIN=feedback, i_RST=reset_request, i_PWRDWN=0,
            o_CLKFBOUT=feedback, o_CLKOUT0=unbuffered, o_LOCKED=locked,
        )
        m.submodules.clock_bufg = Instance("BUFG", i_I=unbuffered, o_O=ClockSignal("sync"))
        m.submodules.reset_sync = ResetSynchronizer(reset_request | ~locked, domain="sync")

    def elaborate(self, platform):
        m = Module()
        self._clocking(m, platform)
        m.submodules.selftest = selftest = SelfTest(
            self.config, self.layer, clocks_per_bit=self.clocks_per_bit,
            heartbeat_bit=self.heartbeat_bit,
            primitives=getattr(platform, "family", None) in MMCM_PRIMITIVES)  # LUT6_2 and CARRY8 exist there
        for index, status in enumerate((selftest.heartbeat, selftest.busy, selftest.passed, selftest.failed)):
            if ("led", index) in platform.resources:
                led = _buffer(m, f"led_{index}", "o", platform.request("led", index, dir="-"))
                m.d.comb += led.o.eq(status)
        if ("button", 0) in platform.resources:
            button = _buffer(m, "start_buffer", "i", platform.request("button", 0, dir="-"))
            m.submodules.start_sync = FFSynchronizer(button.i, selftest.start)
        if ("uart", 0) in platform.resources:
            uart = platform.request("uart", 0, dir="-")
            transmit = _buffer(m, "uart_tx", "o", uart.tx)
            m.d.comb += transmit.o.eq(selftest.uart_tx)
        return m
