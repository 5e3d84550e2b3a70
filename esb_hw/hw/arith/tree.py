"""A registered adder tree for sign-folded products (docs/architecture.md: narrow adders before one accumulator).

The tree stops at two sums, not one: the row's accumulator is a ternary adder that takes the running total and
two more operands at one LUT per bit, so a last tree level that would add two values is never built.
"""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ...contract.latency import TREE_OUTPUTS, require_latency, tree_levels
from ..checks import require_bool, require_int
from .ternary import TernaryAdder

__all__ = ["ARITIES", "OUTPUTS", "SHIFT_REGISTER_MIN", "SignFoldingAdderTree", "add_with_carry", "tree_levels",
           "tree_plan", "tree_structure", "tree_widths"]

ARITIES = (2, 3)

#: Values a tree leaves for the accumulator, which adds them (and as many pending signs) in its ternary adder.
OUTPUTS = TREE_OUTPUTS


def tree_plan(count: int, arity: int = 2) -> list[list[int]]:
    """Per level, the number of inputs of each group: ``arity`` for an adder, 2 for a binary adder inside a
    ternary tree, 1 for a value that only passes through a register.

    Each level adds as many full groups as it can, while the values are narrow, and passes the rest on; only
    when the later levels could not take them all (at most ``OUTPUTS * arity**levels_left`` values) do the last
    two become one binary adder. The groups take a level's inputs in order, and a level's outputs are ordered
    with the values that only passed through first (:func:`_passes_first`), so that no value waits more than
    one level for an adder.
    """
    plan = []
    values = count
    for level in range(tree_levels(count, arity)):
        capacity = OUTPUTS * arity ** (tree_levels(count, arity) - level - 1)
        full, rest = divmod(values, arity)
        groups = [arity] * full + [1] * rest
        if len(groups) > capacity:
            groups = [arity] * full + [rest]
        assert len(groups) <= capacity
        plan.append(groups)
        values = len(groups)
    return plan


def _passes_first(groups: list[int], outputs: list) -> list:
    """A level's outputs in the order the next level takes them: pass-through values, then sums."""
    return ([value for size, value in zip(groups, outputs, strict=True) if size == 1]
            + [value for size, value in zip(groups, outputs, strict=True) if size > 1])


def tree_widths(count: int, term_bits: int, arity: int = 2) -> list[list[tuple[int, int]]]:
    """Per level, ``(inputs, output width)`` of each adder or pass-through register (:func:`tree_plan`).

    A group of ``n`` values of widths ``w`` becomes one value of ``max(w) + {1: 0, 2: 1, 3: 2}[n]`` bits.
    """
    widths = [term_bits] * count
    levels = []
    for groups in tree_plan(count, arity):
        level, start = [], 0
        for size in groups:
            level.append((size, max(widths[start: start + size]) + {1: 0, 2: 1, 3: 2}[size]))
            start += size
        levels.append(level)
        widths = _passes_first(groups, [width for _, width in level])
    return levels


def _sum_bits(count: int, term_bits: int, arity: int) -> int:
    structure = tree_widths(count, term_bits, arity)
    return max(width for _, width in structure[-1]) if structure else term_bits


#: The shortest chain of plain delay registers that synthesis turns into one shift-register LUT (yosys
#: ``synth_xilinx`` maps such chains with ``shregmap -minlen 3``; an SRLC32E holds up to 32 stages).
SHIFT_REGISTER_MIN = 3


