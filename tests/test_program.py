"""Programs (esb_hw/compiler/program.py): tiling, descriptors and the memory image, checked by running them in
the NumPy twin of the engine's memory traffic against the golden model; the cycle model's shape; and every
rejection's message."""

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from esb_hw.compiler.lowering import Layer, reference
from esb_hw.compiler.program import (
    compile_program,
    descriptor_error,
    input_image,
    predicted_cycles,
    read_output,
    run_in_numpy,
)
from esb_hw.compiler.timeline import MemoryTiming
from esb_hw.config import AcceleratorConfig
from esb_hw.data import shipped_config
from esb_hw.errors import InputError
from esb_hw.quant import ESBFormat, golden
from esb_hw.sim.layer_core import random_layer

SMALL = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=4, activation_k=4, rows=4, cols=4, name="t",
                          activation_words=128, weight_words=128, param_words=16, output_words=32, entries=8)
BASE = 8192


def run(program, x=None):
    memory = bytearray(BASE) + bytearray(program.image)
    if x is not None:
        address, blob = input_image(program, x)
        memory[address: address + len(blob)] = blob
    run_in_numpy(program, memory)
    return memory


def output(program, memory, layer=-1):
    address, size = program.output_region(layer)
    return read_output(program, bytes(memory[address: address + size]), layer)


def random_case(rng):
    kind = "conv2d" if rng.random() < 0.8 else "linear"
    kernel = int(rng.choice([1, 2, 3, 5, 7])) if kind == "conv2d" else 1
    stride = int(rng.integers(1, 3)) if kind == "conv2d" else 1
    padding = int(rng.integers(0, kernel)) if kind == "conv2d" else 0
    in_channels, out_channels = int(rng.integers(1, 9)), int(rng.integers(1, 14))
    pool = kind == "conv2d" and rng.random() < 0.4
    low = max(kernel - 2 * padding, 1) + (stride + 1 if pool else 0)
    shape = ((in_channels, int(rng.integers(low, low + 10)), int(rng.integers(low, low + 8))) if kind == "conv2d"
             else (int(rng.integers(1, 12)), in_channels))
    return random_layer(SMALL, rng, kind, out_channels, in_channels, kernel, stride, padding, pool), shape


def test_random_layers_match_the_golden_model_through_their_tiles():
    rng = np.random.default_rng(11)
    ran = tiled = 0
    for _ in range(120):
        layer, shape = random_case(rng)
        x = rng.integers(0, SMALL.activation_format.code_count, shape)
        try:
            program = compile_program(SMALL, [layer], shape, x, base=BASE)
        except InputError as error:
            assert "does not fit" in str(error)
            continue
        ran += 1
        tiled += len(program.tiles) > 1
        assert np.array_equal(output(program, run(program)), reference(SMALL, layer, x))
        assert all(descriptor_error(SMALL, tile.descriptor, memory_size=program.memory_size) == 0
                   for tile in program.tiles)
    assert ran >= 80 and tiled >= 20


def test_a_chain_feeds_each_output_to_the_next_layer():
    rng = np.random.default_rng(2)
    layers = [random_layer(SMALL, rng, "conv2d", 6, 3, 3, 1, 1, False),
              random_layer(SMALL, rng, "conv2d", 8, 6, 3, 2, 1, True),
              random_layer(SMALL, rng, "conv2d", 5, 8, 2, 1, 0, False)]
    x = rng.integers(0, 16, (3, 12, 11))
    program = compile_program(SMALL, layers, x.shape, base=BASE)
    memory = run(program, x)  # the input given after compiling: the same program runs on new inputs
    expected = x
    for index, layer in enumerate(layers):
        expected = reference(SMALL, layer, expected)
        assert np.array_equal(output(program, memory, index), expected)
    assert [tile.descriptor["barrier"] for tile in program.tiles].count(1) == 2
    assert program.shapes == [(3, 12, 11), (6, 12, 11), (8, 3, 3), (5, 2, 2)]


