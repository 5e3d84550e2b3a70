"""Run a compiled program on :class:`esb_hw.hw.core.engine.Engine` in Amaranth's simulator, against
:class:`esb_hw.sim.memory.MemoryModel`.

Used by ``tests/test_engine.py``; the cocotb runs on the emitted Verilog
(``esb_hw/sim/testbenches/cocotb_engine.py``) use the same memory model and the same :class:`EngineRun` record.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.sim import Simulator

from esb_hw.compiler.program import Program, read_output
from esb_hw.errors import CheckFailed
from esb_hw.hw.core.engine import Engine
from esb_hw.layouts import engine_error
from esb_hw.sim.memory import MemoryModel

__all__ = ["EngineRun", "memory_for", "run_engine", "run_engine_rtl"]


@dataclass
class EngineRun:
    """What a run left: the memory, the status and the counters."""

    memory: MemoryModel
    cycles: int
    error: int
    failed_descriptor: int
    tiles_done: int
    beats_read: int
    beats_written: int
    layer_cycles: list[int] = field(default_factory=list)
    error_detail: int = 0
    waves: Path | None = None
    #: Compute cycles per layer counted by the testbench from the layer core's ``start`` and ``done`` alone (each
    #: cycle the core holds a tile goes to the oldest tile's layer); only :func:`run_engine` fills it.
    observed_layer_cycles: list[int] | None = None
    #: Per tile, the cycles (from the start) at which the layer core took it and finished it; only
    #: :func:`run_engine` fills it.
    core_events: list[tuple[int, int]] | None = None

    def output(self, program: Program, layer: int = -1) -> np.ndarray:
        address, size = program.output_region(layer)
        return read_output(program, self.memory.read_bytes(address, size), layer)

    @property
    def error_text(self) -> str:
        return engine_error(self.error, self.error_detail)


def memory_for(program: Program, *, seed: int = 1, latency=(20, 100), stall: float = 0.2, bad_beats=(),
               spare: int = 4096) -> MemoryModel:
    """A memory model holding ``program``'s image at its base, with ``spare`` bytes after it."""
    size = program.base + len(program.image) + spare
    size += -size % 16
    memory = MemoryModel(size, rng=random.Random(seed), latency=tuple(latency), stall=stall,
                         bad_beats=set(bad_beats))
    memory.write_bytes(program.base, program.image)
    return memory


def run_engine(program: Program, memory: MemoryModel | None = None, *, descriptors: int | None = None,
               max_cycles: int | None = None, engine: Engine | None = None,
               memory_size: int | None = None) -> EngineRun:
    """Run ``program`` (or its first ``descriptors``) in a window of ``memory_size`` bytes (default: the whole
    memory model) and return the memory and the engine's counters. Raises
    :class:`~esb_hw.errors.CheckFailed`, naming the state it hung in, if the engine does not finish within
    ``max_cycles`` (default: 10 times the cycle model, plus 20,000: a watchdog that fails fast)."""
    from esb_hw.compiler.program import predicted_cycles

    if max_cycles is None:
        max_cycles = 10 * predicted_cycles(program)["cycles"] + 20_000
    memory = memory or memory_for(program)
    engine = engine or Engine(program.config)
    count = len(program.tiles) if descriptors is None else descriptors
    result, hung = {}, {}
    tile_layers = [tile.descriptor["layer"] for tile in program.tiles]
    observed = [0] * len(program.layers)
    events: list = []

    async def serve(ctx):
        await memory.serve(ctx, engine)

    async def observe_core(ctx):
        """An independent count of :attr:`EngineRun.observed_layer_cycles` from the core's ports."""
        queue, started, cycle = [], 0, 0
        async for _, _, start, done in ctx.tick().sample(engine.core.start, engine.core.done):
            if queue:
                observed[queue[0]] += 1
            if done and queue:
                queue.pop(0)
                finished = next(index for index, (_, end) in enumerate(events) if end is None)
                events[finished] = (events[finished][0], cycle)
            if start:
                queue.append(tile_layers[started])
                events.append((cycle, None))
                started += 1
            cycle += 1

    async def testbench(ctx):
        ctx.set(engine.program_address, program.program_address)
        ctx.set(engine.program_length, count)
        ctx.set(engine.memory_size, memory.size if memory_size is None else memory_size)
        ctx.set(engine.start, 1)
        await ctx.tick()
        ctx.set(engine.start, 0)
        for _ in range(max_cycles):
            *_, done = await ctx.tick().sample(engine.done)
            if done:
                break
        else:
            hung.update({name: ctx.get(getattr(engine, name)) for name in ("busy", "error", "tiles_done")})
            hung.update(quiet=memory.quiet, reads=len(memory.reads), writes=len(memory.writes),
                        responses=len(memory.responses))
            return
        for name in ("cycles", "error", "error_detail", "failed_descriptor", "tiles_done", "beats_read",
                     "beats_written"):
            result[name] = ctx.get(getattr(engine, name))
        layers = []
        for layer in range(len(program.layers)):
            ctx.set(engine.layer_select, layer)
            await ctx.tick()
            layers.append(ctx.get(engine.layer_cycles))
        result["layer_cycles"] = layers

    simulator = Simulator(engine)
    simulator.add_clock(1e-8)
    simulator.add_testbench(serve, background=True)
    simulator.add_testbench(observe_core, background=True)
    simulator.add_testbench(testbench)
    simulator.run()
    if not result:
        raise CheckFailed(f"the engine did not finish within {max_cycles:,} cycles; it hung with "
                          + ", ".join(f"{key} {value}" for key, value in hung.items())
                          + f" ({engine_error(hung['error'])}; {hung['tiles_done']} of {count} tiles stored)")
    return EngineRun(memory, **result, observed_layer_cycles=observed, core_events=events)


