# amaranth: UnusedElaboratable=no
"""Sequencer (esb_hw/hw/core/sequencer.py): the beats and weight loads of conv2d and linear layers, generated in
hardware from the geometry, equal the lowering's schedule (esb_hw/compiler/lowering.py) beat for beat, with
back-pressure, and every chunk is loaded before it is swapped in."""

import random

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from esb_hw.compiler.lowering import Layer, beat_sequence, geometry, load_sequence, lower
from esb_hw.compiler.program import batched_flatten
from esb_hw.config import AcceleratorConfig
from esb_hw.errors import ParameterError
from esb_hw.hw.core.sequencer import Sequencer
from esb_hw.layouts import geometry_layout, pack
from esb_hw.quant import golden
from esb_hw.sim.streams import get

CONFIG = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=8, activation_k=8, rows=4, cols=4,
                           max_reduction=4096, name="small")
WORDS = 2048


class Harness(wiring.Component):
    """The sequencer with buffers whose word ``i`` holds ``i + 1`` (so a beat names the word it read, and zeros
    mean padding)."""

    def __init__(self, config, entries):
        self.sequencer = Sequencer(config, entries=entries, activation_words=WORDS, weight_words=WORDS)
        self.config = config
        super().__init__({"geometry": In(geometry_layout()), "start": In(1), "busy": Out(1), "done": Out(1),
                          "beats": Out(self.sequencer.beats.signature.flip().flip()),
                          "loads": Out(self.sequencer.loads.signature.flip().flip())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.sequencer = sequencer = self.sequencer
        config = self.config
        for name, bits in (("activation", config.activation_format.bits), ("weight", config.weight_format.bits)):
            word = data.ArrayLayout(bits, config.cols)
            init = [(index + 1) & ((1 << word.size) - 1) for index in range(WORDS)]
            memory = Memory(shape=word.size, depth=WORDS, init=init)
            m.submodules[f"{name}_buffer"] = memory
            port = memory.read_port()
            m.d.comb += [port.addr.eq(getattr(sequencer, f"{name}_address")),
                         port.en.eq(getattr(sequencer, f"{name}_enable")),
                         getattr(sequencer, f"{name}_data").as_value().eq(port.data)]
        wiring.connect(m, wiring.flipped(self.beats), sequencer.beats)
        wiring.connect(m, wiring.flipped(self.loads), sequencer.loads)
        m.d.comb += [sequencer.geometry.eq(self.geometry), sequencer.start.eq(self.start),
                     self.busy.eq(sequencer.busy), self.done.eq(sequencer.done)]
        return m


def word_index(value, bits, cols):
    packed = 0
    for position, code in enumerate(value):
        packed |= int(code) << (bits * position)
    return packed - 1


def run(schedule, *, stall=0.0, seed=0):
    """The beats and loads the sequencer emits, with a log of (cycle, kind) for the ordering checks."""
    config = schedule.config
    harness = Harness(config, schedule.entries)
    beats, loads, log = [], [], []
    expected_beats, expected_loads = len(beat_sequence(schedule)), len(load_sequence(schedule))
    state = {"cycle": 0, "done": False}

    async def clock(ctx):
        ctx.set(harness.geometry.as_value(), pack(geometry_layout(), geometry(schedule)))
        ctx.set(harness.start, 1)
        await ctx.tick()
        ctx.set(harness.start, 0)
        while True:
            *_, done = await ctx.tick().sample(harness.done)
            state["cycle"] += 1
            if done and not state["done"]:
                state["done"] = True
                state["done_cycle"] = state["cycle"]

    async def beat_sink(ctx):
        rng = random.Random(seed)
        while len(beats) < expected_beats:
            payload = await get(ctx, harness.beats, rng=rng, stall=stall)
            word = word_index(payload.activations, config.activation_format.bits, config.cols)
            beats.append((word, payload.entry, payload.swap, payload.first, payload.last))
            log.append((state["cycle"], "swap" if payload.swap else "beat"))

    async def load_sink(ctx):
        rng = random.Random(seed + 1)
        while len(loads) < expected_loads:
            payload = await get(ctx, harness.loads, rng=rng, stall=stall)
            loads.append((word_index(payload.weights, config.weight_format.bits, config.cols), payload.row))
            log.append((state["cycle"], "load"))

    simulator = Simulator(harness)
    simulator.add_clock(1e-8)
    for process in (clock, beat_sink, load_sink):
        simulator.add_testbench(process, background=True)
    simulator.run_until(1e-8 * (10 * (expected_beats + expected_loads) + 100))
    assert len(beats) == expected_beats and len(loads) == expected_loads, "timed out"
    return beats, loads, log, state


def conv_schedule(out_channels, in_channels, kernel, stride, padding, height, width, pool, entries=8):
    rng = np.random.default_rng(out_channels + kernel)
    weights = rng.integers(0, CONFIG.weight_format.code_count, (out_channels, in_channels, kernel, kernel))
    layer = Layer("conv2d", weights, golden.requant_params(np.ones(out_channels)), CONFIG.activation_format,
                  stride=stride, padding=padding, pool=pool)
    return lower(CONFIG, layer, (in_channels, height, width), entries=entries)


CASES = [
    (4, 4, 3, 1, 1, 5, 6, False),
    (6, 5, 3, 2, 1, 7, 7, False),  # stride 2, channels that are not multiples of the array
    (4, 3, 5, 1, 2, 6, 6, True),  # pooling
    (5, 2, 1, 1, 0, 3, 7, False),
    (3, 9, 7, 2, 3, 9, 8, True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: "x".join(map(str, case[:3])) + f"s{case[3]}p{case[4]}")
def test_beats_and_loads_follow_the_schedule(case):
    schedule = conv_schedule(*case)
    beats, loads, _, state = run(schedule, stall=0.3, seed=sum(case))
    want = [(word if word >= 0 else -1, *flags) for word, *flags in beat_sequence(schedule)]
    assert beats == want
    assert loads == load_sequence(schedule)
    assert state["done"]


def test_a_linear_layer():
    rng = np.random.default_rng(3)
    layer = Layer("linear", rng.integers(0, CONFIG.weight_format.code_count, (6, 10)),
                  golden.requant_params(np.ones(6)), CONFIG.activation_format)
    schedule = lower(CONFIG, layer, (11, 10), entries=4)
    beats, loads, _, _ = run(schedule)
    assert beats == beat_sequence(schedule) and loads == load_sequence(schedule)


def test_a_batchs_flatten_steps_a_whole_image():
    """The flatten of a batch of 5 stacked 3x2 images (batched_flatten): the walk's window jumps 3 rows per output
    pixel, one pixel per image."""
    rng = np.random.default_rng(4)
    layer = Layer("linear", rng.integers(0, CONFIG.weight_format.code_count, (6, 5 * 3 * 2)),
                  golden.requant_params(np.ones(6)), CONFIG.activation_format)
    schedule = batched_flatten(CONFIG, layer, (5, 3, 2), 5)
    assert schedule.input_shape == (5, 15, 2) and schedule.row_step == 3
    beats, loads, _, _ = run(schedule, stall=0.3, seed=4)
    assert beats == beat_sequence(schedule) and loads == load_sequence(schedule)


def test_every_chunk_is_loaded_before_its_swap_and_the_next_loads_overlap():
    """At full rate, chunk n's loads all come before its swap beat, and chunk n + 1's loads start as soon as
    chunk n's swap beat is taken (its shadow bank is free), while chunk n's beats still stream: with blocks of
    at least ``rows`` pixels, one beat per cycle after the first chunk's loads."""
    schedule = conv_schedule(4, 8, 3, 1, 1, 6, 8, False, entries=8)  # 48 pixels: six full blocks
    _, _, log, state = run(schedule)
    _, _, stalled_log, _ = run(schedule, stall=0.5, seed=9)  # the order holds under back-pressure too
    for kind_log in (stalled_log,):
        stalled_swaps = [cycle for cycle, kind in kind_log if kind == "swap"]
        stalled_loads = [cycle for cycle, kind in kind_log if kind == "load"]
        for index, swap in enumerate(stalled_swaps):
            assert max(stalled_loads[index * CONFIG.rows: (index + 1) * CONFIG.rows]) < swap
    rows = CONFIG.rows
    swaps = [cycle for cycle, kind in log if kind == "swap"]
    load_cycles = [cycle for cycle, kind in log if kind == "load"]
    chunks = [load_cycles[index: index + rows] for index in range(0, len(load_cycles), rows)]
    assert len(chunks) == len(swaps)
    for index, chunk_loads in enumerate(chunks):
        assert max(chunk_loads) < swaps[index]
        if index:
            assert swaps[index - 1] < min(chunk_loads) <= swaps[index - 1] + 2
    beats = len(beat_sequence(schedule))
    assert state["done_cycle"] <= beats + rows + 8, (state["done_cycle"], beats)


def test_checker_catches_a_wrong_beat():
    schedule = conv_schedule(*CASES[0])
    beats, _, _, _ = run(schedule)
    want = beat_sequence(schedule)
    beats[5] = (beats[5][0] + 1, *beats[5][1:])
    assert [index for index, (got, good) in enumerate(zip(beats, want, strict=True)) if got != good] == [5]


@pytest.mark.parametrize("kwargs, message", [
    ({"entries": 65}, "entries must be an int in 2..64, got 65"),
    ({"activation_words": 1}, "activation_words must be an int in 2..16777216, got 1"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        Sequencer(CONFIG, **kwargs)
