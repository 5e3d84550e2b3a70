"""cocotb run of :class:`esb_hw.hw.core.engine.Engine` on its emitted Verilog, against
:class:`esb_hw.sim.memory.MemoryModel`.

Parameters (``load_params()``): ``image`` (hex) placed at ``base`` in a memory of ``memory_size`` bytes, the
engine's memory window ``window`` (bytes), ``program_address``, ``program_length``, ``layers`` (per-layer counters
to read), ``seed``, ``latency`` (``[low, high]``), ``stall``, ``bad_beats``, ``max_cycles`` and ``progress_file``
(where the count of finished tiles is written as it grows, or "").
It writes ``memory.bin`` (the memory after the run) and ``status.json`` (the engine's status and counters) into
the run directory; the Python side (:func:`esb_hw.sim.engine.run_engine_rtl`) compares them with the golden model.
"""

import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from esb_hw.sim import PARAMS_ENV, load_params
from esb_hw.sim.cocotb_helpers import reset, start_clock
from esb_hw.sim.memory import MemoryModel


@cocotb.test()
async def run_program(dut):
    params = load_params()
    run_dir = Path(os.environ[PARAMS_ENV]).parent
    memory = MemoryModel(params["memory_size"], rng=random.Random(params["seed"]), latency=tuple(params["latency"]),
                         stall=params["stall"], bad_beats=set(params["bad_beats"]))
    memory.write_bytes(params["base"], bytes.fromhex(params["image"]))
    dut.start.value = 0
    dut.layer_select.value = 0
    for name in ("abort", "read_refused", "write_refused"):  # no abort here, and no bus guard: driven low
        getattr(dut, name).value = 0
    start_clock(dut)
    await reset(dut)
    cocotb.start_soon(memory.serve_cocotb(dut))
    dut.program_address.value = params["program_address"]
    dut.program_length.value = params["program_length"]
    dut.memory_size.value = params["window"]
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    done = False
    tiles = 0
    progress = Path(params["progress_file"]) if params.get("progress_file") else None
    for cycle in range(params["max_cycles"]):
        await RisingEdge(dut.clk)
        await ReadOnly()
        if progress is not None and cycle % 1024 == 0 and int(dut.tiles_done.value) != tiles:
            tiles = int(dut.tiles_done.value)
            progress.write_text(str(tiles))
        if int(dut.done.value):
            done = True
            break
    await RisingEdge(dut.clk)
    status = {name: int(getattr(dut, name).value) for name in
              ("cycles", "error", "error_detail", "failed_descriptor", "tiles_done", "beats_read", "beats_written")}
    counters = []
    for layer in range(params["layers"]):
        dut.layer_select.value = layer
        await RisingEdge(dut.clk)
        await RisingEdge(dut.clk)
        await ReadOnly()
        counters.append(int(dut.layer_cycles.value))
        await RisingEdge(dut.clk)
    status.update(done=done, layer_cycles=counters, writes_seen=len(memory.writes_seen),
                  model_beats_read=memory.beats_read, model_beats_written=memory.beats_written)
    (run_dir / "memory.bin").write_bytes(bytes(memory.memory))
    (run_dir / "status.json").write_text(json.dumps(status))
    assert done, f"the engine did not finish within {params['max_cycles']} cycles"
