"""Pipeline and buffer depths shared by the hardware and the compiler's cycle model (pure Python).

Each function here is the one definition of a latency. The component that builds the pipeline checks, when it
elaborates, that the stages it built equal the number given here, so the cycle model cannot drift from the RTL.
"""

from __future__ import annotations

from ..config import AcceleratorConfig
from ..layouts import REQUANT_MULTIPLIER_BITS, weight_encoding

__all__ = ["HANDOFF_CYCLES", "OUTPUT_DEPTH", "TREE_ARITY", "TREE_OUTPUTS", "array_latency", "booth_digits",
           "multiplier_levels", "recoded_terms", "require_latency", "requant_latency", "row_terms", "tree_levels"]

#: Inputs of each adder in a row's tree (ternary adders on UltraScale+ carry chains).
TREE_ARITY = 3
#: Sums a sign-folding adder tree leaves for the accumulator.
TREE_OUTPUTS = 2
#: Entries of the array's output buffer: tiles in flight plus tiles waiting for the consumer. One block RAM holds
#: 512, so 32 costs nothing more, and it exceeds the pipeline latency of every shape (at most 8 cycles at 64
#: columns), so tiles of one beat still flow at one per cycle.
OUTPUT_DEPTH = 32
#: Cycles of the weight hand-off beyond the ``rows`` loads: the swap beat's two stages and its acceptance, then
#: the last load's stage and its acceptance (:class:`esb_hw.hw.core.sequencer.Sequencer`).
HANDOFF_CYCLES = 4


def require_latency(what: str, built: int, contract: int) -> None:
    """Raise ``AssertionError`` if the ``built`` pipeline stages of ``what`` differ from the ``contract``'s: called
    by the hardware when it elaborates, so a change to a pipeline that the cycle model does not know fails at
    once."""
    if built != contract:
        raise AssertionError(f"{what} built {built} pipeline stages; the contract (esb_hw/contract/latency.py) says "
                             f"{contract}")


def tree_levels(count: int, arity: int = 2) -> int:
    """Registered levels that reduce ``count`` terms to at most :data:`TREE_OUTPUTS` sums with ``arity``-input
    adders: the least ``L`` with ``count <= TREE_OUTPUTS * arity**L``."""
    levels = 0
    while count > TREE_OUTPUTS * arity ** levels:
        levels += 1
    return levels


def recoded_terms(weight_bits: int) -> int:
    """Terms a radix-4 recoded product gives the row's adder tree: 2 for 5- and 6-bit weights, else 1."""
    return 2 if weight_bits >= 5 else 1


def row_terms(config: AcceleratorConfig) -> int:
    """Terms a row's adder tree sums: one per product, two per 5- or 6-bit recoded product."""
    per_product = recoded_terms(config.weight_format.bits) if weight_encoding(config) == "twos" else 1
    return config.cols * per_product


def array_latency(config: AcceleratorConfig) -> int:
    """Cycles from the PE array accepting a tile's last beat to its sums on ``o``: the input register, the product
    register, ``tree_levels(row_terms(config), 3)`` tree levels, the edge at which the accumulators' totals are
    written into the output buffer, and the buffer's read (two cycles from a write)."""
    return tree_levels(row_terms(config), TREE_ARITY) + 4


def booth_digits(m_bits: int) -> int:
    """Radix-4 Booth digits of an unsigned ``m_bits``-bit multiplier: ``ceil((m_bits + 1) / 2)``."""
    return (m_bits + 2) // 2


def multiplier_levels(m_bits: int) -> int:
    """Registered adder levels of the Booth multiplier: ternary levels over ``booth_digits + 1`` operands, down
    to one."""
    levels, count = 0, booth_digits(m_bits) + 1
    while count > 1:
        count = -(-count // 3)
        levels += 1
    return levels


def requant_latency(config: AcceleratorConfig) -> int:
    """Cycles from an accepted requantizer input to its code on ``o`` with a ready consumer: the bias addition,
    the Booth multiplier (its partial products and adder levels), the two shift stages, the clamp's flags and the
    rounded level, the encoding, and the output FIFO (two cycles: the write, then its buffered read port)."""
    del config  # the same for every config today; the argument keeps the contract's signature stable
    return 1 + (1 + multiplier_levels(REQUANT_MULTIPLIER_BITS)) + 2 + 2 + 1 + 2
