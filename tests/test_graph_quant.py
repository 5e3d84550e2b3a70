"""Quantized graphs (esb_hw.frontend.graph_quant): zero points, residual adds, pools, placement, and the array's
nodes bit-exact through the compiler's NumPy twin of the engine."""

from __future__ import annotations

import dataclasses
import math
import re
from fractions import Fraction

import numpy as np
import pytest

from esb_hw.compiler.program import read_output, run_in_numpy, to_bundle
from esb_hw.data import shipped_config
from esb_hw.errors import InputError
from esb_hw.frontend.graph import INPUT, FloatGraph, FloatNode
from esb_hw.frontend.graph_quant import TensorCode, _signed_code, _upper_level, place_graph, quantize_graph
from esb_hw.frontend.quantize import QuantRecipe
from esb_hw.quant import ESBFormat

DEFAULT = shipped_config("default")
UINT8 = ESBFormat(8, 8, signed=False)
FINE = QuantRecipe("uniform:8", UINT8, "max")


def _conv(rng, name, inputs, cin, cout, kernel=3, stride=1, relu=True, groups=1, upper=None, gain=1.0):
    std = gain * math.sqrt(2 / (cin // groups * kernel * kernel))
    weight = rng.normal(0, std, (cout, cin // groups, kernel, kernel))
    return FloatNode(name, "conv2d", inputs, weight, rng.normal(0, 0.1, cout), stride=stride, padding=kernel // 2,
                     groups=groups, relu=relu, upper=upper)


def _graph(seed: int = 0, width: int = 8) -> FloatGraph:
    """A residual block, a depthwise ReLU6 conv, a projection without ReLU, a 3x3 conv (padded) and a 1x1 conv that
    read it, a 3x3 stride-2 max pool, global average pooling and a classifier: every kind of node and zero point.
    ``width`` channels throughout (past the array's 8 columns, the adds and the depthwise conv are group-sparse)."""
    rng = np.random.default_rng(seed)
    return FloatGraph([
        _conv(rng, "stem", (INPUT,), 3, width),
        _conv(rng, "a", ("stem",), width, width),
        _conv(rng, "b", ("a",), width, width, relu=False, gain=3.0),  # a scale of its own
        FloatNode("add", "add", ("b", "stem"), relu=True),
        _conv(rng, "dw", ("add",), width, width, groups=width, upper=6.0),
        _conv(rng, "proj", ("dw",), width, width, kernel=1, relu=False),
        _conv(rng, "after", ("proj",), width, width),
        _conv(rng, "expand", ("proj",), width, width, kernel=1),
        FloatNode("join", "add", ("after", "expand"), relu=True),
        FloatNode("mp", "max_pool", ("join",), kernel=3, stride=2, padding=1),
        FloatNode("gap", "global_avg_pool", ("mp",)),
        FloatNode("flat", "flatten", ("gap",)),
        FloatNode("fc", "linear", ("flat",), rng.normal(0, 0.3, (10, width)), np.zeros(10)),
    ], (3, 12, 12))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(0, 1, (24, 3, 12, 12))


def test_every_node_tracks_the_float_graph(images):
    """At 8 bits each node's dequantized output is within a few percent of the float graph's: a zero point in
    the wrong place, or a signed input padded with its level 0 instead of real 0, is far off."""
    graph = _graph()
    integer = quantize_graph(graph, FINE, images[:16])
    floats = graph.activations(images[16:])
    codes = integer.run(images[16:], keep=True)
    signed = {node.name for node in integer.nodes if node.output.zero_point}
    assert {"b", "proj", "fc"} <= signed and not signed & {"stem", "a", "add", "dw", "after", "expand", "mp", "gap"}
    for node in integer.nodes:
        real = node.output.real(codes[node.name]).reshape(floats[node.name].shape)
        error = np.abs(real - floats[node.name]).mean() / np.abs(floats[node.name]).mean()
        assert error < 0.05, (node.name, error)
    assert np.array_equal(integer.predict(images[16:]), np.argmax(integer.logits(images[16:]), axis=1))


def test_residual_add_with_zero_points_is_exact(images):
    """With power-of-two scales the add is exact up to its one rounding: y = zy + round_half_up(((La - za) * sa +
    (Lb - zb) * sb) / sy), clamped to the levels (computed here in exact rationals from the codes)."""
    integer = quantize_graph(_graph(), FINE, images[:16])
    codes = integer.run(images[16:], keep=True)
    add = next(node for node in integer.nodes if node.name == "add")
    first, second = add.input_codes
    assert first.zero_point > 0 and second.zero_point == 0 and add.output.zero_point == 0
    assert first.scale != second.scale
    a, b = first.fmt.level(codes["b"]).ravel(), second.fmt.level(codes["stem"]).ravel()
    scale = Fraction(add.output.scale)
    expected = [min(255, max(0, math.floor((Fraction(int(p) - first.zero_point) * Fraction(first.scale)
                                            + Fraction(int(q)) * Fraction(second.scale)) / scale + Fraction(1, 2))))
                for p, q in zip(a, b, strict=True)]
    assert UINT8.level(codes["add"]).ravel().tolist() == expected


def test_placement_and_the_array_nodes_bit_exact_through_the_numpy_twin(images):
    integer = quantize_graph(_graph(), QuantRecipe.for_config(DEFAULT), images[:16])
    placements = {placement.node: placement for placement in place_graph(integer, DEFAULT)}
    reasons = {name: placement.reason for name, placement in placements.items()}
    assert [name for name, p in placements.items() if p.where == "engine"] == [
        "stem", "a", "b", "add", "dw", "proj", "expand", "join", "gap", "fc"]
    assert integer.nodes[7].name == "expand" and integer.nodes[7].input_codes[0].zero_point > 0  # folded into bias
    assert re.fullmatch(r"its input has zero point \d+ and it pads: the engine pads with level 0, not the zero point",
                        reasons["after"])
    assert reasons["mp"] == ("3x3 stride-2 max pool: in a graph a max pool runs on the host (the engine's fused 2x2 "
                             "max pool is used by chains only)")
    codes = integer.run(images[16:19], keep=True)
    for node in integer.nodes:
        placement = placements[node.name]
        if placement.where != "engine":
            continue
        program = placement.program
        for image in range(3):
            source = placement.engine_input([codes[name][image:image + 1] for name in node.inputs])[0]
            memory = bytearray(to_bundle(program, node.name, source.reshape(program.input_shape)).image)
            run_in_numpy(program, memory)
            address, size = program.output_region()
            got = read_output(program, bytes(memory[address:address + size]))
            assert np.array_equal(got.reshape(-1), codes[node.name][image].reshape(-1)), node.name


@pytest.mark.parametrize("batch", [1, 3])
def test_group_sparse_adds_and_depthwise_nodes_bit_exact_in_batches(images, batch):
    """20 channels on the 8x8 array: the adds read two groups of 3 (a's and b's, 3 planes apart) and the depthwise
    conv one group per row block; every array node's NumPy twin equals the golden node, in batches."""
    integer = quantize_graph(_graph(width=20), QuantRecipe.for_config(DEFAULT), images[:16])
    integer = dataclasses.replace(integer, nodes=[dataclasses.replace(n, upper=None) if n.name == "dw" else n
                                                  for n in integer.nodes])  # its ReLU6 level keeps it on the host
    placements = {p.node: p for p in place_graph(integer, DEFAULT, batch=batch)}
    assert placements["dw"].where == placements["join"].where == "engine"
    assert placements["add"].program.schedules[0].input_groups == ((0, 3, 2), (1, 3, 2), (2, 3, 2))
    assert placements["dw"].program.schedules[0].input_groups == ((0, 1, 1), (1, 1, 1), (2, 1, 1))
    codes = integer.run(images[16:16 + batch], keep=True)
    for node in integer.nodes:
        placement = placements[node.name]
        if placement.program is None:
            continue
        program = placement.program
        source = placement.engine_input([codes[name] for name in node.inputs])
        memory = bytearray(to_bundle(program, node.name, source.reshape(program.input_shape)).image)
        run_in_numpy(program, memory)
        address, size = program.output_region()
        got = read_output(program, bytes(memory[address:address + size]))
        assert np.array_equal(got.reshape(-1), codes[node.name].reshape(-1)), node.name


@pytest.mark.parametrize("relu", [True, False])
def test_average_pools_run_as_depthwise_sums(images, relu):
    """A 2x2 stride-2 average pool and a global one on the array, as depthwise convolutions of weight level 1 (an
    input zero point, without ReLU, folded into the bias): every array node bit-exact through the NumPy twin."""
    rng = np.random.default_rng(8)
    graph = FloatGraph([
        _conv(rng, "stem", (INPUT,), 3, 12, relu=relu),
        FloatNode("avg", "avg_pool", ("stem",), kernel=2, stride=2),
        FloatNode("gap", "global_avg_pool", ("avg",)), FloatNode("flat", "flatten", ("gap",)),
        FloatNode("fc", "linear", ("flat",), rng.normal(0, 0.3, (10, 12)), np.zeros(10))], (3, 12, 12))
    integer = quantize_graph(graph, QuantRecipe.for_config(DEFAULT), images[:16])
    assert (integer.nodes[0].output.zero_point > 0) == (not relu)
    placements = {p.node: p for p in place_graph(integer, DEFAULT)}
    assert [name for name, p in placements.items() if p.where == "engine"] == ["stem", "avg", "gap", "fc"]
    codes = integer.run(images[16:18], keep=True)
    for node in integer.nodes[1:3]:
        program = placements[node.name].program
        for image in range(2):
            memory = bytearray(to_bundle(program, node.name, codes[node.inputs[0]][image]).image)
            run_in_numpy(program, memory)
            address, size = program.output_region()
            got = read_output(program, bytes(memory[address:address + size]))
            assert np.array_equal(got.reshape(-1), codes[node.name][image].reshape(-1)), node.name


def test_an_add_of_two_vectors_runs_as_one_pixel(images):
    """An add after linear layers (vectors, not maps): on the array as 1x1 maps, bit-exact."""
    rng = np.random.default_rng(7)
    graph = FloatGraph([
        _conv(rng, "stem", (INPUT,), 3, 8), FloatNode("flat", "flatten", ("stem",)),
        FloatNode("fa", "linear", ("flat",), rng.normal(0, 0.05, (16, 8 * 144)), np.zeros(16), relu=True),
        FloatNode("fb", "linear", ("fa",), rng.normal(0, 0.3, (16, 16)), np.zeros(16), relu=True),
        FloatNode("add", "add", ("fb", "fa"), relu=True),
        FloatNode("fc", "linear", ("add",), rng.normal(0, 0.3, (10, 16)), np.zeros(10))], (3, 12, 12))
    integer = quantize_graph(graph, QuantRecipe.for_config(DEFAULT), images[:16])
    (placement,) = [p for p in place_graph(integer, DEFAULT) if p.node == "add"]
    assert placement.where == "engine" and placement.program.input_shape == (32, 1, 1)
    codes = integer.run(images[16:17], keep=True)
    source = placement.engine_input([codes["fb"], codes["fa"]])
    memory = bytearray(to_bundle(placement.program, "add", source.reshape(placement.program.input_shape)).image)
    run_in_numpy(placement.program, memory)
    address, size = placement.program.output_region()
    got = read_output(placement.program, bytes(memory[address:address + size]))
    assert np.array_equal(got.reshape(-1), codes["add"].reshape(-1))


def test_a_residual_add_on_the_array_is_exact_for_any_weight_level_ratio():
    """The add as a 1x1 conv over both inputs (_add_layer) equals golden.residual_add on every pair of codes, for
    input scales whose ratio is a weight level of ESB(4,1) (1, 2, 3, 4, 6, 8, 12 times a power of two) and zero
    points on either side; a ratio that is not refuses with the reason."""
    from esb_hw.compiler.lowering import reference
    from esb_hw.frontend.graph_quant import IntegerNode, Placement, _add_layer
    from esb_hw.quant import golden

    fmt = DEFAULT.activation_format
    a, b = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")  # every pair of codes
    a, b = a.reshape(1, 1, 256, 256), b.reshape(1, 1, 256, 256)
    for scale_a, scale_b, scale_y, zero_points in [(1 / 32, 1 / 64, 1 / 64, (128, 0, 0)), (1 / 16, 3 / 64, 1 / 32,
                                                   (0, 128, 128)), (1 / 8, 1 / 8, 1 / 4, (0, 0, 0)),
                                                   (1 / 64, 12 / 64, 1 / 16, (128, 128, 128))]:
        params = golden.add_params(scale_a, scale_b, scale_y, zero_points)
        node = IntegerNode("add", "add", ("x", "y"), (TensorCode(fmt, scale_a, zero_points[0]),
                                                      TensorCode(fmt, scale_b, zero_points[1])),
                           TensorCode(fmt, scale_y, zero_points[2]), add=params)
        layer, shape = _add_layer(node, (1, 256, 256), DEFAULT)
        assert shape == (9, 256, 256)
        inputs = Placement("add", "engine", program=type("P", (), {"config": DEFAULT})()).engine_input([a, b])
        assert np.array_equal(reference(DEFAULT, layer, inputs[0]), node.run([a, b])[0]), (scale_a, scale_b)
    odd = golden.add_params(1 / 32, 5 / 64, 1 / 64)  # a ratio of 5/2: 5 is no level of ESB(4,1)
    node = dataclasses.replace(node, add=odd)
    assert _add_layer(node, (1, 4, 4), DEFAULT) == (
        f"residual add: its input scales (M = {odd.multiplier_a} and {odd.multiplier_b}) are not weight levels of "
        "ESB(4,1) times one multiplier")


def test_bounds_become_levels_and_keep_nodes_on_the_host(images):
    node = FloatNode("c", "add", ("x", "y"), relu=True, upper=6.0)
    assert _upper_level(node, TensorCode(UINT8, 1 / 16)) == 96
    assert _upper_level(node, TensorCode(UINT8, 1 / 32)) == 192
    assert _upper_level(node, TensorCode(UINT8, 1 / 64)) is None  # 384 > 255: the clamp changes nothing
    integer = quantize_graph(_graph(), QuantRecipe.for_config(DEFAULT), images[:16])
    bounded = dataclasses.replace(integer, nodes=[dataclasses.replace(n, upper=100) if n.name == "a" else n
                                                  for n in integer.nodes])
    (reason,) = [p.reason for p in place_graph(bounded, DEFAULT) if p.node == "a"]
    assert reason == "a bound at level 100 (ReLU6): the engine clamps at the format's top level only"
    codes = bounded.run(images[16:], keep=True)
    assert UINT8.level(codes["a"]).max() <= 100 < UINT8.level(integer.run(images[16:], keep=True)["a"]).max()


def test_host_reasons_for_formats_and_sizes(images):
    integer = quantize_graph(_graph(), FINE, images[:16])
    reasons = {p.node: p.reason for p in place_graph(integer, DEFAULT)}
    assert reasons["stem"] == "weights uniform 8b, the array has ESB(4,1)"
    rng = np.random.default_rng(2)
    wide = FloatGraph([_conv(rng, "wide", (INPUT,), 512, 8)], (512, 4, 4))
    placed = place_graph(quantize_graph(wide, QuantRecipe.for_config(DEFAULT), rng.uniform(0, 1, (2, 512, 4, 4))),
                         DEFAULT)
    assert (placed[0].where, placed[0].reason) == ("host", "a reduction of 4608 exceeds max_reduction 4096")


def test_refusals_name_the_node(images):
    rng = np.random.default_rng(3)
    huge = FloatGraph([FloatNode("big", "conv2d", (INPUT,), rng.normal(0, 1e300, (4, 3, 3, 3)), None, padding=1,
                                 relu=True),
                       FloatNode("bigger", "conv2d", ("big",), rng.normal(0, 1e300, (4, 4, 3, 3)), None, padding=1)],
                      (3, 12, 12))
    with pytest.raises(InputError, match=re.escape("node 'bigger': the float graph's outputs are not finite")):
        quantize_graph(huge, FINE, images[:4])
    with pytest.raises(InputError, match=re.escape("node 'n': ESB(1,1,unsigned) activations cannot hold a tensor "
                                                   "that may be negative")):
        _signed_code(np.array([-1.0, 1.0]), ESBFormat(1, 1, signed=False), "n")
    with pytest.raises(InputError, match=re.escape("node 'n': values of magnitude 1e+30 need a scale of 2**")):
        _signed_code(np.array([-1e30, 1.0]), UINT8, "n")
