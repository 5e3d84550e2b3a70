"""The layer engine's sequencer: conv2d and linear layers become array beats and weight loads, by address
generation from on-chip buffers (the loop nest of :mod:`esb_hw.compiler.lowering`).

Two walkers share the layer's :func:`~esb_hw.layouts.geometry_layout`:

- the **beat walker** goes row block by row block, pixel block by pixel block, and for each chunk ``(ky, kx, g)``
  through the block's pixels. It reads activation word ``P + K`` (or sends zeros for padding) and emits the
  beat with its ``entry`` (the pixel's place in the block), ``swap`` (the block's first pixel), ``first`` (the first
  chunk) and ``last`` (the last chunk). Pixel offsets ``P`` and coordinates ``Y``, ``X`` step by the geometry's
  precomputed deltas, so the hardware adds but never multiplies;
- the **weight walker** reads the same sequence of weight chunks, ``rows`` buffer words each, and loads them into
  the array's shadow bank. It loads chunk ``n`` only after chunk ``n - 1`` has been swapped in, and the beat
  walker starts chunk ``n`` only after its loads: the next chunk loads while the current one computes.
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...config import AcceleratorConfig
from ...layouts import GEOMETRY_ADDRESS_BITS, geometry_layout, stationary_input_layout, weight_row_layout
from ..checks import require_instance, require_int

__all__ = ["Sequencer"]


def _pick(m: Module, target, choices, name: str):
    """``target``'s next value from ``choices`` (``(select, value)`` pairs, exactly one select high): a parallel
    AND-OR, so no priority chain of multiplexers sits in front of the register."""
    parts = []
    for index, (select, value) in enumerate(choices):
        candidate = Signal.like(target, name=f"{name}_choice_{index}")
        m.d.comb += candidate.eq(value)
        parts.append(Mux(select, candidate, 0))
    return reduce(operator.or_, parts)


def _assign(domain, state, values) -> None:
    domain += [register.eq(value) for register, value in zip(state, values, strict=True)]


def _choose(m: Module, state, choices, name: str) -> list:
    """The next value of each register of ``state`` from ``choices`` (``(select, values)`` pairs, the values in
    ``state``'s order, exactly one select high)."""
    return [_pick(m, register, [(select, values[index]) for select, values in choices], f"{name}_{index}")
            for index, register in enumerate(state)]


def _named(m: Module, value, name: str):
    """``value`` as a named wire: the walkers' decisions are formed once from their flags, then fan out."""
    wire = Signal(len(value), name=name)
    m.d.comb += wire.eq(value)
    return wire


class _Limit:
    """One of the geometry's counts, registered at the start as ``last`` (the count minus one) and ``penultimate``
    (minus two), with ``single`` (the count is one) straight from the steady geometry."""

    def __init__(self, m: Module, count, starting, name: str):
        self.last = Signal(len(count), name=f"last_{name}")
        self.penultimate = Signal(len(count), name=f"penultimate_{name}")
        self.single = count == 1
        with m.If(starting):
            m.d.sync += [self.last.eq(count - 1), self.penultimate.eq(count - 2)]


class _Lasts:
    """The geometry's counts as :class:`_Limit` s, shared by both walkers."""

    def __init__(self, m: Module, geometry, starting):
        self.limits = [_Limit(m, limit, starting, f"limit_{index}") for index, limit in enumerate(geometry.limits)]
        self.kernel_h = _Limit(m, geometry.kernel_h, starting, "kernel_h")
        self.kernel_w = _Limit(m, geometry.kernel_w, starting, "kernel_w")
        self.groups = _Limit(m, geometry.groups, starting, "groups")
        self.row_blocks = _Limit(m, geometry.row_blocks, starting, "row_blocks")
        self.pixel_blocks = _Limit(m, geometry.pixel_blocks, starting, "pixel_blocks")
        self.block = _Limit(m, geometry.block, starting, "block")


class _Count:
    """A counter from 0 to a :class:`_Limit`'s ``last`` with a registered ``at_last`` flag, set a cycle ahead
    (``value == penultimate`` as it steps): the walkers decide on flip-flops, not on wide compares."""

    def __init__(self, limit: _Limit, name: str, width: int | None = None):
        self.limit = limit
        self.value = Signal(width or len(limit.last), name=name)
        self.at_last = Signal(name=f"{name}_at_last")

    @property
    def state(self):
        return [self.value, self.at_last]

    def cleared(self):
        return [0, self.limit.single]

    def stepped(self):
        return [self.value + 1, self.value == self.limit.penultimate]

    def clear(self, domain):
        _assign(domain, self.state, self.cleared())

    def step(self, domain):
        _assign(domain, self.state, self.stepped())


def _update(m: Module, domain, state, choices, name: str) -> list:
    """Each register of ``state`` takes its value from :func:`_choose`; returns the next values."""
    values = _choose(m, state, choices, name)
    _assign(domain, state, values)
    return values


class _Walk:
    """The output-pixel walk: four counters, the word offset ``P`` and the coordinates ``Y``, ``X``."""

    def __init__(self, name: str, geometry, lasts: _Lasts):
        self.name = name
        self.geometry = geometry
        self.counters = [_Count(limit, f"{name}_counter_{index}") for index, limit in enumerate(lasts.limits)]
        self.p = Signal(signed(GEOMETRY_ADDRESS_BITS), name=f"{name}_p")
        self.y = Signal(signed(len(geometry.y_steps[0])), name=f"{name}_y")
        self.x = Signal(signed(len(geometry.x_steps[0])), name=f"{name}_x")

    @property
    def state(self):
        return [*(part for counter in self.counters for part in counter.state), self.p, self.y, self.x]

    def origin(self):
        geometry = self.geometry
        return [*(part for counter in self.counters for part in counter.cleared()), geometry.p_origin,
                -geometry.pad_top, -geometry.pad_left]

    @staticmethod
    def at_end(values):
        """Whether ``values`` (in :attr:`state`'s order) is the walk's last pixel: every counter's flag set."""
        return Cat(*values[1:8:2]).all()

    def stepped(self, m: Module):
        """The next pixel's state (the innermost counter that can step steps; the ones inside it wrap), as
        wires: the step's level is decided once, one-hot, from the counters' flags."""
        flags = [counter.at_last for counter in self.counters]
        levels = [_named(m, Cat(*flags[1:]).all(), f"{self.name}_level_0")]
        levels += [_named(m, ~flags[level] & Cat(*flags[level + 1:]).all(), f"{self.name}_level_{level}")
                   for level in (1, 2)]
        levels.append(_named(m, ~flags[3], f"{self.name}_level_3"))
        result = []
        for index, counter in enumerate(self.counters):
            inner = Cat(*levels[index + 1:]).any()  # a counter inside this one steps: this one holds
            outer = Cat(*levels[:index]).any()  # a counter outside this one steps: this one wraps
            choices = [(levels[index], counter.stepped())]
            if index < 3:
                choices.append((inner, counter.state))
            if index > 0:
                choices.append((outer, counter.cleared()))
            result += _choose(m, counter.state, choices, f"{self.name}_next_{index}")
        geometry = self.geometry
        # The four sums are formed in parallel with the level's decision, which then only selects one.
        for register, steps in ((self.p, geometry.p_steps), (self.y, geometry.y_steps), (self.x, geometry.x_steps)):
            result.append(_pick(m, register, [(levels[level], register + steps[level]) for level in range(4)],
                                f"{register.name}_sum"))
        return result


class _Chunks:
    """The chunk counters ``(ky, kx, g)`` (``g`` innermost) and, optionally, the kernel offset ``K``; ``first`` and
    the counters' ``at_last`` flags are registers."""

    def __init__(self, name: str, geometry, lasts: _Lasts, with_offset: bool):
        self.name = name
        self.geometry = geometry
        self.ky = _Count(lasts.kernel_h, f"{name}_ky", 3)
        self.kx = _Count(lasts.kernel_w, f"{name}_kx", 3)
        self.g = _Count(lasts.groups, f"{name}_g")
        self.is_first = Signal(name=f"{name}_first")
        self.k = Signal(signed(GEOMETRY_ADDRESS_BITS), name=f"{name}_k") if with_offset else None

    @property
    def state(self):
        return [*self.ky.state, *self.kx.state, *self.g.state, self.is_first,
                *([self.k] if self.k is not None else [])]

    def first(self):
        return self.is_first

    def last(self):
        return self.at_last(self.state)

    def origin(self):
        return [*self.ky.cleared(), *self.kx.cleared(), *self.g.cleared(), 1, *([0] if self.k is not None else [])]

    @staticmethod
    def at_last(values):
        """Whether ``values`` (in :attr:`state`'s order) is the last chunk: every counter's flag set."""
        return values[1] & values[3] & values[5]

    def stepped(self, m: Module):
        """The next chunk's state: ``g`` steps, else ``kx`` (``g`` wraps), else ``ky`` (both wrap)."""
        geometry = self.geometry
        g_steps = _named(m, ~self.g.at_last, f"{self.name}_g_steps")
        kx_steps = _named(m, self.g.at_last & ~self.kx.at_last, f"{self.name}_kx_steps")
        ky_steps = _named(m, self.g.at_last & self.kx.at_last, f"{self.name}_ky_steps")
        values = []
        for counter, choices in (
                (self.ky, [(ky_steps, self.ky.stepped()), (~ky_steps, self.ky.state)]),
                (self.kx, [(kx_steps, self.kx.stepped()), (ky_steps, self.kx.cleared()), (g_steps, self.kx.state)]),
                (self.g, [(g_steps, self.g.stepped()), (~g_steps, self.g.cleared())])):
            values += _choose(m, counter.state, choices, f"{counter.value.name}_next")
        values.append(0)
        if self.k is not None:
            values.append(_pick(m, self.k, [(g_steps, self.k + geometry.group_step),
                                            (kx_steps, self.k + geometry.kx_step),
                                            (ky_steps, self.k + geometry.ky_step)], f"{self.name}_k_sum"))
        return values

    def reset(self, domain):
        _assign(domain, self.state, self.origin())

    def step(self, m: Module, domain):
        _assign(domain, self.state, self.stepped(m))


class Sequencer(wiring.Component):
    """Beats and weight loads for :class:`~esb_hw.hw.core.stationary.StationaryArray` from on-chip buffers.

    Parameters
    ----------
    config : AcceleratorConfig
        The array's shape and formats.
    entries : int
        The array's running sums per row (``geometry.block`` must not exceed it), ``2..64``.
    activation_words, weight_words : int
        Depths of the activation buffer (words of ``cols`` codes) and the weight buffer (words of ``cols``
        weights, one array row of one chunk each).

    Attributes
    ----------
    geometry : In(geometry_layout())
        The layer (:func:`esb_hw.compiler.lowering.geometry`); held steady from ``start`` to ``done``.
    start : In(1)
        Begin the layer (ignored while ``busy``).
    busy : Out(1)
    done : Out(1)
        One cycle when the last beat and the last load have been taken.
    activation_address : Out(range(activation_words)), activation_enable : Out(1), activation_data : In(word)
        A read port of the activation buffer with one cycle of latency: ``activation_data`` is the word at the
        address given with ``activation_enable`` in the previous cycle, and holds while the enable is low.
    weight_address : Out(range(weight_words)), weight_enable : Out(1), weight_data : In(word)
        The same for the weight buffer.
    beats : Out(stream.Signature(stationary_input_layout(config, entries)))
    loads : Out(stream.Signature(weight_row_layout(config)))

    Throughput: one beat per cycle while the array takes them and the weight walker keeps ahead, which it does
    when blocks have at least ``rows`` pixels; ``loads`` one per cycle.
    """

    def __init__(self, config: AcceleratorConfig, *, entries: int = 32, activation_words: int = 4096,
                 weight_words: int = 4096):
        require_instance("config", config, AcceleratorConfig)
        require_int("entries", entries, 2, 64)
        require_int("activation_words", activation_words, 2, 1 << 24)
        require_int("weight_words", weight_words, 2, 1 << 24)
        self.config = config
        self.entries = entries
        activation_word = data.ArrayLayout(config.activation_format.bits, config.cols)
        weight_word = data.ArrayLayout(config.weight_format.bits, config.cols)
        super().__init__({
            "geometry": In(geometry_layout()),
            "start": In(1), "busy": Out(1), "done": Out(1),
            "activation_address": Out(range(activation_words)), "activation_enable": Out(1),
            "activation_data": In(activation_word),
            "weight_address": Out(range(weight_words)), "weight_enable": Out(1), "weight_data": In(weight_word),
            "beats": Out(stream.Signature(stationary_input_layout(config, entries))),
            "loads": Out(stream.Signature(weight_row_layout(config))),
        })

    def elaborate(self, platform):
        m = Module()
        geometry = self.geometry
        # Chunk hand-off: ``ready`` counts chunks whose loads are all taken but whose pass the beat walker has not
        # started; ``unswapped`` chunks whose last load is issued but which are not yet swapped into the array
        # (their first beat not yet taken): the shadow bank is busy. Each is 0 or 1.
        ready, unswapped = Signal(2), Signal(2)
        loaded, issued, started, swapped = Signal(), Signal(), Signal(), Signal()
        m.d.comb += swapped.eq(self.beats.valid & self.beats.ready & self.beats.payload.swap)
        m.d.sync += [ready.eq(ready + loaded - started), unswapped.eq(unswapped + issued - swapped)]
        beats_running, loads_running = Signal(), Signal()
        m.d.comb += self.busy.eq(beats_running | loads_running | self.beats.valid | self.loads.valid)
        starting = Signal()
        m.d.comb += starting.eq(self.start & ~self.busy)
        finishing = Signal(init=0)
        m.d.sync += finishing.eq(self.busy)
        m.d.comb += self.done.eq(finishing & ~self.busy)
        lasts = _Lasts(m, geometry, starting)
        self._beat_walker(m, geometry, lasts, starting, beats_running, ready, started)
        self._weight_walker(m, geometry, lasts, starting, loads_running, unswapped, loaded, issued)
        return m

    def _beat_walker(self, m: Module, geometry, lasts, starting, running, ready, started):
        walk, block_start = _Walk("walk", geometry, lasts), _Walk("block", geometry, lasts)
        chunks = _Chunks("beat", geometry, lasts, with_offset=True)
        row_block = _Count(lasts.row_blocks, "beat_row_block")
        entry_count = _Count(lasts.block, "entry", len(range(self.entries)))
        entry = entry_count.value
        entry_first = Signal()  # entry == 0, registered
        # The walk's and the chunks' ends are registers too, set from the next values of their counters' flags.
        walk_end, chunk_last = Signal(name="walk_end"), Signal(name="chunk_last")
        layout = stationary_input_layout(self.config, self.entries)
        # Stage 1: the next beat's address and flags; stage 2: the beat, while the buffer reads its word.
        address = Signal(len(self.activation_address))
        flags = Signal(layout)
        padding, valid = Signal(), Signal()
        held = Signal(layout)
        held_padding, held_valid = Signal(), Signal()
        m.d.comb += [self.beats.valid.eq(held_valid), self.beats.payload.eq(held)]
        m.d.comb += self.beats.payload.activations.eq(Mux(held_padding, 0, self.activation_data))

        advance, fire = Signal(), Signal()
        m.d.comb += [advance.eq(~held_valid | self.beats.ready),
                     fire.eq(running & advance & (~entry_first | (ready != 0))),
                     started.eq(fire & entry_first),
                     self.activation_address.eq(address), self.activation_enable.eq(advance & valid & ~padding)]
        with m.If(advance):
            m.d.sync += [held_valid.eq(valid), held.eq(flags), held_padding.eq(padding), valid.eq(fire)]

        row = walk.y + chunks.ky.value
        column = walk.x + chunks.kx.value
        with m.If(fire):
            m.d.sync += [address.eq((walk.p + chunks.k)[: len(address)]),
                         padding.eq((row < 0) | (row >= geometry.in_height) | (column < 0)
                                    | (column >= geometry.in_width)),
                         flags.entry.eq(entry), flags.swap.eq(entry_first), flags.first.eq(chunks.first()),
                         flags.last.eq(chunk_last)]

        # What the next fire does, decided once from registered flags (one-hot): the next pixel of the pass; the
        # same pixels again with the next chunk; the next pixel block (from the walk's next pixel); the next row
        # block (the walk again); or the end.
        end_of_pass = _named(m, entry_count.at_last | walk_end, "beat_end_of_pass")
        next_pixel = _named(m, ~end_of_pass, "beat_next_pixel")
        next_chunk = _named(m, end_of_pass & ~chunk_last, "beat_next_chunk")
        next_block = _named(m, end_of_pass & chunk_last & ~walk_end, "beat_next_block")
        next_row_block = _named(m, end_of_pass & chunk_last & walk_end & ~row_block.at_last, "beat_next_row_block")
        finish = _named(m, end_of_pass & chunk_last & walk_end & row_block.at_last, "beat_finish")
        walk_stepped = walk.stepped(m)
        with m.If(starting):
            m.d.sync += [running.eq(1), entry_first.eq(1)]
            row_block.clear(m.d.sync)
            entry_count.clear(m.d.sync)
            for unit in (walk, block_start, chunks):
                _assign(m.d.sync, unit.state, unit.origin())
            m.d.sync += [walk_end.eq(_Walk.at_end(walk.origin())), chunk_last.eq(_Chunks.at_last(chunks.origin()))]
        with m.If(fire):
            _update(m, m.d.sync, entry_count.state,
                    [(next_pixel, entry_count.stepped()), (~next_pixel, entry_count.cleared())], "entry")
            walk_next = _update(m, m.d.sync, walk.state, [(next_pixel | next_block | finish, walk_stepped),
                                                          (next_chunk, block_start.state),
                                                          (next_row_block, walk.origin())], "walk")
            m.d.sync += walk_end.eq(_Walk.at_end(walk_next))
            _update(m, m.d.sync, block_start.state,
                    [(next_block, walk_stepped), (next_row_block, block_start.origin()),
                     (~next_block & ~next_row_block, block_start.state)], "block")
            chunks_next = _update(m, m.d.sync, chunks.state,
                                  [(next_chunk, chunks.stepped(m)), (next_block | next_row_block, chunks.origin()),
                                   (next_pixel | finish, chunks.state)], "chunks")
            m.d.sync += chunk_last.eq(_Chunks.at_last(chunks_next))
            _update(m, m.d.sync, row_block.state,
                    [(next_row_block, row_block.stepped()), (~next_row_block, row_block.state)], "row_block")
            m.d.sync += entry_first.eq(~next_pixel)
            with m.If(finish):
                m.d.sync += running.eq(0)

    def _weight_walker(self, m: Module, geometry, lasts, starting, running, unswapped, loaded, issued):
        rows = self.config.rows
        chunks = _Chunks("load", geometry, lasts, with_offset=False)
        row_block = _Count(lasts.row_blocks, "load_row_block")
        pixel_block = _Count(lasts.pixel_blocks, "pixel_block")
        row = Signal(range(rows))
        address = Signal(len(self.weight_address))
        row_block_base = Signal(len(self.weight_address))
        held_row = Signal(range(rows))
        held_valid = Signal()
        m.d.comb += [self.loads.valid.eq(held_valid), self.loads.payload.row.eq(held_row),
                     self.loads.payload.weights.eq(self.weight_data)]
        advance, fire = Signal(), Signal()
        m.d.comb += [advance.eq(~held_valid | self.loads.ready),
                     fire.eq(running & advance & (unswapped == 0)),
                     self.weight_address.eq(address), self.weight_enable.eq(fire)]
        with m.If(advance):
            m.d.sync += held_valid.eq(fire)
        # A chunk is issued when its last row is read, and loaded when that row is taken.
        m.d.comb += [issued.eq(fire & (row == rows - 1)),
                     loaded.eq(self.loads.valid & self.loads.ready & (held_row == rows - 1))]
        with m.If(starting):
            m.d.sync += [running.eq(1), row.eq(0), address.eq(0), row_block_base.eq(0)]
            row_block.clear(m.d.sync)
            pixel_block.clear(m.d.sync)
            chunks.reset(m.d.sync)
        with m.If(fire):
            m.d.sync += [held_row.eq(row), address.eq(address + 1)]
            with m.If(row != rows - 1):
                m.d.sync += row.eq(row + 1)
            with m.Else():
                m.d.sync += row.eq(0)
                with m.If(~chunks.last()):
                    chunks.step(m, m.d.sync)
                with m.Elif(~pixel_block.at_last):  # the same chunks for the next block
                    chunks.reset(m.d.sync)
                    pixel_block.step(m.d.sync)
                    m.d.sync += address.eq(row_block_base)
                with m.Elif(~row_block.at_last):
                    chunks.reset(m.d.sync)
                    pixel_block.clear(m.d.sync)
                    row_block.step(m.d.sync)
                    m.d.sync += row_block_base.eq(address + 1)
                with m.Else():
                    m.d.sync += running.eq(0)
