"""cocotb-side helpers for Amaranth designs: clock and synchronous reset on the ``clk`` / ``rst`` ports."""

from cocotb.clock import Clock
from cocotb.handle import HierarchyObject
from cocotb.triggers import RisingEdge

__all__ = ["CLOCK_PERIOD_NS", "reset", "start_clock"]

CLOCK_PERIOD_NS = 10


def start_clock(dut: HierarchyObject, period_ns: float = CLOCK_PERIOD_NS) -> None:
    """Start a free-running clock on ``dut.clk``."""
    Clock(dut.clk, period_ns, unit="ns").start()


async def reset(dut: HierarchyObject, cycles: int = 2) -> None:
    """Hold ``dut.rst`` high for ``cycles`` rising edges; return just after the edge that releases it."""
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
