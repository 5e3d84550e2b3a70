"""cocotb tests of :class:`esb_hw.hw.array.PEArray` against the golden GEMM.

Parameters (``load_params()``): ``beats`` (packed input payloads), ``expected`` (per tile, the exact sums
from ``esb_hw.quant.golden``), ``rows``, ``accumulator_bits``, ``latency``, ``seed``, ``idle``, ``stall``.
"""

import random

import cocotb
from cocotb.simtime import get_sim_time

from esb_hw.compiler.gemm import unpack_outputs
from sim import load_params
from sim.cocotb_helpers import CLOCK_PERIOD_NS, reset, start_clock
from sim.cocotb_streams import StreamSink, StreamSource, stream_get_many, stream_put_many


async def _start(dut):
    params = load_params()
    source, sink = StreamSource(dut, "i"), StreamSink(dut, "o")
    start_clock(dut)
    await reset(dut)
    return source, sink, params


def _compare(outputs, params):
    sums = [unpack_outputs(payload, params["rows"], params["accumulator_bits"]) for payload in outputs]
    mismatches = [(tile, got, want) for tile, (got, want) in enumerate(zip(sums, params["expected"], strict=True))
                  if got != want]
    assert not mismatches, f"{len(mismatches)} of {len(sums)} tiles differ, first (tile, got, want): {mismatches[0]}"


@cocotb.test()
async def gemm_under_backpressure(dut):
    source, sink, params = await _start(dut)
    cocotb.start_soon(stream_put_many(source, params["beats"], rng=random.Random(params["seed"]),
                                      idle=params["idle"]))
    outputs = await stream_get_many(sink, len(params["expected"]), rng=random.Random(params["seed"] + 1),
                                    stall=params["stall"])
    _compare(outputs, params)


@cocotb.test()
async def gemm_full_rate(dut):
    """No back-pressure: one beat per cycle, and the last sums arrive `latency` cycles after the last beat."""
    source, sink, params = await _start(dut)
    started = get_sim_time(unit="ns")
    cocotb.start_soon(stream_put_many(source, params["beats"]))
    outputs = await stream_get_many(sink, len(params["expected"]))
    cycles = round((get_sim_time(unit="ns") - started) / CLOCK_PERIOD_NS)
    _compare(outputs, params)
    expected_cycles = len(params["beats"]) + params["latency"]
    assert cycles == expected_cycles, f"{len(params['beats'])} beats took {cycles} cycles, not {expected_cycles}"
