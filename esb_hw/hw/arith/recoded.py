"""Radix-4 recoded products for uniform weight formats: what a competent integer design builds.

A uniform weight (ESB with ``e <= 1``) of 3 to 6 bits arrives as its level ``w`` in two's complement
(:func:`esb_hw.layouts.weight_encoding`); the column's lane supplies the activation's integer level ``a`` (an ESB
activation is shifted into a plain integer once per column) and ``3a``. Radix-4 recoding splits ``w`` into digits,
``w = d0 + 4 d1 (+ 16 d2)``: ``d0 = w[1:0]`` in ``0..3``, ``d1 = -2 w3 + w2`` in ``-2..1`` (``-w2`` for 3 bits),
and for 5 and 6 bits the Booth digit ``d2 = -2 w5 + w4 + w3`` (``w5 = w4`` for 5 bits: ``-1..1``; ``-2..1``
for 6). The partial products:

- ``P0 = d0 * a``, selected from ``{0, a, 2a, 3a}``;
- ``H = (|d1| * a) << 2``, one's-complemented when ``d1 < 0``;
- ``T = (|d2| * a) << 4``, one's-complemented when ``d2 < 0`` (5 and 6 bits).

``folded = P0 + H`` is the product of the low four bits (read as a signed number) minus ``[d1 < 0]``: the same
one's-complement convention as the ESB products (:mod:`esb_hw.hw.arith.product`), whose pending ``+1`` the
row's adder tree adds as a carry. Its top bit equals ``d1 < 0``, so the tree takes that sign from there. ``T``
goes to the tree as a second term (``top_folded``, its own sign on top): in the tree's ternary adders it costs
about half a LUT per bit, where adding it inside the product would cost a second carry chain.

With ``primitives``, each bit of the addition is one LUT6 (``S = P0_i ^ H_i``, the low digit's select inside
it) on a CARRY8 chain whose generate input is ``H_i``, and two bits of ``H`` share one LUT6_2, as do two bits of
``T`` for 5 bits (for 6 bits, where ``|d2|`` may be 2, one LUT6 per bit).
"""

from __future__ import annotations

from amaranth import Cat, Const, Instance, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...contract.latency import recoded_terms as contract_recoded_terms
from ...errors import ParameterError
from ...layouts import recodable, recoded_term_bits
from ...quant.format import ESBFormat
from ..checks import require_bool, require_format
from .lutmap import map_lut
from .product import lane_layout

__all__ = ["RecodedProduct", "recodable", "recoded_structure", "recoded_term_bits", "recoded_terms",
           "recoded_top_span"]


def recoded_terms(weight: ESBFormat) -> int:
    """Terms a :class:`RecodedProduct` gives the row's adder tree: 2 for 5- and 6-bit weights (``folded`` and
    ``top_folded``), else 1 (:func:`esb_hw.contract.latency.recoded_terms`)."""
    return contract_recoded_terms(weight.bits)


def _widths(activation: ESBFormat, weight: ESBFormat) -> tuple[int, int, int, int]:
    """``(folded bits, P0 bits, H bits, a bits)``: the signed terms, ``3a``, ``|d1| a << 2`` and ``a``.

    ``folded`` is as wide as the ESB products' (magnitude bits of the largest product, plus the sign); every
    term fits in it, :func:`esb_hw.layouts.recodable` checks that."""
    level_bits = max(activation.max_level.bit_length(), 1)
    magnitude = (activation.max_level * weight.max_level).bit_length()
    low = level_bits + 2  # 3a
    high = level_bits + (0 if weight.bits == 3 else 1) + 2  # 2a or a, shifted by 2
    return magnitude + 1, low, high, level_bits


def recoded_top_span(activation: ESBFormat, weight: ESBFormat) -> tuple[int, int]:
    """``(start, stop)``: the bits of ``top_folded`` that carry ``|d2| a << 4``; every other bit is its sign
    ``top_negative``, so a register needs only these and the sign."""
    folded, _, _, level_bits = _widths(activation, weight)
    return 4, min(folded, level_bits + 4 + (1 if weight.bits == 6 else 0))


