# amaranth: UnusedElaboratable=no
"""Engine (esb_hw/hw/core/engine.py) in Amaranth's simulator against the memory model: layers and programs run
bit-exactly against the golden model through tiles, a bad descriptor or a memory error ends the run with its code
and writes nothing outside the finished tiles' outputs, and the counters count. The test_rtl_* cases run the
same programs on the emitted Verilog (cocotb)."""

import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator

from esb_hw.compiler.lowering import reference
from esb_hw.compiler.program import (
    compile_program,
    descriptor_error,
    predicted_beats,
    predicted_cycles,
    program_error,
    read_output,
)
from esb_hw.config import AcceleratorConfig
from esb_hw.errors import CheckFailed
from esb_hw.hw.core.checker import ERROR_CODES
from esb_hw.hw.core.engine import Engine
from esb_hw.layouts import (
    DESCRIPTOR_BEATS,
    MEMORY_BEAT_BYTES,
    buffer_word_bits,
    descriptor_image,
    load_crc,
    memory_word_bytes,
)
from esb_hw.sim.engine import memory_for, run_engine
from esb_hw.sim.layer_core import SMALL_ENGINE_CONFIG, random_layer

CONFIG = SMALL_ENGINE_CONFIG
BASE = 4096


def program_of(layers, shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, CONFIG.activation_format.code_count, shape)
    return compile_program(CONFIG, layers, shape, x, base=BASE), x


def chain_reference(layers, x):
    for layer in layers:
        x = reference(CONFIG, layer, x)
    return x


def assert_beats(run, program):
    """The engine's beat counters, and the memory's own count, equal the compiler's exact prediction: a loader
    that reloads weights a tile should reuse, or skips a transfer, moves a different number of beats."""
    expected = predicted_beats(program)
    assert (run.beats_read, run.beats_written) == (expected["read"], expected["written"])
    assert (run.memory.beats_read, run.memory.beats_written) == (expected["read"], expected["written"])
    if run.observed_layer_cycles is not None:  # Amaranth runs: the per-layer counters, cycle-exact
        assert run.layer_cycles == run.observed_layer_cycles


