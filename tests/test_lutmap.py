# amaranth: UnusedElaboratable=no
"""Hand-mapped LUT6s (esb_hw/hw/arith/lutmap.py): INIT words and the instance."""

import pytest
from amaranth import Module, Signal
from amaranth.back import rtlil

from esb_hw.errors import ParameterError
from esb_hw.hw.arith.lutmap import lut_init, map_lut


def test_init_of_known_functions():
    assert lut_init(lambda bits: bits[0] & bits[1], 2) == int("1000" * 16, 2)  # I0 & I1, repeated over I2..I5
    assert lut_init(lambda bits: 1, 0) == (1 << 64) - 1
    xor3 = lut_init(lambda bits: bits[0] ^ bits[1] ^ bits[2], 3)
    assert [(xor3 >> index) & 1 for index in range(8)] == [0, 1, 1, 0, 1, 0, 0, 1]


def test_init_catches_a_wrong_function():
    assert lut_init(lambda bits: bits[0] | bits[1], 2) != lut_init(lambda bits: bits[0] & bits[1], 2)


def test_map_lut_instantiates_one_lut6():
    m = Module()
    inputs = [Signal(name=f"i{index}") for index in range(3)]
    output = map_lut(m, "majority", inputs, lambda bits: int(sum(bits) >= 2))
    m.d.comb += Signal(name="o").eq(output)
    text = rtlil.convert(m, ports=[*inputs])
    assert text.count("cell \\LUT6 ") == 1 and "parameter \\INIT 64'" in text


def test_bad_input_counts():
    with pytest.raises(ParameterError, match="a LUT6 has 0..6 inputs, got 7"):
        lut_init(lambda bits: 0, 7)
    with pytest.raises(ParameterError, match="a LUT6 has 0..6 inputs, got 7 for wide"):
        map_lut(Module(), "wide", [Signal() for _ in range(7)], lambda bits: 0)
