"""The one cycle model of the layer engine (a MODEL): the layer core pixel by pixel, the engine tile by tile.

:class:`CoreTimeline` follows the layer core; :class:`EngineTimeline` follows the engine's units around it, tile by
tile, as the hardware orders them (docs/architecture.md, "The layer engine"):

- the loader fetches descriptor ``i`` (a request, the memory's latency, 8 beats, a cycle for the CRC) once tile
  ``i - 1`` has started computing, checks it (:func:`esb_hw.contract.checks.checker_cycles`, exact), and loads it
  the cycle after its activation bank is free, its weight bank is free (a tile with new weights) and, for a
  ``barrier``, every earlier tile is stored: the memory's latency, then a word per cycle (a beat per cycle for
  words wider than a beat);
- the layer core takes a loaded tile once it is ready and the tile's output bank is stored (:class:`CoreTimeline`);
- the storer writes a computed tile's outputs after the one before.

The pipeline depths come from :mod:`esb_hw.contract.latency`; the memory's answers from a :class:`MemoryTiming`.
Every program, tile selection (:func:`esb_hw.compiler.program.compile_program`), ``esb-hw sim``, ``esb-hw infer``
and the benches use this model; ``tests/test_timeline.py`` holds it within 5 % of the engine's and the system's
measured cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..config import AcceleratorConfig
from ..contract.checks import checker_cycles
from ..contract.latency import HANDOFF_CYCLES, OUTPUT_DEPTH, array_latency, requant_latency
from ..errors import InputError
from ..layouts import DESCRIPTOR_BEATS, MEMORY_BEAT_BYTES, buffer_word_bits, memory_word_bytes

__all__ = ["AXI_SYSTEM", "MEMORY_MODEL", "CoreTimeline", "EngineTimeline", "MemoryTiming", "TileTimes",
           "core_cycles"]


@dataclass(frozen=True)
class MemoryTiming:
    """How a memory answers the engine's requests (the model's inputs, in cycles).

    Attributes
    ----------
    read_latency : (int, int)
        From a read request's acceptance to its first beat: uniform over this inclusive range.
    write_latency : (int, int)
        From a write request's last beat to its response: uniform over this inclusive range.
    beat_cycles : float
        Mean cycles per beat the memory needs when it sets the pace (``1 / (1 - stall)`` with random stalls).
    outstanding : int
        Read requests it takes before the first has all its beats.
    bandwidth : float or None
        The engine's share of the memory's bandwidth in bytes per cycle, reads and writes together
        (:meth:`esb_hw.contract.bandwidth.BoardMemory.bytes_per_cycle`); None: no limit but a beat per cycle each
        way. A beat then takes at least ``16 / bandwidth`` cycles, and a run at least its bytes over it.
    """

    read_latency: tuple[int, int]
    write_latency: tuple[int, int]
    beat_cycles: float = 1.0
    outstanding: int = 16
    bandwidth: float | None = None

    def __post_init__(self):
        if self.bandwidth is not None and not self.bandwidth > 0:
            raise InputError(f"the memory's bandwidth must be positive, got {self.bandwidth!r} bytes per cycle")

    @property
    def pace(self) -> float:
        """Cycles per beat when the memory sets the pace: its own, or the bandwidth's if that is slower."""
        if self.bandwidth is None:
            return self.beat_cycles
        return max(self.beat_cycles, MEMORY_BEAT_BYTES / self.bandwidth)

    def with_bandwidth(self, bytes_per_cycle: float | None) -> MemoryTiming:
        """This timing with the engine's share of the bandwidth set (see ``bandwidth``)."""
        return replace(self, bandwidth=bytes_per_cycle)

    @classmethod
    def of_model(cls, latency: tuple[int, int] = (20, 100), stall: float = 0.2) -> MemoryTiming:
        """The timing of :class:`esb_hw.sim.memory.MemoryModel` with these parameters (its defaults by default):
        its latencies (a quarter of them for write responses) and ``1 / (1 - stall)`` cycles per beat."""
        return cls(read_latency=latency, write_latency=(latency[0] // 4, latency[1] // 4),
                   beat_cycles=1 / (1 - stall), outstanding=4)

    @property
    def mean_read(self) -> float:
        return sum(self.read_latency) / 2

    @property
    def mean_write(self) -> float:
        return sum(self.write_latency) / 2

    def latest(self, offsets: list[float]) -> float:
        """The expected latest of ``L_k - offsets[k]`` over independent read latencies ``L_k``: when the last of
        several requests' data arrives, each needed ``offsets[k]`` cycles after the first."""
        low, high = self.read_latency
        if low == high:
            return low - min(offsets)
        count = high - low + 1
        expected, below = 0.0, 0.0
        first, last = int(low - max(offsets)) - 1, int(high - min(offsets)) + 1
        for value in range(first, last + 1):
            at_most = 1.0
            for offset in offsets:
                at_most *= min(max((value + offset - low + 1) / count, 0.0), 1.0)
            expected += value * (at_most - below)
            below = at_most
        return expected


#: The memory model the engine's tests and ``bench/layer_perf.py`` run against (its defaults).
MEMORY_MODEL = MemoryTiming.of_model()
#: The whole system through its AXI4 master, with cocotbext-axi's ``AxiRam`` as DDR and no back-pressure (the
#: ``esb-hw sim`` and ``esb-hw infer`` runs); measured by ``tests/test_timeline.py``.
AXI_SYSTEM = MemoryTiming(read_latency=(4, 4), write_latency=(2, 2))


def core_cycles(schedule, *, requant_lanes: int = 1) -> int:
    """The layer core's cycles from ``start`` to ``done`` for one tile with its buffers loaded (a MODEL, checked
    against Amaranth simulation in ``tests/test_layer.py``)."""
    return CoreTimeline(schedule.config, requant_lanes).run(schedule, 0)[1] + 1


class CoreTimeline:
    """A model of the layer core running tiles one after another (a MODEL).

    It follows the two resources that set the pace, pixel by pixel: the array, which takes one beat per cycle
    (``chunks`` passes over each block; only the last pass sends sums out), and the requantization lanes, which
    take a pixel's sums from the array's output buffer and spend ``rows / requant_lanes + 1`` cycles on it. The
    array's credits stop a last-pass beat while :data:`~esb_hw.contract.latency.OUTPUT_DEPTH` pixels wait for the
    lanes, and a pass lasts at least ``rows + HANDOFF_CYCLES`` cycles, the time from its swap beat to the next
    chunk's loads being in the shadow bank (short blocks wait for it). A tile starts with its first chunk's loads
    (``rows`` cycles and two of hand-off). The next tile may start when the sequencer is done with this one, while
    the lanes still drain it (:class:`~esb_hw.hw.core.layer.LayerCore` holds two tiles)."""

    def __init__(self, config: AcceleratorConfig, requant_lanes: int = 1):
        if requant_lanes < 1 or config.rows % requant_lanes:
            raise InputError(f"requant_lanes must divide rows {config.rows}, got {requant_lanes}")
        self.config = config
        self.per_pixel = config.rows // requant_lanes + 1
        self.latency = array_latency(config)
        self.taken: list[int] = []  # when the lanes took each pixel's sums
        self.lane_free = 0
        self.front_free = 0  # when the sequencer can take the next tile

    def run(self, schedule, start: int) -> tuple[int, int]:
        """Run ``schedule`` from cycle ``start`` (or when the sequencer is free); returns the cycles at which
        the sequencer is done with it and at which its last output word is written."""
        config = self.config
        chunks = len(schedule.chunks)
        handoff = config.rows + HANDOFF_CYCLES  # from one pass's first beat to the next chunk's loads being in
        time = max(start, self.front_free) + config.rows + 2  # the next beat's cycle
        taken = self.taken
        for _ in range(schedule.row_blocks):
            for block in schedule.pixel_blocks:
                time += (chunks - 1) * max(len(block), handoff)
                last_pass = time
                for _ in block:
                    pixel = len(taken)
                    if pixel >= OUTPUT_DEPTH:
                        time = max(time, taken[pixel - OUTPUT_DEPTH] + 1)
                    take = max(time + self.latency, self.lane_free)
                    taken.append(take)
                    self.lane_free = take + self.per_pixel
                    time += 1
                time = max(time, last_pass + handoff)
        self.front_free = time
        return time, self.lane_free + requant_latency(config) - 2


@dataclass
class TileTimes:
    """One tile's events in the model, in cycles from the run's start: the checker's start and done, the load's
    start and done, the core's start and done, the store's start and done."""

    check: tuple[int, int]
    load: tuple[int, int]
    compute: tuple[int, int]
    store: tuple[int, int]


@dataclass
class EngineTimeline:
    """The engine running tiles (their descriptors and schedules), a MODEL; :meth:`run` returns the cycles from
    ``start`` to ``done`` and fills :attr:`tiles`."""

    config: AcceleratorConfig
    memory: MemoryTiming = MEMORY_MODEL
    tiles: list[TileTimes] = field(default_factory=list)

    def _load_cycles(self, transfers: list[tuple[dict, str]]) -> float:
        """Cycles of a load from its start to its done: one request per run, one a cycle, then the data; a word per
        cycle for words of up to a beat, a beat per cycle for wider ones, or the memory's pace if slower, and one
        more cycle per run. The load ends when the last request's data has come and been taken: the model takes the
        expected latest of the requests' latencies, each needed as many cycles after the first as the words
        before it take."""
        memory = self.memory
        sizes = {name: memory_word_bytes(bits) for name, bits in buffer_word_bits(self.config).items()}
        work, offsets, ends = 0.0, [], []  # per request: when its data is needed, and when it is all taken
        for transfer, kind in transfers:
            per_word = max(1, sizes[kind] // MEMORY_BEAT_BYTES)
            for segment in range(transfer["segments"]):
                request = len(offsets) * memory.pace  # its acceptance, after the first's
                if len(offsets) >= memory.outstanding:  # the memory is full: when an earlier one is done
                    request = max(request, memory.mean_read + ends[len(offsets) - memory.outstanding])
                offsets.append(work - request)
                start = transfer["address"] + segment * transfer["stride"]
                beats = _run_beats(start, transfer["words"] * sizes[kind])
                work += max(transfer["words"] * per_word, beats * memory.pace) + 1
                ends.append(work)
        return 1 + memory.latest(offsets) + work + 2

    def _write_cycles(self, transfer: dict) -> float:
        size = memory_word_bytes(buffer_word_bits(self.config)["output"])
        per_word = max(1, size // MEMORY_BEAT_BYTES)
        consumer = transfer["words"] * transfer["segments"] * per_word
        return max(consumer, _beats(transfer, size) * self.memory.pace) + transfer["segments"]

    def run(self, work) -> int:
        """``work``: ``(descriptor, schedule)`` per tile, in program order. Returns the modelled cycles."""
        memory = self.memory
        core = CoreTimeline(self.config, self.config.lanes)
        self.tiles = []
        fetch = 2.0  # the start, then the window check (admit)
        weight_users: dict[int, float] = {}  # weight bank -> when the last tile using it left the core
        weight_bank = 0
        for index, (descriptor, schedule) in enumerate(work):
            tiles = self.tiles
            check_start = fetch + memory.mean_read + DESCRIPTOR_BEATS * memory.pace + 2  # the CRC settles
            check_done = check_start + checker_cycles(descriptor, self.config)
            load_start = check_done + 1
            if index >= 2:  # its activation bank: free once tile i - 2 has left the core
                load_start = max(load_start, tiles[index - 2].compute[1] + 1)
            if descriptor["barrier"] and tiles:
                load_start = max(load_start, tiles[-1].store[1] + 1)
            reuse = bool(descriptor["reuse_weights"])
            if not reuse:
                weight_bank ^= 1
                load_start = max(load_start, weight_users.get(weight_bank, 0) + 1)
                kinds = [(descriptor["params"], "param"), (descriptor["weights"], "weight"),
                         (descriptor["activations"], "activation")]
            else:
                kinds = [(descriptor["activations"], "activation")]
            load_start += 1  # the launch: the loader starts the cycle after its banks are seen free
            load_done = load_start + self._load_cycles(kinds)
            compute_start = max(load_done + 2, core.front_free + 1)
            if index >= 2:  # its output bank: free once tile i - 2 is stored
                compute_start = max(compute_start, tiles[index - 2].store[1] + 1)
            front, last_word = core.run(schedule, int(round(compute_start)))
            compute_done = max(float(last_word) + 4, compute_start)
            weight_users[weight_bank] = compute_done
            # the store starts from a register, a cycle after its bank is seen computed and the storer free
            store_start = max(compute_done + 2, tiles[-1].store[1] + 2 if tiles else 0)
            store_done = store_start + 1 + self._write_cycles(descriptor["outputs"]) + memory.mean_write + 3
            tiles.append(TileTimes((round(check_start), round(check_done)), (round(load_start), round(load_done)),
                                   (round(compute_start), round(compute_done)),
                                   (round(store_start), round(store_done))))
            fetch = compute_start
        cycles = round(self.tiles[-1].store[1] + 1) if self.tiles else 4
        if memory.bandwidth is not None:  # reads and writes share the bandwidth: no faster than all bytes over it
            cycles = max(cycles, -(-sum(self.moved_bytes(work)) * 1000 // round(memory.bandwidth * 1000)))
        return cycles

    def moved_bytes(self, work) -> tuple[int, int]:
        """The bytes the memory reads and writes for ``work``: every beat of each descriptor, load and store."""
        sizes = {name: memory_word_bytes(bits) for name, bits in buffer_word_bits(self.config).items()}
        read = written = 0
        for descriptor, _ in work:
            kinds = [("activations", "activation")] if descriptor["reuse_weights"] else [
                ("params", "param"), ("weights", "weight"), ("activations", "activation")]
            read += DESCRIPTOR_BEATS + sum(_beats(descriptor[name], sizes[kind]) for name, kind in kinds)
            written += _beats(descriptor["outputs"], sizes["output"])
        return read * MEMORY_BEAT_BYTES, written * MEMORY_BEAT_BYTES


def _run_beats(start: int, length: int) -> int:
    """The memory beats a run of ``length`` bytes from byte ``start`` touches."""
    return (start + length - 1) // MEMORY_BEAT_BYTES - start // MEMORY_BEAT_BYTES + 1


def _beats(transfer: dict, word_bytes: int) -> int:
    """The memory beats a transfer moves: every beat each segment's bytes touch."""
    length = transfer["words"] * word_bytes
    return sum(_run_beats(transfer["address"] + segment * transfer["stride"], length)
               for segment in range(transfer["segments"]))
