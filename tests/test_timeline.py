"""esb_hw/compiler/timeline.py, the one cycle model, against measured cycles: the engine against its memory model
(a fixed latency: the total and when the layer core takes and finishes each tile; random latencies and stalls: the
mean over seeds), and the whole system through the driver on Verilator. The model must stay within 5 % on every
program the engine and system tests run."""

import numpy as np
import pytest

from esb_hw.compiler.program import compile_program, predicted_cycles, to_bundle
from esb_hw.compiler.timeline import AXI_SYSTEM, MEMORY_MODEL, MemoryTiming, core_cycles
from esb_hw.data import shipped_config
from esb_hw.errors import InputError
from esb_hw.sim.engine import memory_for, run_engine
from esb_hw.sim.layer_core import SMALL_ENGINE_CONFIG, random_layer
from esb_hw.sim.pytest_helpers import require_simulator

TOLERANCE = 0.05
FIXED = MemoryTiming(read_latency=(40, 40), write_latency=(10, 10), outstanding=4)


def programs(config, base=0):
    """The layers of the engine and system tests: tiled 3x3 stride 2 with pooling, a linear layer, a tiled 5x5,
    a tiled 1x1 and a 3-layer chain (small and odd shapes)."""
    rng = np.random.default_rng(1)
    cases = {
        "3x3s2p1_pool_tiled": ([random_layer(config, rng, "conv2d", 6, 5, 3, 2, 1, True)], (5, 9, 8)),
        "linear": ([random_layer(config, rng, "linear", 7, 9)], (5, 9)),
        "5x5p2_tiled": ([random_layer(config, rng, "conv2d", 4, 4, 5, 1, 2, False)], (4, 7, 7)),
        "1x1_tiled": ([random_layer(config, rng, "conv2d", 9, 7, 1, 1, 0, False)], (7, 6, 5)),
        "three_layers": ([random_layer(config, rng, "conv2d", 6, 3, 3, 1, 1, False),
                          random_layer(config, rng, "conv2d", 8, 6, 3, 2, 1, True),
                          random_layer(config, rng, "conv2d", 5, 8, 1, 1, 0, False)], (3, 10, 9)),
    }
    result = {}
    for name, (layers, shape) in cases.items():
        x = rng.integers(0, config.activation_format.code_count, shape)
        result[name] = compile_program(config, layers, shape, x, base=base)
    return result


def relative_error(model: float, measured: float) -> float:
    return model / measured - 1


def assert_close(name: str, model: float, measured: float) -> None:
    error = relative_error(model, measured)
    assert abs(error) <= TOLERANCE, f"{name}: model {model:,.0f} cycles, measured {measured:,.0f} ({error:+.1%})"


SMALL_PROGRAMS = programs(SMALL_ENGINE_CONFIG, base=4096)


@pytest.mark.parametrize("name", list(SMALL_PROGRAMS))
def test_the_engine_with_a_fixed_latency(name):
    program = SMALL_PROGRAMS[name]
    run = run_engine(program, memory_for(program, latency=(40, 40), stall=0.0))
    assert run.error == 0
    model = predicted_cycles(program, FIXED)
    assert_close(name, model["cycles"], run.cycles)
    # When the layer core takes each tile and finishes it: the model's pipeline, not only its total (the
    # testbench's observer counts from two cycles after the model's origin). Exact on most tiles here.
    modelled = [(times.compute[0] - 2, times.compute[1] - 2) for times in model["tiles"]]
    worst = max(abs(a - b) for pair, measured in zip(modelled, run.core_events, strict=True)
                for a, b in zip(pair, measured, strict=True))
    assert worst <= max(4, TOLERANCE * run.cycles / 10), (modelled, run.core_events)


#: The longest random-latency runs go to `make test-all` (the fixed-latency test covers every program in `make test`).
LONG_RANDOM_RUNS = ("three_layers", "5x5p2_tiled", "1x1_tiled")


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in LONG_RANDOM_RUNS else name
                                  for name in SMALL_PROGRAMS])
def test_the_engine_with_random_latencies_and_stalls_on_average(name):
    """The memory model's defaults (20-100 cycles of latency, 20 % stalls): the model predicts the mean; one run of
    a few hundred cycles moves by up to about 10 % with the draws, so a program that short is averaged over six
    runs (three moved the linear layer's mean by 8 %, the 1x1 layer's by 5 %), a longer one over three."""
    program = SMALL_PROGRAMS[name]
    model = predicted_cycles(program, MEMORY_MODEL)["cycles"]
    seeds = range(1, 7) if model < 2000 else range(1, 4)
    cycles = [run_engine(program, memory_for(program, seed=seed)).cycles for seed in seeds]
    assert_close(name, model, float(np.mean(cycles)))


