"""cocotb test modules (run by esb_hw.sim.runner.run_cocotb, not collected by pytest)."""
