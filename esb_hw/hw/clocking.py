"""Clock planning: the MMCM setting that makes the accelerator clock from a board clock.

The MMCM limits are kept inside both UltraScale+ (DS925, -2: VCO 800..1600 MHz) and UltraScale (DS892, -2:
VCO 600..1440 MHz), so one search serves both: VCO 800..1440, PFD 10..500, outputs 6.25..775 MHz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InputError

__all__ = ["ClockError", "ClockPlan", "MMCM_PRIMITIVES", "UART_BAUD", "heartbeat_bit", "plan_clock",
           "uart_clocks_per_bit"]

UART_BAUD = 115_200
_VCO_MHZ = (800.0, 1440.0)
MMCM_PRIMITIVES = {"ultrascaleplus": "MMCME4_BASE", "ultrascale": "MMCME3_BASE"}
_PFD_MHZ = (10.0, 500.0)
_OUT_MHZ = (6.25, 775.0)


class ClockError(InputError):
    """The requested accelerator clock cannot be made from the board clock."""


@dataclass(frozen=True)
class ClockPlan:
    """How the accelerator clock is made: directly, or by an MMCM with these settings."""

    input_mhz: float
    output_mhz: float
    divide: int | None = None  # DIVCLK_DIVIDE
    multiply: float | None = None  # CLKFBOUT_MULT_F (steps of 1/8)
    output_divide: float | None = None  # CLKOUT0_DIVIDE_F (steps of 1/8)

    @property
    def uses_mmcm(self) -> bool:
        return self.divide is not None


def plan_clock(input_mhz: float, target_mhz: float) -> ClockPlan:
    """The exact (or, failing that, nearest not faster) MMCM setting for ``target_mhz``; direct when equal."""
    if not _OUT_MHZ[0] <= target_mhz <= _OUT_MHZ[1]:
        raise ClockError(f"clock_mhz must be in {_OUT_MHZ[0]}..{_OUT_MHZ[1]} for the MMCM, got {target_mhz:g}")
    if math.isclose(input_mhz, target_mhz, rel_tol=1e-9):
        return ClockPlan(input_mhz, input_mhz)
    best = None
    for divide in range(1, 107):
        pfd = input_mhz / divide
        if not _PFD_MHZ[0] <= pfd <= _PFD_MHZ[1]:
            continue
        for multiply_eighths in range(16, 128 * 8 + 1):  # 2.000 .. 128.000
            vco = pfd * multiply_eighths / 8
            if not _VCO_MHZ[0] <= vco <= _VCO_MHZ[1]:
                continue
            output_eighths = max(8, math.ceil(vco * 8 / target_mhz - 1e-9))  # never faster than asked
            if output_eighths > 128 * 8:
                continue
            output = vco * 8 / output_eighths
            key = (round(abs(target_mhz - output), 9), multiply_eighths % 8 != 0 or output_eighths % 8 != 0, divide)
            if best is None or key < best[0]:
                best = (key, ClockPlan(input_mhz, output, divide, multiply_eighths / 8, output_eighths / 8))
    if best is None:
        raise ClockError(f"no MMCM setting makes {target_mhz:g} MHz from {input_mhz:g} MHz")
    return best[1]


def uart_clocks_per_bit(clock_mhz: float) -> int:
    """The UART divisor for ``UART_BAUD`` at ``clock_mhz``."""
    return max(1, round(clock_mhz * 1e6 / UART_BAUD))


def heartbeat_bit(clock_mhz: float) -> int:
    """The free-running counter bit whose toggling blinks an LED at about 1 Hz at ``clock_mhz``."""
    return max(1, math.floor(math.log2(clock_mhz * 1e6)) - 1)