def test_a_wrong_tile_output_is_caught():
    """The comparison fails when one tile's output lands in the wrong place."""
    rng = np.random.default_rng(3)
    layer = random_layer(SMALL, rng, "conv2d", 9, 5, 3, 1, 1, False)
    x = rng.integers(0, 16, (5, 9, 8))
    program = compile_program(SMALL, [layer], x.shape, x, base=BASE)
    assert len(program.tiles) > 1
    program.tiles[1].descriptor["outputs"]["address"] += 2  # one output word off
    assert not np.array_equal(output(program, run(program)), reference(SMALL, layer, x))


def test_the_image_is_deterministic_and_aligned():
    rng = np.random.default_rng(4)
    layer = random_layer(SMALL, rng, "conv2d", 6, 5, 3, 2, 1, True)
    x = rng.integers(0, 16, (5, 9, 8))
    first = compile_program(SMALL, [layer], x.shape, x, base=BASE)
    second = compile_program(SMALL, [layer], x.shape, x, base=BASE)
    assert first.image == second.image
    assert all(address % 4096 == 0 for address, _ in first.regions.values())
    assert first.program_address == BASE


def test_the_cycle_model_pipelines_tiles():
    rng = np.random.default_rng(5)
    layer = random_layer(SMALL, rng, "conv2d", 9, 5, 3, 1, 1, False)
    program = compile_program(SMALL, [layer], (5, 9, 8), base=BASE)
    model = predicted_cycles(program)
    assert model["cycles"] > model["compute_cycles"] > 0
    pairs = list(zip(model["tiles"], model["tiles"][1:], strict=False))
    for tile, following in pairs:
        assert tile.compute[0] < following.compute[0] and tile.compute[1] < following.compute[1]
        assert tile.store[1] < following.store[1] and tile.load[1] <= following.compute[0]
    assert any(following.compute[0] < tile.compute[1] for tile, following in pairs)  # a tile starts as one drains
    slower = predicted_cycles(program, MemoryTiming(read_latency=(200, 200), write_latency=(50, 50)))["cycles"]
    assert slower > model["cycles"]


def layer(kind="conv2d", shape=(4, 4, 3, 3), **kwargs):
    rng = np.random.default_rng(0)
    return random_layer(SMALL, rng, kind, shape[0], shape[1], shape[2] if kind == "conv2d" else 1, **kwargs)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: compile_program(SMALL, [], (4, 5, 5)), "a program needs at least one layer"),
    (lambda: compile_program(SMALL, [layer()], (4, 5, 5), base=100), "base must be a multiple of 4096, got 100"),
    (lambda: compile_program(SMALL, [layer()], (3, 5, 5)),
     "layer 0: the input has 3 channels but the weights expect 4"),
    (lambda: compile_program(SMALL, [layer(stride=3)], (4, 9, 9)), "layer 0: stride 3 is not supported \\(1 or 2\\)"),
    (lambda: compile_program(SMALL, [layer(padding=8)], (4, 9, 9)),
     "layer 0: padding 8 is not supported \\(0..7\\)"),
    (lambda: compile_program(SMALL, [random_layer(SMALL, np.random.default_rng(0), "conv2d", 4, 4, 8)], (4, 9, 9)),
     "layer 0: kernel 8x8 is not supported \\(1x1 to 7x7\\)"),
    (lambda: compile_program(SMALL, [layer(shape=(4, 20, 3, 3))], (20, 5, 5)),
     "layer 0 does not fit: its smallest tile needs 180 weight words, the buffer has 128 per bank "
     "\\(raise engine.weight_words\\)"),
    (lambda: compile_program(SMALL, [layer(), layer("linear", (3, 35))], (4, 5, 5)),
     "layer 1: a linear layer of 35 inputs after a 4x3x3 \\(CxHxW\\) output; the flatten gives 36"),
    (lambda: compile_program(SMALL, [layer()], (4, 5, 5), np.zeros((4, 5, 6), dtype=int)),
     "the input codes have shape \\(4, 5, 6\\), the program expects \\(4, 5, 5\\)"),
    (lambda: compile_program(SMALL, [layer()], (4, 5, 5), np.full((4, 5, 5), 16)), "input codes must be in 0..15"),
    (lambda: compile_program(SMALL, [Layer("conv2d", np.zeros((4, 4, 1, 1), dtype=int), layer().params,
                                           ESBFormat(8, 8, signed=False))], (4, 5, 5)),
     "layer 0: output format .* differs from the config's activations"),
])
def test_rejections_name_the_layer_and_the_reason(build, message):
    with pytest.raises(InputError, match=message):
        build()