def tree_structure(count: int, term_bits: int, arity: int = 3) -> dict[str, int]:
    """What :class:`SignFoldingAdderTree` registers and adds, as synthesis keeps it.

    ``adder_bits``: LUTs of the adders when built from primitives: a ternary adder is one LUT6_2 per output bit,
    a binary adder one LUT per input bit, a lone value none. ``register_bits``: every level registers its values
    at their widths (:func:`tree_widths`) and delays the signs its adders did not take, less the chains of at
    least :data:`SHIFT_REGISTER_MIN` plain delays (a value or sign that no adder touches for that many levels),
    which become ``shift_registers`` (one SRL LUT per bit of such a chain). ``sum_bits``: the width of each of
    the (at most two) sums.
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

    for groups in tree_plan(count, arity):
        next_values, start = [], 0
        for size in groups:
            group = values[start: start + size]
            start += size
            if size == 1:
                next_values.append((group[0][0], group[0][1] + 1))  # a pass-through register
                continue
            for width, delays in group:
                retire(width, delays)
            width = max(w for w, _ in group) + {2: 1, 3: 2}[size]
            adder_bits += {2: width - 1, 3: width}[size]
            for _ in range(size - 1):
                retire(1, signs.pop())
            next_values.append((width, 1))
        values = _passes_first(groups, next_values)
        signs = [delays + 1 for delays in signs]
    for width, delays in values:
        retire(width, delays)
    for delays in signs:
        retire(1, delays)
    return {"register_bits": register_bits, "adder_bits": adder_bits, "shift_registers": shift_registers,
            "sum_bits": _sum_bits(count, term_bits, arity)}


def add_with_carry(a, b, carry):
    """``a + b + carry`` for a 1-bit ``carry``: yosys puts it on the carry chain's carry-in.

    Measured on an 8-term tree (xcup): the same LUT count as ``a + b`` alone.
    """
    return a + b + carry


class SignFoldingAdderTree(wiring.Component):
    """Reduce ``count`` one's-complement terms and their signs to two sums and two signs:
    ``sums[0] + sums[1] + pending[0] + pending[1] = Σ (term_i + negative_i)``.

    Every adder takes pending signs as extra 1-bit addends: a binary adder one (its carry-in), a ternary
    adder two (:class:`~esb_hw.hw.arith.ternary.TernaryAdder`). A group of ``k`` values removes ``k - 1`` values
    and ``k - 1`` signs, so as many signs are left as sums, and the accumulator's ternary adder takes them all.

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
    sums : Out(ArrayLayout(signed(sum_bits), 2))
        ``sum_bits`` from :func:`tree_widths`: ``term_bits`` plus 1 per binary and 2 per ternary level, at most.
        ``sums[1]`` is 0 when the tree ends in one value (an odd ``count`` with ternary adders, or 1).
    pending : Out(2)
        The signs the tree did not add (``pending[1]`` is 0 when ``sums[1]`` is).

    Latency ``levels = tree_levels(count, arity)`` cycles (0 for one or two terms, which pass straight
    through); throughput one set per cycle. The registers run free (no clock enable, no reset): the caller
    tracks which results are valid.
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
        self.sum_bits = _sum_bits(count, term_bits, arity)
        super().__init__({
            "terms": In(data.ArrayLayout(signed(term_bits), count)),
            "negatives": In(count),
            "sums": Out(data.ArrayLayout(signed(self.sum_bits), OUTPUTS)),
            "pending": Out(OUTPUTS),
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
        plan = tree_plan(self.count, self.arity)
        require_latency("SignFoldingAdderTree", len(plan), self.levels)
        for level, groups in enumerate(plan):
            next_values, start = [], 0
            for index, size in enumerate(groups):
                expression, shape = self._reduce(m, values[start: start + size], signs, f"ternary_l{level}_{index}")
                start += size
                total = Signal(shape, name=f"sum_l{level}_{index}", reset_less=True)
                m.d.sync += total.eq(expression)
                next_values.append(total)
            next_values = _passes_first(groups, next_values)
            next_signs = []
            for index, sign in enumerate(signs):
                delayed = Signal(name=f"sign_l{level}_{index}", reset_less=True)
                m.d.sync += delayed.eq(sign)
                next_signs.append(delayed)
            values, signs = next_values, next_signs
        assert len(values) == len(signs) <= OUTPUTS
        for index, (value, sign) in enumerate(zip(values, signs, strict=True)):
            m.d.comb += [self.sums[index].eq(value), self.pending[index].eq(sign)]
        return m
