"""The PE array: a GEMM tile engine of ``rows`` dot-product rows, ``cols`` products each (DESIGN.md §3).

Every beat carries one activation vector ``x`` (``cols`` codes) and one weight tile ``W`` (``rows x cols``
codes). Row ``r`` adds ``Σ_c W[r][c] * x[c]`` to its accumulator through a registered adder tree; the beat
flagged ``last`` closes the tile and its ``rows`` sums leave on the output stream. A GEMM
``Y (R x N) = W (R x K) X (K x N)`` is one tile per output column ``n``, of ``ceil(K / cols)`` beats.

Activations are decoded once per column (:class:`~esb_hw.hw.product.ActivationLane`) and broadcast to every
row from registers; with the ``esb`` variant the lane also computes the odd multiples (``3a``, ...)
that the rows select from, so that adder is paid once per column instead of once per PE.
"""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import AcceleratorConfig
from .product import ActivationLane, MultiplierProduct, ShiftAddProduct
from .ternary import TernaryAdder
from .tree import SignFoldingAdderTree, tree_levels

__all__ = ["PEArray", "TREE_ARITY", "input_layout", "pipeline_latency"]


def input_layout(config: AcceleratorConfig) -> data.StructLayout:
    """One input beat: ``activations[c]``, ``weights[r][c]`` (codes) and ``last``, first field in the low bits."""
    return data.StructLayout({
        "activations": data.ArrayLayout(config.activation_format.bits, config.cols),
        "weights": data.ArrayLayout(data.ArrayLayout(config.weight_format.bits, config.cols), config.rows),
        "last": 1,
    })


#: Inputs per adder of the row trees: ternary adders absorb two product signs each and, built from LUT6_2 and
#: CARRY8, cost one LUT per bit where two binary adders cost two.
TREE_ARITY = 3


def pipeline_latency(config: AcceleratorConfig) -> int:
    """Cycles from accepting a tile's last beat to its sums on ``o``: input register, product register,
    ``tree_levels(cols, 3)`` tree levels, accumulator."""
    return tree_levels(config.cols, TREE_ARITY) + 3


