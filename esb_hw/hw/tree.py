"""A registered adder tree for sign-folded products (DESIGN.md §3: narrow adders before one accumulator)."""

from __future__ import annotations

import math

from amaranth import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SignFoldingAdderTree", "add_with_carry", "tree_levels"]


def tree_levels(count: int) -> int:
    """Registered levels of a binary tree over ``count`` terms: ``ceil(log2(count))``."""
    return math.ceil(math.log2(count)) if count > 1 else 0


def add_with_carry(a, b, carry):
    """``a + b + carry`` for a 1-bit ``carry``: yosys puts it on the carry chain's carry-in.

    Measured on an 8-term tree (xcup): the same LUT count as ``a + b`` alone.
    """
    return a + b + carry


class SignFoldingAdderTree(wiring.Component):
    """Sum ``count`` one's-complement terms and their signs: ``sum + pending = Σ (term_i + negative_i)``.

    Each adder of the tree takes one pending sign as its carry-in, so the ``count - 1`` adders absorb all
    signs but one, which is left in ``pending`` for the accumulator's carry-in.

    Parameters
    ----------
    count : int
        Number of terms.
    term_bits : int
        Signed width of each term.

    Attributes
    ----------
    terms : In(ArrayLayout(signed(term_bits), count))
    negatives : In(count)
        Sign bits still to be added, one per term.
    enable : In(1)
        Clock enable of every register (the pipeline's advance signal).
    sum : Out(signed(term_bits + levels))
    pending : Out(1)
        The one sign the tree did not add.

    Latency ``levels = ceil(log2(count))`` enabled cycles (0 for one term); throughput one set per cycle.
    """

    def __new__(cls, *, count: int, **kwargs):
        # Checked before the object exists, so a rejected count leaves no unused elaboratable behind.
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        return super().__new__(cls)

    def __init__(self, *, count: int, term_bits: int):
        self.count = count
        self.levels = tree_levels(count)
        super().__init__({
            "terms": In(data.ArrayLayout(signed(term_bits), count)),
            "negatives": In(count),
            "enable": In(1),
            "sum": Out(signed(term_bits + self.levels)),
            "pending": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        values = [self.terms[index] for index in range(self.count)]
        signs = [self.negatives[index] for index in range(self.count)]
        for level in range(self.levels):
            next_values, next_signs = [], []
            for pair in range(0, len(values) - 1, 2):
                total = Signal(signed(len(values[pair]) + 1), name=f"sum_l{level}_{pair // 2}")
                with m.If(self.enable):
                    m.d.sync += total.eq(add_with_carry(values[pair], values[pair + 1], signs.pop()))
                next_values.append(total)
            if len(values) % 2:
                carried = Signal(signed(len(values[-1]) + 1), name=f"pass_l{level}")
                with m.If(self.enable):
                    m.d.sync += carried.eq(values[-1])
                next_values.append(carried)
            for index, sign in enumerate(signs):
                delayed = Signal(name=f"sign_l{level}_{index}")
                with m.If(self.enable):
                    m.d.sync += delayed.eq(sign)
                next_signs.append(delayed)
            values, signs = next_values, next_signs
        assert len(values) == 1 and len(signs) == 1
        m.d.comb += [self.sum.eq(values[0]), self.pending.eq(signs[0])]
        return m