def test_a_linear_layer_after_a_conv2d_reads_the_nchw_flatten():
    """conv2d then linear (I = C*H*W): compiled as the equal conv2d, and the NumPy twin equals the golden model of
    the flatten in NCHW order. The linear layer's scale spreads its outputs over the codes, so that a flatten in
    another order (NHWC) gives other codes."""
    conv = layer()
    codes = np.random.default_rng(1).integers(0, 16, (4, 5, 5))
    afmt, wfmt = SMALL.activation_format, SMALL.weight_format
    hidden = golden.requantize(golden.conv2d(afmt.level(codes)[None], wfmt.level(conv.weight_codes), stride=1,
                                             padding=conv.padding), conv.params, conv.output_format,
                               channel_axis=1)[0]
    weight_codes = np.random.default_rng(2).integers(0, wfmt.code_count, (8, 36))
    sums = golden.linear(afmt.level(hidden.reshape(1, -1)), wfmt.level(weight_codes))[0]
    params = golden.requant_params(np.full(8, 14 / max(1, sums.max() - sums.min())), np.full(8, -sums.min()))
    linear = Layer("linear", weight_codes, params, afmt)
    layers = [conv, linear]
    program = compile_program(SMALL, layers, (4, 5, 5), codes)
    assert program.layers[1].kind == "conv2d" and program.shapes[-1] == (8, 1, 1)
    assert layers == [conv, linear]  # the caller's list is left as it was

    def head(flat):
        return golden.requantize(golden.linear(afmt.level(flat)[None], wfmt.level(weight_codes)), params, afmt,
                                 channel_axis=1)[0]

    expected = head(hidden.reshape(-1))
    assert len(set(expected.tolist())) >= 4  # spread, not clamped
    assert np.array_equal(twin_output(program).reshape(-1), expected)
    assert not np.array_equal(head(hidden.transpose(1, 2, 0).reshape(-1)), expected)


def twin_output(program):
    memory = bytearray(program.image)
    run_in_numpy(program, memory)
    address, size = program.output_region()
    return read_output(program, bytes(memory[address:address + size]))


@pytest.mark.parametrize(("shape", "out_channels", "stride"), [((16, 15, 16), 24, 2), ((17, 7, 16), 10, 1)])
def test_a_band_of_padding_only_is_merged(shape, out_channels, stride):
    """The two 1x1 convolutions with padding 1 whose edge bands read padding only (the engine refuses a transfer of
    no rows): they compile, no descriptor reads zero rows, and the twin equals the golden model."""
    config = shipped_config("default")
    rng = np.random.default_rng(0)
    layer = random_layer(config, rng, "conv2d", out_channels, shape[0], 1, stride, 1, False)
    x = rng.integers(0, config.activation_format.code_count, shape)
    program = compile_program(config, [layer], shape, x)
    assert all(tile.descriptor["activations"]["words"] > 0 for tile in program.tiles)
    assert np.array_equal(twin_output(program), reference(config, layer, x))


@settings(max_examples=60, deadline=None)
@given(channels=st.integers(1, 9), height=st.integers(1, 17), width=st.integers(1, 12), out_channels=st.integers(1, 9),
       kernel=st.integers(1, 5), stride=st.integers(1, 2), padding=st.integers(0, 3), pool=st.booleans(),
       seed=st.integers(0, 2**16))
