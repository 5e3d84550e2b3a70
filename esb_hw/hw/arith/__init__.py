"""Arithmetic blocks: ESB products, hand-mapped LUTs, ternary adders, adder trees, accumulators."""