def test_the_whole_system_through_the_driver():
    """Every test program on the small and on the default config, through the AXI system's Verilog."""
    from esb_hw.sim.system import run_system_rtl

    require_simulator("verilator")
    for config in (SMALL_ENGINE_CONFIG, shipped_config("default")):
        cases = programs(config)
        bundles = [to_bundle(program, name) for name, program in cases.items()]
        result = run_system_rtl(config, bundles, [{"bundle": index} for index in range(len(bundles))],
                                simulator="verilator", run_name=f"timeline_{config.name}")
        for (name, program), run in zip(cases.items(), result.runs, strict=True):
            assert run["outcome"] == "ok", run
            assert_close(f"{config.name} {name}", predicted_cycles(program, AXI_SYSTEM)["cycles"], run["cycles"])


def test_the_comparison_rejects_a_miss():
    assert_close("exact", 1000, 1000)
    assert_close("at the edge", 1049, 1000)
    with pytest.raises(AssertionError, match=r"model 1,060 cycles, measured 1,000 \(\+6.0%\)"):
        assert_close("over", 1060, 1000)
    with pytest.raises(AssertionError):
        assert_close("under", 940, 1000)


def test_a_memory_timing_moves_the_prediction():
    program = SMALL_PROGRAMS["three_layers"]
    slow = MemoryTiming(read_latency=(200, 200), write_latency=(50, 50))
    assert predicted_cycles(program, slow)["cycles"] > predicted_cycles(program, FIXED)["cycles"]
    # The expected latest of random latencies exceeds their mean.
    spread = MemoryTiming(read_latency=(20, 100), write_latency=(5, 25))
    assert spread.latest([0, 0, 0]) > 60 and spread.latest([0]) == pytest.approx(60)


def test_core_cycles_is_the_engine_models_compute_span_of_a_lone_tile():
    """core_cycles (the layer core alone, checked against Amaranth in tests/test_layer.py) is the compute span the
    engine model gives a one-tile program."""
    program = SMALL_PROGRAMS["linear"]
    (times,) = predicted_cycles(program, FIXED)["tiles"]
    assert core_cycles(program.tiles[0].schedule) == times.compute[1] - times.compute[0] - 3


def test_the_bandwidth_sets_a_floor_of_bytes_over_bandwidth():
    """A layer takes at least its bytes over the engine's share of the bandwidth, counted by predicted_beats (which
    tests/test_engine.py holds equal to the engine's own beat counters)."""
    from esb_hw.compiler.program import predicted_beats

    program = SMALL_PROGRAMS["three_layers"]
    beats = predicted_beats(program)
    unlimited = predicted_cycles(program, FIXED)["cycles"]
    assert predicted_cycles(program, FIXED.with_bandwidth(64.0))["cycles"] == unlimited  # more than a port: no change
    starved = predicted_cycles(program, FIXED.with_bandwidth(0.5))
    assert starved["cycles"] >= 16 * (beats["read"] + beats["written"]) / 0.5
    assert all(layer["bound"] == "memory" for layer in starved["layers"])
    half = predicted_cycles(program, FIXED.with_bandwidth(8.0))["cycles"]
    assert unlimited < half < starved["cycles"]
    assert FIXED.with_bandwidth(4.0).pace == 4.0 and FIXED.pace == 1.0
    with pytest.raises(InputError, match="bandwidth must be positive"):
        FIXED.with_bandwidth(0.0)


def test_each_layer_says_what_bounds_it():
    """The per-layer figures add up to the run, and a compute-heavy layer with memory to spare is compute-bound."""
    program = SMALL_PROGRAMS["three_layers"]
    result = predicted_cycles(program, FIXED)
    layers = result["layers"]
    assert [layer["layer"] for layer in layers] == [0, 1, 2]
    assert sum(layer["cycles"] for layer in layers) == result["cycles"]
    assert sum(layer["compute_cycles"] for layer in layers) == result["compute_cycles"]
    beats = predicted_beats_total(program)
    assert sum(layer["bytes"] for layer in layers) == 16 * beats
    for layer in layers:
        assert layer["bound"] == ("memory" if layer["memory_cycles"] > layer["compute_cycles"] else "compute")
    wide = predicted_cycles(program, FIXED.with_bandwidth(1000.0))["layers"]
    assert any(layer["bound"] == "compute" for layer in wide)


def predicted_beats_total(program) -> int:
    from esb_hw.compiler.program import predicted_beats

    beats = predicted_beats(program)
    return beats["read"] + beats["written"]