def test_every_shape_the_tiler_accepts_is_exact(channels, height, width, out_channels, kernel, stride, padding, pool,
                                                seed):
    """Random shapes on the small config: the compiler either refuses the layer with an InputError or compiles a
    program whose every descriptor passes the engine's check and whose NumPy twin equals the golden model."""
    out_h = (height + 2 * padding - kernel) // stride + 1
    out_w = (width + 2 * padding - kernel) // stride + 1
    assume(out_h >= (2 if pool else 1) and out_w >= (2 if pool else 1))
    rng = np.random.default_rng(seed)
    layer = random_layer(SMALL, rng, "conv2d", out_channels, channels, kernel, stride, padding, pool)
    x = rng.integers(0, SMALL.activation_format.code_count, (channels, height, width))
    try:
        program = compile_program(SMALL, [layer], x.shape, x)
    except InputError:
        return
    assert all(descriptor_error(SMALL, tile.descriptor, memory_size=program.memory_size) == 0
                   for tile in program.tiles)
    assert np.array_equal(twin_output(program), reference(SMALL, layer, x))


def batch_chain(rng, config=SMALL):
    """conv (pool) -> conv -> linear (the flatten) -> linear, with outputs spread over the codes."""
    return [random_layer(config, rng, "conv2d", 6, 3, 3, 1, 1, True),
            random_layer(config, rng, "conv2d", 5, 6, 3, 2, 1, False),
            random_layer(config, rng, "linear", 9, 5 * 2 * 2, 1),
            random_layer(config, rng, "linear", 7, 9, 1)]


def golden_chain(layers, image):
    """The golden model of ``layers`` on one image, the flatten in NCHW order."""
    codes = image
    for layer in layers:
        if layer.kind == "linear":
            codes = reference(SMALL, layer, codes.reshape(1, -1))[0]
        else:
            codes = reference(SMALL, layer, codes)
    return codes


@pytest.mark.parametrize("batch", [2, 5])
def test_a_batch_runs_every_image_through_every_layer(batch):
    """A batched program's every layer output equals the golden model image by image: the conv layers per image
    (stacked along the rows), the flatten and the linear layer as the batch's pixels."""
    rng = np.random.default_rng(30 + batch)
    layers = batch_chain(rng)
    x = rng.integers(0, 16, (batch, 3, 8, 7))
    program = compile_program(SMALL, layers, (3, 8, 7), base=BASE, batch=batch)
    assert program.input_shape == (batch, 3, 8, 7) and program.layer_images == [batch, batch, 1, 1]
    assert program.shapes[2:] == [(5, 2, 2), (batch, 9), (batch, 7)]
    memory = run(program, x)
    hidden = np.stack([reference(SMALL, layers[1], reference(SMALL, layers[0], image)) for image in x])
    assert np.array_equal(output(program, memory, 1), hidden)
    assert np.array_equal(output(program, memory), np.stack([golden_chain(layers, image) for image in x]))
    assert program.macs == batch * compile_program(SMALL, layers, (3, 8, 7), base=BASE).macs
    assert all(descriptor_error(SMALL, tile.descriptor, memory_size=program.memory_size) == 0
               for tile in program.tiles)


def test_a_batch_loads_each_weight_tile_once():
    """Every tile of a layer after the first of its row blocks reuses the weights, across the images too; the
    flatten is one tile set for the whole batch."""
    layers = batch_chain(np.random.default_rng(40))
    program = compile_program(SMALL, layers, (3, 8, 7), base=BASE, batch=4)
    single = compile_program(SMALL, layers, (3, 8, 7), base=BASE)
    for index in range(len(layers)):
        loads = [tile for tile in program.tiles if tile.layer == index and not tile.descriptor["reuse_weights"]]
        single_loads = [tile for tile in single.tiles if tile.layer == index and not tile.descriptor["reuse_weights"]]
        assert len(loads) == len(single_loads)
    order = [(tile.row_blocks, tile.image) for tile in program.tiles if tile.layer == 0]
    assert order == sorted(order) and {image for _, image in order} == {0, 1, 2, 3}  # row blocks, then images
    assert {tile.image for tile in program.tiles if tile.layer >= 2} == {0}


