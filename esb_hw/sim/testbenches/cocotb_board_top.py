"""cocotb test of the generated board top (top.v of the ZCU102 platform) through its pins.

Parameters (``load_params()``): ``clocks_per_bit``, ``line`` (the expected report), ``expect_pass``,
``max_cycles``. Pins: clk300_0__p/n, cpu_reset_0__io, button_0__io (centre), led_0..3__io, uart_0__tx__io.
"""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from esb_hw.sim import load_params
from esb_hw.sim.cocotb_uart import receive_line


async def verdict(dut, params):
    line = await receive_line(dut.clk300_0__p, dut.uart_0__tx__io, params["clocks_per_bit"], params["max_cycles"])
    assert line == params["line"], f"UART said {line!r}, expected {params['line']!r}"
    await FallingEdge(dut.clk300_0__p)
    leds = [int(getattr(dut, f"led_{index}__io").value) for index in range(4)]
    expected = [1, 0] if params["expect_pass"] else [0, 1]
    assert leds[2:] == expected, f"pass/fail LEDs {leds[2:]}, expected {expected}"
    assert leds[1] == 0, "busy LED still on"


@cocotb.test()
async def selftest_through_the_pins(dut):
    params = load_params()
    dut.clk300_0__n.value = 0
    dut.button_0__io.value = 0
    dut.cpu_reset_0__io.value = 1
    Clock(dut.clk300_0__p, 10, unit="ns").start()
    await ClockCycles(dut.clk300_0__p, 5)
    dut.cpu_reset_0__io.value = 0
    await verdict(dut, params)
    # The centre button starts another run.
    dut.button_0__io.value = 1
    await ClockCycles(dut.clk300_0__p, 10)
    dut.button_0__io.value = 0
    await verdict(dut, params)
