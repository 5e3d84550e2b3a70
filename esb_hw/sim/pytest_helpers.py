"""pytest side of the simulation runner.

Usage::

    from esb_hw.sim.pytest_helpers import simulate, simulators

    @simulators
    def test_block(simulator):
        simulate(Block(), "esb_hw.sim.testbenches.cocotb_block", simulator=simulator, toplevel="block", params={...})

``simulate`` is :func:`esb_hw.sim.runner.run_cocotb` plus a skip when Icarus is not installed.
"""

import shutil
from typing import Any

import pytest

from .runner import SIMULATORS, SimResult, run_cocotb

__all__ = ["SIMULATORS", "require_simulator", "simulate", "simulators"]

#: Parametrize a test over both simulators: the test takes a ``simulator`` argument.
simulators = pytest.mark.parametrize("simulator", SIMULATORS)


def require_simulator(simulator: str) -> None:
    """Skip the current test if ``simulator`` is Icarus and it is not installed."""
    if simulator == "icarus" and (shutil.which("iverilog") is None or shutil.which("vvp") is None):
        pytest.skip("iverilog not installed: sudo apt-get install iverilog")


def simulate(design: Any, test_module: str, *, simulator: str, **kwargs: Any) -> SimResult:
    """:func:`esb_hw.sim.runner.run_cocotb` for pytest: same arguments, skips when Icarus is missing."""
    require_simulator(simulator)
    return run_cocotb(design, test_module, simulator=simulator, **kwargs)
