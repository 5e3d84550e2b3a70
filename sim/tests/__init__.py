"""cocotb test modules (run by sim.runner.run_cocotb, not collected by pytest)."""