class PEArray(wiring.Component):
    """``rows x cols`` MACs computing ``y[r] = Σ_beats Σ_c W[r][c] x[c]`` per tile.

    Parameters
    ----------
    config : AcceleratorConfig
        Formats, array shape, accumulator width and PE variant.
    primitives : bool
        Build the tree's ternary adders from UltraScale(+) ``LUT6_2``/``CARRY8`` (for synthesis); the default
        plain ``+`` simulates anywhere. Both are the same function (``tests/test_ternary.py`` proves it).

    Attributes
    ----------
    i : In(stream.Signature(input_layout(config)))
        Beats; ``last`` closes a tile. A tile may have at most ``config.max_reduction // cols`` beats,
        which keeps the accumulators exact.
    o : Out(stream.Signature(ArrayLayout(signed(config.accumulator_bits), rows)))
        One beat per tile: the exact sums of every row.

    Latency: a tile's sums are valid on ``o`` ``latency = ceil(log3(cols)) + 3`` cycles after the cycle
    in which its last beat is accepted (:func:`pipeline_latency`). Throughput: one beat per cycle, tiles
    back to back (a tile of one beat each cycle is fine); the next tile's beats keep flowing while the
    previous sums wait on ``o``, and the input stalls only when a tile ends while ``o`` still holds the
    sums of the tile before it.
    """

    def __new__(cls, config: AcceleratorConfig, *args, **kwargs):
        # Checked before the object exists, so a rejected config leaves no unused elaboratable behind.
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"config must be an AcceleratorConfig, got {type(config).__name__}")
        return super().__new__(cls)

    def __init__(self, config: AcceleratorConfig, *, primitives: bool = False):
        self.config = config
        self.primitives = primitives
        self.latency = pipeline_latency(config)
        super().__init__({
            "i": In(stream.Signature(input_layout(config))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(config.accumulator_bits), config.rows))),
        })

    def _product(self, m: Module, row: int, col: int, lanes, activations, weight_code):
        config = self.config
        if config.pe_variant == "baseline":
            product = MultiplierProduct(activation=config.activation_format, weight=config.weight_format)
            m.d.comb += product.activation_code.eq(activations[col])
        else:
            product = ShiftAddProduct(activation=config.activation_format, weight=config.weight_format,
                                      shared=config.pe_variant == "esb", primitives=self.primitives)
            m.d.comb += product.lane.eq(lanes[col].lane)
        m.submodules[f"product_{row}_{col}"] = product
        m.d.comb += product.weight_code.eq(weight_code)
        return product

    def elaborate(self, platform):
        config = self.config
        m = Module()
        advance = Signal()
        # Flags travel beside the data: stage 0 = input registers, 1 = products, then the tree levels.
        stages = 2 + tree_levels(config.cols, TREE_ARITY)
        valid = [Signal(name=f"valid_{s}") for s in range(stages)]
        first = [Signal(name=f"first_{s}") for s in range(stages)]
        last = [Signal(name=f"last_{s}") for s in range(stages)]
        starts_tile = Signal(init=1)

        # Stage 0: registered broadcast of the beat.
        beat = Signal(input_layout(config))
        m.d.comb += self.i.ready.eq(advance)
        with m.If(advance):
            # Flags are gated by valid: an idle payload is don't-care (X in simulation) and must not
            # reach control.
            m.d.sync += [beat.eq(self.i.payload), valid[0].eq(self.i.valid),
                         first[0].eq(starts_tile & self.i.valid), last[0].eq(self.i.payload.last & self.i.valid)]
            with m.If(self.i.valid):
                m.d.sync += starts_tile.eq(self.i.payload.last)
            for stage in range(1, stages):
                m.d.sync += [valid[stage].eq(valid[stage - 1]), first[stage].eq(first[stage - 1]),
                             last[stage].eq(last[stage - 1])]

        lanes = []
        if config.pe_variant != "baseline":
            for col in range(config.cols):
                lane = ActivationLane(activation=config.activation_format, weight=config.weight_format,
                                      shared=config.pe_variant == "esb")
                m.submodules[f"lane_{col}"] = lane
                m.d.comb += lane.code.eq(beat.activations[col])
                lanes.append(lane)

        sums = []
        for row in range(config.rows):
            # Stage 1: products, one's-complemented and registered with their signs.
            tree = None
            for col in range(config.cols):
                product = self._product(m, row, col, lanes, beat.activations, beat.weights[row][col])
                if tree is None:
                    tree = SignFoldingAdderTree(count=config.cols, term_bits=len(product.magnitude) + 1,
                                                arity=TREE_ARITY, primitives=self.primitives)
                    m.submodules[f"tree_{row}"] = tree
                    m.d.comb += tree.enable.eq(advance)
                folded = Signal(signed(len(product.magnitude) + 1), name=f"folded_{row}_{col}")
                negative = Signal(name=f"negative_{row}_{col}")
                with m.If(advance):
                    m.d.sync += [folded.eq(product.folded), negative.eq(product.negative)]
                m.d.comb += [tree.terms[col].eq(folded), tree.negatives[col].eq(negative)]
            sums.append(tree)

        # Last stage: accumulate; a tile's last beat also loads the output register.
        accumulators = [Signal(signed(config.accumulator_bits), name=f"accumulator_{row}")
                        for row in range(config.rows)]
        holding = self.o.valid & ~self.o.ready
        m.d.comb += advance.eq(~(valid[-1] & last[-1] & holding))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        totals = []
        for row, tree in enumerate(sums):
            # (first ? 0 : accumulator) + tree sum + the last pending sign, in one LUT per bit: a gated adder.
            adder = TernaryAdder(width=config.accumulator_bits, primitives=self.primitives, gated=True)
            m.submodules[f"accumulate_{row}"] = adder
            m.d.comb += [adder.x.eq(accumulators[row]), adder.y.eq(tree.sum), adder.z.eq(0),
                         adder.c0.eq(tree.pending), adder.ci.eq(0), adder.clear_x.eq(first[-1])]
            totals.append(adder.sum[: config.accumulator_bits].as_signed())
        with m.If(advance & valid[-1]):
            for row, total in enumerate(totals):
                m.d.sync += accumulators[row].eq(total)
                with m.If(last[-1]):
                    m.d.sync += self.o.payload[row].eq(total)
            with m.If(last[-1]):
                m.d.sync += self.o.valid.eq(1)
        return m
