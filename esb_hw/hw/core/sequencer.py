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

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...config import AcceleratorConfig
from ...layouts import GEOMETRY_ADDRESS_BITS, geometry_layout, stationary_input_layout, weight_row_layout
from ..checks import require_instance, require_int

__all__ = ["Sequencer"]


class _Lasts:
    """The geometry's counts minus one, registered at the start: the walkers compare their counters with
    these, so no subtraction sits in front of a comparison."""

    def __init__(self, m: Module, geometry, starting):
        def last(value, name):
            register = Signal(len(value), name=f"last_{name}")
            with m.If(starting):
                m.d.sync += register.eq(value - 1)
            return register

        self.limits = [last(limit, f"limit_{index}") for index, limit in enumerate(geometry.limits)]
        self.kernel_h, self.kernel_w = last(geometry.kernel_h, "kernel_h"), last(geometry.kernel_w, "kernel_w")
        self.groups, self.row_blocks = last(geometry.groups, "groups"), last(geometry.row_blocks, "row_blocks")
        self.pixel_blocks, self.block = last(geometry.pixel_blocks, "pixel_blocks"), last(geometry.block, "block")


class _Walk:
    """The output-pixel walk: four counters, the word offset ``P`` and the coordinates ``Y``, ``X``."""

    def __init__(self, name: str, geometry, lasts: _Lasts):
        self.geometry = geometry
        self.lasts = lasts
        self.counters = [Signal(len(geometry.limits[0]), name=f"{name}_counter_{i}") for i in range(4)]
        self.p = Signal(signed(GEOMETRY_ADDRESS_BITS), name=f"{name}_p")
        self.y = Signal(signed(len(geometry.y_steps[0])), name=f"{name}_y")
        self.x = Signal(signed(len(geometry.x_steps[0])), name=f"{name}_x")

    @property
    def state(self):
        return [*self.counters, self.p, self.y, self.x]

    def at_end(self):
        """The walk's last pixel: every counter at its limit minus one."""
        return Cat(*(counter == last for counter, last in zip(self.counters, self.lasts.limits, strict=True))).all()

    def reset(self, domain):
        geometry = self.geometry
        domain += [counter.eq(0) for counter in self.counters]
        domain += [self.p.eq(geometry.p_origin), self.y.eq(-geometry.pad_top), self.x.eq(-geometry.pad_left)]

    def step(self, m: Module, domain, into: _Walk | None = None):
        """Move to the next pixel (the innermost counter that can step steps; the ones inside it wrap), or, with
        ``into``, put the next pixel there and stay."""
        lasts = self.lasts
        with m.If(self.counters[3] != lasts.limits[3]):
            self._advance(domain, 3, into or self)
        with m.Elif(self.counters[2] != lasts.limits[2]):
            self._advance(domain, 2, into or self)
        with m.Elif(self.counters[1] != lasts.limits[1]):
            self._advance(domain, 1, into or self)
        with m.Else():
            self._advance(domain, 0, into or self)

    def _advance(self, domain, level: int, target: _Walk):
        geometry = self.geometry
        if target is not self:
            domain += [target.counters[index].eq(self.counters[index]) for index in range(level)]
        domain += target.counters[level].eq(self.counters[level] + 1)
        domain += [counter.eq(0) for counter in target.counters[level + 1:]]
        domain += [target.p.eq(self.p + geometry.p_steps[level]), target.y.eq(self.y + geometry.y_steps[level]),
                   target.x.eq(self.x + geometry.x_steps[level])]


