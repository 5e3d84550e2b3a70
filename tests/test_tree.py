# amaranth: UnusedElaboratable=no
"""SignFoldingAdderTree (esb_hw/hw/arith/tree.py): sums of one's-complement terms, latency."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from esb_hw.errors import ParameterError
from esb_hw.hw.arith.tree import SignFoldingAdderTree, tree_levels, tree_plan, tree_structure, tree_widths


def run_tree(count, term_bits, sets, arity=2):
    """Feed ``sets`` of (terms, negatives) one per cycle; return ``sums[0] + sums[1] + pending[0] + pending[1]`` of
    each set, read ``levels`` cycles after it went in (the documented latency)."""
    tree = SignFoldingAdderTree(count=count, term_bits=term_bits, arity=arity)
    results = []

    async def testbench(ctx):
        queue = list(sets)
        for cycle in range(len(sets) + tree.levels):
            terms, negatives = queue.pop(0) if queue else (np.zeros(count, int), np.zeros(count, int))
            for index in range(count):
                ctx.set(tree.terms[index], int(terms[index]))
            ctx.set(tree.negatives, sum(int(n) << i for i, n in enumerate(negatives)))
            if cycle >= tree.levels:
                pending = ctx.get(tree.pending)
                results.append(ctx.get(tree.sums[0]) + ctx.get(tree.sums[1]) + (pending & 1) + (pending >> 1))
            if tree.levels:
                await ctx.tick()

    simulator = Simulator(tree)
    if tree.levels:
        simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return results


def reference(sets):
    return [int(np.sum(terms)) + int(np.sum(negatives)) for terms, negatives in sets]


def mismatches(results, sets):
    """Indexes of the sets whose tree result differs from the reference sum."""
    return [index for index, (got, want) in enumerate(zip(results, reference(sets), strict=True)) if got != want]


@pytest.mark.parametrize("arity", [2, 3])
@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 8, 9, 16])
def test_sums_match(count, arity):
    rng = np.random.default_rng(count)
    term_bits = 9
    sets = [(rng.integers(-(1 << (term_bits - 1)), 1 << (term_bits - 1), count), rng.integers(0, 2, count))
            for _ in range(40)]
    sets += [(np.full(count, -(1 << (term_bits - 1))), np.ones(count, int)),
             (np.full(count, (1 << (term_bits - 1)) - 1), np.zeros(count, int))]
    assert mismatches(run_tree(count, term_bits, sets, arity=arity), sets) == []


def test_checker_catches_a_wrong_sum():
    """The checker used above flags a tree result that is off by one, and only that one."""
    rng = np.random.default_rng(2)
    sets = [(rng.integers(-16, 16, 5), rng.integers(0, 2, 5)) for _ in range(6)]
    results = run_tree(5, 6, sets, arity=3)
    assert mismatches(results, sets) == []
    results[4] += 1
    assert mismatches(results, sets) == [4]


def test_levels_and_bad_arguments():
    # The tree stops at two sums: the least L with count <= 2 * arity**L.
    assert [tree_levels(n) for n in (1, 2, 3, 4, 5, 8, 9)] == [0, 0, 1, 1, 2, 2, 3]
    assert [tree_levels(n, 3) for n in (1, 2, 3, 6, 7, 18, 19, 54, 55)] == [0, 0, 1, 1, 2, 2, 3, 3, 4]
    with pytest.raises(ParameterError, match="count must be an int >= 1, got 0"):
        SignFoldingAdderTree(count=0, term_bits=4)
    with pytest.raises(ParameterError, match="arity must be an int in 2..3, got 4"):
        SignFoldingAdderTree(count=5, term_bits=4, arity=4)
    with pytest.raises(ParameterError, match="term_bits must be an int >= 1, got 0"):
        SignFoldingAdderTree(count=5, term_bits=0)
    with pytest.raises(ParameterError, match="primitives must be a bool, got int 1"):
        SignFoldingAdderTree(count=5, term_bits=4, primitives=1)


def test_plan_takes_full_groups_first_and_a_binary_adder_only_when_needed():
    assert tree_plan(8, 3) == [[3, 3, 1, 1], [3, 1]]
    assert tree_plan(5, 3) == [[3, 2]]  # 3 + 1 + 1 would leave three values for the two-input accumulator
    assert tree_plan(16, 3) == [[3, 3, 3, 3, 3, 1], [3, 3]]
    assert tree_plan(2, 3) == [] and tree_plan(5, 2) == [[2, 2, 1], [2, 1]]


def test_widths_follow_the_structure():
    # 8 terms of 13 bits, ternary: 3 + 3 -> 15, 15 bits and two terms passed on; then the two passed terms and
    # one sum -> 17 bits, and the other sum passed on (15 bits).
    assert tree_widths(8, 13, 3) == [[(3, 15), (3, 15), (1, 13), (1, 13)], [(3, 17), (1, 15)]]
    assert tree_widths(8, 13, 2)[-1] == [(2, 15), (2, 15)]
    tree = SignFoldingAdderTree(count=8, term_bits=13, arity=3)
    assert len(tree.sums[0]) == len(tree.sums[1]) == 17


def test_structure_counts_registers_and_adders():
    # 8 terms of 13 bits, ternary: level 1 registers 15 + 15 + 13 + 13 bits and 4 signs, level 2 17 + 15 bits
    # and 2 signs.
    assert tree_structure(8, 13, 3) == {"register_bits": 15 + 15 + 13 + 13 + 4 + 17 + 15 + 2,
                                        "adder_bits": 15 + 15 + 17, "shift_registers": 0, "sum_bits": 17}
    assert tree_structure(1, 9, 3) == {"register_bits": 0, "adder_bits": 0, "shift_registers": 0, "sum_bits": 9}
    # 16 terms of 11 bits: five adders of 13 bits and a passed term, then two adders of 15 bits.
    assert tree_structure(16, 11, 3) == {"register_bits": 5 * 13 + 11 + 6 + 2 * 15 + 2, "adder_bits": 5 * 13 + 2 * 15,
                                         "shift_registers": 0, "sum_bits": 15}
    # 64 terms: the two signs no adder takes wait four levels, and two more three: shift-register LUTs.
    assert tree_structure(64, 13, 3)["shift_registers"] == 4