def test_a_wrong_image_offset_in_a_batch_is_caught():
    """The comparison fails when one image's tile reads the wrong image (a planted address bug)."""
    layers = batch_chain(np.random.default_rng(41))
    x = np.random.default_rng(42).integers(0, 16, (3, 3, 8, 7))
    program = compile_program(SMALL, layers, (3, 8, 7), base=BASE, batch=3)
    tile = next(tile for tile in program.tiles if tile.layer == 0 and tile.image == 1)
    tile.descriptor["activations"]["address"] -= 8 * 7 * 2  # image 0's rows
    assert not np.array_equal(output(program, run(program, x)), np.stack([golden_chain(layers, i) for i in x]))


def test_batch_one_is_the_single_image_program():
    layers = batch_chain(np.random.default_rng(43))
    x = np.random.default_rng(44).integers(0, 16, (3, 8, 7))
    assert (compile_program(SMALL, layers, x.shape, x, base=BASE, batch=1).image
            == compile_program(SMALL, layers, x.shape, x, base=BASE).image)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: compile_program(SMALL, [layer()], (4, 5, 5), batch=0), "batch must be an int in 1..256, got 0"),
    (lambda: compile_program(SMALL, [layer()], (4, 5, 5), batch=True), "batch must be an int in 1..256, got True"),
    (lambda: compile_program(SMALL, [layer("linear", (3, 4))], (2, 4), batch=2),
     "a batch needs a chain that starts with a conv2d layer; a linear layer takes its batch as the N of its "
     "\\(N, I\\) input, got input shape \\(2, 4\\)"),
    (lambda: compile_program(SMALL, [layer()], (4, 5, 5), np.zeros((4, 5, 5), dtype=int), batch=2),
     "the input codes have shape \\(4, 5, 5\\), the program expects \\(2, 4, 5, 5\\)"),
    (lambda: compile_program(SMALL, [layer(), layer("linear", (3, 36))], (4, 5, 5), batch=2000),
     "batch must be an int in 1..256, got 2000"),
])
def test_batch_rejections(build, message):
    with pytest.raises(InputError, match=message):
        build()


def test_a_batch_with_the_first_layers_taps_packed():
    """The host unrolls each image of the batch for the packed first layer; the outputs are the golden model's."""
    rng = np.random.default_rng(45)
    layers = [random_layer(SMALL, rng, "conv2d", 5, 1, 3, 2, 1, False), random_layer(SMALL, rng, "linear", 6, 5 * 9)]
    x = rng.integers(0, 16, (3, 1, 6, 6))
    program = compile_program(SMALL, layers, (1, 6, 6), x, base=BASE, batch=3, pack_input=True)
    assert program.input_packing is not None and program.input_shape == (3, 1, 6, 6)
    expected = np.stack([golden_chain(layers, image) for image in x])
    assert np.array_equal(output(program, run(program)), expected)
    assert np.array_equal(output(program, run(program, x[::-1])), expected[::-1])  # new inputs after compiling


def test_the_cycle_model_gains_from_a_batch():
    """Per image, a batch of 8 costs fewer cycles than one image at a time: the flatten's weights serve 8 pixels."""
    layers = batch_chain(np.random.default_rng(46))
    one = predicted_cycles(compile_program(SMALL, layers, (3, 8, 7), base=BASE))["cycles"]
    eight = predicted_cycles(compile_program(SMALL, layers, (3, 8, 7), base=BASE, batch=8))["cycles"]
    assert eight < 8 * one


