# amaranth: UnusedElaboratable=no
"""Products (esb_hw/hw/arith/product.py): every code pair of many format pairs, combinationally."""

import equivalence
import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from esb_hw.errors import ParameterError
from esb_hw.hw.arith import lutmap
from esb_hw.hw.arith.product import (
    ActivationLane,
    MultiplierProduct,
    ShiftAddProduct,
    lane_structure,
    odd_multiple_count,
    product_structure,
    select_sources,
)
from esb_hw.quant import ESBFormat

FORMAT_PAIRS = [
    (ESBFormat(4, 1), ESBFormat(8, 8, False)), (ESBFormat(3, 0), ESBFormat(8, 8, False)),
    (ESBFormat(5, 2), ESBFormat(6, 3, False)), (ESBFormat(4, 2), ESBFormat(4, 1, False)),
    (ESBFormat(5, 3), ESBFormat(5, 1, False)), (ESBFormat(2, 0), ESBFormat(3, 3, False)),
    (ESBFormat(6, 1), ESBFormat(5, 1, False)), (ESBFormat(4, 3), ESBFormat(2, 1, False)),
]


def products(weight, activation, variant):
    """Return the (magnitude, negative) the hardware gives for every (weight code, activation code)."""
    m = Module()
    if variant == "baseline":
        m.submodules.product = product = MultiplierProduct(activation=activation, weight=weight)
        activation_port = product.activation_code
    else:
        shared = variant == "esb"
        m.submodules.lane = lane = ActivationLane(activation=activation, weight=weight, shared=shared)
        m.submodules.product = product = ShiftAddProduct(activation=activation, weight=weight, shared=shared)
        m.d.comb += product.lane.eq(lane.lane)
        activation_port = lane.code
    results = {}

    async def testbench(ctx):
        for weight_code in range(weight.code_count):
            for activation_code in range(activation.code_count):
                ctx.set(product.weight_code, weight_code)
                ctx.set(activation_port, activation_code)
                results[weight_code, activation_code] = (ctx.get(product.magnitude), ctx.get(product.negative))

    simulator = Simulator(m)
    simulator.add_testbench(testbench)
    simulator.run()
    return results


def wrong_products(weight, activation, results):
    wrong = []
    for (weight_code, activation_code), (magnitude, negative) in results.items():
        expected = int(weight.level(weight_code)) * int(activation.level(activation_code))
        got = -magnitude if negative else magnitude
        if got != expected or negative != weight_code >> (weight.bits - 1):
            wrong.append((weight_code, activation_code, got, expected))
    return wrong


@pytest.mark.parametrize("variant", ["esb", "esb_naive", "baseline"])
@pytest.mark.parametrize(("weight", "activation"), FORMAT_PAIRS, ids=lambda f: str(f))
def test_every_code_pair(weight, activation, variant):
    assert wrong_products(weight, activation, products(weight, activation, variant)) == []


#: The select-and-shift and shift formats of the digits accuracy-per-LUT table (W/A of the same bits, plain integer
#: activations): every product the array of that table computes.
DIGITS_PAIRS = [(ESBFormat(bits, k), ESBFormat(bits, bits, False)) for bits, k in
                ((3, 0), (4, 0), (4, 1), (5, 0), (5, 1), (5, 2))]
DIGITS_PAIRS_8BIT = [(ESBFormat(8, k), ESBFormat(8, 8, False)) for k in (3, 4, 5)]


@pytest.mark.parametrize(("weight", "activation"), DIGITS_PAIRS + [pytest.param(*pair, marks=pytest.mark.slow)
                                                                   for pair in DIGITS_PAIRS_8BIT], ids=str)
def test_every_code_pair_of_the_digits_formats(weight, activation):
    assert wrong_products(weight, activation, products(weight, activation, "esb")) == []


def test_checker_catches_a_wrong_product():
    weight, activation = FORMAT_PAIRS[0]
    results = products(weight, activation, "esb")
    magnitude, negative = results[5, 7]
    results[5, 7] = (magnitude + 1, negative)
    expected = int(weight.level(5)) * 7
    assert wrong_products(weight, activation, results) == [(5, 7, expected + 1, expected)]


def test_odd_multiples():
    assert odd_multiple_count(ESBFormat(4, 1)) == 1  # 3a
    assert odd_multiple_count(ESBFormat(5, 2)) == 3  # 3a, 5a, 7a
    assert odd_multiple_count(ESBFormat(3, 0)) == 0  # powers of two: shifts only
    assert odd_multiple_count(ESBFormat(3, 2)) == 1  # e = 0: significands 0..3


def test_magnitude_width_is_tight():
    weight, activation = ESBFormat(4, 1), ESBFormat(8, 8, False)
    product = ShiftAddProduct(activation=activation, weight=weight, shared=True)
    assert product.magnitude_bits == (12 * 255).bit_length() == 12
    assert len(product.magnitude) == 12 and len(product.folded) == 13


