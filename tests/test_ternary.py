# amaranth: UnusedElaboratable=no
"""TernaryAdder (esb_hw/hw/arith/ternary.py): the LUT6_2/CARRY8 netlist is proven equal to ``x + y + z + c0 + ci``."""

import itertools

import equivalence
import pytest
from amaranth.sim import Simulator

from esb_hw.errors import ParameterError
from esb_hw.hw.arith import ternary
from esb_hw.hw.arith.ternary import TernaryAdder


def prove_equal(tmp_path, width: int, gated: bool = False):
    return equivalence.prove_equal(tmp_path, TernaryAdder(width=width, primitives=False, gated=gated),
                                   TernaryAdder(width=width, primitives=True, gated=gated))


@pytest.mark.parametrize(("width", "gated"), [(1, False), (6, False), (7, False), (13, False), (16, False),
                                               (22, False), (5, True), (25, True)])
def test_primitive_netlist_equals_the_sum(tmp_path, width, gated):
    result = prove_equal(tmp_path, width, gated)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_proof_fails_for_a_wrong_lut(tmp_path, monkeypatch):
    monkeypatch.setattr(ternary, "LUT6_2_INIT", ternary.LUT6_2_INIT ^ (1 << 40))
    result = prove_equal(tmp_path, 6)
    assert result.returncode != 0 and "proof did fail" in result.stdout + result.stderr


def test_behavioral_sum_exhaustive():
    adder = TernaryAdder(width=3, primitives=False)
    wrong = []

    async def testbench(ctx):
        for x, y, z, c0, ci in itertools.product(range(-4, 4), range(-4, 4), range(-4, 4), (0, 1), (0, 1)):
            ctx.set(adder.x, x)
            ctx.set(adder.y, y)
            ctx.set(adder.z, z)
            ctx.set(adder.c0, c0)
            ctx.set(adder.ci, ci)
            if ctx.get(adder.sum) != x + y + z + c0 + ci:
                wrong.append((x, y, z, c0, ci))

    simulator = Simulator(adder)
    simulator.add_testbench(testbench)
    simulator.run()
    assert wrong == []


def test_lut_init_truth_table():
    init = ternary.LUT6_2_INIT
    for index in range(64):
        i0, i1, i2, i3, _, i5 = ((index >> bit) & 1 for bit in range(6))
        expected = (i0 ^ i1 ^ i2 ^ i3) if i5 else int(i0 + i1 + i2 >= 2)
        assert (init >> index) & 1 == expected


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 0}, "width must be an int >= 1, got 0"),
    ({"width": 4.0}, "width must be an int >= 1, got float 4.0"),
    ({"primitives": None}, "primitives must be a bool, got NoneType None"),
    ({"gated": "no"}, "gated must be a bool, got str 'no'"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        TernaryAdder(**{"width": 8, "primitives": False, **kwargs})
