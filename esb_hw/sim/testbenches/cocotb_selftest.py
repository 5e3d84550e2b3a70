"""cocotb test of :class:`esb_hw.hw.debug.selftest.SelfTest` through its top-level ports.

Parameters (``load_params()``): ``clocks_per_bit``, ``expect_pass`` (bool) and ``line`` (the report line
the golden verdict implies, as text), ``max_cycles``.
"""

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from esb_hw.sim import load_params
from esb_hw.sim.cocotb_helpers import reset, start_clock
from esb_hw.sim.cocotb_uart import receive_line


async def check_run(dut, params) -> None:
    line = await receive_line(dut.clk, dut.uart_tx, params["clocks_per_bit"], params["max_cycles"])
    assert line == params["line"], f"UART said {line!r}, expected {params['line']!r}"
    await FallingEdge(dut.clk)
    passed, failed = int(dut.passed.value), int(dut.failed.value)
    assert (passed, failed) == ((1, 0) if params["expect_pass"] else (0, 1)), f"LEDs pass={passed} fail={failed}"
    assert int(dut.busy.value) == 0


@cocotb.test()
async def runs_after_reset_and_on_start(dut):
    params = load_params()
    dut.start.value = 0
    start_clock(dut)
    await reset(dut)
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    assert int(dut.busy.value) == 1, "a run starts by itself one cycle after reset"
    await check_run(dut, params)
    # The centre button: a rising edge starts a second run with the same verdict.
    dut.start.value = 1
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    assert int(dut.busy.value) == 1 and int(dut.passed.value) == 0 and int(dut.failed.value) == 0
    dut.start.value = 0
    await check_run(dut, params)


@cocotb.test()
async def heartbeat_toggles(dut):
    dut.start.value = 0
    start_clock(dut)
    await reset(dut)
    seen = set()
    for _ in range(80):
        await RisingEdge(dut.clk)
        seen.add(int(dut.heartbeat.value))
    assert seen == {0, 1}
