"""The layer engine: a program of layer descriptors from memory, run through the layer core with double-buffered
loads and stores (docs/architecture.md, "The layer engine"; docs/memory.md).

Three units run at once, each on its own tile:

- the **loader** fetches descriptor ``i`` (8 beats), checks it (:class:`~.checker.DescriptorChecker`) and, once
  bank ``i % 2`` is free, loads the tile's parameters, weights and activations into it (:class:`~.transfer.Loader`);
- the **compute** unit runs each loaded tile through :class:`~.layer.LayerCore`, into the same bank of the output
  buffer once the storer has emptied it; a tile starts as soon as the previous one has sent its last beat, while
  the previous one's sums still drain through the requantization;
- the **storer** writes each computed tile's outputs to memory (:class:`~.transfer.Storer`).

The loader fetches descriptor ``i + 1`` only once tile ``i`` has started computing (the descriptor register
then is free), which costs nothing: bank ``(i + 1) % 2`` is free from that moment. Weights and parameters have
banks of their own: a ``reuse_weights`` tile (the next band of the same row blocks) loads only its activations and
computes from its predecessor's weight bank; a tile with new weights fills the other weight bank once no tile in
flight uses it. A ``barrier`` descriptor waits
until every earlier tile is stored. A descriptor that fails its check, or a memory error, ends the run: the tiles
already loaded finish and are stored, nothing else is loaded or written, and ``error`` names the cause
(:data:`esb_hw.layouts.ENGINE_ERRORS`) with the failing descriptor's index in ``failed_descriptor``.

The engine stays inside its memory window, byte offsets ``[0, memory_size)``: a run whose descriptors do not lie
inside it is refused before the first fetch, and the checker refuses a transfer that leaves the window (error
``outside_window``, with ``error_detail`` naming it). The AXI master's bus guard refuses any request that leaves it
all the same (``read_refused``/``write_refused``; docs/system.md, "The memory window"). Each descriptor's CRC-32 is
checked as its beats arrive, and each load's parameters and weights against the descriptor's ``weights_crc``
(error ``corrupted``, detail 0 or 1): a changed bit is an error, not a wrong answer.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...config import AcceleratorConfig
from ...contract.checks import ENGINE_REACH
from ...layouts import (
    DESCRIPTOR_BEATS,
    DESCRIPTOR_BYTES,
    MEMORY_BEAT_BITS,
    MEMORY_LENGTH_BITS,
    buffer_word_bits,
    descriptor_layout,
    memory_read_layout,
    memory_request_layout,
    memory_word_bytes,
    memory_write_layout,
    transfer_layout,
)
from ..checks import require_instance
from .checker import ERROR_CODES, MEMORY_SIZE_BITS, DescriptorChecker
from .crc import Crc32
from .layer import LayerCore
from .transfer import Loader, Storer, run_beats

__all__ = ["COUNTER_BITS", "Engine", "MAX_LAYERS", "RunCounters"]

#: Width of the cycle and beat counters.
COUNTER_BITS = 32
#: Per-layer counters (a descriptor's ``layer`` field has 8 bits).
MAX_LAYERS = 256


class Engine(wiring.Component):
    """Runs a program of descriptors from memory.

    Parameters
    ----------
    config : AcceleratorConfig
        A square array; the layer core's and buffers' sizes come from its ``[engine]`` fields.
    primitives : bool
        Build the arithmetic from UltraScale(+) primitives (for synthesis).

    Attributes
    ----------
    start : In(1)
        Run the program (ignored while ``busy``).
    abort : In(1)
        End the run early (ignored while idle): every memory transfer already requested ends (reads are received,
        writes get all their beats and responses), nothing more is fetched, loaded or stored, the tiles in the
        layer core finish into the output buffer unseen, and the run ends with error ``aborted`` at the descriptor
        being fetched or loaded. ``tiles_done`` counts the tiles stored whole before it.
    program_address : In(32)
        Byte address of descriptor 0 (a multiple of 16); descriptors follow every 128 bytes.
    program_length : In(16)
        Descriptors to run, taken at the start; 0 finishes at once (after the window check).
    memory_size : In(40)
        The memory window's size in bytes (a multiple of 16; hold it during a run): the engine reads and writes only
        byte offsets ``[0, memory_size)`` (at most 4 GiB). A run with 0, or whose ``program_length`` descriptors
        from ``program_address`` do not fit, is refused at once (``outside_window``, detail 0).
    read_refused, write_refused : In(1)
        One cycle each time the bus guard refuses a read or write request (it leaves the window): the run ends with
        ``outside_window``, detail 5 or 6. The guard answers the request with error beats or an error response.
    busy : Out(1)
    done : Out(1)
        One cycle at the end of a run, with ``error`` valid.
    error : Out(4)
        0, or the first problem's code (:data:`esb_hw.layouts.ENGINE_ERRORS`); held until the next start.
    error_detail : Out(3)
        With ``outside_window``, the transfer that left the window (:data:`esb_hw.regmap.WINDOW_DETAILS`); with
        ``corrupted``, the descriptor (0) or its weights and parameters (1, :data:`esb_hw.regmap.CORRUPTED_DETAILS`).
    failed_descriptor : Out(16)
        The descriptor whose check, load or store failed (the first error's).
    tiles_done : Out(16)
        Descriptors whose outputs are in memory (progress).
    cycles : Out(32)
        Cycles from ``start`` to ``done`` of the current or last run.
    beats_read, beats_written : Out(32)
        Memory beats moved in the current or last run.
    layer_select : In(8), layer_cycles : Out(32)
        The compute cycles of layer ``layer_select`` (the descriptors' ``layer`` field) in the last run, one cycle
        after ``layer_select`` is set.
    read_request, read_data, write_request, write_data, write_response : streams
        The memory interface (docs/memory.md): :func:`~esb_hw.layouts.memory_request_layout` requests,
        :func:`~esb_hw.layouts.memory_read_layout` and :func:`~esb_hw.layouts.memory_write_layout` beats, and a
        one-bit ``error`` response per write request.

    Throughput: the layer core's, when loads and stores fit in a tile's computation (double buffering).
    """

    def __init__(self, config: AcceleratorConfig, *, primitives: bool = False):
        require_instance("config", config, AcceleratorConfig)
        self.config = config
        self.primitives = primitives
        self.core = LayerCore(config, primitives=primitives)  # validates the config for the core
        bits = buffer_word_bits(config)
        self.checker = DescriptorChecker(config)
        self.loader = Loader([bits["param"], bits["weight"], bits["activation"]],
                             [config.param_words, config.weight_words, config.activation_words])
        self.storer = Storer(bits["output"], config.output_words)
        super().__init__({
            "start": In(1), "abort": In(1), "program_address": In(32), "program_length": In(16),
            "memory_size": In(MEMORY_SIZE_BITS), "read_refused": In(1), "write_refused": In(1),
            "busy": Out(1), "done": Out(1), "error": Out(4), "error_detail": Out(3), "failed_descriptor": Out(16),
            "tiles_done": Out(16),
            "cycles": Out(32), "beats_read": Out(32), "beats_written": Out(32),
            "layer_select": In(8), "layer_cycles": Out(32),
            "read_request": Out(stream.Signature(memory_request_layout())),
            "read_data": In(stream.Signature(memory_read_layout())),
            "write_request": Out(stream.Signature(memory_request_layout())),
            "write_data": Out(stream.Signature(memory_write_layout())),
            "write_response": In(stream.Signature(data.StructLayout({"error": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        m.submodules.checker = self.checker
        m.submodules.loader = self.loader
        m.submodules.storer = self.storer
        m.submodules.counters = counters = RunCounters()
        state = _Shared()
        m.d.comb += state.starting.eq(self.start & ~self.busy)
        self._buffers(m)
        self._scoreboard(m, state)
        self._fetch_and_load(m, state)
        self._compute(m, state)
        self._store(m, state)
        self._refusals(m, state)  # last: a refusal wins over another error of the same cycle
        # The counters watch the memory streams and the layer core.
        m.d.comb += [counters.start.eq(state.starting), counters.busy.eq(self.busy),
                     counters.read_beat.eq(self.read_data.valid & self.read_data.ready),
                     counters.write_beat.eq(self.write_data.valid & self.write_data.ready),
                     counters.layer.eq(state.core_layers[0]), counters.computing.eq(state.in_core != 0),
                     counters.finished.eq(self.core.done), counters.layer_select.eq(self.layer_select),
                     self.cycles.eq(counters.cycles), self.beats_read.eq(counters.beats_read),
                     self.beats_written.eq(counters.beats_written), self.layer_cycles.eq(counters.layer_cycles)]
        return m

    def _buffers(self, m: Module) -> None:
        """The loader writes the layer core's input buffers; the storer reads its output buffer."""
        core, loader, storer = self.core, self.loader, self.storer
        for index, name in enumerate(("param", "weight", "activation")):
            write, port = getattr(loader, f"write_{index}"), getattr(core, f"{name}_write")
            m.d.comb += [port.address.eq(write.address), port.data.as_value().eq(write.data),
                         port.enable.eq(write.enable)]
        m.d.comb += [core.output_address.eq(storer.read_address), core.output_enable.eq(storer.read_enable),
                     storer.read_data.eq(core.output_data.as_value())]

    def _fail(self, m: Module, code, descriptor, detail=0) -> None:
        """Record the first error, the descriptor it concerns and its detail; later ones are dropped."""
        with m.If(self.error == 0):
            m.d.sync += [self.error.eq(code), self.failed_descriptor.eq(descriptor), self.error_detail.eq(detail)]

    def _scoreboard(self, m: Module, state: _Shared) -> None:
        """The banks: an activation bank ``loaded`` and not yet computed, an output bank ``computed`` and not yet
        stored. Weights and parameters have banks of their own: a tile that reuses its predecessor's weights
        computes from the same weight bank; a tile that loads weights fills the other one, once no tile in flight
        (loaded and not yet computed) uses it."""
        m.d.comb += state.target_weight_bank.eq(Mux(state.fetched.reuse_weights, state.weight_bank,
                                                    ~state.weight_bank))
        m.d.comb += state.weight_bank_busy.eq(Cat(*(
            state.loaded[bank] & (state.tile_weight_bank[bank] == ~state.weight_bank) for bank in range(2))).any())
        m.d.comb += state.idle_pipeline.eq(~state.handoff & (state.in_core == 0) & ~state.compute_starting
                                           & (state.loaded == 0) & (state.computed == 0) & ~state.storing)
        # After an abort, only what still runs counts: the layer core's tiles and a store in flight.
        m.d.comb += state.aborted_pipeline.eq((state.in_core == 0) & ~state.compute_starting & ~state.storing)

    def _fetch_and_load(self, m: Module, state: _Shared) -> None:
        """Descriptor fetch, check and load: the control state machine. Descriptor ``i`` is fetched once tile
        ``i - 1`` has been handed to the compute unit, checked, and loaded once its banks are free (and, for a
        barrier, once every earlier tile is stored). An error or an abort ends the run once what is in flight
        has drained."""
        checker, loader = self.checker, self.loader
        fetched, aborting = state.fetched, state.aborting
        m.submodules.crc = crc = Crc32(MEMORY_BEAT_BITS, input_register=True)
        m.d.comb += [checker.descriptor.eq(fetched), checker.memory_size.eq(self.memory_size),
                     loader.transfers[0].eq(fetched.params), loader.transfers[1].eq(fetched.weights),
                     loader.transfers[2].eq(fetched.activations),
                     loader.first_kind.eq(Mux(fetched.reuse_weights, 2, 0))]
        error = self.error
        index, length = state.index, Signal(16)  # the length is taken at the start
        last_index = Signal(16)  # and its last descriptor's index: no subtraction before the compare
        address = Signal(32)
        requested = Signal()  # the descriptor's read request is offered: it stays offered until taken
        load_bank = Signal()
        received = Signal(range(DESCRIPTOR_BEATS + 1))
        read_failed = Signal()
        program_end = Signal(33)  # one past the program's last byte
        descriptor_shift = DESCRIPTOR_BYTES.bit_length() - 1
        limit = Signal(range(ENGINE_REACH + 1))
        m.d.comb += limit.eq(Mux(self.memory_size >= ENGINE_REACH, ENGINE_REACH, self.memory_size))
        with m.If(self.abort & self.busy & ~aborting & ~self.done):  # a run ending now is not aborted
            m.d.sync += aborting.eq(1)
            self._fail(m, ERROR_CODES["aborted"], index)
        with m.FSM(name="control") as control:
            with m.State("idle"):
                with m.If(self.start):
                    m.d.sync += [error.eq(0), self.error_detail.eq(0), index.eq(0),
                                 address.eq(self.program_address), load_bank.eq(0),
                                 self.failed_descriptor.eq(0), state.have_weights.eq(0),
                                 length.eq(self.program_length), last_index.eq(self.program_length - 1),
                                 requested.eq(0), aborting.eq(0),
                                 program_end.eq(self.program_address + (self.program_length << descriptor_shift))]
                    m.next = "admit"
            with m.State("admit"):  # the window holds the whole program, checked before the first fetch
                with m.If((self.memory_size == 0) | (program_end > limit)):
                    self._fail(m, ERROR_CODES["outside_window"], 0)
                    m.next = "stop"
                with m.Elif(length == 0):
                    m.next = "stop"
                with m.Else():
                    m.next = "fetch"
            with m.State("fetch"):
                m.d.comb += crc.clear.eq(1)
                m.d.comb += [self.read_request.valid.eq(requested | (~state.handoff & (error == 0))),
                             self.read_request.payload.address.eq(address[4:]),
                             self.read_request.payload.beats.eq(DESCRIPTOR_BEATS)]
                with m.If(self.read_request.valid & self.read_request.ready):
                    m.d.sync += [received.eq(0), read_failed.eq(0), requested.eq(0)]
                    m.next = "receive"
                with m.Elif(self.read_request.valid):
                    m.d.sync += requested.eq(1)
                with m.Elif(error != 0):
                    m.next = "stop"
            with m.State("receive"):
                m.d.comb += [self.read_data.ready.eq(1), crc.data.eq(self.read_data.payload.data),
                             crc.enable.eq(self.read_data.valid)]
                with m.If(self.read_data.valid):
                    m.d.sync += [state.beats.eq(Cat(state.beats[MEMORY_BEAT_BITS:], self.read_data.payload.data)),
                                 received.eq(received + 1)]
                    with m.If(self.read_data.payload.error):
                        m.d.sync += read_failed.eq(1)
                    with m.If(received == DESCRIPTOR_BEATS - 1):
                        m.next = "settle"
            with m.State("settle"):  # the CRC's input register takes the last beat
                m.next = "check"
            with m.State("check"):
                with m.If(read_failed):
                    self._fail(m, ERROR_CODES["read"], index)
                    m.next = "stop"
                with m.Elif(aborting | (error != 0)):  # an abort, or the guard refused a request
                    m.next = "stop"
                with m.Elif(~crc.intact):
                    self._fail(m, ERROR_CODES["corrupted"], index)
                    m.next = "stop"
                with m.Else():
                    m.d.comb += checker.start.eq(1)
                    m.next = "checking"
            with m.State("checking"):
                with m.If(checker.done):
                    with m.If(checker.error != 0):
                        self._fail(m, checker.error, index, checker.detail)
                        m.next = "stop"
                    with m.Elif(fetched.reuse_weights & ~state.have_weights):
                        self._fail(m, ERROR_CODES["inconsistent"], index)
                        m.next = "stop"
                    with m.Elif(aborting):
                        m.next = "stop"
                    with m.Else():
                        m.next = "wait"
            with m.State("wait"):
                m.d.comb += crc.clear.eq(1)  # for the load's parameters and weights
                free = (~state.loaded.bit_select(load_bank, 1) & ~state.handoff
                        & (~fetched.barrier | state.idle_pipeline)
                        & (fetched.reuse_weights | ~state.weight_bank_busy))
                with m.If(error != 0):
                    m.next = "stop"
                with m.Elif(free):  # only this unit makes a bank busy, so it is still free in the next cycle
                    m.next = "launch"
            with m.State("launch"):  # the start from a register: no bank logic in front of the loader's muxes
                m.d.comb += [crc.clear.eq(1), loader.start.eq(1)]
                m.next = "load"
            with m.State("load"):
                with m.If(loader.done):
                    with m.If(loader.error):
                        self._fail(m, ERROR_CODES["read"], index)
                        m.next = "stop"
                    with m.Elif(~fetched.reuse_weights & ((crc.value ^ 0xFFFFFFFF) != fetched.weights_crc)):
                        self._fail(m, ERROR_CODES["corrupted"], index, 1)  # the tile is never computed
                        m.next = "stop"
                    with m.Elif(aborting):  # the bank holds a part of the tile: it is never computed
                        m.next = "stop"
                    with m.Else():
                        m.d.sync += [state.tile_weight_bank.bit_select(load_bank, 1).eq(state.target_weight_bank),
                                     state.weight_bank.eq(state.target_weight_bank), state.have_weights.eq(1),
                                     state.loaded.bit_select(load_bank, 1).eq(1), state.handoff.eq(1),
                                     state.handoff_bank.eq(load_bank), load_bank.eq(~load_bank),
                                     index.eq(index + 1),
                                     address.eq(address + DESCRIPTOR_BYTES)]
                        m.next = "fetch"
                        with m.If(index == last_index):
                            m.next = "stop"
            with m.State("stop"):
                with m.If(state.idle_pipeline | (aborting & state.aborted_pipeline)):
                    m.d.comb += self.done.eq(1)
                    # The tiles an abort left unstored.
                    m.d.sync += [state.loaded.eq(0), state.computed.eq(0), state.handoff.eq(0)]
                    m.next = "idle"
        m.d.comb += self.busy.eq(~control.ongoing("idle"))
        m.d.comb += [loader.banks.eq(Cat(state.target_weight_bank, state.target_weight_bank, load_bank)),
                     loader.stop.eq(aborting)]
        # One CRC for the descriptor's beats (receive) and for the load's first beats, its parameters' and
        # weights': they come first, in request order, and their count is known from the descriptor.
        bits = buffer_word_bits(self.config)
        summed, to_sum = Signal(MEMORY_LENGTH_BITS + 1), Signal(MEMORY_LENGTH_BITS + 1)
        m.d.sync += to_sum.eq(Mux(fetched.reuse_weights, 0,
                                  run_beats(fetched.params.address, fetched.params.words,
                                            memory_word_bytes(bits["param"]))
                                  + run_beats(fetched.weights.address, fetched.weights.words,
                                              memory_word_bytes(bits["weight"]))))
        with m.If(loader.start):
            m.d.sync += summed.eq(0)
        with m.If(control.ongoing("load")):
            taken = self.read_data.valid & self.read_data.ready & (summed != to_sum)
            m.d.comb += [crc.data.eq(self.read_data.payload.data), crc.enable.eq(taken)]
            with m.If(taken):
                m.d.sync += summed.eq(summed + 1)
        with m.If(control.ongoing("load")):
            m.d.comb += [self.read_request.valid.eq(loader.request.valid),
                         self.read_request.payload.eq(loader.request.payload),
                         loader.request.ready.eq(self.read_request.ready),
                         loader.data.valid.eq(self.read_data.valid), loader.data.payload.eq(self.read_data.payload),
                         self.read_data.ready.eq(loader.data.ready)]

    def _compute(self, m: Module, state: _Shared) -> None:
        """The compute hand-off: a loaded tile goes to the layer core once the core is ready and its output bank
        is stored; the core holds two tiles at most (one sending beats, one draining), whose banks and layers are
        kept oldest first for the hand-offs and counters at their ``done``."""
        core = self.core
        geometry = Signal.like(state.fetched.geometry)
        layer = Signal(8)
        m.d.comb += [core.geometry.eq(geometry), core.bank.eq(state.compute_bank),
                     core.weight_bank.eq(state.tile_weight_bank.bit_select(state.compute_bank, 1)),
                     core.start.eq(state.compute_starting)]
        take = Signal()
        m.d.comb += take.eq(state.handoff & core.ready & ~state.compute_starting
                            & ~state.computed.bit_select(state.handoff_bank, 1) & ~state.aborting)
        with m.If(take):
            m.d.sync += [geometry.eq(state.fetched.geometry), layer.eq(state.fetched.layer),
                         state.compute_bank.eq(state.handoff_bank), state.handoff.eq(0),
                         state.compute_starting.eq(1)]
            with m.If(state.handoff_bank):
                m.d.sync += state.outputs[1].eq(state.fetched.outputs)
            with m.Else():
                m.d.sync += state.outputs[0].eq(state.fetched.outputs)
        with m.If(state.compute_starting):  # the core takes the start: ``geometry`` is in place, and the core ready
            m.d.sync += state.compute_starting.eq(0)
        core_banks, core_layers, in_core = state.core_banks, state.core_layers, state.in_core
        with m.If(core.done):
            m.d.sync += [state.loaded.bit_select(core_banks[0], 1).eq(0),
                         state.computed.bit_select(core_banks[0], 1).eq(1),
                         core_banks[0].eq(core_banks[1]), core_layers[0].eq(core_layers[1])]
        with m.If(state.compute_starting):
            with m.If((in_core == 0) | (core.done & (in_core == 1))):  # it is the oldest once done is seen
                m.d.sync += [core_banks[0].eq(state.compute_bank), core_layers[0].eq(layer)]
            with m.Else():
                m.d.sync += [core_banks[1].eq(state.compute_bank), core_layers[1].eq(layer)]
        m.d.sync += in_core.eq(in_core + state.compute_starting - core.done)

    def _store(self, m: Module, state: _Shared) -> None:
        """The store: each computed tile's outputs go to memory in order (:class:`~.transfer.Storer`); a store an
        abort cut short is not a tile done."""
        storer = self.storer
        store_bank = Signal()
        # The store starts from a register (``requested``), a cycle after its bank is seen computed: no bank logic
        # in front of the storer's start. An abort requested now (``abort``) keeps it low, so a store never starts
        # while ``aborting``.
        requested = Signal()
        m.d.comb += [storer.bank.eq(store_bank),
                     storer.transfer.eq(Mux(store_bank, state.outputs[1], state.outputs[0])),
                     storer.start.eq(requested), storer.stop.eq(state.aborting)]
        m.d.sync += requested.eq(~requested & ~state.storing & state.computed.bit_select(store_bank, 1)
                                 & ~state.aborting & ~self.abort)
        with m.If(storer.start):
            m.d.sync += state.storing.eq(1)
        with m.If(storer.done):
            m.d.sync += [state.storing.eq(0), state.computed.bit_select(store_bank, 1).eq(0),
                         store_bank.eq(~store_bank)]
            with m.If(~state.aborting):
                m.d.sync += self.tiles_done.eq(self.tiles_done + 1)
            with m.If(storer.error):
                self._fail(m, ERROR_CODES["write"], self.tiles_done)  # tiles are stored in order
        with m.If(state.starting):
            m.d.sync += [self.tiles_done.eq(0), store_bank.eq(0)]
        wiring.connect(m, storer.request, wiring.flipped(self.write_request))
        wiring.connect(m, storer.data, wiring.flipped(self.write_data))
        wiring.connect(m, wiring.flipped(self.write_response), storer.response)


    def _refusals(self, m: Module, state: _Shared) -> None:
        """The bus guard refused a request: the run ends with ``outside_window``, at the descriptor being fetched
        or loaded (a read) or the tile being stored (a write; tiles are stored in order)."""
        with m.If(self.read_refused):
            self._fail(m, ERROR_CODES["outside_window"], state.index, 5)
        with m.If(self.write_refused):
            self._fail(m, ERROR_CODES["outside_window"], self.tiles_done, 6)


class _Shared:
    """The signals the engine's units share: the fetched descriptor, the banks' scoreboard, the hand-off to the
    layer core and the tiles in it, the store's progress, and the run's state (starting, aborting)."""

    def __init__(self):
        self.beats = Signal(DESCRIPTOR_BEATS * MEMORY_BEAT_BITS)  # the fetched descriptor's beats, lowest first
        self.fetched = descriptor_layout()(self.beats[: descriptor_layout().size])
        self.index = Signal(16)  # the descriptor being fetched or loaded
        self.starting, self.aborting = Signal(), Signal()
        self.loaded, self.computed = Signal(2), Signal(2)
        self.handoff, self.handoff_bank = Signal(), Signal()
        self.compute_starting, self.compute_bank = Signal(), Signal()
        self.in_core, self.core_banks = Signal(range(3)), Signal(2)
        self.core_layers = Signal(data.ArrayLayout(8, 2))
        self.outputs = [Signal(transfer_layout(), name=f"outputs_{bank}") for bank in range(2)]
        self.storing = Signal()
        self.idle_pipeline, self.aborted_pipeline = Signal(), Signal()
        self.tile_weight_bank = Signal(2)  # per activation bank: the weight bank of the tile loaded there
        self.weight_bank, self.have_weights = Signal(), Signal()  # the bank of the latest weights loaded
        self.target_weight_bank, self.weight_bank_busy = Signal(), Signal()


class RunCounters(wiring.Component):
    """The engine's counters: cycles and memory beats of a run, and compute cycles per layer.

    Attributes
    ----------
    start : In(1)
        A run starts: the counters clear (the per-layer totals are overwritten as the run's layers finish).
    busy : In(1)
        The run goes on: ``cycles`` counts.
    read_beat, write_beat : In(1)
        A memory beat moved this cycle.
    layer : In(8)
        The layer of the oldest tile in the layer core (the one that finishes next).
    computing : In(1)
        The layer core holds a tile this cycle.
    finished : In(1)
        The oldest tile finishes this cycle (the layer core's ``done``).
    layer_select : In(8)
    cycles, beats_read, beats_written : Out(32)
    layer_cycles : Out(32)
        The compute cycles of layer ``layer_select`` in the last run, one cycle after ``layer_select`` is set:
        every cycle the core holds tiles counts for the oldest, added to its layer's total when it finishes (tiles
        of a layer are consecutive).

    Latency: each counter shows an event one cycle later; a layer's total is written two cycles after its tile's
    ``finished`` (registers cut the layer compare from the add, and the add from the RAM's input).
    """

    def __init__(self):
        super().__init__({
            "start": In(1), "busy": In(1), "read_beat": In(1), "write_beat": In(1), "layer": In(8),
            "computing": In(1), "finished": In(1), "layer_select": In(8),
            "cycles": Out(COUNTER_BITS), "beats_read": Out(COUNTER_BITS), "beats_written": Out(COUNTER_BITS),
            "layer_cycles": Out(COUNTER_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        with m.If(self.start):
            m.d.sync += [self.cycles.eq(0), self.beats_read.eq(0), self.beats_written.eq(0)]
        with m.Elif(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(self.read_beat):
            m.d.sync += self.beats_read.eq(self.beats_read + 1)
        with m.If(self.write_beat):
            m.d.sync += self.beats_written.eq(self.beats_written + 1)
        self._per_layer(m)
        return m

    def _per_layer(self, m: Module) -> None:
        memory = Memory(shape=COUNTER_BITS, depth=MAX_LAYERS, init=[])
        m.submodules.layer_counters = memory
        write, read = memory.write_port(), memory.read_port()
        # The inputs are registered, and whether the finishing tile continues the last total's layer
        # (``continues``) is decided a cycle ahead from the next cycle's values, so the total's add starts at a
        # register select, not at the layer compare. ``counted`` is the oldest tile's cycles so far plus the
        # finishing one, so that a total is one two-input add; the total is written into the memory a cycle later.
        layer, computing, finished = Signal(8), Signal(), Signal()
        m.d.sync += [layer.eq(self.layer), computing.eq(self.computing), finished.eq(self.finished)]
        counted, total, last_layer = Signal(COUNTER_BITS, init=1), Signal(COUNTER_BITS), Signal(8)
        seen, continues = Signal(), Signal()
        with m.If(computing):
            m.d.sync += counted.eq(counted + 1)
        new_total = Signal(COUNTER_BITS)
        m.d.comb += new_total.eq(Mux(continues, total, 0) + counted)
        m.d.sync += [write.addr.eq(layer), write.data.eq(new_total), write.en.eq(finished)]
        with m.If(finished):
            m.d.sync += [total.eq(new_total), last_layer.eq(layer), seen.eq(1), counted.eq(1),
                         continues.eq(layer == self.layer)]
        with m.Else():
            m.d.sync += continues.eq(seen & (last_layer == self.layer))
        with m.If(self.start):
            m.d.sync += [seen.eq(0), counted.eq(1), continues.eq(0)]
        m.d.comb += [read.addr.eq(self.layer_select), self.layer_cycles.eq(read.data)]
