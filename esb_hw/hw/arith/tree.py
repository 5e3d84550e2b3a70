"""A registered adder tree for sign-folded products (DESIGN.md §3: narrow adders before one accumulator)."""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..checks import require_bool, require_int
from .ternary import TernaryAdder

__all__ = ["ARITIES", "SHIFT_REGISTER_MIN", "SignFoldingAdderTree", "add_with_carry", "tree_levels",
           "tree_structure", "tree_widths"]

ARITIES = (2, 3)


def tree_levels(count: int, arity: int = 2) -> int:
    """Registered levels of a tree of ``arity``-input adders over ``count`` terms: ``ceil(log_arity(count))``."""
    levels = 0
    while count > 1:
        count = -(-count // arity)
        levels += 1
    return levels


def tree_widths(count: int, term_bits: int, arity: int = 2) -> list[list[tuple[int, int]]]:
    """Per level, ``(inputs, output width)`` of each adder or pass-through register: the tree's structure.

    A group of ``n`` values of widths ``w`` becomes one value of ``max(w) + {1: 0, 2: 1, 3: 2}[n]`` bits.
    """
    widths = [term_bits] * count
    levels = []
    for _ in range(tree_levels(count, arity)):
        groups = [widths[start: start + arity] for start in range(0, len(widths), arity)]
        level = [(len(group), max(group) + {1: 0, 2: 1, 3: 2}[len(group)]) for group in groups]
        levels.append(level)
        widths = [width for _, width in level]
    return levels


#: The shortest chain of plain delay registers that synthesis turns into one shift-register LUT (yosys
#: ``synth_xilinx`` maps such chains with ``shregmap -minlen 3``; an SRLC32E holds up to 32 stages).
SHIFT_REGISTER_MIN = 3


def tree_structure(count: int, term_bits: int, arity: int = 3) -> dict[str, int]:
    """What :class:`SignFoldingAdderTree` registers and adds, as synthesis keeps it.

    ``adder_bits``: LUTs of the adders when built from primitives: a ternary adder is one LUT6_2 per output bit,
    a binary adder one LUT per input bit, a lone value none. ``register_bits``: every level registers its values
    at their widths (:func:`tree_widths`) and delays the signs its adders did not take, less the chains of at
    least :data:`SHIFT_REGISTER_MIN` plain delays (a value or sign that no adder touches for that many levels),
    which become ``shift_registers`` (one SRL LUT per bit of such a chain).
    """
    adder_bits, register_bits, shift_registers = 0, 0, 0
    values = [(term_bits, 0)] * count  # (width, delays so far without an adder)
    signs = [0] * count  # delays so far of each pending sign

    def retire(width: int, delays: int) -> None:
        nonlocal register_bits, shift_registers
        if delays >= SHIFT_REGISTER_MIN:
            shift_registers += width * -(-delays // 32)
        else:
            register_bits += width * delays

    for _ in range(tree_levels(count, arity)):
        next_values = []
        for start in range(0, len(values), arity):
            group = values[start: start + arity]
            if len(group) == 1:
                next_values.append((group[0][0], group[0][1] + 1))  # a pass-through register
                continue
            for width, delays in group:
                retire(width, delays)
            width = max(w for w, _ in group) + {2: 1, 3: 2}[len(group)]
            adder_bits += {2: width - 1, 3: width}[len(group)]
            for _ in range(len(group) - 1):
                retire(1, signs.pop())
            next_values.append((width, 1))
        values = next_values
        signs = [delays + 1 for delays in signs]
    for width, delays in values:
        retire(width, delays)
    for delays in signs:
        retire(1, delays)
    return {"register_bits": register_bits, "adder_bits": adder_bits, "shift_registers": shift_registers}


def add_with_carry(a, b, carry):
    """``a + b + carry`` for a 1-bit ``carry``: yosys puts it on the carry chain's carry-in.

    Measured on an 8-term tree (xcup): the same LUT count as ``a + b`` alone.
    """
    return a + b + carry


class SignFoldingAdderTree(wiring.Component):
    """Sum ``count`` one's-complement terms and their signs: ``sum + pending = Σ (term_i + negative_i)``.

    Every adder takes pending signs as extra 1-bit addends: a binary adder one (its carry-in), a ternary
    adder two (:class:`~esb_hw.hw.arith.ternary.TernaryAdder`). A group of ``k`` values removes ``k - 1`` values and
    ``k - 1`` signs, so one sign is left in ``pending`` for the accumulator's carry-in.

    Parameters
    ----------
    count : int
        Number of terms.
    term_bits : int
        Signed width of each term.
    arity : {2, 3}
        Inputs per adder. Ternary adders halve the adder LUTs with ``primitives`` (one LUT6_2 per bit).
    primitives : bool
        Build ternary adders from UltraScale+ ``LUT6_2``/``CARRY8`` (synthesis); else plain ``+``.

    Attributes
    ----------
    terms : In(ArrayLayout(signed(term_bits), count))
    negatives : In(count)
        Sign bits still to be added, one per term.
    sum : Out(signed(...))
        Width from :func:`tree_widths`: ``term_bits`` plus 1 per binary and 2 per ternary level, at most.
    pending : Out(1)
        The one sign the tree did not add.

    Latency ``levels = tree_levels(count, arity)`` cycles (0 for one term); throughput one set per cycle. The
    registers run free (no clock enable, no reset): the caller tracks which results are valid.
    """

    def __init__(self, *, count: int, term_bits: int, arity: int = 2, primitives: bool = False):
        require_int("count", count, 1)
        require_int("term_bits", term_bits, 1)
        require_int("arity", arity, min(ARITIES), max(ARITIES))
        require_bool("primitives", primitives)
        self.count = count
        self.arity = arity
        self.primitives = primitives
        self.levels = tree_levels(count, arity)
        structure = tree_widths(count, term_bits, arity)
        sum_bits = structure[-1][0][1] if structure else term_bits
        super().__init__({
            "terms": In(data.ArrayLayout(signed(term_bits), count)),
            "negatives": In(count),
            "sum": Out(signed(sum_bits)),
            "pending": Out(1),
        })

    def _reduce(self, m: Module, group: list, signs: list, name: str):
        width = max(len(value) for value in group)
        if len(group) == 1:
            return group[0], signed(width)
        if len(group) == 2:
            return add_with_carry(group[0], group[1], signs.pop()), signed(width + 1)
        adder = TernaryAdder(width=width, primitives=self.primitives)
        m.submodules[name] = adder
        m.d.comb += [adder.x.eq(group[0]), adder.y.eq(group[1]), adder.z.eq(group[2]),
                     adder.c0.eq(signs.pop()), adder.ci.eq(signs.pop())]
        return adder.sum, signed(width + 2)

    def elaborate(self, platform):
        m = Module()
        values = [self.terms[index] for index in range(self.count)]
        signs = [self.negatives[index] for index in range(self.count)]
        for level in range(self.levels):
            next_values = []
            for index, start in enumerate(range(0, len(values), self.arity)):
                expression, shape = self._reduce(m, values[start: start + self.arity], signs,
                                                 f"ternary_l{level}_{index}")
                total = Signal(shape, name=f"sum_l{level}_{index}", reset_less=True)
                m.d.sync += total.eq(expression)
                next_values.append(total)
            next_signs = []
            for index, sign in enumerate(signs):
                delayed = Signal(name=f"sign_l{level}_{index}", reset_less=True)
                m.d.sync += delayed.eq(sign)
                next_signs.append(delayed)
            values, signs = next_values, next_signs
        assert len(values) == 1 and len(signs) == 1
        m.d.comb += [self.sum.eq(values[0]), self.pending.eq(signs[0])]
        return m