LAYERS = {
    "3x3s2p1pool_tiled": ("conv2d", 6, 5, 3, 2, 1, True, (5, 9, 8)),
    "linear": ("linear", 7, 9, 1, 1, 0, False, (5, 9)),
    "5x5p2_tiled": ("conv2d", 4, 4, 5, 1, 2, False, (4, 7, 7)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layers_match_the_golden_model_through_tiles(name):
    kind, out_channels, in_channels, kernel, stride, padding, pool, shape = LAYERS[name]
    layer = random_layer(CONFIG, np.random.default_rng(1), kind, out_channels, in_channels, kernel, stride, padding,
                         pool)
    program, x = program_of([layer], shape)
    run = run_engine(program, memory_for(program, seed=2))
    assert run.error == 0, run.error_text
    assert np.array_equal(run.output(program), reference(CONFIG, layer, x))
    assert run.tiles_done == len(program.tiles)
    assert_beats(run, program)
    if name.endswith("tiled"):
        assert len(program.tiles) > 1
        assert any(tile.descriptor["reuse_weights"] for tile in program.tiles)
    model = predicted_cycles(program)["cycles"]
    assert 0.7 * run.cycles < model < 1.4 * run.cycles  # a model; bench/layer_perf.py reports the error


def test_a_three_layer_program_chains_its_outputs():
    rng = np.random.default_rng(5)
    layers = [random_layer(CONFIG, rng, "conv2d", 6, 3, 3, 1, 1, False),
              random_layer(CONFIG, rng, "conv2d", 8, 6, 3, 2, 1, True),
              random_layer(CONFIG, rng, "conv2d", 5, 8, 1, 1, 0, False)]
    program, x = program_of(layers, (3, 10, 9))
    run = run_engine(program, memory_for(program, seed=3))
    assert run.error == 0, run.error_text
    assert np.array_equal(run.output(program), chain_reference(layers, x))
    for index in range(2):  # the intermediate layers' outputs are in memory too
        assert np.array_equal(run.output(program, index), chain_reference(layers[: index + 1], x))
    assert all(cycles > 0 for cycles in run.layer_cycles)
    assert sum(run.layer_cycles) < run.cycles
    assert run.beats_read == run.memory.beats_read and run.beats_written == run.memory.beats_written
    assert_beats(run, program)


def test_the_next_layer_waits_for_the_last_store_of_the_previous():
    """The barrier race made observable: layer 0 is cut by row blocks (each tile writes some channels of every
    pixel) and layer 1's first tile reads every channel, so it needs layer 0's last tile stored. Its activation
    load starts while that tile still computes; only the barrier on layer 1's first tile holds it back. The output
    region starts as garbage, so a load that runs ahead reads wrong codes."""
    config = dataclasses.replace(CONFIG, weight_words=256, name="barrier")
    rng = np.random.default_rng(11)
    layers = [random_layer(config, rng, "conv2d", 8, 16, 3, 1, 1, False),
              random_layer(config, rng, "conv2d", 8, 8, 1, 1, 0, False)]
    x = rng.integers(0, config.activation_format.code_count, (16, 5, 5))
    program = compile_program(config, layers, x.shape, x, base=BASE)
    first, last = ([tile for tile in program.tiles if tile.descriptor["layer"] == layer] for layer in (0, 1))
    assert len(first) > 1 and first[-1].descriptor["outputs"]["address"] > first[0].descriptor["outputs"]["address"]
    assert last[0].descriptor["activations"]["address"] == program.output_region(0)[0]  # reads all of layer 0
    memory = memory_for(program, seed=3)
    address, size = program.output_region(0)
    memory.write_bytes(address, bytes([0xA5]) * size)
    run = run_engine(program, memory)
    assert run.error == 0, run.error_text
    expected = x
    for layer in layers:
        expected = reference(config, layer, expected)
    assert np.array_equal(run.output(program), expected)
    assert_beats(run, program)


def test_a_corrupted_weight_is_caught_by_the_comparison():
    """The bit-exact comparison fails when the memory holds a wrong weight (the descriptors re-signed for it, as a
    compiler bug would: the engine's CRC then passes)."""
    layer = random_layer(CONFIG, np.random.default_rng(1), "conv2d", 4, 4, 3, 1, 1, False)
    program, x = program_of([layer], (4, 5, 5))
    memory = memory_for(program)
    address = program.regions["weights_0"][0]
    memory.write_bytes(address, bytes([memory.read_bytes(address, 1)[0] ^ 0x11]))
    for index, tile in enumerate(program.tiles):
        descriptor = dict(tile.descriptor, weights_crc=load_crc(memory.memory, tile.descriptor, CONFIG))
        memory.write_bytes(program.program_address + index * DESCRIPTOR_BEATS * MEMORY_BEAT_BYTES,
                           descriptor_image(descriptor))
    run = run_engine(program, memory)
    assert run.error == 0, run.error_text
    assert not np.array_equal(run.output(program), reference(CONFIG, layer, x))


def bad_program(path: str, value: int):
    """A two-tile program whose second descriptor has ``path`` set to ``value`` in memory."""
    layer = random_layer(CONFIG, np.random.default_rng(4), "conv2d", 6, 5, 3, 2, 1, True)
    program, x = program_of([layer], (5, 9, 8))
    assert len(program.tiles) >= 2
    descriptor = dict(program.tiles[1].descriptor)
    target = descriptor
    keys = path.split(".")
    for key in keys[:-1]:
        target[key] = dict(target[key]) if isinstance(target[key], dict) else list(target[key])
        target = target[key]
    last = keys[-1]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return program, x, descriptor


BAD = [
    ("geometry.in_height", 0, "zero_size"),
    ("geometry.kernel_w", 9, "unsupported_kernel"),
    ("in_channels", 1000, "reduction_too_long"),
    ("activations.words", 4000, "does_not_fit"),
    ("outputs.address", BASE + 1, "misaligned"),
    ("geometry.output_pixels", 9, "inconsistent"),
]


@pytest.mark.parametrize(("path", "value", "name"), BAD, ids=[case[2] for case in BAD])
def test_a_bad_descriptor_ends_the_run_with_its_error(path, value, name):
    program, x, descriptor = bad_program(path, value)
    memory = memory_for(program)
    descriptors = program.program_address
    memory.write_bytes(descriptors + DESCRIPTOR_BEATS * MEMORY_BEAT_BYTES,
                       descriptor_image(descriptor))
    before = bytes(memory.memory)
    run = run_engine(program, memory, max_cycles=100_000)
    assert run.error == ERROR_CODES[name], run.error_text
    assert run.failed_descriptor == 1 and run.tiles_done == 1
    # Only tile 0's output runs changed.
    allowed = set()
    out = program.tiles[0].descriptor["outputs"]
    for segment in range(out["segments"]):
        start = out["address"] + segment * out["stride"]
        allowed.update(range(start, start + out["words"] * 2))  # 16-bit output words
    written = {address for address, _ in memory.writes_seen}
    assert written <= allowed and written
    after = bytes(memory.memory)
    assert all(before[i] == after[i] for i in range(len(before)) if i not in allowed)


@pytest.mark.parametrize("flip", [(0,), (0, 1), ()], ids=["first", "first_two", "none"])
def test_reusing_weights_that_no_tile_loaded_is_an_error_in_the_engine_and_its_twin(flip):
    """The engine refuses a descriptor that reuses weights no earlier descriptor loaded, and the compiler's twin
    (program_error) gives the same verdict at the same descriptor; the checker alone cannot see it."""
    program, _, _ = bad_program("reuse_weights", 1)
    descriptors = [dict(tile.descriptor, reuse_weights=1) if index in flip else tile.descriptor
                   for index, tile in enumerate(program.tiles)]
    memory = memory_for(program)
    for index, descriptor in enumerate(descriptors):
        memory.write_bytes(program.program_address + index * DESCRIPTOR_BEATS * MEMORY_BEAT_BYTES,
                           descriptor_image(descriptor))
    run = run_engine(program, memory, max_cycles=100_000)
    code, index = program_error(CONFIG, descriptors, memory_size=memory.size)
    assert [descriptor_error(CONFIG, descriptor, memory_size=memory.size) for descriptor in descriptors] == \
        [0] * len(descriptors)
    if flip:
        assert (run.error, run.failed_descriptor, run.tiles_done) == (ERROR_CODES["inconsistent"], 0, 0)
        assert (code, index) == (run.error, run.failed_descriptor)
        assert run.memory.beats_written == 0
    else:
        assert (run.error, code, index) == (0, 0, len(descriptors))


def test_a_read_error_ends_the_run():
    layer = random_layer(CONFIG, np.random.default_rng(1), "conv2d", 4, 4, 3, 1, 1, False)
    program, _ = program_of([layer], (4, 5, 5))
    bad = program.regions["weights_0"][0] // MEMORY_BEAT_BYTES
    run = run_engine(program, memory_for(program, bad_beats={bad}), max_cycles=100_000)
    assert run.error == ERROR_CODES["read"] and run.failed_descriptor == 0
    assert run.memory.beats_written == 0


def test_a_write_error_ends_the_run():
    layer = random_layer(CONFIG, np.random.default_rng(1), "conv2d", 4, 4, 3, 1, 1, False)
    program, _ = program_of([layer], (4, 5, 5))
    bad = program.output_region()[0] // MEMORY_BEAT_BYTES
    run = run_engine(program, memory_for(program, bad_beats={bad}), max_cycles=100_000)
    assert run.error == ERROR_CODES["write"] and run.failed_descriptor == 0


def test_an_empty_program_finishes_at_once():
    layer = random_layer(CONFIG, np.random.default_rng(1), "linear", 4, 4)
    program, _ = program_of([layer], (2, 4))
    run = run_engine(program, descriptors=0, max_cycles=100)
    assert (run.error, run.tiles_done, run.beats_read, run.beats_written) == (0, 0, 0, 0)
    assert run.cycles <= 2


# ---- the emitted Verilog (cocotb, Verilator and Icarus) ---------------------------------------------------------
ESB_ACTIVATIONS = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=4, activation_k=2, rows=4, cols=4,
                                    name="small_esb", activation_words=128, weight_words=128, param_words=16,
                                    output_words=32, entries=8)


def rtl_cases(config):
    """Programs covering the issue's list: 1x1 and 3x3 kernels, stride 2, padding, channel and spatial sizes that
    are not multiples of the array, layers larger than the buffers (tiled), pooling, and a 3-layer program."""
    rng = np.random.default_rng(8)
    cases = {
        "3x3s2p1pool_tiled": [random_layer(config, rng, "conv2d", 6, 5, 3, 2, 1, True)],
        "1x1_tiled": [random_layer(config, rng, "conv2d", 9, 7, 1, 1, 0, False)],
        "linear": [random_layer(config, rng, "linear", 7, 9)],
        "three_layers": [random_layer(config, rng, "conv2d", 6, 3, 3, 1, 1, False),
                         random_layer(config, rng, "conv2d", 8, 6, 3, 2, 1, True),
                         random_layer(config, rng, "conv2d", 5, 8, 1, 1, 0, False)],
    }
    shapes = {"3x3s2p1pool_tiled": (5, 9, 8), "1x1_tiled": (7, 6, 5), "linear": (5, 9), "three_layers": (3, 10, 9)}
    return {name: (layers, shapes[name]) for name, layers in cases.items()}


def run_rtl_cases(config, simulator, names):
    from esb_hw.sim.engine import run_engine_rtl
    from esb_hw.sim.pytest_helpers import require_simulator

    require_simulator(simulator)
    for name, (layers, shape) in rtl_cases(config).items():
        if name not in names:
            continue
        rng = np.random.default_rng(9)
        x = rng.integers(0, config.activation_format.code_count, shape)
        program = compile_program(config, layers, shape, x, base=BASE)
        run = run_engine_rtl(program, simulator=simulator, seed=len(name), run_name=f"{config.name}_{name}")
        assert run.error == 0, f"{name}: {run.error_text}"
        expected = x
        for layer in layers:
            expected = reference(config, layer, expected)
        assert np.array_equal(run.output(program), expected), name
        assert run.tiles_done == len(program.tiles)
        assert_beats(run, program)
        if name.endswith("tiled"):
            assert len(program.tiles) > 1


ALL_CASES = ("3x3s2p1pool_tiled", "1x1_tiled", "linear", "three_layers")


@pytest.mark.slow  # 34 s; make test runs the engine's Verilog through the system (tests/test_system.py) and below
def test_rtl_integer_activations_on_icarus():
    run_rtl_cases(CONFIG, "icarus", ALL_CASES)


@pytest.mark.slow  # ESB activations on the array: also test_requant, and test_infer's slow run on the system
def test_rtl_esb_activations_on_icarus():
    run_rtl_cases(ESB_ACTIVATIONS, "icarus", ("3x3s2p1pool_tiled", "three_layers"))


# A Verilator build of the engine takes a minute or two: `make test-all` runs every case on both configs.
@pytest.mark.slow
@pytest.mark.parametrize("config", [CONFIG, ESB_ACTIVATIONS], ids=["integer", "esb"])
def test_rtl_on_verilator(config):
    run_rtl_cases(config, "verilator", ALL_CASES)


def test_rtl_bad_descriptor_ends_the_run():
    from esb_hw.sim.engine import run_engine_rtl
    from esb_hw.sim.pytest_helpers import require_simulator

    require_simulator("icarus")
    program, _, descriptor = bad_program("geometry.kernel_w", 9)
    image = bytearray(program.image)
    offset = program.program_address - program.base + DESCRIPTOR_BEATS * MEMORY_BEAT_BYTES
    image[offset: offset + DESCRIPTOR_BEATS * MEMORY_BEAT_BYTES] = descriptor_image(descriptor)
    broken = dataclasses.replace(program, image=bytes(image))
    run = run_engine_rtl(broken, simulator="icarus", max_cycles=50_000)
    assert (run.error, run.failed_descriptor, run.tiles_done) == (ERROR_CODES["unsupported_kernel"], 1, 1)


# ---- abort ------------------------------------------------------------------------------------------------------
ABORTED = ERROR_CODES["aborted"]


def tiled_program():
    layer = random_layer(CONFIG, np.random.default_rng(1), "conv2d", 6, 5, 3, 2, 1, True)
    program, x = program_of([layer], (5, 9, 8))
    return program, reference(CONFIG, layer, x)


def stored_bytes(program, tiles: int) -> set[int]:
    """Every byte the outputs of tiles ``0 .. tiles - 1`` may write."""
    word = memory_word_bytes(buffer_word_bits(program.config)["output"])
    allowed = set()
    for tile in program.tiles[:tiles]:
        out = tile.descriptor["outputs"]
        for segment in range(out["segments"]):
            start = out["address"] + segment * out["stride"]
            allowed.update(range(start, start + out["words"] * word))
    return allowed


def abort_then_rerun(program, *, abort_at=None, abort_on_write=False, pause=None, abort_idle=False, seed=4):
    """Run ``program`` and abort it ``abort_at`` cycles after the start (or at its first write beat), optionally
    with the memory paused over ``pause`` (first, last cycle); then run it again, whole, on the same engine and
    memory. Returns the first run's status, its memory writes, and the second run's status."""
    engine = Engine(program.config)
    memory = memory_for(program, seed=seed)
    results = []

    async def serve(ctx):
        await memory.serve(ctx, engine)

    async def run(ctx, abort: bool):
        if abort and abort_idle:  # an abort while idle: nothing to end, nothing remembered
            ctx.set(engine.abort, 1)
            for _ in range(10):
                *_, busy, done = await ctx.tick().sample(engine.busy, engine.done)
                assert not busy and not done
            ctx.set(engine.abort, 0)
        ctx.set(engine.program_address, program.program_address)
        ctx.set(engine.program_length, len(program.tiles))
        ctx.set(engine.memory_size, memory.size)
        ctx.set(engine.start, 1)
        await ctx.tick()
        ctx.set(engine.start, 0)
        for cycle in range(30_000):  # about 20 times the run: a watchdog, so that a hang fails fast
            if pause is not None and abort:
                memory.paused = pause[0] <= cycle < pause[1]
            hit = abort_on_write and ctx.get(engine.write_data.valid) and ctx.get(engine.write_data.ready)
            if abort and (cycle == abort_at or hit):
                ctx.set(engine.abort, 1)
            *_, done = await ctx.tick().sample(engine.done)
            if done:
                break
        else:
            raise AssertionError(f"no done within 30,000 cycles; busy {ctx.get(engine.busy)}, memory quiet "
                                 f"{memory.quiet}, paused {memory.paused}")
        ctx.set(engine.abort, 0)
        await ctx.tick()
        results.append({"error": ctx.get(engine.error), "tiles_done": ctx.get(engine.tiles_done),
                        "failed": ctx.get(engine.failed_descriptor), "busy": ctx.get(engine.busy),
                        "quiet": memory.quiet, "writes": list(memory.writes_seen)})
        memory.writes_seen.clear()

    async def testbench(ctx):
        await run(ctx, abort=True)
        await run(ctx, abort=False)

    simulator = Simulator(engine)
    simulator.add_clock(1e-8)
    simulator.add_testbench(serve, background=True)
    simulator.add_testbench(testbench)
    simulator.run()
    first, second = results
    output = read_output(program, memory.read_bytes(*program.output_region()))
    return first, second, output


@pytest.mark.parametrize("abort_at", [2, 40, 150, 400, 700, 1000])
def test_an_abort_drains_and_the_next_run_is_exact(abort_at):
    """Aborted at any point (fetch, loads, compute, stores): the run ends with ``aborted``, every transaction it
    started is finished (the memory is quiet), it wrote only inside the tiles it stored whole and the one being
    stored, and the same engine then runs the program bit-exactly."""
    program, expected = tiled_program()
    first, second, output = abort_then_rerun(program, abort_at=abort_at)
    if first["error"] != ABORTED:  # the run had ended before the abort: nothing to abort
        assert first["error"] == 0 and first["tiles_done"] == len(program.tiles), first
    else:
        assert first["tiles_done"] < len(program.tiles)
        assert {address for address, _ in first["writes"]} <= stored_bytes(program, first["tiles_done"] + 1)
    assert not first["busy"] and first["quiet"]
    assert (second["error"], second["tiles_done"], second["quiet"]) == (0, len(program.tiles), True)
    assert np.array_equal(output, expected)


def test_an_abort_during_a_write_burst():
    program, expected = tiled_program()
    first, second, output = abort_then_rerun(program, abort_on_write=True)
    assert (first["error"], first["tiles_done"], first["quiet"]) == (ABORTED, 0, True)
    assert first["writes"] and {address for address, _ in first["writes"]} <= stored_bytes(program, 1)
    assert second["error"] == 0 and np.array_equal(output, expected)


def test_an_abort_cuts_a_store_of_several_segments():
    """A tile whose outputs are three segments (row blocks), aborted at its first write beat: the store ends with
    the requests it had sent, inside that tile's outputs, and the next run is exact."""
    config = CONFIG
    rng = np.random.default_rng(11)
    layer = random_layer(config, rng, "conv2d", 9, 7, 1, 1, 0, False)
    x = rng.integers(0, config.activation_format.code_count, (7, 6, 5))
    program = compile_program(config, [layer], x.shape, x, base=BASE)
    assert program.tiles[0].descriptor["outputs"]["segments"] > 1
    first, second, output = abort_then_rerun(program, abort_on_write=True)
    assert (first["error"], first["tiles_done"], first["quiet"]) == (ABORTED, 0, True)
    assert first["writes"] and {address for address, _ in first["writes"]} <= stored_bytes(program, 1)
    assert second["error"] == 0 and np.array_equal(output, reference(config, layer, x))


def test_an_abort_while_the_memory_stops_answering():
    """The memory stops answering mid-run; the abort comes while it is silent and waits for the transfers it owes
    (AXI cannot take a request back); once the memory answers again the run ends aborted, and the next is exact."""
    program, expected = tiled_program()
    first, second, output = abort_then_rerun(program, abort_at=300, pause=(250, 5000))
    assert (first["error"], first["quiet"], first["busy"]) == (ABORTED, True, 0)
    assert second["error"] == 0 and np.array_equal(output, expected)


def test_the_watchdog_names_a_hang():
    program, _ = tiled_program()
    memory = memory_for(program, seed=2)
    memory.paused = True  # a memory that never answers
    with pytest.raises(CheckFailed, match=r"did not finish within 3,000 cycles; it hung with busy 1, error 0, "
                                          r"tiles_done 0, quiet True, reads 0, writes 0, responses 0"):
        run_engine(program, memory, max_cycles=3_000)


def test_an_abort_when_idle_changes_nothing():
    program, expected = tiled_program()
    first, second, output = abort_then_rerun(program, abort_idle=True)
    assert (first["error"], first["tiles_done"]) == (0, len(program.tiles))
    assert second["error"] == 0 and np.array_equal(output, expected)


@pytest.mark.parametrize("region", ["weights_0", "params_0"])
def test_a_changed_weight_or_parameter_byte_is_refused_before_the_tile_computes(region):
    """A bit flipped in the weights or parameters in memory (after the compiler wrote the descriptors' weights_crc)
    ends the run with corrupted, detail 1, at the first descriptor that loads it: no tile is computed from it."""
    layer = random_layer(CONFIG, np.random.default_rng(4), "conv2d", 6, 5, 3, 2, 1, True)
    program, _ = program_of([layer], (5, 9, 8))
    memory = memory_for(program)
    address, _ = program.regions[region]
    memory.memory[address + 3] ^= 0x20  # in the first row block's words: descriptor 0 loads it
    run = run_engine(program, memory)
    assert (run.error, run.error_detail, run.failed_descriptor) == (ERROR_CODES["corrupted"], 1, 0), run.error_text
    assert run.tiles_done == 0 and run.memory.beats_written == 0
    assert "detail 1: the parameters and weights the descriptor loads" in run.error_text


def test_a_changed_descriptor_byte_is_refused_with_detail_0():
    layer = random_layer(CONFIG, np.random.default_rng(4), "conv2d", 6, 5, 3, 2, 1, True)
    program, _ = program_of([layer], (5, 9, 8))
    memory = memory_for(program)
    memory.memory[program.program_address + DESCRIPTOR_BEATS * MEMORY_BEAT_BYTES + 40] ^= 0x04  # descriptor 1
    run = run_engine(program, memory)
    assert (run.error, run.error_detail, run.failed_descriptor) == (ERROR_CODES["corrupted"], 0, 1), run.error_text
    assert run.tiles_done == 1  # the first tile, loaded before, is stored whole
