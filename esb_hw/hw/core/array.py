"""The PE array: a GEMM tile engine of ``rows`` dot-product rows, ``cols`` products each (DESIGN.md §3).

Every beat carries one activation vector ``x`` (``cols`` codes) and one weight tile ``W`` (``rows x cols``
codes), laid out as :func:`esb_hw.layouts.array_input_layout`. Row ``r`` adds ``sum_c W[r][c] * x[c]`` to its
accumulator through a registered adder tree; the beat flagged ``last`` closes the tile and its ``rows`` sums
leave on the output stream. A GEMM ``Y (R x N) = W (R x K) X (K x N)`` is one tile per output column ``n``,
of ``ceil(K / cols)`` beats (:mod:`esb_hw.compiler.gemm`).

Activations are decoded once per column (:class:`~esb_hw.hw.arith.product.ActivationLane`) and broadcast to
every row from registers; with the ``esb`` variant the lane also computes the odd multiples (``3a``, ...)
that the rows select from, so that adder is paid once per column instead of once per PE.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ...config import AcceleratorConfig
from ...layouts import array_input_layout, array_output_layout
from ..arith.product import ActivationLane, lane_structure
from ..arith.tree import tree_levels
from ..checks import require_bool, require_instance
from .row import TREE_ARITY, DotProductRow, row_structure

__all__ = ["PEArray", "array_structure", "pipeline_latency"]


def pipeline_latency(config: AcceleratorConfig) -> int:
    """Cycles from accepting a tile's last beat to its sums on ``o``: the input register, the product
    register, ``tree_levels(cols, 3)`` tree levels and the accumulator."""
    return tree_levels(config.cols, TREE_ARITY) + 3


def _flag_stages(config: AcceleratorConfig) -> int:
    """Pipeline stages that carry ``valid``/``first``/``last``: the input register, the products, the tree."""
    return 2 + tree_levels(config.cols, TREE_ARITY)


def array_structure(config: AcceleratorConfig) -> dict[str, dict]:
    """What :class:`PEArray` of ``config`` builds, per part: ``register_bits`` of each, and the structural
    counts the resource model prices (:mod:`esb_hw.estimate.model`).

    ``lanes``: the registered activation codes, and one lane's
    :func:`~esb_hw.hw.arith.product.lane_structure` per column. ``products``, ``trees``, ``accumulators``:
    :func:`~esb_hw.hw.core.row.row_structure` times ``rows``, plus the registered weight codes under
    ``products`` and the output register under ``accumulators``. ``control``: ``valid``/``first``/``last`` of
    each flag stage, ``starts_tile`` and ``o.valid`` (``beat.last`` is never read; ``last`` of stage 0 carries
    it).
    """
    rows, cols = config.rows, config.cols
    row = row_structure(config)
    return {
        "lanes": {"count": cols, "register_bits": cols * config.activation_format.bits,
                  "features": lane_structure(config.activation_format, config.weight_format, config.pe_variant)},
        "products": {"count": rows * cols, "features": row["products"]["features"],
                     "register_bits": rows * (cols * config.weight_format.bits + row["products"]["register_bits"])},
        "trees": {"count": rows, "adder_bits": row["tree"]["adder_bits"],
                  "register_bits": rows * row["tree"]["register_bits"]},
        "accumulators": {"count": rows, "adder_bits": row["accumulator"]["adder_bits"],
                         "register_bits": rows * (row["accumulator"]["register_bits"] + config.accumulator_bits)},
        "control": {"register_bits": 3 * _flag_stages(config) + 2},
    }


class PEArray(wiring.Component):
    """``rows x cols`` MACs computing ``y[r] = sum_beats sum_c W[r][c] x[c]`` per tile.

    Parameters
    ----------
    config : AcceleratorConfig
        Formats, array shape, accumulator width and PE variant.
    primitives : bool
        Build the rows from UltraScale(+) primitives (see :class:`~esb_hw.hw.core.row.DotProductRow`), for
        synthesis; the default plain Amaranth simulates anywhere. Both are the same function (SAT-proven in
        ``tests/test_ternary.py`` and ``tests/test_product.py``).

    Attributes
    ----------
    i : In(stream.Signature(array_input_layout(config)))
        Beats; ``last`` closes a tile. A tile may have at most ``config.max_reduction // cols`` beats, which
        keeps the accumulators exact. The payload is ignored while ``valid`` is low.
    o : Out(stream.Signature(array_output_layout(config)))
        One beat per tile: the exact sums of every row.

    Latency: a tile's sums are valid on ``o`` ``latency = ceil(log3(cols)) + 3`` cycles after the cycle in
    which its last beat is accepted (:func:`pipeline_latency`). Throughput: one beat per cycle, tiles back to
    back (a tile of one beat each cycle is fine); the next tile's beats keep flowing while the previous sums
    wait on ``o``, and the input stalls only when a tile ends while ``o`` still holds the sums of the tile
    before it.
    """

    def __init__(self, config: AcceleratorConfig, *, primitives: bool = False):
        require_instance("config", config, AcceleratorConfig)
        require_bool("primitives", primitives)
        self.config = config
        self.primitives = primitives
        self.latency = pipeline_latency(config)
        super().__init__({
            "i": In(stream.Signature(array_input_layout(config))),
            "o": Out(stream.Signature(array_output_layout(config))),
        })

    def elaborate(self, platform):
        config = self.config
        m = Module()
        advance = Signal()
        # Flags travel beside the data: stage 0 = input registers, 1 = products, then the tree levels.
        stages = _flag_stages(config)
        valid = [Signal(name=f"valid_{s}") for s in range(stages)]
        first = [Signal(name=f"first_{s}") for s in range(stages)]
        last = [Signal(name=f"last_{s}") for s in range(stages)]
        starts_tile = Signal(init=1)

        # Stage 0: registered broadcast of the beat.
        beat = Signal(array_input_layout(config))
        m.d.comb += self.i.ready.eq(advance)
        with m.If(advance):
            # Flags are gated by valid: an idle payload is don't-care and must not reach control.
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

        # The output register takes a tile's sums on its last beat; a full register stalls the pipeline.
        holding = self.o.valid & ~self.o.ready
        m.d.comb += advance.eq(~(valid[-1] & last[-1] & holding))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(advance & valid[-1] & last[-1]):
            m.d.sync += self.o.valid.eq(1)
        for index in range(config.rows):
            row = DotProductRow(config, primitives=self.primitives)
            m.submodules[f"row_{index}"] = row
            m.d.comb += [row.weights.eq(beat.weights[index]), row.enable.eq(advance),
                         row.accumulate.eq(valid[-1]), row.restart.eq(first[-1])]
            if config.pe_variant == "baseline":
                m.d.comb += row.activation_codes.eq(beat.activations)
            else:
                for col, lane in enumerate(lanes):
                    m.d.comb += row.lanes[col].eq(lane.lane)
            with m.If(advance & valid[-1] & last[-1]):
                m.d.sync += self.o.payload[index].eq(row.total)
        return m