def recoded_structure(activation: ESBFormat, weight: ESBFormat) -> dict[str, int]:
    """LUTs of one mapped :class:`RecodedProduct`: ``adder_luts`` (one per bit where ``P0`` is not 0),
    ``high_luts`` (one LUT6_2 per two bits of ``|d1| a << 2`` above bit 1) and ``top_luts`` (``|d2| a << 4``:
    for 5 bits one LUT6_2 per two bits, for 6 bits one LUT6 per bit, plus one LUT for the sign ``d2 < 0`` that
    fills the other bits); exact, nothing to calibrate."""
    folded, low, high, level_bits = _widths(activation, weight)
    top = 0
    if weight.bits == 5:
        top = -(-level_bits // 2) + 1
    elif weight.bits == 6:
        top = min(level_bits + 1, folded - 4) + 1
    return {"adder_luts": min(low, folded), "high_luts": -(-(min(high, folded) - 2) // 2), "top_luts": top}


class RecodedProduct(wiring.Component):
    """``folded = La * Lw - sign(Lw)`` for a uniform weight given as a two's complement level.

    Parameters
    ----------
    activation, weight : ESBFormat
        An unsigned activation format and a signed uniform weight format of 3 to 6 bits (:func:`recodable`).
    primitives : bool
        Build from ``LUT6``, ``LUT6_2`` and ``CARRY8`` (UltraScale+); else plain Amaranth.

    Attributes
    ----------
    lane : In(lane_layout(activation, weight, shared=True, recoded=True))
        ``level`` (``a``) and ``triple`` (``3a``) from the column's lane.
    weight_level : In(signed(weight.bits))
        The weight's level ``w``.
    folded : Out(signed(...))
        ``a * w - (w < 0)`` for 3 and 4 bits, as wide as the ESB products' ``folded`` (magnitude bits + 1); for 5
        and 6 bits ``a * w[3:0] - (w3 == 1)``, with ``w[3:0]`` read as a signed 4-bit number.
    negative : Out(1)
        ``folded``'s sign: ``w < 0`` (``w3`` for 5 bits).
    top_folded : Out(signed(...))
        5- and 6-bit weights only: ``16 * d2 * a - (d2 < 0)``, as wide as ``folded``. The product is
        ``folded + negative + top_folded + top_negative``.
    top_negative : Out(1)
        5- and 6-bit weights only: ``d2 < 0`` (``top_folded``'s top bit).

    Combinational: latency 0.
    """

    def __init__(self, *, activation: ESBFormat, weight: ESBFormat, primitives: bool = False):
        require_format("activation", activation, signed=False)
        require_format("weight", weight, signed=True)
        require_bool("primitives", primitives)
        if not recodable(activation, weight):
            raise ParameterError(f"a recoded product needs a uniform weight format of 3 to 6 bits whose terms fit "
                                 f"the product width, got weights {weight}, activations {activation}")
        self._activation = activation
        self._weight = weight
        self.primitives = primitives
        self.folded_bits, self._low_bits, self._high_bits, _ = _widths(activation, weight)
        self.terms = recoded_terms(weight)
        ports = {
            "lane": In(lane_layout(activation, weight, shared=True, recoded=True)),
            "weight_level": In(signed(weight.bits)),
            "folded": Out(signed(self.folded_bits)),
            "negative": Out(1),
        }
        if self.terms == 2:
            ports.update(top_folded=Out(signed(self.folded_bits)), top_negative=Out(1))
        super().__init__(ports)

    def _digits(self):
        level = self.weight_level
        low = level[:2]
        if self._weight.bits >= 4:  # d1 = w3 w2 in two's complement: 01 -> 1, 11 -> -1, 10 -> -2
            one, two, negative = level[2], level[3] & ~level[2], level[3]
        else:  # d1 = -w2
            one, two, negative = level[2], Const(0, 1), level[2]
        return low, one, two, negative

    def _weight_bit(self, index: int):
        """Bit ``index`` of the weight level, sign-extended."""
        return self.weight_level[min(index, self._weight.bits - 1)]

    def _top_digit(self):
        """``(|d2| == 1, |d2| == 2, d2 < 0)`` of the Booth digit ``d2 = -2 w5 + w4 + w3`` (5 and 6 bits)."""
        w3, w4, w5 = (self._weight_bit(index) for index in (3, 4, 5))
        return w3 ^ w4, (w5 & ~w4 & ~w3) | (~w5 & w4 & w3), w5 & ~(w4 & w3)

    def elaborate(self, platform):
        m = Module()
        a, triple = self.lane.level, self.lane.triple
        low, one, two, negative = self._digits()
        m.d.comb += self.negative.eq(negative)
        width = self.folded_bits
        if self.terms == 2:
            top_one, top_two, top_negative = self._top_digit()
            m.d.comb += self.top_negative.eq(top_negative)
        if not self.primitives:
            low_product = Mux(low == 3, triple, Mux(low == 2, a << 1, Mux(low == 1, a, 0)))
            high = Mux(two, a << 1, Mux(one, a, 0)) << 2
            high_folded = Cat(high, Const(0, width))[:width] ^ negative.replicate(width)
            m.d.comb += self.folded.eq(low_product + high_folded.as_signed())
            if self.terms == 2:
                top = Mux(top_two, a << 1, Mux(top_one, a, 0)) << 4
                m.d.comb += self.top_folded.eq(Cat(top, Const(0, width))[:width] ^ top_negative.replicate(width))
            return m
        self._mapped(m, a, triple)
        if self.terms == 2:
            self._mapped_top(m, a)
        return m

    def _mapped_top(self, m: Module, a):
        """``T = (|d2| a << 4) ^ [d2 < 0]``. 5 bits: two bits per LUT6_2 from ``a_j, a_{j+1}, w3, w4``; 6 bits: one
        LUT6 per bit from ``a_{j-4}, a_{j-5}, w3, w4, w5``. Elsewhere only the sign remains (one LUT)."""
        width = self.folded_bits
        digit_pins = [self._weight_bit(index) for index in range(3, self._weight.bits)]

        def booth(digit_bits):  # (w3, w4[, w5]) -> (|d2|, d2 < 0)
            w3, w4 = digit_bits[0], digit_bits[1]
            w5 = digit_bits[2] if len(digit_bits) > 2 else w4
            value = -2 * w5 + w4 + w3
            return abs(value), int(value < 0)

        def top_bit(current, previous, digit_bits):
            magnitude, negative = booth(digit_bits)
            return ((current if magnitude == 1 else previous if magnitude == 2 else 0) ^ negative) & 1

        fill = map_lut(m, "top_sign", digit_pins, lambda bits: booth(bits)[1])
        bits = [fill] * width

        def a_bit(index):
            return a[index] if 0 <= index < len(a) else Const(0, 1)

        if self._weight.bits == 5:
            for j in range(0, len(a), 2):
                pins = [a_bit(j), a_bit(j + 1), *digit_pins]
                init = 0
                for entry in range(64):
                    inputs = [(entry >> position) & 1 for position in range(6)]
                    o5 = top_bit(inputs[0], 0, inputs[2:4])
                    o6 = top_bit(inputs[1], 0, inputs[2:4])
                    init |= ((o6 if inputs[5] else o5) & 1) << entry
                low_out, high_out = Signal(name=f"top_{j + 4}"), Signal(name=f"top_{j + 5}")
                m.submodules[f"top_lut_{j + 4}"] = Instance(
                    "LUT6_2", p_INIT=Const(init, 64), **{f"i_I{position}": pin for position, pin in enumerate(pins)},
                    i_I4=Const(0, 1), i_I5=Const(1, 1), o_O5=low_out, o_O6=high_out)
                for offset, out in ((4, low_out), (5, high_out)):
                    if j + offset < min(width, len(a) + 4):
                        bits[j + offset] = out
        else:
            for index in range(4, min(width, len(a) + 5)):
                bits[index] = map_lut(m, f"top_{index}", [a_bit(index - 4), a_bit(index - 5), *digit_pins],
                                      lambda pins: top_bit(pins[0], pins[1], pins[2:]))
        m.d.comb += self.top_folded.eq(Cat(*bits))

    def _mapped(self, m: Module, a, triple):
        width = self.folded_bits
        level = self.weight_level
        code = [level[bit] for bit in range(self._weight.bits)]
        sign = code[min(3, len(code) - 1)]  # d1 < 0
        high_pins = code[2:4]  # w2 (w3): the high digit and its sign

        def bit_of(vector, index):
            return vector[index] if 0 <= index < len(vector) else Const(0, 1)

        def high_bit(bits):  # (a_{j-1}, a_j, w2[, w3]) -> bit j of |d1| a, xor the sign
            previous, current, *digit = bits
            w2 = digit[0]
            w3 = digit[1] if len(digit) > 1 else w2
            if len(digit) > 1:
                one, two = w2, w3 & (1 - w2)
            else:
                one, two = w2, 0
            return ((current if one else previous if two else 0) ^ w3) & 1

        high = [sign, sign]  # bits 0 and 1 of H: zeros of the shift, one's-complemented
        top = min(self._high_bits, width)
        for index in range(2, top, 2):
            # Bits index and index + 1 of H in one LUT6_2: O5 from a_{j-1}, a_j; O6 from a_j, a_{j+1}.
            j = index - 2
            pins = [bit_of(a, j - 1), bit_of(a, j), bit_of(a, j + 1), *high_pins]
            low_out, high_out = Signal(name=f"high_{index}"), Signal(name=f"high_{index + 1}")
            init = 0
            for entry in range(64):
                bits = [(entry >> position) & 1 for position in range(6)]
                digit = bits[3: 3 + len(high_pins)]
                o5 = high_bit([bits[0], bits[1], *digit])
                o6 = high_bit([bits[1], bits[2], *digit])
                init |= ((o6 if bits[5] else o5) & 1) << entry
            padded = pins + [Const(0, 1)] * (5 - len(pins)) + [Const(1, 1)]
            m.submodules[f"high_lut_{index}"] = Instance(
                "LUT6_2", p_INIT=Const(init, 64), **{f"i_I{position}": pin for position, pin in enumerate(padded)},
                o_O5=low_out, o_O6=high_out)
            high += [low_out, high_out]
        high = (high[:top] + [sign] * width)[:width]  # above |d1| a << 2 only the sign's ones remain

        def adder_bit(bits):  # (a_i, a_{i-1}, 3a_i, w0, w1, H_i) -> P0_i ^ H_i
            current, previous, triple_bit, w0, w1, h = bits
            selected = [0, current, previous, triple_bit][w0 | (w1 << 1)]
            return selected ^ h

        propagate = []
        for index in range(width):
            if index < self._low_bits:
                pins = [bit_of(a, index), bit_of(a, index - 1), bit_of(triple, index), code[0], code[1], high[index]]
                propagate.append(map_lut(m, f"sum_{index}", pins, adder_bit))
            else:
                propagate.append(high[index])  # P0 is 0 here: the sum bit is H's
        carry_in = Const(0, 1)
        for start in range(0, width, 8):
            used = min(8, width - start)
            outputs, carries = Signal(8, name=f"sum_o_{start}"), Signal(8, name=f"sum_co_{start}")
            m.submodules[f"carry_{start}"] = Instance(
                "CARRY8", p_CARRY_TYPE="SINGLE_CY8", i_CI=carry_in, i_CI_TOP=Const(0, 1),
                i_DI=Cat(*high[start: start + used], Const(0, 8 - used)),
                i_S=Cat(*propagate[start: start + used], Const(0, 8 - used)), o_O=outputs, o_CO=carries)
            m.d.comb += self.folded[start: start + used].eq(outputs[:used])
            carry_in = carries[used - 1]
