"""The weight-stationary PE array: the layer engine's core (docs/architecture.md, "The layer engine").

The array keeps one weight chunk (``rows x cols`` weights) in registers and streams activation vectors through
it; each row accumulates a block of up to ``entries`` outputs in distributed RAM
(:class:`~esb_hw.hw.arith.accumulator.Accumulator` with ``entries``). The next chunk loads into a shadow bank, one
row of ``cols`` weights per cycle, while the current chunk computes; a beat flagged ``swap`` makes the shadow bank
current. Weights are thus read once per block of outputs instead of once per beat.

As in :class:`~esb_hw.hw.core.array.PEArray`, the data path runs free with ``valid``/``first``/``last`` and the
entry index beside it, sums wait in a block-RAM FIFO, and the input is gated by credits, so back-pressure on ``o``
never stops the pipeline.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...config import AcceleratorConfig
from ...errors import ParameterError
from ...layouts import array_output_layout, stationary_input_layout, weight_encoding, weight_row_layout
from ..arith.product import ActivationLane
from ..checks import require_bool, require_instance, require_int
from .array import OUTPUT_DEPTH, pipeline_latency
from .output_buffer import OutputBuffer
from .row import DotProductRow

__all__ = ["StationaryArray"]


class StationaryArray(wiring.Component):
    """``rows x cols`` MACs with stationary weights: ``sums[entry][r] += sum_c W[r][c] x[c]`` per beat.

    Parameters
    ----------
    config : AcceleratorConfig
        Formats, array shape, accumulator width and PE variant (``esb`` or ``esb_naive``).
    entries : int
        Running sums per row, ``2..64`` (a block of outputs that share each weight chunk; 32 fills one
        RAM32M16 per 14 accumulator bits).
    primitives : bool
        Build the rows from UltraScale(+) primitives (:class:`~esb_hw.hw.core.row.DotProductRow`), for synthesis.

    Attributes
    ----------
    load : In(stream.Signature(weight_row_layout(config)))
        Writes the shadow bank's row ``row``; always ready. A load in the same cycle as a ``swap`` beat lands in
        the new shadow bank (the swap takes the bank as it was before that cycle).
    i : In(stream.Signature(stationary_input_layout(config, entries)))
        Beats: ``activations``, ``entry``, ``swap``, ``first``, ``last``. The payload is ignored while ``valid`` is
        low. ``i.ready`` is a register's output: low while :data:`~.array.OUTPUT_DEPTH` ``last`` beats are
        accepted but their sums not yet taken from ``o``. Every entry's first beat after reset must have
        ``first``. Beats on the same entry may follow each other directly (the accumulator reads, adds and
        writes an entry in one cycle).
    o : Out(stream.Signature(array_output_layout(config)))
        One beat per ``last`` beat: the rows' exact sums of its entry.

    Latency: the sums of a ``last`` beat are valid on ``o`` ``latency`` cycles after it is accepted (the same
    pipeline as :func:`~.array.pipeline_latency`). Throughput: one beat per cycle.
    """

    def __init__(self, config: AcceleratorConfig, *, entries: int = 32, primitives: bool = False):
        require_instance("config", config, AcceleratorConfig)
        require_int("entries", entries, 2, 64)
        require_bool("primitives", primitives)
        if config.pe_variant == "baseline":
            raise ParameterError("a StationaryArray needs pe_variant 'esb' or 'esb_naive', got 'baseline'")
        self.config = config
        self.entries = entries
        self.primitives = primitives
        self.latency = pipeline_latency(config)
        super().__init__({
            "load": In(stream.Signature(weight_row_layout(config))),
            "i": In(stream.Signature(stationary_input_layout(config, entries))),
            "o": Out(stream.Signature(array_output_layout(config))),
        })

    def elaborate(self, platform):
        config = self.config
        m = Module()
        stages = self.latency - 2  # the flag stages: input register, products, tree levels
        valid = [Signal(name=f"valid_{s}") for s in range(stages)]
        first = [Signal(name=f"first_{s}") for s in range(stages)]
        last = [Signal(name=f"last_{s}") for s in range(stages)]
        entry = [Signal(range(self.entries), name=f"entry_{s}", reset_less=True) for s in range(stages)]

        m.submodules.output = output = OutputBuffer(array_output_layout(config), depth=OUTPUT_DEPTH)
        wiring.connect(m, wiring.flipped(self.o), output.o)
        # ``full`` is outstanding == OUTPUT_DEPTH as a register, so that ``i.ready`` comes from a flip-flop.
        outstanding, full = Signal(range(OUTPUT_DEPTH + 1)), Signal()
        accepted, added, removed = Signal(), Signal(), Signal()
        m.d.comb += [self.i.ready.eq(~full), accepted.eq(self.i.valid & self.i.ready), self.load.ready.eq(1),
                     added.eq(accepted & self.i.payload.last), removed.eq(self.o.valid & self.o.ready)]
        m.d.sync += outstanding.eq(outstanding + added - removed)
        with m.If(added & ~removed):
            m.d.sync += full.eq(outstanding == OUTPUT_DEPTH - 1)
        with m.Elif(removed & ~added):
            m.d.sync += full.eq(0)

        # Weights: the shadow bank takes loads; a swap beat copies it into the bank the products read.
        row_shape = data.ArrayLayout(config.weight_format.bits, config.cols)
        shadow = [Signal(row_shape, name=f"shadow_{r}", reset_less=True) for r in range(config.rows)]
        current = [Signal(row_shape, name=f"weights_{r}", reset_less=True) for r in range(config.rows)]
        with m.If(self.load.valid):
            for r in range(config.rows):
                with m.If(self.load.payload.row == r):
                    m.d.sync += shadow[r].eq(self.load.payload.weights)
        with m.If(accepted & self.i.payload.swap):
            m.d.sync += [current[r].eq(shadow[r]) for r in range(config.rows)]

        # Stage 0: the registered activations and flags (flags gated by valid).
        activations = Signal(data.ArrayLayout(config.activation_format.bits, config.cols), reset_less=True)
        m.d.sync += [activations.eq(self.i.payload.activations), valid[0].eq(accepted),
                     first[0].eq(accepted & self.i.payload.first), last[0].eq(accepted & self.i.payload.last),
                     entry[0].eq(self.i.payload.entry)]
        for stage in range(1, stages):
            m.d.sync += [valid[stage].eq(valid[stage - 1]), first[stage].eq(first[stage - 1]),
                         last[stage].eq(last[stage - 1]), entry[stage].eq(entry[stage - 1])]

        lanes = []
        for col in range(config.cols):
            lane = ActivationLane(activation=config.activation_format, weight=config.weight_format,
                                  shared=config.pe_variant == "esb", recoded=weight_encoding(config) == "twos")
            m.submodules[f"lane_{col}"] = lane
            m.d.comb += lane.code.eq(activations[col])
            lanes.append(lane)

        m.d.comb += output.w_en.eq(valid[-1] & last[-1])
        for index in range(config.rows):
            row = DotProductRow(config, primitives=self.primitives, entries=self.entries)
            m.submodules[f"row_{index}"] = row
            m.d.comb += [row.weights.eq(current[index]), row.accumulate.eq(valid[-1]), row.restart.eq(first[-1]),
                         row.entry.eq(entry[-1]), output.w_data[index].eq(row.total)]
            for col, lane in enumerate(lanes):
                m.d.comb += row.lanes[col].eq(lane.lane)
        return m
