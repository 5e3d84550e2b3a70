# amaranth: UnusedElaboratable=no
"""Radix-4 recoded products (esb_hw/hw/arith/recoded.py): every weight level times every activation code, the
hand-mapped netlist proven equal to the plain one, and its exact LUT count."""

import equivalence
import pytest
from amaranth import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from esb_hw.errors import ParameterError
from esb_hw.hw.arith import lutmap
from esb_hw.hw.arith.product import ActivationLane
from esb_hw.hw.arith.recoded import RecodedProduct, recodable, recoded_structure
from esb_hw.quant import ESBFormat

FORMAT_PAIRS = [
    (ESBFormat(4, 2), ESBFormat(8, 8, False)), (ESBFormat(3, 1), ESBFormat(8, 8, False)),
    (ESBFormat(4, 3), ESBFormat(6, 6, False)), (ESBFormat(3, 2), ESBFormat(4, 4, False)),
    (ESBFormat(4, 2), ESBFormat(1, 1, False)),
]


class ProductOfCodes(wiring.Component):
    """A recoded lane and product from an activation code and a weight level."""

    def __init__(self, activation, weight, primitives=False):
        self.activation, self.weight, self.primitives = activation, weight, primitives
        self.product = RecodedProduct(activation=activation, weight=weight, primitives=primitives)
        super().__init__({"code": In(activation.bits), "level": In(signed(weight.bits)),
                          "folded": Out(signed(self.product.folded_bits)), "negative": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.lane = lane = ActivationLane(activation=self.activation, weight=self.weight, shared=True,
                                                  recoded=True)
        m.submodules.product = product = self.product
        m.d.comb += [lane.code.eq(self.code), product.lane.eq(lane.lane), product.weight_level.eq(self.level),
                     self.folded.eq(product.folded), self.negative.eq(product.negative)]
        return m


def all_products(weight, activation):
    """``(weight code, activation code) -> (folded, negative)`` over every pair."""
    unit = ProductOfCodes(activation, weight)
    results = {}

    async def testbench(ctx):
        for code in range(weight.code_count):
            for activation_code in range(activation.code_count):
                ctx.set(unit.level, int(weight.level(code)))
                ctx.set(unit.code, activation_code)
                results[code, activation_code] = (ctx.get(unit.folded), ctx.get(unit.negative))

    simulator = Simulator(unit)
    simulator.add_testbench(testbench)
    simulator.run()
    return results


def mismatches(weight, activation, results):
    """Pairs where ``folded + negative`` is not ``La * Lw`` or the top bit is not the sign."""
    bad = []
    for (code, activation_code), (folded, negative) in results.items():
        want = int(weight.level(code)) * int(activation.level(activation_code))
        if folded + negative != want or (folded < 0) != bool(negative) or negative != (weight.level(code) < 0):
            bad.append((code, activation_code, folded, negative, want))
    return bad


@pytest.mark.parametrize("weight, activation", FORMAT_PAIRS, ids=str)
def test_every_level_times_every_code(weight, activation):
    assert mismatches(weight, activation, all_products(weight, activation)) == []


def test_checker_catches_a_wrong_product():
    weight, activation = FORMAT_PAIRS[0]
    results = all_products(weight, activation)
    results[9, 3] = (results[9, 3][0] + 1, results[9, 3][1])  # level -1 times 3
    assert [entry[:2] for entry in mismatches(weight, activation, results)] == [(9, 3)]


@pytest.mark.parametrize("weight, activation", FORMAT_PAIRS[:3], ids=str)
def test_hand_mapped_luts_equal_the_plain_product(tmp_path, weight, activation):
    result = equivalence.prove_equal(tmp_path, ProductOfCodes(activation, weight),
                                     ProductOfCodes(activation, weight, primitives=True))
    assert result.returncode == 0, result.stdout + result.stderr


def test_proof_fails_for_a_wrong_lut(tmp_path, monkeypatch):
    real = lutmap.lut_init
    monkeypatch.setattr(lutmap, "lut_init", lambda function, inputs: real(function, inputs) ^ (1 << 21))
    weight, activation = FORMAT_PAIRS[0]
    result = equivalence.prove_equal(tmp_path, ProductOfCodes(activation, weight),
                                     ProductOfCodes(activation, weight, primitives=True))
    assert result.returncode != 0 and "proof did fail" in result.stdout + result.stderr


def test_structure_of_the_4_bit_product():
    """ESB(4,2) x uint8: 13 folded bits (12 magnitude bits and the sign); P0 = {0, a, 2a, 3a} spans 10 bits
    (one adder LUT each), |d1| a << 2 spans bits 2..10 (9 bits, two per LUT6_2: 5)."""
    assert recoded_structure(ESBFormat(8, 8, False), ESBFormat(4, 2)) == {"adder_luts": 10, "high_luts": 5}


def test_which_formats_recode():
    assert recodable(ESBFormat(8, 8, False), ESBFormat(4, 2)) and recodable(ESBFormat(6, 6, False), ESBFormat(3, 1))
    assert not recodable(ESBFormat(8, 8, False), ESBFormat(4, 1))  # ESB, e = 2
    assert not recodable(ESBFormat(8, 8, False), ESBFormat(5, 3))  # 5 bits: three digits
    assert not recodable(ESBFormat(6, 3, False), ESBFormat(4, 2))  # ESB activations shift


@pytest.mark.parametrize("kwargs, message", [
    ({"weight": ESBFormat(4, 1)}, "a recoded product needs a uniform weight format of 3 or 4 bits"),
    ({"weight": ESBFormat(4, 2, False)}, "weight must be a signed ESBFormat"),
    ({"primitives": 1}, "primitives must be a bool, got int 1"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        RecodedProduct(**{"activation": ESBFormat(8, 8, False), "weight": ESBFormat(4, 2), **kwargs})
