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
    (ESBFormat(5, 3), ESBFormat(8, 8, False)), (ESBFormat(4, 3), ESBFormat(6, 6, False)),
    (ESBFormat(3, 2), ESBFormat(4, 4, False)), (ESBFormat(5, 4), ESBFormat(7, 7, False)),
    (ESBFormat(6, 4), ESBFormat(8, 8, False)), (ESBFormat(5, 3), ESBFormat(6, 3, False)),
    (ESBFormat(6, 5), ESBFormat(6, 3, False)), (ESBFormat(4, 2), ESBFormat(6, 3, False)),
    (ESBFormat(4, 2), ESBFormat(1, 1, False)),
    # the uniform formats of the digits accuracy-per-LUT table (W/A of the same bits)
    (ESBFormat(3, 1), ESBFormat(3, 3, False)), (ESBFormat(4, 2), ESBFormat(4, 4, False)),
    (ESBFormat(5, 3), ESBFormat(5, 5, False)),
]
#: The hand-mapped netlists proven by SAT: every digit shape (3, 4, 5, 6 bits), plain and ESB activations.
PROVEN_PAIRS = [FORMAT_PAIRS[index] for index in (0, 1, 2, 6, 7, 8)]


class ProductOfCodes(wiring.Component):
    """A recoded lane and product from an activation code and a weight level; ``top_folded`` and
    ``top_negative`` are 0 for products of one term."""

    def __init__(self, activation, weight, primitives=False):
        self.activation, self.weight, self.primitives = activation, weight, primitives
        self.product = RecodedProduct(activation=activation, weight=weight, primitives=primitives)
        width = signed(self.product.folded_bits)
        super().__init__({"code": In(activation.bits), "level": In(signed(weight.bits)),
                          "folded": Out(width), "negative": Out(1), "top_folded": Out(width),
                          "top_negative": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.lane = lane = ActivationLane(activation=self.activation, weight=self.weight, shared=True,
                                                  recoded=True)
        m.submodules.product = product = self.product
        m.d.comb += [lane.code.eq(self.code), product.lane.eq(lane.lane), product.weight_level.eq(self.level),
                     self.folded.eq(product.folded), self.negative.eq(product.negative)]
        if product.terms == 2:
            m.d.comb += [self.top_folded.eq(product.top_folded), self.top_negative.eq(product.top_negative)]
        return m


def all_products(weight, activation):
    """``(weight code, activation code) -> (folded, negative, top_folded, top_negative)`` over every pair."""
    unit = ProductOfCodes(activation, weight)
    results = {}

    async def testbench(ctx):
        for code in range(weight.code_count):
            for activation_code in range(activation.code_count):
                ctx.set(unit.level, int(weight.level(code)))
                ctx.set(unit.code, activation_code)
                results[code, activation_code] = tuple(
                    ctx.get(port) for port in (unit.folded, unit.negative, unit.top_folded, unit.top_negative))

    simulator = Simulator(unit)
    simulator.add_testbench(testbench)
    simulator.run()
    return results


def mismatches(weight, activation, results):
    """Pairs where the terms and signs do not sum to ``La * Lw``, or a term's top bit is not its sign, or the
    signs are not those of the digits (``d1 < 0``; for 5 bits also ``d2 = w3 - w4 < 0``)."""
    bad = []
    for (code, activation_code), (folded, negative, top, top_negative) in results.items():
        level = int(weight.level(code))
        want = level * int(activation.level(activation_code))
        bit = [(level >> index) & 1 for index in range(8)]  # Python's >> sign-extends
        want_negative = bit[3] if weight.bits >= 4 else bit[2]
        want_top_negative = int(weight.bits >= 5 and -2 * bit[5] + bit[4] + bit[3] < 0)
        if (folded + negative + top + top_negative != want or (folded < 0) != bool(negative)
                or (top < 0) != bool(top_negative) or negative != want_negative
                or top_negative != want_top_negative):
            bad.append((code, activation_code, folded, negative, top, top_negative, want))
    return bad


@pytest.mark.parametrize("weight, activation", FORMAT_PAIRS, ids=str)
def test_every_level_times_every_code(weight, activation):
    assert mismatches(weight, activation, all_products(weight, activation)) == []


def test_checker_catches_a_wrong_product():
    weight, activation = FORMAT_PAIRS[0]
    results = all_products(weight, activation)
    results[9, 3] = (results[9, 3][0] + 1, *results[9, 3][1:])  # level -1 times 3
    assert [entry[:2] for entry in mismatches(weight, activation, results)] == [(9, 3)]


def test_checker_catches_a_wrong_top_term():
    weight, activation = ESBFormat(5, 3), ESBFormat(8, 8, False)
    results = all_products(weight, activation)
    code = 0b11001  # level -9: w = 0111 (7) + 16 * (0 - 1)
    folded, negative, top, top_negative = results[code, 5]
    results[code, 5] = (folded, negative, top - 16, top_negative)
    assert [entry[:2] for entry in mismatches(weight, activation, results)] == [(code, 5)]


@pytest.mark.parametrize("weight, activation", PROVEN_PAIRS, ids=str)
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
    assert recoded_structure(ESBFormat(8, 8, False), ESBFormat(4, 2)) == {"adder_luts": 10, "high_luts": 5,
                                                                          "top_luts": 0}


def test_structure_of_the_5_bit_product():
    """ESB(5,3) x uint8: as the 4-bit product, plus |d2| a << 4 (8 bits, two per LUT6_2: 4) and its sign (1)."""
    assert recoded_structure(ESBFormat(8, 8, False), ESBFormat(5, 3)) == {"adder_luts": 10, "high_luts": 5,
                                                                          "top_luts": 5}


def test_structure_of_the_6_bit_product():
    """ESB(6,4) x uint8: 14 folded bits (7,905 needs 13); |d2| a << 4 with |d2| <= 2 spans bits 4..12, one LUT6
    each (9), plus the sign (1)."""
    assert recoded_structure(ESBFormat(8, 8, False), ESBFormat(6, 4)) == {"adder_luts": 10, "high_luts": 5,
                                                                          "top_luts": 10}


def test_which_formats_recode():
    assert recodable(ESBFormat(8, 8, False), ESBFormat(4, 2)) and recodable(ESBFormat(6, 6, False), ESBFormat(3, 1))
    assert not recodable(ESBFormat(8, 8, False), ESBFormat(4, 1))  # ESB, e = 2
    assert recodable(ESBFormat(8, 8, False), ESBFormat(5, 3))  # 5 bits: three digits, two terms
    assert recodable(ESBFormat(8, 8, False), ESBFormat(6, 4))  # 6 bits: |d2| up to 2
    assert not recodable(ESBFormat(8, 8, False), ESBFormat(7, 5))  # 7 bits: a fourth digit, not built
    assert recodable(ESBFormat(6, 3, False), ESBFormat(4, 2))  # ESB activations: the lane makes the level
    # 1-bit activations: -16a - 1 = -17 needs 6 bits, the product 15a only 5 (+ sign): select and shift instead.
    assert not recodable(ESBFormat(1, 1, False), ESBFormat(5, 3))


@pytest.mark.parametrize("kwargs, message", [
    ({"weight": ESBFormat(4, 1)}, "a recoded product needs a uniform weight format of 3 to 6 bits"),
    ({"weight": ESBFormat(4, 2, False)}, "weight must be a signed ESBFormat"),
    ({"primitives": 1}, "primitives must be a bool, got int 1"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        RecodedProduct(**{"activation": ESBFormat(8, 8, False), "weight": ESBFormat(4, 2), **kwargs})
