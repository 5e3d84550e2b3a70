"""cocotb tests of the stream accumulator defined in ``tests/test_sim_runner.py``.

Parameters (``load_params()``): ``value_width``; ``groups`` (lists of signed inputs, each closed by
``last``) and ``expected`` (their sums, from the Python model); ``seed``, ``idle`` and ``stall`` for random
back-pressure. The ``full_rate`` test sends ``groups`` with no back-pressure and checks the documented
throughput (one input per cycle) and latency (one cycle) as well as the sums.
"""

import random

import cocotb
from amaranth import signed
from amaranth.lib import data
from cocotb.simtime import get_sim_time

from esb_hw.layouts import pack
from esb_hw.sim import load_params
from esb_hw.sim.cocotb_helpers import CLOCK_PERIOD_NS, reset, start_clock
from esb_hw.sim.streams import StreamSink, StreamSource


def input_layout(value_width: int) -> data.StructLayout:
    """The accumulator's input beat (the design in tests/test_sim_runner.py declares its port with this)."""
    return data.StructLayout({"value": signed(value_width), "last": 1})


def _payloads(groups: list[list[int]], value_width: int) -> list[int]:
    layout = input_layout(value_width)
    return [pack(layout, {"value": value, "last": int(index == len(group) - 1)})
            for group in groups for index, value in enumerate(group)]


async def _start(dut) -> tuple[StreamSource, StreamSink, dict]:
    params = load_params()
    source, sink = StreamSource(dut, "i"), StreamSink(dut, "o")
    start_clock(dut)
    await reset(dut)
    return source, sink, params


@cocotb.test()
async def sums_under_backpressure(dut):
    source, sink, params = await _start(dut)
    seed = params["seed"]
    cocotb.start_soon(source.put_many(_payloads(params["groups"], params["value_width"]), rng=random.Random(seed),
                                      idle=params["idle"]))
    sums = await sink.get_many(len(params["expected"]), rng=random.Random(seed + 1), stall=params["stall"],
                               signed=True)
    assert sums == params["expected"], f"sums {sums} != expected {params['expected']}"


@cocotb.test()
async def full_rate(dut):
    source, sink, params = await _start(dut)
    payloads = _payloads(params["groups"], params["value_width"])
    started = get_sim_time(unit="ns")
    cocotb.start_soon(source.put_many(payloads))
    sums = await sink.get_many(len(params["expected"]), signed=True)
    cycles = round((get_sim_time(unit="ns") - started) / CLOCK_PERIOD_NS)
    assert sums == params["expected"], f"sums {sums} != expected {params['expected']}"
    # One input per cycle, and the last sum is taken one cycle after the last input.
    assert cycles == len(payloads) + 1, f"{len(payloads)} inputs took {cycles} cycles"
