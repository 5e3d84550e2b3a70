"""Tests of the simulation infrastructure: esb_hw.sim.runner (cocotb on Verilator and Icarus) and the stream helpers.

The design under test is a small stream accumulator defined here. It runs under cocotb on both simulators
(esb_hw/sim/testbenches/cocotb_accumulator.py) and under Amaranth's simulator (esb_hw/sim/streams.py), and is checked
against a Python model each time.
"""

import random

import pytest
from amaranth import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from esb_hw.sim import runner
from esb_hw.sim.pytest_helpers import simulate, simulators
from esb_hw.sim.streams import get_many, put_many
from esb_hw.sim.testbenches.cocotb_accumulator import input_layout

COCOTB_MODULE = "esb_hw.sim.testbenches.cocotb_accumulator"
TOPLEVEL = "sim_runner_accumulator"


class Accumulator(wiring.Component):
    """Sums a stream of signed values into one result per group; ``last`` closes a group.

    Parameters
    ----------
    value_width : int
        Width of the signed input values.
    sum_width : int
        Width of the signed sums (the caller keeps them from overflowing).

    Attributes
    ----------
    i : In(stream.Signature(StructLayout({"value": signed(value_width), "last": 1})))
        Input values; ``last`` marks the final value of a group.
    o : Out(stream.Signature(signed(sum_width)))
        One sum per group.

    Latency 1 cycle (the sum is valid the cycle after the transfer of ``last``); throughput one input per
    cycle while ``o`` is not stalled.
    """

    def __init__(self, *, value_width: int = 8, sum_width: int = 16):
        self.value_width = value_width
        self.sum_width = sum_width
        super().__init__({"i": In(stream.Signature(input_layout(value_width))),
                          "o": Out(stream.Signature(signed(sum_width)))})

    def elaborate(self, platform):
        m = Module()
        partial_sum = Signal(signed(self.sum_width))
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            total = partial_sum + self.i.payload.value
            with m.If(self.i.payload.last):
                m.d.sync += [self.o.payload.eq(total), self.o.valid.eq(1), partial_sum.eq(0)]
            with m.Else():
                m.d.sync += partial_sum.eq(total)
        return m


def model_sums(groups: list[list[int]]) -> list[int]:
    """The Python model: one sum per group."""
    return [sum(group) for group in groups]


def random_groups(seed: int, count: int, value_width: int = 8) -> list[list[int]]:
    rng = random.Random(seed)
    low, high = -(1 << (value_width - 1)), (1 << (value_width - 1)) - 1
    edges = [[low], [high], [low, low, low], [high, high], [0]]
    return edges + [[rng.randint(low, high) for _ in range(rng.randint(1, 6))] for _ in range(count)]


def accumulator_params(seed: int = 7, count: int = 40) -> dict:
    groups = random_groups(seed, count)
    return {
        "value_width": 8,
        "groups": groups,
        "expected": model_sums(groups),
        "seed": seed,
        "idle": 0.3,
        "stall": 0.4,
    }


@pytest.mark.parametrize("simulator", [pytest.param("verilator", marks=pytest.mark.slow), "icarus"])
def test_accumulator_matches_model(simulator):
    result = simulate(
        Accumulator(), COCOTB_MODULE, simulator=simulator, toplevel=TOPLEVEL, params=accumulator_params()
    )
    assert set(result.tests) == {"sums_under_backpressure", "full_rate"}
    assert (result.run_dir / "params.json").is_file()


@simulators
def test_wrong_expectation_fails(simulator):
    params = accumulator_params()
    params["expected"][3] += 1  # deliberately wrong golden value
    with pytest.raises(AssertionError, match=r"2 of 2 cocotb tests failed") as failure:
        simulate(Accumulator(), COCOTB_MODULE, simulator=simulator, toplevel=TOPLEVEL, params=params)
    assert "sums_under_backpressure" in str(failure.value)
    assert "full_rate" in str(failure.value)


@simulators
def test_build_is_reused(simulator, monkeypatch):
    params = accumulator_params(seed=11, count=5)
    first = simulate(Accumulator(), COCOTB_MODULE, simulator=simulator, toplevel=TOPLEVEL, params=params)
    second = simulate(Accumulator(), COCOTB_MODULE, simulator=simulator, toplevel=TOPLEVEL, params=params)
    assert second.build_dir == first.build_dir
    assert not second.built
    assert runner.build_count(first.build_dir) <= 1  # compiled at most once in this process
    # A new process (simulated by forgetting this one's memo) reuses the build through its stamp file.
    monkeypatch.setattr(runner, "_BUILT", set())
    third = simulate(Accumulator(), COCOTB_MODULE, simulator=simulator, toplevel=TOPLEVEL, params=params)
    assert third.build_dir == first.build_dir
    assert not third.built
    assert runner.build_count(first.build_dir) <= 1