class ProductOfCodes(wiring.Component):
    """A lane and a product from codes, exposing ``folded``: the unit the equivalence proof compares."""

    def __init__(self, weight, activation, primitives):
        self.formats = (weight, activation)
        self.primitives = primitives
        width = (weight.max_level * activation.max_level).bit_length() + 1
        super().__init__({"activation": In(activation.bits), "weight": In(weight.bits), "folded": Out(width)})

    def elaborate(self, platform):
        weight, activation = self.formats
        m = Module()
        m.submodules.lane = lane = ActivationLane(activation=activation, weight=weight, shared=True)
        m.submodules.product = product = ShiftAddProduct(activation=activation, weight=weight, shared=True,
                                                         primitives=self.primitives)
        m.d.comb += [lane.code.eq(self.activation), product.lane.eq(lane.lane),
                     product.weight_code.eq(self.weight), self.folded.eq(product.folded)]
        return m


def prove_mapping(tmp_path, weight, activation):
    return equivalence.prove_equal(tmp_path, ProductOfCodes(weight, activation, False),
                                   ProductOfCodes(weight, activation, True))


MAPPED_PAIRS = [(ESBFormat(4, 1), ESBFormat(8, 8, False)), (ESBFormat(4, 1), ESBFormat(4, 4, False)),
                (ESBFormat(3, 1), ESBFormat(8, 8, False)), (ESBFormat(4, 1), ESBFormat(3, 3, False))]


@pytest.mark.parametrize(("weight", "activation"), MAPPED_PAIRS, ids=str)
def test_hand_mapped_luts_equal_the_plain_product(tmp_path, weight, activation):
    mapped = ShiftAddProduct(activation=activation, weight=weight, shared=True, primitives=True)
    assert mapped.mapped
    Simulator(mapped)  # elaborated
    result = prove_mapping(tmp_path, weight, activation)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_mapping_proof_fails_for_a_wrong_lut(tmp_path, monkeypatch):
    real = lutmap.lut_init
    monkeypatch.setattr(lutmap, "lut_init", lambda function, inputs: real(function, inputs) ^ 1)
    result = prove_mapping(tmp_path, ESBFormat(4, 1), ESBFormat(8, 8, False))
    assert result.returncode != 0 and "proof did fail" in result.stdout + result.stderr


def test_mapping_only_where_it_fits():
    products = [ShiftAddProduct(activation=ESBFormat(6, 3, False), weight=ESBFormat(5, 2), shared=True,
                                primitives=True),  # ESB activations shift too: more than 6 inputs
                ShiftAddProduct(activation=ESBFormat(8, 8, False), weight=ESBFormat(5, 1), shared=True,
                                primitives=True),  # e = 3: 7 shifts
                ShiftAddProduct(activation=ESBFormat(8, 8, False), weight=ESBFormat(4, 1), shared=True,
                                primitives=False)]
    assert [product.mapped for product in products] == [False, False, False]
    for product in products:
        Simulator(product)  # elaborated


@pytest.mark.parametrize("component", [ActivationLane, ShiftAddProduct, MultiplierProduct])
@pytest.mark.parametrize("kwargs, message", [
    ({"activation": ESBFormat(8, 7)}, "activation must be an unsigned ESBFormat, got ESB"),
    ({"weight": ESBFormat(4, 1, False)}, "weight must be a signed ESBFormat, got ESB"),
    ({"weight": (4, 1)}, "weight must be an ESBFormat, got tuple"),
])
def test_formats_are_checked(component, kwargs, message):
    arguments = {"activation": ESBFormat(8, 8, False), "weight": ESBFormat(4, 1), **kwargs}
    if component is not MultiplierProduct:
        arguments["shared"] = True
    with pytest.raises(ParameterError, match=message):
        component(**arguments)


def test_flags_are_checked():
    formats = {"activation": ESBFormat(8, 8, False), "weight": ESBFormat(4, 1)}
    with pytest.raises(ParameterError, match="shared must be a bool, got int 1"):
        ActivationLane(**formats, shared=1)
    with pytest.raises(ParameterError, match="primitives must be a bool, got str 'y'"):
        ShiftAddProduct(**formats, shared=True, primitives="y")


def test_structure_of_the_default_product():
    """ESB(4,1) x uint8: sig_w is 1, 2 or 3, so the select stage routes sig_a (8 bits), sig_a << 1 or 3 sig_a
    (10 bits) to bits 0..9; the shift stage moves each of the 10 selected bits by up to 2 places."""
    activation, weight = ESBFormat(8, 8, False), ESBFormat(4, 1)
    sources = select_sources(activation, weight)
    assert sorted(sources) == list(range(10))
    assert sources[0] == {(1, 0), (3, 0)} and sources[1] == {(1, 0), (1, 1), (3, 1)}
    assert sources[8] == {(1, 7), (3, 8)} and sources[9] == {(3, 9)}
    # Candidates per bit: 2, then 3 for bits 1..7, then 2 and 1: 1 + 7 * 2 + 1 + 0 = 16 multiplexer inputs.
    assert product_structure(activation, weight, "esb") == {"magnitude_bits": 12, "mux_inputs": 16 + 10 * 2}
    assert lane_structure(activation, weight, "esb") == {"adder_bits": 9}  # 3a = a + (a << 1): bits 1..9
    with pytest.raises(ValueError, match="unknown PE variant 'fast'"):
        product_structure(activation, weight, "fast")
