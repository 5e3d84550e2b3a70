# amaranth: UnusedElaboratable=no
"""Accumulator (esb_hw/hw/arith/accumulator.py): restart, accumulate, two addends, two carries and truncation of
a wide addend."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from esb_hw.errors import ParameterError
from esb_hw.hw.arith.accumulator import Accumulator


def drive(dut, ports, steps):
    """Set ``ports`` to each step's values, one step per cycle; ``accumulator`` after each edge."""
    seen = []

    async def testbench(ctx):
        for values in steps:
            for port, value in zip(ports, values, strict=True):
                ctx.set(port, int(value))
            await ctx.tick()
            seen.append(ctx.get(dut.accumulator))

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return seen


def run(width, addend_bits, steps):
    """``steps`` of (addend 0, addend 1, carry 0, carry 1, accumulate, restart); the register after each one."""
    dut = Accumulator(width=width, addend_bits=addend_bits)
    return drive(dut, (dut.addends[0], dut.addends[1], dut.carries[0], dut.carries[1], dut.accumulate,
                       dut.restart), steps)


def model(steps):
    value, seen = 0, []
    for addend0, addend1, carry0, carry1, accumulate, restart in steps:
        if accumulate:
            value = (0 if restart else value) + addend0 + addend1 + carry0 + carry1
        seen.append(value)
    return seen


def test_random_steps_match_the_model():
    rng = np.random.default_rng(0)
    steps = [(*(int(v) for v in rng.integers(-512, 512, 2)), *(int(bit) for bit in rng.integers(0, 2, 4)))
             for _ in range(400)]
    steps[0] = (5, -3, 0, 1, 1, 1)
    assert mismatches(run(16, 10, steps), steps) == []


def mismatches(seen, steps):
    return [index for index, (got, want) in enumerate(zip(seen, model(steps), strict=True)) if got != want]


def test_checker_catches_a_wrong_value():
    steps = [(3, 1, 1, 0, 1, 1), (-7, -2, 0, 1, 1, 0), (2, 2, 1, 1, 0, 0)]
    seen = run(8, 4, steps)
    assert seen == [5, -3, -3] and mismatches(seen, steps) == []
    seen[1] -= 1
    assert mismatches(seen, steps) == [1]


def test_a_wide_addend_whose_value_fits_is_exact():
    steps = [(100, 20, 0, 0, 1, 1), (-120, -20, 1, 0, 1, 0)]
    assert run(8, 12, steps) == [120, -19]


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 0}, "width must be an int in 1..64, got 0"),
    ({"addend_bits": 0}, "addend_bits must be an int >= 1, got 0"),
    ({"primitives": 0}, "primitives must be a bool, got int 0"),
    ({"entries": 65}, "entries must be an int in 1..64, got 65"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        Accumulator(**{"width": 8, "addend_bits": 4, **kwargs})


def run_entries(entries, steps):
    """``steps`` of (entry, addend 0, carry 0, accumulate, restart); ``accumulator`` of that entry after each."""
    dut = Accumulator(width=12, addend_bits=8, entries=entries)
    return drive(dut, (dut.entry, dut.addends[0], dut.carries, dut.accumulate, dut.restart), steps)


def model_entries(steps):
    values, seen = {}, []
    for entry, addend, carry, accumulate, restart in steps:
        if accumulate:
            values[entry] = (0 if restart else values[entry]) + addend + carry
        seen.append(values.get(entry))
    return seen


def test_entries_keep_independent_sums():
    """A block of running sums in distributed RAM: each entry restarts and accumulates on its own."""
    entries = 32
    rng = np.random.default_rng(7)
    steps = [(entry, int(rng.integers(-128, 128)), int(rng.integers(0, 2)), 1, 1) for entry in range(entries)]
    for _ in range(600):
        steps.append((int(rng.integers(0, entries)), int(rng.integers(-128, 128)), int(rng.integers(0, 2)),
                      int(rng.integers(0, 2)), int(rng.random() < 0.05)))
    seen, want = run_entries(entries, steps), model_entries(steps)
    assert seen == want
    seen[100] += 1
    assert [index for index, (got, good) in enumerate(zip(seen, want, strict=True)) if got != good] == [100]