def grouped_case(rng, channels, groups, kernel, stride, padding, out_per_group=None):
    """A grouped conv's codes ``(O, C / groups, k, k)`` and requantization, with outputs spread over the codes."""
    outputs = channels if out_per_group is None else out_per_group * groups
    codes = rng.integers(0, SMALL.weight_format.code_count, (outputs, channels // groups, kernel, kernel))
    typical = np.sqrt(channels // groups * kernel * kernel) * SMALL.weight_format.max_level * 15 / 4
    params = golden.requant_params(15 / typical * rng.uniform(0.5, 2.0, outputs),
                                   bias=rng.normal(0, typical / 4, outputs))
    grouped = Layer("conv2d", codes, params, SMALL.activation_format, groups=groups)
    layer = Layer("conv2d", grouped.dense_codes(), params, SMALL.activation_format, stride=stride, padding=padding)
    return layer, codes


@pytest.mark.parametrize(("channels", "groups", "stride", "out_per_group"),
                         [(10, 10, 1, None), (12, 12, 2, None), (16, 4, 1, None), (8, 2, 2, 8)])
def test_grouped_and_depthwise_convolutions_read_only_their_groups(channels, groups, stride, out_per_group):
    """A depthwise or grouped conv as its dense equal: each tile reads and weighs only its row block's channel
    groups, and the outputs equal the golden model's grouped conv."""
    rng = np.random.default_rng(channels + groups + stride)
    layer, codes = grouped_case(rng, channels, groups, 3, stride, 1, out_per_group)
    x = rng.integers(0, 16, (channels, 9, 7))
    program = compile_program(SMALL, [layer], x.shape, x, base=BASE)
    plan = program.schedules[0].input_groups
    assert plan is not None and all(count <= 2 for _, _, count in plan)
    assert all(tile.descriptor["activations"]["segments"] <= 2 for tile in program.tiles)
    acc = golden.conv2d(SMALL.activation_format.level(x)[None], SMALL.weight_format.level(codes), stride=stride,
                        padding=1, groups=groups)
    expected = golden.requantize(acc, layer.params, SMALL.activation_format, channel_axis=1)[0]
    assert len(np.unique(expected)) > 4
    assert np.array_equal(output(program, run(program)), expected)
    assert all(descriptor_error(SMALL, tile.descriptor, memory_size=program.memory_size) == 0
               for tile in program.tiles)
    schedule = program.schedules[0]
    chunks = sum(count for *_, count in plan) * 9
    assert chunks * 2 <= schedule.row_blocks * len(schedule.chunks)  # at most half the dense layer's chunks
    assert program.macs == sum(tile.macs for tile in program.tiles) < schedule.macs


def test_two_inputs_a_plane_apart_as_an_arithmetic_progression():
    """A 1x1 conv over [a; b] (b from a whole group on) with output c reading a_c and b_c: each row block reads two
    planes, the second ``G`` planes after the first, and the result is ``wa * a + wb * b`` requantized."""
    rng = np.random.default_rng(50)
    channels, cols = 8, SMALL.cols
    weights = np.zeros((channels, 2 * channels, 1, 1), dtype=np.int64)
    wa, wb = 2, 4  # codes of levels 2 and 4 in ESB(4,1)
    weights[np.arange(channels), np.arange(channels)] = wa
    weights[np.arange(channels), channels + np.arange(channels)] = wb
    params = golden.requant_params(np.full(channels, 15 / (6 * 15 * 2)))
    layer = Layer("conv2d", weights, params, SMALL.activation_format)
    x = rng.integers(0, 16, (2 * channels, 5, 6))
    program = compile_program(SMALL, [layer], x.shape, x, base=BASE)
    groups = channels // cols
    assert program.schedules[0].input_groups == tuple((r, groups, 2) for r in range(groups))
    levels = SMALL.activation_format.level(x)
    acc = (SMALL.weight_format.level(wa) * levels[:channels] + SMALL.weight_format.level(wb) * levels[channels:])
    expected = golden.requantize(acc[None], params, SMALL.activation_format, channel_axis=1)[0]
    assert np.array_equal(output(program, run(program)), expected)


def test_a_wrong_group_stride_is_caught():
    """The comparison fails when a group-sparse tile reads its groups one plane off (a planted address bug)."""
    rng = np.random.default_rng(51)
    layer, codes = grouped_case(rng, 12, 12, 3, 1, 1)
    x = rng.integers(0, 16, (12, 9, 7))
    program = compile_program(SMALL, [layer], x.shape, x, base=BASE)
    tile = next(tile for tile in program.tiles if tile.row_blocks[0] == 1)
    tile.descriptor["activations"]["address"] += tile.descriptor["activations"]["stride"] or 9 * 7 * 2
    acc = golden.conv2d(SMALL.activation_format.level(x)[None], SMALL.weight_format.level(codes), padding=1,
                        groups=12)
    assert not np.array_equal(output(program, run(program)),
                              golden.requantize(acc, layer.params, SMALL.activation_format, channel_axis=1)[0])


def test_a_dense_layer_keeps_dense_tiles():
    layer = random_layer(SMALL, np.random.default_rng(52), "conv2d", 9, 10, 3, 1, 1, False)
    assert compile_program(SMALL, [layer], (10, 6, 6), base=BASE).schedules[0].input_groups is None


def test_a_group_sparse_layer_is_held_to_its_tiles_reduction():
    """max_reduction 64: a depthwise 3x3 over 16 channels reduces over 144 as a dense layer, but each tile over one
    group of 4 (36), so it compiles and equals the golden model; the dense layer of the same shape is refused."""
    narrow = dataclasses.replace(SMALL, max_reduction=64)
    rng = np.random.default_rng(53)
    layer, codes = grouped_case(rng, 16, 16, 3, 1, 1)
    x = rng.integers(0, 16, (16, 6, 6))
    program = compile_program(narrow, [layer], x.shape, x, base=BASE)
    acc = golden.conv2d(SMALL.activation_format.level(x)[None], SMALL.weight_format.level(codes), padding=1,
                        groups=16)
    assert np.array_equal(output(program, run(program)),
                          golden.requantize(acc, layer.params, SMALL.activation_format, channel_axis=1)[0])
    dense = random_layer(narrow, rng, "conv2d", 16, 16, 3, 1, 1, False)
    with pytest.raises(InputError, match="layer 0: a reduction of 144 exceeds max_reduction 64"):
        compile_program(narrow, [dense], x.shape, base=BASE)


@pytest.mark.parametrize("batch", [1, 3])
def test_a_grouped_layer_kept_grouped_and_a_whole_map_depthwise_in_a_batch(batch):
    """Layer(groups=C) keeps its (O, 1, k, k) codes (no dense copy): a depthwise 3x3 and then a depthwise kernel over
    the whole map (a global sum, as a global average pool runs), in batches: the golden model image by image."""
    rng = np.random.default_rng(60 + batch)
    depthwise, codes = grouped_case(rng, 12, 12, 3, 1, 1)
    depthwise = Layer("conv2d", codes, depthwise.params, SMALL.activation_format, padding=1, groups=12)
    ones = np.full((12, 1, 5, 5), int(SMALL.weight_format.code_of_level(1)))
    pool = Layer("conv2d", ones, golden.requant_params(np.full(12, 1 / 25)), SMALL.activation_format, groups=12)
    x = rng.integers(0, 16, (batch, 12, 5, 5))
    program = compile_program(SMALL, [depthwise, pool], (12, 5, 5), base=BASE, batch=batch)
    assert [schedule.input_groups is not None for schedule in program.schedules] == [True, True]
    expected = []
    for image in x:
        hidden = reference(SMALL, depthwise, image)
        acc = golden.conv2d(SMALL.activation_format.level(hidden)[None], np.ones((12, 1, 5, 5), dtype=np.int64),
                            groups=12)
        expected.append(golden.requantize(acc, pool.params, SMALL.activation_format, channel_axis=1)[0])
    got = output(program, run(program, x if batch > 1 else x[0]))
    assert np.array_equal(got.reshape(batch, -1), np.stack(expected).reshape(batch, -1))