class _Chunks:
    """The chunk counters ``(ky, kx, g)`` (``g`` innermost) and, optionally, the kernel offset ``K``."""

    def __init__(self, name: str, geometry, lasts: _Lasts, with_offset: bool):
        self.geometry = geometry
        self.lasts = lasts
        self.ky = Signal(3, name=f"{name}_ky")
        self.kx = Signal(3, name=f"{name}_kx")
        self.g = Signal(len(geometry.groups), name=f"{name}_g")
        self.k = Signal(signed(GEOMETRY_ADDRESS_BITS), name=f"{name}_k") if with_offset else None

    def first(self):
        return (self.ky == 0) & (self.kx == 0) & (self.g == 0)

    def last(self):
        lasts = self.lasts
        return (self.ky == lasts.kernel_h) & (self.kx == lasts.kernel_w) & (self.g == lasts.groups)

    def reset(self, domain):
        domain += [self.ky.eq(0), self.kx.eq(0), self.g.eq(0)]
        if self.k is not None:
            domain += self.k.eq(0)

    def step(self, m: Module, domain):
        geometry, lasts = self.geometry, self.lasts
        with m.If(self.g != lasts.groups):
            domain += self.g.eq(self.g + 1)
            if self.k is not None:
                domain += self.k.eq(self.k + geometry.group_step)
        with m.Elif(self.kx != lasts.kernel_w):
            domain += [self.g.eq(0), self.kx.eq(self.kx + 1)]
            if self.k is not None:
                domain += self.k.eq(self.k + geometry.kx_step)
        with m.Else():
            domain += [self.g.eq(0), self.kx.eq(0), self.ky.eq(self.ky + 1)]
            if self.k is not None:
                domain += self.k.eq(self.k + geometry.ky_step)


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
        row_block = Signal(len(geometry.row_blocks))
        entry = Signal(range(self.entries))
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
                     fire.eq(running & advance & ((entry != 0) | (ready != 0))),
                     started.eq(fire & (entry == 0)),
                     self.activation_address.eq(address), self.activation_enable.eq(advance & valid & ~padding)]
        with m.If(advance):
            m.d.sync += [held_valid.eq(valid), held.eq(flags), held_padding.eq(padding), valid.eq(fire)]

        row = walk.y + chunks.ky
        column = walk.x + chunks.kx
        with m.If(fire):
            m.d.sync += [address.eq((walk.p + chunks.k)[: len(address)]),
                         padding.eq((row < 0) | (row >= geometry.in_height) | (column < 0)
                                    | (column >= geometry.in_width)),
                         flags.entry.eq(entry), flags.swap.eq(entry == 0), flags.first.eq(chunks.first()),
                         flags.last.eq(chunks.last())]

        end_of_pass = (entry == lasts.block) | walk.at_end()
        with m.If(starting):
            m.d.sync += [running.eq(1), row_block.eq(0), entry.eq(0)]
            walk.reset(m.d.sync)
            block_start.reset(m.d.sync)
            chunks.reset(m.d.sync)
        with m.If(fire):
            with m.If(~end_of_pass):
                m.d.sync += entry.eq(entry + 1)
                walk.step(m, m.d.sync)
            with m.Else():
                m.d.sync += entry.eq(0)
                with m.If(~chunks.last()):  # the same pixels again, with the next chunk
                    chunks.step(m, m.d.sync)
                    m.d.sync += [now.eq(then) for now, then in zip(walk.state, block_start.state, strict=True)]
                with m.Elif(~walk.at_end()):  # the next pixel block starts at the walk's next pixel
                    chunks.reset(m.d.sync)
                    walk.step(m, m.d.sync)
                    walk.step(m, m.d.sync, into=block_start)
                with m.Elif(row_block != lasts.row_blocks):  # the next row block: the walk again
                    chunks.reset(m.d.sync)
                    m.d.sync += row_block.eq(row_block + 1)
                    walk.reset(m.d.sync)
                    block_start.reset(m.d.sync)
                with m.Else():
                    m.d.sync += running.eq(0)

    def _weight_walker(self, m: Module, geometry, lasts, starting, running, unswapped, loaded, issued):
        rows = self.config.rows
        chunks = _Chunks("load", geometry, lasts, with_offset=False)
        row_block = Signal(len(geometry.row_blocks))
        pixel_block = Signal(len(geometry.pixel_blocks))
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
            m.d.sync += [running.eq(1), row_block.eq(0), pixel_block.eq(0), row.eq(0), address.eq(0),
                         row_block_base.eq(0)]
            chunks.reset(m.d.sync)
        with m.If(fire):
            m.d.sync += [held_row.eq(row), address.eq(address + 1)]
            with m.If(row != rows - 1):
                m.d.sync += row.eq(row + 1)
            with m.Else():
                m.d.sync += row.eq(0)
                with m.If(~chunks.last()):
                    chunks.step(m, m.d.sync)
                with m.Elif(pixel_block != lasts.pixel_blocks):  # the same chunks for the next block
                    chunks.reset(m.d.sync)
                    m.d.sync += [pixel_block.eq(pixel_block + 1), address.eq(row_block_base)]
                with m.Elif(row_block != lasts.row_blocks):
                    chunks.reset(m.d.sync)
                    m.d.sync += [pixel_block.eq(0), row_block.eq(row_block + 1), row_block_base.eq(address + 1)]
                with m.Else():
                    m.d.sync += running.eq(0)
