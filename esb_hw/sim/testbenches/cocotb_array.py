"""cocotb tests of :class:`esb_hw.hw.core.array.PEArray` against the golden GEMM.

Parameters (``load_params()``): ``beats`` (packed input payloads), ``expected`` (packed output payloads, one
per tile, from :class:`esb_hw.compiler.gemm.GemmStimulus`), ``latency``, ``seed``, ``idle``, ``stall``,
``max_cycles`` (optional: the run fails, instead of hanging, if the outputs take longer); and
``results`` (optional): a file name, in the run directory (beside ``params.json``), where the received output
payloads are written as JSON.
"""

import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import SimTimeoutError, with_timeout

from esb_hw.sim import PARAMS_ENV, load_params
from esb_hw.sim.cocotb_helpers import CLOCK_PERIOD_NS, reset, start_clock
from esb_hw.sim.streams import StreamSink, StreamSource


async def _start(dut):
    params = load_params()
    source, sink = StreamSource(dut, "i", noise=random.Random(params["seed"] + 7)), StreamSink(dut, "o")
    start_clock(dut)
    await reset(dut)
    return source, sink, params


async def _receive(sink, params, **kwargs):
    """All output beats, or a failed assertion after ``max_cycles`` (a lost tile must not hang the run)."""
    limit = params.get("max_cycles", 20 * len(params["beats"]) + 2000)
    outputs = []

    async def collect():
        for _ in params["expected"]:
            outputs.append(await sink.get(**kwargs))

    try:
        await with_timeout(cocotb.start_soon(collect()), limit * CLOCK_PERIOD_NS, "ns")
    except SimTimeoutError:
        raise AssertionError(f"timed out after {limit} cycles with {len(outputs)} of {len(params['expected'])} "
                             "tiles out") from None
    return outputs


def _compare(outputs, params):
    if params.get("results"):
        (Path(os.environ[PARAMS_ENV]).parent / params["results"]).write_text(json.dumps(outputs))
    mismatches = [(tile, got, want) for tile, (got, want) in enumerate(zip(outputs, params["expected"], strict=True))
                  if got != want]
    assert not mismatches, (f"{len(mismatches)} of {len(outputs)} tiles differ, first (tile, got, want): "
                            f"{mismatches[0][0]}, {mismatches[0][1]:#x}, {mismatches[0][2]:#x}")


@cocotb.test()
async def gemm_under_backpressure(dut):
    source, sink, params = await _start(dut)
    cocotb.start_soon(source.put_many(params["beats"], rng=random.Random(params["seed"]), idle=params["idle"]))
    outputs = await _receive(sink, params, rng=random.Random(params["seed"] + 1), stall=params["stall"])
    _compare(outputs, params)


@cocotb.test()
async def gemm_full_rate(dut):
    """No back-pressure: one beat per cycle, and the last sums arrive `latency` cycles after the last beat."""
    source, sink, params = await _start(dut)
    started = get_sim_time(unit="ns")
    cocotb.start_soon(source.put_many(params["beats"]))
    outputs = await _receive(sink, params)
    cycles = round((get_sim_time(unit="ns") - started) / CLOCK_PERIOD_NS)
    _compare(outputs, params)
    expected_cycles = len(params["beats"]) + params["latency"]
    assert cycles == expected_cycles, f"{len(params['beats'])} beats took {cycles} cycles, not {expected_cycles}"