def run_engine_rtl(program: Program, *, simulator: str = "verilator", seed: int = 1, latency=(20, 100),
                   stall: float = 0.2, bad_beats=(), descriptors: int | None = None, max_cycles: int | None = None,
                   spare: int = 4096, waves: bool | None = None, memory_size: int | None = None,
                   progress: Callable[[int, int], None] | None = None, run_name: str | None = None) -> EngineRun:
    """Run ``program`` on the engine's emitted Verilog (``simulator``: ``verilator`` or ``icarus``) against the
    same memory model, through ``esb_hw/sim/testbenches/cocotb_engine.py``; ``progress(tiles_done, tiles)`` is
    called about twice a second. Raises :class:`~esb_hw.sim.runner.TestsFailed` if the engine does not finish
    within ``max_cycles`` (default: 4x the cycle model, plus 100,000)."""
    from esb_hw.compiler.program import predicted_cycles
    from esb_hw.sim.runner import run_cocotb_watching

    size = program.base + len(program.image) + spare
    size += -size % 16
    count = len(program.tiles) if descriptors is None else descriptors
    if max_cycles is None:
        max_cycles = 4 * predicted_cycles(program)["cycles"] + 100_000
    with tempfile.TemporaryDirectory(prefix="esb-progress-") as folder:
        progress_file = Path(folder) / "tiles"
        params = {"image": program.image.hex(), "base": program.base, "memory_size": size,
                  "window": size if memory_size is None else memory_size,
                  "program_address": program.program_address, "program_length": count,
                  "layers": len(program.layers), "seed": seed, "latency": list(latency), "stall": stall,
                  "bad_beats": sorted(bad_beats), "max_cycles": max_cycles,
                  "progress_file": str(progress_file) if progress else ""}
        config = program.config

        def report(text):
            if text.strip().isdigit():
                progress(int(text), count)

        result = run_cocotb_watching(progress_file, report if progress else None, Engine(config),
                                     "esb_hw.sim.testbenches.cocotb_engine", simulator=simulator,
                                     toplevel=f"engine_{config.name.replace('-', '_').replace('.', '_')}",
                                     params=params, waves=waves, run_name=run_name)
    status = json.loads((result.run_dir / "status.json").read_text())
    memory = MemoryModel(size)
    memory.memory[:] = (result.run_dir / "memory.bin").read_bytes()
    memory.beats_read, memory.beats_written = status["model_beats_read"], status["model_beats_written"]
    if progress:
        progress(status["tiles_done"], count)
    return EngineRun(memory, status["cycles"], status["error"], status["failed_descriptor"], status["tiles_done"],
                     status["beats_read"], status["beats_written"], status["layer_cycles"], status["error_detail"],
                     result.waves)
