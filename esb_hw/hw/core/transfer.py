"""Memory transfers of the layer engine: the loader fills buffers from the read streams, the storer empties the
output buffer into the write streams (docs/memory.md).

A transfer (:func:`~esb_hw.layouts.transfer_layout`) is ``segments`` runs of ``words`` buffer words in memory,
``stride`` bytes apart; the buffer holds the runs back to back. A word of ``b`` bytes
(:func:`~esb_hw.layouts.memory_word_bytes`, a power of two) sits at a multiple of ``b``: words of up to 16 bytes
share a beat (a run may start and end inside one), wider words span ``b / 16`` whole beats. Every run is one
request; the requests go out ahead of the data, so a memory's latency is paid once per transfer, not per run.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...errors import ParameterError
from ...layouts import (
    MEMORY_BEAT_BYTES,
    MEMORY_LENGTH_BITS,
    memory_read_layout,
    memory_request_layout,
    memory_word_bytes,
    memory_write_layout,
    transfer_layout,
)
from ..checks import require_int

__all__ = ["Loader", "Storer", "buffer_write_layout", "run_beats"]


def _select(kind, values):
    """``values[kind]`` (the last one for any larger ``kind``), as a chain of multiplexers."""
    result = values[-1]
    for index in reversed(range(len(values) - 1)):
        result = Mux(kind == index, values[index], result)
    return result


def run_beats(address, words, word_bytes: int):
    """The memory beats a run of ``words`` words of ``word_bytes`` bytes from byte ``address`` touches (an
    expression; :func:`esb_hw.layouts.run_beats` in Python): from its first word's beat to its last word's."""
    if word_bytes >= MEMORY_BEAT_BYTES:
        return words * (word_bytes // MEMORY_BEAT_BYTES)
    return (address[:4] + (words << (word_bytes.bit_length() - 1)) + 15) >> 4


def _check_request_length(name: str, word_bytes: int, depth: int) -> None:
    """A run of a whole bank must fit one request's ``beats`` field."""
    beats = -(-depth * word_bytes // MEMORY_BEAT_BYTES) + 1
    if beats >= 1 << MEMORY_LENGTH_BITS:
        raise ParameterError(f"{name}: a bank of {depth} words of {word_bytes} bytes needs {beats} beats, more than "
                             f"a request carries ({(1 << MEMORY_LENGTH_BITS) - 1})")


def buffer_write_layout(bits: int, depth: int) -> data.StructLayout:
    """A buffer's write port as a record: ``address`` (both banks: ``2 * depth`` words), ``data``, ``enable``."""
    return data.StructLayout({"address": range(2 * depth), "data": bits, "enable": 1})


class _Runs:
    """A walk over the runs of several transfers, in order: the transfer ``kind``, the run's byte ``address`` and
    the runs left. ``first`` starts it; ``step`` moves to the next run (the caller stops after the last)."""

    def __init__(self, name: str, transfers, word_bytes: list[int]):
        self.transfers, self.word_bytes = transfers, word_bytes
        self.kind = Signal(range(max(2, len(word_bytes))), name=f"{name}_kind")  # never 0 bits: lint
        self.address = Signal(32, name=f"{name}_address")
        self.runs_left = Signal(len(transfers[0].segments), name=f"{name}_runs_left")
        self.last_run = Signal(name=f"{name}_last_run")  # runs_left == 1, registered as it is set or stepped

    def first(self, domain, kind=0):
        """Start at transfer ``kind`` (a value: the transfers before it are skipped)."""
        domain += [self.kind.eq(kind),
                   self.address.eq(_select(kind, [transfer.address for transfer in self.transfers])),
                   self.runs_left.eq(_select(kind, [transfer.segments for transfer in self.transfers])),
                   self.last_run.eq(_select(kind, [transfer.segments == 1 for transfer in self.transfers]))]

    def step(self, m: Module, domain):
        with m.If(~self.last_run):
            domain += [self.runs_left.eq(self.runs_left - 1), self.last_run.eq(self.runs_left == 2),
                       self.address.eq(self.address + self.field("stride"))]
        with m.Elif(self.kind != len(self.word_bytes) - 1):
            domain += [self.kind.eq(self.kind + 1), self.address.eq(self.field("address", next_kind=True)),
                       self.runs_left.eq(self.field("segments", next_kind=True)),
                       self.last_run.eq(self.field("segments", next_kind=True) == 1)]

    def field(self, name: str, *, next_kind: bool = False):
        """Field ``name`` of the current transfer (or the next one)."""
        values = [getattr(transfer, name) for transfer in self.transfers]
        if next_kind:
            values = values[1:] + values[:1]
        return _select(self.kind, values)

    def beats(self):
        """Beats of the current run: from its first word's beat to its last word's."""
        return _select(self.kind, [run_beats(self.address, self.field("words"), size) for size in self.word_bytes])

    def first_lane(self):
        """The run's first word's place in its beat (0 for words of a beat or more)."""
        return _select(self.kind, [self.address[:4] >> (size.bit_length() - 1) if size < MEMORY_BEAT_BYTES else 0
                                   for size in self.word_bytes])


class Loader(wiring.Component):
    """Fills one bank of several buffers from memory: transfer 0 into buffer 0, then 1 into 1, and so on.

    Parameters
    ----------
    word_bits : list of int
        Each buffer's word width.
    depths : list of int
        Each buffer's words per bank (powers of two, ``16..2**19``).

    Attributes
    ----------
    start : In(1)
        Begin (ignored while ``busy``); ``banks``, ``first_kind`` and ``transfers`` are held until ``done``.
    stop : In(1)
        End early (an abort; held until ``done``): no request after the one offered now, the data of every request
        already taken is received (the bank's contents are then partial), then ``done``.
    banks : In(len(word_bits))
        The bank each buffer is filled in.
    first_kind : In(range(len(word_bits)))
        The first transfer made (the ones before it are skipped).
    transfers : In(ArrayLayout(transfer_layout(), len(word_bits)))
        Checked by :class:`~.checker.DescriptorChecker`: nonzero counts, aligned addresses.
    busy : Out(1)
    done : Out(1)
        One cycle, after the last word is written.
    error : Out(1)
        A read beat of this load had its ``error`` bit set (valid with ``done``; the load still takes every beat).
    request : Out(stream.Signature(memory_request_layout()))
        One request per run, issued ahead of the data.
    data : In(stream.Signature(memory_read_layout()))
    writes : Out(ArrayLayout-like list)
        ``write_<i>``: buffer ``i``'s write port (:func:`buffer_write_layout`), one word per cycle.

    Throughput: one word per cycle for words of up to a beat (a beat of ``n`` words takes ``n`` cycles), one beat
    per cycle for wider words.
    """

    def __init__(self, word_bits: list[int], depths: list[int]):
        if len(word_bits) != len(depths) or not word_bits:
            raise ParameterError("word_bits and depths must be non-empty lists of the same length")
        for index, (bits, depth) in enumerate(zip(word_bits, depths, strict=True)):
            require_int(f"word_bits[{index}]", bits, 1, 1024)
            require_int(f"depths[{index}]", depth, 16, 1 << 19)
        self.word_bits, self.depths = list(word_bits), list(depths)
        self.word_bytes = [memory_word_bytes(bits) for bits in word_bits]
        for index, (size, depth) in enumerate(zip(self.word_bytes, depths, strict=True)):
            _check_request_length(f"buffer {index}", size, depth)
        members = {"start": In(1), "stop": In(1), "banks": In(len(depths)), "first_kind": In(range(len(depths))),
                   "transfers": In(data.ArrayLayout(transfer_layout(), len(depths))),
                   "busy": Out(1), "done": Out(1), "error": Out(1),
                   "request": Out(stream.Signature(memory_request_layout())),
                   "data": In(stream.Signature(memory_read_layout()))}
        for index, (bits, depth) in enumerate(zip(word_bits, depths, strict=True)):
            members[f"write_{index}"] = Out(buffer_write_layout(bits, depth))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        transfers = [self.transfers[index] for index in range(len(self.depths))]
        starting = Signal()
        m.d.comb += starting.eq(self.start & ~self.busy)
        issuing, consuming = Signal(), Signal()
        m.d.comb += self.busy.eq(issuing | consuming)

        # Requests: one per run, as fast as the memory takes them.
        issue = _Runs("issue", transfers, self.word_bytes)
        m.d.comb += [self.request.valid.eq(issuing), self.request.payload.address.eq(issue.address[4:]),
                     self.request.payload.beats.eq(issue.beats())]
        with m.If(starting):
            m.d.sync += issuing.eq(1)
            issue.first(m.d.sync, self.first_kind)
        # Runs asked for and runs received, for a stop: it ends once every run asked for is in.
        asked, received = Signal(len(transfers[0].segments) + 2), Signal(len(transfers[0].segments) + 2)
        with m.If(starting):
            m.d.sync += [asked.eq(0), received.eq(0)]
        with m.If(self.request.valid & self.request.ready):
            issue.step(m, m.d.sync)
            m.d.sync += asked.eq(asked + 1)
            with m.If((issue.last_run & (issue.kind == len(self.depths) - 1)) | self.stop):
                m.d.sync += issuing.eq(0)

        # Data: the same walk, word by word into the buffers.
        run = _Runs("run", transfers, self.word_bytes)
        words_left = Signal(len(transfers[0].words))
        lane = Signal(4)
        gathered = Signal(range(max(max(self.word_bytes) // MEMORY_BEAT_BYTES, 1) + 1))
        wide = Signal(max(self.word_bytes) * 8)
        addresses = [Signal(range(depth), name=f"address_{index}") for index, depth in enumerate(self.depths)]
        holding, new_run = Signal(), Signal()  # a beat is held; the next beat starts a run
        beat = Signal(memory_read_layout())
        take_word, release = Signal(), Signal()
        m.d.comb += self.data.ready.eq(consuming & (~holding | release))
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [beat.eq(self.data.payload), holding.eq(1)]
            with m.If(self.data.payload.error):
                m.d.sync += self.error.eq(1)
        with m.Elif(release):
            m.d.sync += holding.eq(0)
        with m.If(starting):
            m.d.sync += [consuming.eq(1), self.error.eq(0), new_run.eq(1), gathered.eq(0)]
            m.d.sync += [address.eq(0) for address in addresses]
            run.first(m.d.sync, self.first_kind)

        last_word = Signal()  # words_left == 1, registered as the count is set or stepped
        with m.If(consuming & holding & new_run):  # the run's first beat: its first lane and word count
            m.d.sync += [new_run.eq(0), lane.eq(run.first_lane()), words_left.eq(run.field("words")),
                         last_word.eq(run.field("words") == 1)]
        with m.Elif(consuming & holding):
            for kind, size in enumerate(self.word_bytes):
                with m.If(run.kind == kind):
                    self._word(m, kind, size, beat, lane, wide, gathered, last_word, take_word, release)
        with m.If(take_word):
            m.d.sync += [words_left.eq(words_left - 1), last_word.eq(words_left == 2)]
            with m.If(last_word):
                m.d.sync += new_run.eq(1)
                run.step(m, m.d.sync)
                with m.If(run.last_run):
                    m.d.sync += [address.eq(0) for address in addresses]
        for kind, address in enumerate(addresses):
            port = getattr(self, f"write_{kind}")
            with m.If(take_word & (run.kind == kind)):
                m.d.sync += address.eq(address + 1)
            m.d.comb += [port.address.eq((self.banks[kind] << (len(address))) | address),
                         port.enable.eq(take_word & (run.kind == kind))]
            size = self.word_bytes[kind]
            if size >= MEMORY_BEAT_BYTES:
                m.d.comb += port.data.eq(_wide_word(wide, beat, size))
            else:
                lane_bits = (MEMORY_BEAT_BYTES // size - 1).bit_length()
                m.d.comb += port.data.eq(beat.data.word_select(lane[:lane_bits], size * 8))
        with m.If(take_word & last_word):
            m.d.sync += received.eq(received + 1)
        self._finish(m, run, take_word, last_word, consuming, self.stop & ~issuing & (asked == received))
        return m

    def _word(self, m, kind, size, beat, lane, wide, gathered, last_word, take_word, release):
        """One cycle of run ``kind``: write the word at ``lane`` (words of up to a beat), or gather a beat of a
        wide word and write it with its last beat."""
        if size < MEMORY_BEAT_BYTES:
            lanes = MEMORY_BEAT_BYTES // size
            lane_bits = (lanes - 1).bit_length()
            m.d.comb += [take_word.eq(1), release.eq(last_word | (lane[:lane_bits] == lanes - 1))]
            m.d.sync += lane.eq(lane + 1)
        else:
            beats = size // MEMORY_BEAT_BYTES
            m.d.comb += release.eq(1)
            if beats == 1:
                m.d.comb += take_word.eq(1)
            else:
                m.d.comb += take_word.eq(gathered == beats - 1)
                m.d.sync += [gathered.eq(Mux(gathered == beats - 1, 0, gathered + 1)),
                             wide.eq((wide >> 128) | (beat.data << (len(wide) - 128)))]

    def _finish(self, m, run, take_word, last_word, consuming, stopped):
        """``done`` after the last word of the last run, or once a stop has every run it asked for."""
        ending = Signal()
        m.d.comb += ending.eq((take_word & last_word & run.last_run & (run.kind == len(self.depths) - 1))
                              | (consuming & stopped))
        with m.If(ending):
            m.d.sync += consuming.eq(0)
        m.d.sync += self.done.eq(ending)


def _wide_word(wide, beat, size):
    """A word of ``size`` bytes (two or more beats) whose last beat is ``beat``: the earlier beats are the top of
    ``wide``, shifted in one by one."""
    beats = size // MEMORY_BEAT_BYTES
    if beats == 1:
        return beat.data
    earlier = wide[len(wide) - 128 * (beats - 1):]
    return earlier | (beat.data << (128 * (beats - 1)))


class Storer(wiring.Component):
    """Empties one bank of a buffer into memory: the runs of one transfer, with byte strobes where a run starts or
    ends inside a beat (the memory's other bytes keep their values).

    Parameters
    ----------
    word_bits : int
        The buffer's word width.
    depth : int
        Its words per bank (a power of two, ``16..2**19``).

    Attributes
    ----------
    start : In(1)
        Begin (ignored while ``busy``); ``bank`` and ``transfer`` are held until ``done``.
    stop : In(1)
        End early (an abort; held until ``done``): no request after the one offered now; every request already
        taken gets all its beats and its response (so nothing is written outside this transfer), then ``done``.
    bank : In(1)
    transfer : In(transfer_layout())
    busy : Out(1)
    done : Out(1)
        One cycle, after the memory has answered every request.
    error : Out(1)
        A write response of this store had its ``error`` bit set (valid with ``done``).
    read_address : Out(range(2 * depth)), read_enable : Out(1), read_data : In(word_bits)
        The buffer's read port (one cycle of latency; the data holds while the enable is low).
    request : Out(stream.Signature(memory_request_layout()))
        One request per run, ahead of the data.
    data : Out(stream.Signature(memory_write_layout()))
    response : In(stream.Signature(data.StructLayout({"error": 1})))
        One per request.

    Throughput: one word per cycle for words of up to a beat, one beat per cycle for wider words.
    """

    def __init__(self, word_bits: int, depth: int):
        require_int("word_bits", word_bits, 1, 1024)
        require_int("depth", depth, 16, 1 << 19)
        self.word_bits, self.depth = word_bits, depth
        self.word_bytes = memory_word_bytes(word_bits)
        _check_request_length("the buffer", self.word_bytes, depth)
        super().__init__({
            "start": In(1), "stop": In(1), "bank": In(1), "transfer": In(transfer_layout()),
            "busy": Out(1), "done": Out(1), "error": Out(1),
            "read_address": Out(range(2 * depth)), "read_enable": Out(1), "read_data": In(word_bits),
            "request": Out(stream.Signature(memory_request_layout())),
            "data": Out(stream.Signature(memory_write_layout())),
            "response": In(stream.Signature(data.StructLayout({"error": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        size = self.word_bytes
        starting = Signal()
        m.d.comb += starting.eq(self.start & ~self.busy)
        issuing, sending, answering = Signal(), Signal(), Signal()
        m.d.comb += self.busy.eq(issuing | sending | answering)
        transfer = self.transfer

        issue = _Runs("issue", [transfer], [size])
        m.d.comb += [self.request.valid.eq(issuing), self.request.payload.address.eq(issue.address[4:]),
                     self.request.payload.beats.eq(issue.beats())]
        with m.If(starting):
            m.d.sync += [issuing.eq(1), sending.eq(1), answering.eq(1), self.error.eq(0)]
            issue.first(m.d.sync)
        asked, sent = Signal(len(transfer.segments) + 1), Signal(len(transfer.segments) + 1)  # runs, for a stop
        with m.If(starting):
            m.d.sync += [asked.eq(0), sent.eq(0)]
        with m.If(self.request.valid & self.request.ready):
            issue.step(m, m.d.sync)
            m.d.sync += asked.eq(asked + 1)
            with m.If(issue.last_run | self.stop):
                m.d.sync += issuing.eq(0)
        stopped, halted = Signal(), Signal()  # stopping, and no request will go out any more; and no data either
        paused = Signal()  # no word goes into a beat (see below)
        m.d.comb += stopped.eq(self.stop & ~issuing)

        # Words from the buffer: ``held`` is the word read in the previous cycle (it holds while not taken).
        address = Signal(range(self.depth))
        run = _Runs("run", [transfer], [size])
        words_left = Signal(len(transfer.words))
        new_run, held, take = Signal(init=0), Signal(), Signal()
        reading = Signal()
        m.d.comb += [self.read_address.eq((self.bank << len(address)) | address),
                     self.read_enable.eq(reading & (~held | take) & ~paused)]
        with m.If(self.read_enable):
            m.d.sync += [held.eq(1), address.eq(address + 1)]
        with m.Elif(take):
            m.d.sync += held.eq(0)
        with m.If(starting):
            m.d.sync += [reading.eq(1), address.eq(0), held.eq(0), new_run.eq(1)]
            run.first(m.d.sync)

        # Beats: words placed at their lanes, sent when the beat is full or the run ends.
        beat = Signal(memory_write_layout())
        full = Signal()
        lane = Signal(4)
        part = Signal(range(max(size // MEMORY_BEAT_BYTES, 1)))  # a wide word's beat being sent
        m.d.comb += [self.data.valid.eq(full), self.data.payload.eq(beat)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [full.eq(0), beat.strobe.eq(0)]
        with m.If(starting):  # nothing an earlier, stopped store left
            m.d.sync += [full.eq(0), beat.strobe.eq(0)]
            if len(part):  # words wider than a beat
                m.d.sync += part.eq(0)
        last_word = Signal()  # words_left == 1, registered as the count is set or stepped
        ending_run = Signal()
        m.d.comb += ending_run.eq(take & last_word)
        # A stop with every run asked for placed (``halted``) ends the sending. From the stop on, no word of a run
        # without a request goes into a beat: ``paused`` holds the words back while the runs placed reach the runs
        # asked for. Their compare is a register (``caught_up``), so no counter compare sits in front of the word
        # path; a cycle late is safe, as the runs placed reach the runs asked for only as a run ends, and the next
        # cycle starts a run, which takes no word.
        caught_up = Signal()
        m.d.comb += [halted.eq(stopped & (sent == asked)), paused.eq(self.stop & caught_up)]
        m.d.sync += caught_up.eq(sent >= asked)
        with m.If(sending & new_run):
            m.d.sync += [new_run.eq(0), lane.eq(run.first_lane()), words_left.eq(transfer.words),
                         last_word.eq(transfer.words == 1)]
        with m.Elif(sending & held & (~full | self.data.ready) & ~paused):
            if size < MEMORY_BEAT_BYTES:
                lanes = MEMORY_BEAT_BYTES // size
                lane_bits = (lanes - 1).bit_length()
                strobe = (1 << size) - 1
                m.d.comb += take.eq(1)
                m.d.sync += [beat.data.word_select(lane[:lane_bits], size * 8).eq(self.read_data),
                             beat.strobe.word_select(lane[:lane_bits], size).eq(strobe), lane.eq(lane + 1)]
                with m.If(last_word | (lane[:lane_bits] == lanes - 1)):
                    m.d.sync += full.eq(1)
                # the strobes of the lanes not written this beat stay 0 (cleared when the last beat went)
            else:
                beats = size // MEMORY_BEAT_BYTES
                padded = Signal(size * 8)
                m.d.comb += padded.eq(self.read_data)
                m.d.sync += [beat.data.eq(padded.word_select(part, 128)), beat.strobe.eq(-1), full.eq(1)]
                if beats == 1:
                    m.d.comb += take.eq(1)
                else:
                    m.d.comb += take.eq(part == beats - 1)
                    m.d.sync += part.eq(Mux(part == beats - 1, 0, part + 1))
        with m.If(take):
            m.d.sync += [words_left.eq(words_left - 1), last_word.eq(words_left == 2)]
        with m.If(ending_run):
            m.d.sync += [new_run.eq(1), sent.eq(sent + 1)]
            run.step(m, m.d.sync)
            with m.If(run.last_run):
                m.d.sync += [sending.eq(0), reading.eq(0)]
        with m.If(halted & ~ending_run):  # every run asked for has its beats
            m.d.sync += [sending.eq(0), reading.eq(0)]

        # Responses: one per request; done after the last, once the last beat has gone.
        answered = Signal(len(transfer.segments) + 1)
        expected = Signal.like(answered)
        m.d.comb += expected.eq(Mux(stopped, asked, transfer.segments))
        m.d.comb += self.response.ready.eq(answering & (answered != expected))
        with m.If(starting):
            m.d.sync += answered.eq(0)
        with m.If(self.response.valid & self.response.ready):
            m.d.sync += answered.eq(answered + 1)
            with m.If(self.response.payload.error):
                m.d.sync += self.error.eq(1)
        finishing = Signal()
        m.d.comb += finishing.eq(answering & ~starting & (answered == expected) & ~sending & ~full)
        with m.If(finishing):
            m.d.sync += answering.eq(0)
        m.d.sync += self.done.eq(finishing)
        return m
