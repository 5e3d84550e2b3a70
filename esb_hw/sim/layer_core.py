"""Run one layer on :class:`esb_hw.hw.core.layer.LayerCore` in Amaranth's simulator, buffers preloaded.

Used by ``tests/test_layer.py`` and ``bench/layer_perf.py``: the buffers are written through the core's write
ports (one word per cycle, not counted), the layer runs from ``start`` to ``done`` (counted), and the output
buffer is read back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from amaranth.lib import data
from amaranth.sim import Simulator

from esb_hw.compiler.lowering import BufferImages, Layer, Schedule, buffer_images, geometry, lower
from esb_hw.config import AcceleratorConfig
from esb_hw.errors import CheckFailed
from esb_hw.hw.core.layer import LayerCore
from esb_hw.layouts import geometry_layout, pack, unpack
from esb_hw.quant import golden

__all__ = ["LayerRun", "output_codes", "random_layer", "run_layer_core"]


#: A 4x4 engine with small buffers: layers tile after a few channels and pixels, and its Verilog builds fast. The
#: test and bench workload of the engine, system and driver tests.
SMALL_ENGINE_CONFIG = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=4, activation_k=4, rows=4, cols=4,
                                        name="small", activation_words=128, weight_words=128, param_words=16,
                                        output_words=32, entries=8)


def random_layer(config: AcceleratorConfig, rng: np.random.Generator, kind: str, out_channels: int,
                 in_channels: int, kernel: int = 1, stride: int = 1, padding: int = 0, pool: bool = False) -> Layer:
    """A layer of random weight codes whose requantization scales (``M``, ``S``, bias) land typical sums across
    the activation range, so that outputs mix zero, middle and saturated codes: a test or bench workload."""
    shape = (out_channels, in_channels, kernel, kernel) if kind == "conv2d" else (out_channels, in_channels)
    weights = rng.integers(0, config.weight_format.code_count, shape)
    typical = (np.sqrt(in_channels * kernel * kernel) * config.weight_format.max_level
               * config.activation_format.max_level / 4)
    scale = config.activation_format.max_level / typical * rng.uniform(0.5, 2.0, out_channels)
    params = golden.requant_params(scale, bias=rng.normal(0, typical / 4, out_channels))
    return Layer(kind, weights, params, config.activation_format, stride=stride, padding=padding, pool=pool)


@dataclass(frozen=True)
class LayerRun:
    """One simulated layer: its schedule, buffer images, the output words read back and the cycles taken."""

    schedule: Schedule
    images: BufferImages
    words: list[int]
    cycles: int


def run_layer_core(config: AcceleratorConfig, layer: Layer, activation_codes, *, entries: int = 32,
                   requant_lanes: int = 1, bank: int = 1) -> LayerRun:
    """Simulate ``layer`` on ``activation_codes`` (``(C, H, W)``, or ``(N, I)`` for linear) in buffer bank
    ``bank``, with buffers just deep enough. Raises :class:`~esb_hw.errors.CheckFailed` if the core never signals
    ``done``."""
    activation_codes = np.asarray(activation_codes)
    schedule = lower(config, layer, activation_codes.shape, entries=entries)
    images = buffer_images(schedule, activation_codes)

    def depth(count: int) -> int:
        return max(16, 1 << max(count - 1, 1).bit_length())

    config = dataclasses.replace(config, entries=entries, requant_lanes=requant_lanes,
                                 activation_words=depth(len(images.activations)),
                                 weight_words=depth(len(images.weights)), param_words=depth(len(images.params)),
                                 output_words=depth(len(images.outputs)))
    core = LayerCore(config)
    offsets = {name: bank * getattr(config, f"{name}_words") for name in ("activation", "weight", "param", "output")}
    words, cycles = [], []
    limit = 40 * schedule.beats() + 40 * len(images.outputs) * config.rows + 1000

    async def testbench(ctx):
        for name, image in (("activation", images.activations), ("weight", images.weights),
                            ("param", images.params)):
            port = getattr(core, f"{name}_write")
            ctx.set(port.enable, 1)
            for address, word in enumerate(image):
                ctx.set(port.address, offsets[name] + address)
                ctx.set(port.data.as_value(), word)
                await ctx.tick()
            ctx.set(port.enable, 0)
        ctx.set(core.geometry.as_value(), pack(geometry_layout(), geometry(schedule)))
        ctx.set(core.bank, bank)
        ctx.set(core.weight_bank, bank)
        ctx.set(core.start, 1)
        await ctx.tick()
        ctx.set(core.start, 0)
        for cycle in range(limit):
            *_, done = await ctx.tick().sample(core.done)
            if done:
                cycles.append(cycle + 1)
                break
        if not cycles:
            return
        ctx.set(core.output_enable, 1)
        for address in range(len(images.outputs)):
            ctx.set(core.output_address, offsets["output"] + address)
            await ctx.tick()
            words.append(int(ctx.get(core.output_data.as_value())))

    simulator = Simulator(core)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    if not cycles:
        raise CheckFailed(f"the layer core did not finish within {limit} cycles")
    return LayerRun(schedule, images, words, cycles[0])


def output_codes(config: AcceleratorConfig, schedule: Schedule, words) -> np.ndarray:
    """Output-buffer words as codes: ``(O, Ho', Wo')`` for a conv2d (pooled if it pools), ``(N, O)`` for linear."""
    word = data.ArrayLayout(config.activation_format.bits, config.rows)
    codes = np.array([unpack(word, value) for value in words], dtype=np.int64)
    blocks = schedule.row_blocks
    planes = codes.reshape(blocks, -1, config.rows).transpose(0, 2, 1).reshape(blocks * config.rows, -1)
    planes = planes[: schedule.layer.out_channels]
    if schedule.layer.kind == "linear":
        return planes.T
    height, width = schedule.output_size
    if schedule.layer.pool:
        height, width = height // 2, width // 2
    return planes.reshape(-1, height, width)
