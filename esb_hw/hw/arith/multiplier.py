"""A LUT multiplier for the requantization lanes: signed ``x`` times unsigned ``m``, radix-4 Booth.

``m`` (``m_bits``, unsigned, read as ``m_bits + 1``-bit signed) splits into ``D = ceil((m_bits + 1) / 2)`` Booth
digits ``d_i = -2 m[2i+1] + m[2i] + m[2i-1]`` in ``-2..2``. Partial product ``i`` is ``|d_i| x``,
one's-complemented when ``d_i < 0``, at bit offset ``2i``; the ``+1``s of the negative ones sit at distinct even
bits, so they form one more operand, ``sum_i [d_i < 0] << 2i``, by wiring alone. Each bit of a partial product is
one LUT (``x_j``, ``x_{j-1}`` and the digit's three bits: five inputs), hand-mapped with ``primitives``.

The ``D + 1`` operands are summed by registered levels of ternary adders (``LUT6_2`` + ``CARRY8`` with
``primitives``) that keep each operand's bit offset: a group's adder starts at its second-lowest operand's
offset (the lowest one's bits below it pass by), so no adder spends LUTs or carry bits on the zero low bits of a
shifted partial product, and every adder is cut at
the product's width (two's complement sums are exact modulo ``2**(x_bits + m_bits)``, and the product fits).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...contract.latency import booth_digits, multiplier_levels
from ..checks import require_bool, require_int
from .lutmap import map_lut
from .ternary import TernaryAdder

__all__ = ["BoothMultiplier", "booth_digits", "multiplier_levels"]


def _digit(bits: tuple[int, int, int]) -> int:
    """``(m[2i-1], m[2i], m[2i+1]) -> d_i``."""
    below, low, high = bits
    return -2 * high + low + below


class BoothMultiplier(wiring.Component):
    """``product = x * m`` for signed ``x`` and unsigned ``m``, pipelined.

    Parameters
    ----------
    x_bits, m_bits : int
        Operand widths (``x`` signed, ``m`` unsigned), ``1..64`` each.
    primitives : bool
        Hand-map the partial-product bits to ``LUT6`` and build the adders from ``LUT6_2``/``CARRY8``
        (UltraScale+); else plain Amaranth. Both are the same function (SAT-proven in ``tests/test_multiplier.py``).

    Attributes
    ----------
    x : In(signed(x_bits))
    m : In(unsigned(m_bits))
    product : Out(signed(x_bits + m_bits))

    Latency ``latency = 1 + multiplier_levels(m_bits)`` cycles from ``x``, ``m`` to ``product`` (the
    partial-product register, then one register per ternary level: no path has more than one LUT before a carry
    chain); throughput one product per cycle. The registers
    run free (no clock enable, no reset): the caller tracks which results are valid.
    """

    def __init__(self, *, x_bits: int, m_bits: int, primitives: bool = False):
        require_int("x_bits", x_bits, 1, 64)
        require_int("m_bits", m_bits, 1, 64)
        require_bool("primitives", primitives)
        self.x_bits, self.m_bits, self.primitives = x_bits, m_bits, primitives
        self.digits = booth_digits(m_bits)
        self._product_bits = x_bits + m_bits
        self.latency = 1 + multiplier_levels(m_bits)
        super().__init__({"x": In(signed(x_bits)), "m": In(unsigned(m_bits)),
                          "product": Out(signed(self._product_bits))})

    def _partial_product(self, m: Module, index: int):
        """``(|d| x) ^ [d < 0]`` (``x_bits + 1`` bits, signed) and ``d < 0``."""
        m_bit = [Const(0, 1), *self.m, *([Const(0, 1)] * 3)]  # m_bit[j + 1] = m[j]; zeros beyond
        digit = [m_bit[2 * index], m_bit[2 * index + 1], m_bit[2 * index + 2]]  # m[2i-1], m[2i], m[2i+1]
        negative = Signal(name=f"negative_{index}")
        m.d.comb += negative.eq(digit[2] & ~(digit[1] & digit[0]))
        x_bit = [Const(0, 1), *self.x, self.x[-1]]  # x_bit[j + 1] = x[j], sign-extended by one

        def bit(inputs):  # (x_j, x_{j-1}, m[2i-1], m[2i], m[2i+1]) -> bit j of (|d| x) ^ [d < 0]
            current, previous, *digit_bits = inputs
            value = _digit(tuple(digit_bits))
            return ((current if abs(value) == 1 else previous if abs(value) == 2 else 0) ^ (value < 0)) & 1

        bits = []
        for j in range(self.x_bits + 1):
            pins = [x_bit[j + 1], x_bit[j], *digit]
            if self.primitives:
                bits.append(map_lut(m, f"partial_{index}_{j}", pins, bit))
            else:
                one, two = digit[0] ^ digit[1], Mux(digit[2], ~digit[1] & ~digit[0], digit[1] & digit[0])
                bits.append(Mux(one, pins[0], Mux(two, pins[1], 0)) ^ negative)
        return Cat(*bits).as_signed(), negative

    def _reduce(self, m: Module, operands: list[tuple]) -> tuple:
        """Sum ``(value, offset)`` operands by registered levels of ternary adders; returns the last ``(value,
        offset)``."""
        level = 0
        while len(operands) > 1:
            operands = sorted(operands, key=lambda operand: operand[1])
            reduced = []
            for index, start in enumerate(range(0, len(operands), 3)):
                group = operands[start: start + 3]
                low = group[0][1]
                if len(group) == 1:
                    value = group[0][0]
                else:
                    # Below the second operand's offset only the first has bits: they pass by, unadded.
                    start_bit = group[1][1]
                    passed = group[0][0][: start_bit - low]
                    first = (group[0][0][start_bit - low:].as_signed(), start_bit)
                    top = max(offset + len(value) for value, offset in group) + len(group) - 1
                    width = min(top, self._product_bits) - start_bit
                    adder = TernaryAdder(width=width, primitives=self.primitives)
                    m.submodules[f"adder_l{level}_{index}"] = adder
                    aligned = [Cat(Const(0, offset - start_bit), value).as_signed()
                               for value, offset in [first, *group[1:]]]
                    aligned += [Const(0, signed(1))] * (3 - len(group))
                    m.d.comb += [adder.x.eq(aligned[0]), adder.y.eq(aligned[1]), adder.z.eq(aligned[2]),
                                 adder.c0.eq(0), adder.ci.eq(0)]
                    value = Cat(passed, adder.sum[:width]).as_signed()
                registered = Signal(signed(len(value)), name=f"sum_l{level}_{index}", reset_less=True)
                m.d.sync += registered.eq(value)
                reduced.append((registered, low))
            operands = reduced
            level += 1
        return operands[0]

    def elaborate(self, platform):
        m = Module()
        operands, negatives = [], []
        for index in range(self.digits):
            core, negative = self._partial_product(m, index)
            registered = Signal(signed(len(core)), name=f"partial_{index}", reset_less=True)
            m.d.sync += registered.eq(core)
            operands.append((registered, 2 * index))
            negatives.append(negative)
        corrections = Signal(2 * self.digits, name="corrections", reset_less=True)  # [d_i < 0] << 2i
        m.d.sync += corrections.eq(Cat(*(Cat(negative, Const(0, 1)) for negative in negatives)))
        operands.append((Cat(corrections, Const(0, 1)).as_signed(), 0))
        value, offset = self._reduce(m, operands)
        assert offset == 0
        product = Signal(signed(self._product_bits), reset_less=True)
        m.d.comb += product.eq(value)
        m.d.comb += self.product.eq(product)
        return m