def test_waveform_only_with_esb_vcd(monkeypatch):
    # Icarus only: a traced Verilator build would cost another 20-30 s; the Verilator path is the same code.
    params = accumulator_params(seed=5, count=3)
    monkeypatch.delenv(runner.WAVES_ENV, raising=False)
    plain = simulate(Accumulator(), COCOTB_MODULE, simulator="icarus", toplevel=TOPLEVEL, params=params)
    assert plain.waves is None
    assert not list(plain.run_dir.glob("*.fst"))
    monkeypatch.setenv(runner.WAVES_ENV, "1")
    traced = simulate(Accumulator(), COCOTB_MODULE, simulator="icarus", toplevel=TOPLEVEL, params=params)
    assert traced.build_dir.name.endswith("-waves")
    assert traced.waves == traced.run_dir / f"{TOPLEVEL}.fst"
    assert traced.waves.stat().st_size > 0


def test_build_dir_depends_on_verilog_simulator_and_waves():
    narrow = runner.emit_verilog(Accumulator(), TOPLEVEL)
    wide = runner.emit_verilog(Accumulator(sum_width=20), TOPLEVEL)
    assert narrow == runner.emit_verilog(Accumulator(), TOPLEVEL)  # deterministic, so cacheable
    directories = {
        runner.build_dir_for(narrow, TOPLEVEL, "verilator"),
        runner.build_dir_for(wide, TOPLEVEL, "verilator"),
        runner.build_dir_for(narrow, TOPLEVEL, "icarus"),
        runner.build_dir_for(narrow, TOPLEVEL, "verilator", waves=True),
    }
    assert len(directories) == 4
    assert runner.build_dir_for(narrow, TOPLEVEL, "icarus").name.startswith(f"{TOPLEVEL}-icarus-")


def test_unknown_simulator_is_rejected():
    with pytest.raises(ValueError, match=r"simulator must be one of verilator, icarus, not 'vcs'"):
        runner.run_cocotb("module top; endmodule\n", COCOTB_MODULE, simulator="vcs")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_amaranth_stream_helpers(seed):
    """The same accumulator under amaranth.sim, driven by esb_hw/sim/streams.py with back-pressure."""
    dut = Accumulator()
    groups = random_groups(seed, 20)
    payloads = [
        {"value": value, "last": int(index == len(group) - 1)}
        for group in groups
        for index, value in enumerate(group)
    ]
    sums = []

    async def source(ctx):
        await put_many(ctx, dut.i, payloads, rng=random.Random(seed), idle=0.3)

    async def sink(ctx):
        sums.extend(await get_many(ctx, dut.o, len(groups), rng=random.Random(seed + 100), stall=0.4))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert sums == model_sums(groups)


def test_amaranth_stream_helpers_full_rate():
    """Back-to-back helper calls move one item per cycle: inputs at ticks 1..n, sums at ticks 2..n+1."""
    dut = Accumulator()
    values = list(range(-10, 10))
    transfer_ticks = {"i": [], "o": []}

    async def source(ctx):
        await put_many(ctx, dut.i, [{"value": value, "last": 1} for value in values])

    async def sink(ctx):
        assert await get_many(ctx, dut.o, len(values)) == values

    async def monitor(ctx):
        tick = 0
        handshakes = (dut.i.valid, dut.i.ready, dut.o.valid, dut.o.ready)
        async for _, _, i_valid, i_ready, o_valid, o_ready in ctx.tick().sample(*handshakes):
            tick += 1
            if i_valid and i_ready:
                transfer_ticks["i"].append(tick)
            if o_valid and o_ready:
                transfer_ticks["o"].append(tick)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.add_process(monitor)
    sim.run()
    assert transfer_ticks["i"] == list(range(1, len(values) + 1))
    assert transfer_ticks["o"] == list(range(2, len(values) + 2))


def test_icarus_source_wakes_always_blocks_at_time_zero():
    from esb_hw.sim.runner import icarus_source

    text = "module m;\n  reg \\$auto$verilog_backend.cc:2355:dump_module$1  = 0;\nendmodule\n"
    fixed = icarus_source(text)
    assert "  initial #0 \\$auto$verilog_backend.cc:2355:dump_module$1  = 1;\n" in fixed
    assert icarus_source("module m;\nendmodule\n") == "module m;\nendmodule\n"
