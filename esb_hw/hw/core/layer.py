"""The layer core: one conv2d or linear layer from on-chip buffers to requantized (and pooled) output codes.

:class:`~.sequencer.Sequencer` walks the layer and feeds :class:`~.stationary.StationaryArray`. Each output pixel's
``rows`` sums go, ``requant_lanes`` channels per cycle, through :class:`~.requant.Requantizer` lanes, each channel
with its ``(bias, M, S)`` from the parameter buffer. With pooling, a running maximum per channel over each four
consecutive pixels (one 2x2 window: the sequencer's pixel order) keeps one code in four. The ``rows`` codes of a
pixel (or window) form one output word, written at ``row_block * output_pixels + index``. The buffers are written
through their write ports (:class:`~.transfer.Loader` fills them) and the output buffer is read through its read
port (:class:`~.transfer.Storer` empties it).

Every buffer has two banks (double buffering): a layer runs from the activation bank that ``bank`` names at its
start, into the same bank of the output buffer, with the weights and parameters of bank ``weight_bank``, while the
loader fills the other banks and the storer empties the other output bank. (Tiles that share their weights share
a weight bank: :class:`~.engine.Engine`.)

The layer core needs a square array (``rows == cols``): an output word is then exactly one of the next layer's
activation words.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...config import AcceleratorConfig
from ...errors import ParameterError
from ...layouts import geometry_layout, requant_params_layout
from ..checks import require_instance
from .requant import Requantizer
from .sequencer import Sequencer
from .stationary import StationaryArray

__all__ = ["LayerCore"]


class LayerCore(wiring.Component):
    """A layer from the activation, weight and parameter buffers to the output buffer.

    Parameters
    ----------
    config : AcceleratorConfig
        A square array (``rows == cols``), PE variant ``esb`` or ``esb_naive``; its ``entries`` (running sums
        per array row), :attr:`~esb_hw.config.AcceleratorConfig.lanes` (requantization lanes: a pixel's
        ``rows`` sums take ``rows / lanes`` cycles, and one more to take the next pixel) and buffer depths per
        bank (``*_words``).
    primitives : bool
        Build the arithmetic from UltraScale(+) primitives (for synthesis).

    Attributes
    ----------
    geometry : In(geometry_layout())
        The layer (:func:`esb_hw.compiler.lowering.geometry`), steady from ``start`` to ``done``.
    bank : In(1)
        The activation and output bank the layer runs in, taken at ``start``.
    weight_bank : In(1)
        The weight and parameter bank, taken at ``start``.
    start : In(1)
        Begin a layer (a tile) when ``ready``; ``geometry`` is then held until the sequencer is done with it
        (``ready`` again), and the previous tile's requantization may still be draining.
    ready : Out(1)
        A start is taken: the sequencer is idle and at most one tile is still draining.
    busy : Out(1)
    done : Out(1)
        One cycle per tile, in order, when its last output word is written.
    activation_write, weight_write, param_write : In(buffer_write_layout(word, words))
        Write ports of the buffers (one word per cycle; the address's top bit is the bank).
    output_address : In(range(2 * output_words))
    output_data : Out(rows codes)
        The output buffer's word at ``output_address`` when ``output_enable`` was last high (one cycle of latency).
    output_enable : In(1)

    Throughput: one array beat per cycle while the requantization keeps up (``lanes`` channels per cycle:
    ``rows / lanes + 1`` cycles per output pixel), which it does when a layer has at least that many chunks.
    """

    def __init__(self, config: AcceleratorConfig, *, primitives: bool = False):
        require_instance("config", config, AcceleratorConfig)
        if config.rows != config.cols:
            raise ParameterError(f"the layer core needs a square array, got {config.rows}x{config.cols}")
        self.requant_lanes = config.lanes
        self.config = config
        self.entries = config.entries
        self.depths = {"activation": config.activation_words, "weight": config.weight_words,
                       "param": config.param_words, "output": config.output_words}
        self.primitives = primitives
        self.word_layouts = {
            "activation": data.ArrayLayout(config.activation_format.bits, config.cols),
            "weight": data.ArrayLayout(config.weight_format.bits, config.cols),
            "param": requant_params_layout(config),
            "output": data.ArrayLayout(config.activation_format.bits, config.rows),
        }

        def write_port(name):
            return In(data.StructLayout({"address": range(2 * self.depths[name]),
                                         "data": self.word_layouts[name], "enable": 1}))

        super().__init__({
            "geometry": In(geometry_layout()), "bank": In(1), "weight_bank": In(1), "start": In(1),
            "ready": Out(1), "busy": Out(1), "done": Out(1),
            "activation_write": write_port("activation"), "weight_write": write_port("weight"),
            "param_write": write_port("param"),
            "output_address": In(range(2 * self.depths["output"])), "output_enable": In(1),
            "output_data": Out(self.word_layouts["output"]),
        })

    def elaborate(self, platform):
        m = Module()
        memories = self._buffers(m)
        front = self._front(m, memories)
        queue = self._tile_queue(m, front)
        requants = [Requantizer(self.config, primitives=self.primitives) for _ in range(self.requant_lanes)]
        for index, lane in enumerate(requants):
            m.submodules[f"requant_{index}"] = lane
        self._spread(m, memories, front, queue, requants)
        self._pool_and_pack(m, memories, queue, requants)
        m.d.sync += queue.tiles.eq(queue.tiles + front.starting - self.done)
        return m

    def _buffers(self, m: Module) -> dict:
        """The four double-banked buffers; the loader writes three of them, the storer reads the output buffer."""
        memories = {}
        for name in self.depths:
            memory = Memory(shape=self.word_layouts[name], depth=2 * self.depths[name], init=[])
            m.submodules[f"{name}_buffer"] = memories[name] = memory
        for name in ("activation", "weight", "param"):
            port, write = memories[name].write_port(), getattr(self, f"{name}_write")
            m.d.comb += [port.addr.eq(write.address), port.data.eq(write.data), port.en.eq(write.enable)]
        output_read = memories["output"].read_port()
        m.d.comb += [output_read.addr.eq(self.output_address), output_read.en.eq(self.output_enable),
                     self.output_data.eq(output_read.data)]
        return memories

    def _front(self, m: Module, memories: dict) -> SimpleNamespace:
        """The sequencer walks the tile and feeds the array from the banks taken at the start."""
        config = self.config
        starting = Signal()
        m.d.comb += starting.eq(self.start & self.ready)
        bank, weight_bank = Signal(), Signal()  # the banks the sequencer reads, taken at the start
        with m.If(starting):
            m.d.sync += [bank.eq(self.bank), weight_bank.eq(self.weight_bank)]
        m.submodules.sequencer = sequencer = Sequencer(config, entries=self.entries,
                                                       activation_words=self.depths["activation"],
                                                       weight_words=self.depths["weight"])
        m.submodules.array = array = StationaryArray(config, entries=self.entries, primitives=self.primitives)
        m.d.comb += [sequencer.geometry.eq(self.geometry), sequencer.start.eq(starting)]
        for name in ("activation", "weight"):
            port = memories[name].read_port()
            m.d.comb += [port.addr.eq(Cat(getattr(sequencer, f"{name}_address"),
                                          bank if name == "activation" else weight_bank)),
                         port.en.eq(getattr(sequencer, f"{name}_enable")),
                         getattr(sequencer, f"{name}_data").eq(port.data)]
        wiring.connect(m, sequencer.beats, array.i)
        wiring.connect(m, sequencer.loads, array.load)
        return SimpleNamespace(starting=starting, sequencer=sequencer, array=array)

    def _tile_queue(self, m: Module, front: SimpleNamespace) -> SimpleNamespace:
        """Up to two tiles are in the core: one whose beats the sequencer still sends, and one whose sums the
        requantization still drains. Each tile's parameters wait in a queue of two, taken at its start; the
        spreading stage and the output stage each read the entry of the tile they are on."""
        geometry = self.geometry
        tile = data.StructLayout({"last_pixel": len(geometry.output_pixels) + 2,
                                  "last_output": len(geometry.output_pixels),
                                  "output_pixels": len(geometry.output_pixels),
                                  "last_row_block": len(geometry.row_blocks), "pool": 1, "bank": 1,
                                  "weight_bank": 1})
        entries = [Signal(tile, name=f"tile_{index}") for index in range(2)]
        queue = SimpleNamespace(tiles=Signal(range(3)), spread_slot=Signal(), output_slot=Signal(),
                                spread_tile=Signal(tile), output_tile=Signal(tile))
        written_slot = Signal()
        m.d.comb += [queue.spread_tile.eq(Mux(queue.spread_slot, entries[1], entries[0])),
                     queue.output_tile.eq(Mux(queue.output_slot, entries[1], entries[0])),
                     self.ready.eq(~front.sequencer.busy & (queue.tiles != 2)),
                     self.busy.eq(front.sequencer.busy | (queue.tiles != 0))]
        entry = Signal(tile)  # the last indices, computed here: no subtraction in front of a comparison
        m.d.comb += [entry.last_pixel.eq(Mux(geometry.pool, geometry.output_pixels << 2, geometry.output_pixels) - 1),
                     entry.last_output.eq(geometry.output_pixels - 1), entry.output_pixels.eq(geometry.output_pixels),
                     entry.last_row_block.eq(geometry.row_blocks - 1), entry.pool.eq(geometry.pool),
                     entry.bank.eq(self.bank), entry.weight_bank.eq(self.weight_bank)]
        with m.If(front.starting):
            m.d.sync += written_slot.eq(~written_slot)
            with m.If(written_slot):
                m.d.sync += entries[1].eq(entry)
            with m.Else():
                m.d.sync += entries[0].eq(entry)
        return queue

    def _spread(self, m: Module, memories: dict, front: SimpleNamespace, queue: SimpleNamespace,
                requants: list) -> None:
        """Each pixel's sums to the requantization lanes, ``lanes`` channels per cycle, each with its channel's
        parameters read from the parameter buffer."""
        rows, lanes, array, geometry = self.config.rows, self.requant_lanes, front.array, self.geometry
        spread_tile = queue.spread_tile
        sums = Signal(array.o.payload.shape())
        spreading, channel = Signal(), Signal(range(rows))
        param_base = Signal(range(self.depths["param"]))
        pixel = Signal(len(geometry.output_pixels) + 2)
        spread_row_block = Signal(len(geometry.row_blocks))
        staged_valid = Signal()
        staged_sums = [Signal.like(lane.i.payload.accumulator, name=f"staged_sum_{index}")
                       for index, lane in enumerate(requants)]
        param_reads = [memories["param"].read_port() for _ in range(lanes)]
        take_pixel, issue, lanes_ready = Signal(), Signal(), Signal()
        m.d.comb += [array.o.ready.eq(~spreading), take_pixel.eq(array.o.valid & ~spreading),
                     lanes_ready.eq(Cat(*(lane.i.ready for lane in requants)).all()),
                     issue.eq(spreading & (~staged_valid | lanes_ready))]
        for index, (lane, read) in enumerate(zip(requants, param_reads, strict=True)):
            m.d.comb += [read.addr.eq(Cat((param_base + channel + index)[: len(param_base)],
                                          spread_tile.weight_bank)),
                         read.en.eq(issue),
                         lane.i.valid.eq(staged_valid), lane.i.payload.accumulator.eq(staged_sums[index]),
                         lane.i.payload.params.eq(read.data)]
        with m.If(take_pixel):
            m.d.sync += [sums.eq(array.o.payload), spreading.eq(1), channel.eq(0)]
        with m.If(lanes_ready):
            m.d.sync += staged_valid.eq(0)
        with m.If(issue):
            m.d.sync += [staged_valid.eq(1), channel.eq(channel + lanes)]
            m.d.sync += [staged.eq(sums[channel + index]) for index, staged in enumerate(staged_sums)]
            with m.If(channel == rows - lanes):
                m.d.sync += spreading.eq(0)
                with m.If(pixel == spread_tile.last_pixel):
                    m.d.sync += [pixel.eq(0), param_base.eq(param_base + rows)]
                    with m.If(spread_row_block == spread_tile.last_row_block):  # the tile's last pixel
                        m.d.sync += [spread_row_block.eq(0), param_base.eq(0),
                                     queue.spread_slot.eq(~queue.spread_slot)]
                    with m.Else():
                        m.d.sync += spread_row_block.eq(spread_row_block + 1)
                with m.Else():
                    m.d.sync += pixel.eq(pixel + 1)

    def _pool_and_pack(self, m: Module, memories: dict, queue: SimpleNamespace, requants: list) -> None:
        """Codes to output words: the pooling's running maximum, then ``rows`` codes per word, written at
        ``row_block * output_pixels + index``; ``done`` with a tile's last word. The lanes run in lockstep (same
        inputs in the same cycles, same latency), so their codes arrive together."""
        config, rows, lanes, geometry = self.config, self.config.rows, self.requant_lanes, self.geometry
        output_tile = queue.output_tile
        out_channel = Signal(range(rows))
        last_channels = Signal(init=int(rows == lanes))  # out_channel == rows - lanes, as a register
        window = Signal(2)  # the pixel's place in its pooling window
        maxima = Signal(data.ArrayLayout(config.activation_format.bits, rows))
        word = Signal(self.word_layouts["output"])
        output_base = Signal(range(self.depths["output"]))
        output_index = Signal(len(geometry.output_pixels))
        written = Signal()
        output_write = memories["output"].write_port()
        codes_valid = requants[0].o.valid
        m.d.comb += [lane.o.ready.eq(1) for lane in requants]
        pooled = [Signal.like(lane.o.payload, name=f"pooled_{index}") for index, lane in enumerate(requants)]
        for index, lane in enumerate(requants):
            previous = maxima[out_channel + index]
            m.d.comb += pooled[index].eq(Mux((window == 0) | (previous < lane.o.payload), lane.o.payload, previous))
        completes = Signal()
        m.d.comb += completes.eq(~output_tile.pool | (window == 3))
        complete_word = Signal.like(word)
        m.d.comb += complete_word.eq(word)
        m.d.comb += [complete_word[out_channel + index].eq(code) for index, code in enumerate(pooled)]
        m.d.comb += [output_write.addr.eq(Cat((output_base + output_index)[: len(output_base)], output_tile.bank)),
                     output_write.data.eq(complete_word),
                     output_write.en.eq(codes_valid & completes & last_channels)]
        m.d.comb += written.eq(output_write.en)
        out_row_block = Signal(len(geometry.row_blocks))
        last_word = Signal()
        m.d.comb += [last_word.eq(written & (output_index == output_tile.last_output)),
                     self.done.eq(last_word & (out_row_block == output_tile.last_row_block))]
        with m.If(codes_valid):
            m.d.sync += [maxima[out_channel + index].eq(code) for index, code in enumerate(pooled)]
            m.d.sync += [word[out_channel + index].eq(code) for index, code in enumerate(pooled)]
            m.d.sync += [out_channel.eq(out_channel + lanes),
                         last_channels.eq(out_channel == rows - 2 * lanes if rows >= 2 * lanes else 1)]
            with m.If(last_channels):
                m.d.sync += [out_channel.eq(0), last_channels.eq(rows == lanes)]
                with m.If(output_tile.pool):
                    m.d.sync += window.eq(window + 1)
                with m.If(completes):
                    with m.If(output_index == output_tile.last_output):
                        m.d.sync += [output_index.eq(0), output_base.eq(output_base + output_tile.output_pixels)]
                    with m.Else():
                        m.d.sync += output_index.eq(output_index + 1)
        # The tile is done when the last word of its last row block is written.
        with m.If(last_word):
            m.d.sync += out_row_block.eq(out_row_block + 1)
        with m.If(self.done):
            m.d.sync += [out_row_block.eq(0), output_base.eq(0), queue.output_slot.eq(~queue.output_slot),
                         window.eq(0)]
