"""The PE array: a GEMM tile engine of ``rows`` dot-product rows, ``cols`` products each (docs/architecture.md).

Every beat carries one activation vector ``x`` (``cols`` codes) and one weight tile ``W`` (``rows x cols``
codes), laid out as :func:`esb_hw.layouts.array_input_layout`. Row ``r`` adds ``sum_c W[r][c] * x[c]`` to its
accumulator through a registered adder tree; the beat flagged ``last`` closes the tile and its ``rows`` sums
leave on the output stream. A GEMM ``Y (R x N) = W (R x K) X (K x N)`` is one tile per output column ``n``,
of ``ceil(K / cols)`` beats (:mod:`esb_hw.compiler.gemm`).

Activations are decoded once per column (:class:`~esb_hw.hw.arith.product.ActivationLane`) and broadcast to
every row from registers; with the ``esb`` variant the lane also computes the odd multiples (``3a``, ...)
that the rows select from, so that adder is paid once per column instead of once per PE.

The data path runs free: no data register has a clock enable or a reset, and ``valid``/``first``/``last``
flags travel beside the data. A tile's sums go into a block-RAM :class:`~.output_buffer.OutputBuffer`, and the
input takes a tile's last beat only while the buffer has a free entry for it (a credit), so back-pressure on
``o`` never has to stop the pipeline: ``o.ready`` reaches only the buffer's read side, and ``i.ready`` comes
from a register.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ...config import AcceleratorConfig
from ...contract.latency import OUTPUT_DEPTH, TREE_ARITY, array_latency, require_latency, row_terms, tree_levels
from ...layouts import array_input_layout, array_output_layout, weight_encoding
from ..arith.product import ActivationLane, lane_structure
from ..checks import require_bool, require_instance
from .output_buffer import OutputBuffer, output_buffer_structure
from .row import DotProductRow, row_structure

__all__ = ["OUTPUT_DEPTH", "PEArray", "array_structure", "pipeline_latency"]

#: The array's latency (:func:`esb_hw.contract.latency.array_latency`) under the name the hardware uses.
pipeline_latency = array_latency


def _flag_stages(config: AcceleratorConfig) -> int:
    """Pipeline stages that carry ``valid``/``first``/``last``: the input register, the products, the tree."""
    return 2 + tree_levels(row_terms(config), TREE_ARITY)


def array_structure(config: AcceleratorConfig) -> dict[str, dict]:
    """What :class:`PEArray` of ``config`` builds, per part: ``register_bits`` of each, and the structural
    counts the resource model prices (:mod:`esb_hw.estimate.model`).

    ``lanes``: the registered activation codes, and one lane's
    :func:`~esb_hw.hw.arith.product.lane_structure` per column. ``products``, ``trees``, ``accumulators``:
    :func:`~esb_hw.hw.core.row.row_structure` times ``rows``, plus the registered weight codes under
    ``products``. ``control``: ``valid``/``first``/``last`` of each flag stage, ``starts_tile``, the credit
    counter and the output buffer's pointers (``beat.last`` is never read; ``last`` of stage 0 carries it).
    ``output``: the output buffer's block RAMs.
    """
    rows, cols = config.rows, config.cols
    row = row_structure(config)
    buffer = output_buffer_structure(array_output_layout(config).size, OUTPUT_DEPTH)
    return {
        "lanes": {"count": cols, "register_bits": cols * config.activation_format.bits,
                  "features": lane_structure(config.activation_format, config.weight_format, config.pe_variant,
                                             weight_encoding(config) == "twos")},
        "products": {"count": rows * cols, "features": row["products"]["features"],
                     "register_bits": rows * (cols * config.weight_format.bits + row["products"]["register_bits"])},
        "trees": {"count": rows, "adder_bits": row["tree"]["adder_bits"],
                  "shift_registers": row["tree"]["shift_registers"],
                  "register_bits": rows * row["tree"]["register_bits"]},
        "accumulators": {"count": rows, "adder_bits": row["accumulator"]["adder_bits"],
                         "register_bits": rows * row["accumulator"]["register_bits"]},
        "control": {"register_bits": 3 * _flag_stages(config) + 1 + OUTPUT_DEPTH.bit_length()
                    + buffer["register_bits"]},
        "output": {"register_bits": 0, "bram36": buffer["bram36"]},
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
        keeps the accumulators exact. The payload is ignored while ``valid`` is low. ``i.ready`` is a
        register's output: low while :data:`OUTPUT_DEPTH` tiles are accepted but not yet taken from ``o``.
    o : Out(stream.Signature(array_output_layout(config)))
        One beat per tile: the exact sums of every row.

    Latency: a tile's sums are valid on ``o`` ``latency = tree_levels(row_terms(config), 3) + 4`` cycles after
    the cycle in which its last beat is accepted (:func:`pipeline_latency`). Throughput: one beat per cycle,
    tiles back to back (a tile of one beat each cycle is fine) while fewer than :data:`OUTPUT_DEPTH` tiles wait
    for ``o``.
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
        # Flags travel beside the data: stage 0 = input registers, 1 = products, then the tree levels.
        stages = _flag_stages(config)
        valid = [Signal(name=f"valid_{s}") for s in range(stages)]
        first = [Signal(name=f"first_{s}") for s in range(stages)]
        last = [Signal(name=f"last_{s}") for s in range(stages)]
        starts_tile = Signal(init=1)

        # Credits: tiles whose last beat was accepted and whose sums have not left on o yet.
        m.submodules.output = output = OutputBuffer(array_output_layout(config), depth=OUTPUT_DEPTH)
        wiring.connect(m, wiring.flipped(self.o), output.o)
        outstanding = Signal(range(OUTPUT_DEPTH + 1))
        accepted = Signal()
        closes_tile = Signal()
        m.d.comb += [self.i.ready.eq(outstanding != OUTPUT_DEPTH), accepted.eq(self.i.valid & self.i.ready),
                     closes_tile.eq(accepted & self.i.payload.last)]
        m.d.sync += outstanding.eq(outstanding + closes_tile - (self.o.valid & self.o.ready))

        # Stage 0: registered broadcast of the beat; flags are gated by valid, so an idle payload never
        # reaches control.
        beat = Signal(array_input_layout(config), reset_less=True)
        m.d.sync += [beat.eq(self.i.payload), valid[0].eq(accepted), first[0].eq(starts_tile & accepted),
                     last[0].eq(closes_tile)]
        with m.If(accepted):
            m.d.sync += starts_tile.eq(self.i.payload.last)
        for stage in range(1, stages):
            m.d.sync += [valid[stage].eq(valid[stage - 1]), first[stage].eq(first[stage - 1]),
                         last[stage].eq(last[stage - 1])]

        lanes = []
        if config.pe_variant != "baseline":
            for col in range(config.cols):
                lane = ActivationLane(activation=config.activation_format, weight=config.weight_format,
                                      shared=config.pe_variant == "esb", recoded=weight_encoding(config) == "twos")
                m.submodules[f"lane_{col}"] = lane
                m.d.comb += lane.code.eq(beat.activations[col])
                lanes.append(lane)

        # The accumulators' totals of a tile's last beat go straight into the output buffer.
        m.d.comb += output.w_en.eq(valid[-1] & last[-1])
        for index in range(config.rows):
            row = DotProductRow(config, primitives=self.primitives)
            require_latency("PEArray (the input register, a row, the output buffer)",
                            1 + row.latency + OutputBuffer.LATENCY, self.latency)
            m.submodules[f"row_{index}"] = row
            m.d.comb += [row.weights.eq(beat.weights[index]), row.accumulate.eq(valid[-1]),
                         row.restart.eq(first[-1]), output.w_data[index].eq(row.total)]
            if config.pe_variant == "baseline":
                m.d.comb += row.activation_codes.eq(beat.activations)
            else:
                for col, lane in enumerate(lanes):
                    m.d.comb += row.lanes[col].eq(lane.lane)
        return m
