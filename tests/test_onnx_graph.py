"""esb_hw/frontend/onnx_graph.py: small DAGs written with onnx.helper (a residual block, a branch read by two convs,
ReLU6 as Clip in both opset forms, grouped and depthwise convs, pools) against onnx.reference; every refusal with its
exact message; and chain models, which the chain importer reads, giving the same outputs through the graph importer."""

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from esb_hw.errors import InputError
from esb_hw.frontend.accuracy import EXAMPLES
from esb_hw.frontend.graph import INPUT
from esb_hw.frontend.onnx_graph import GRAPH_OPERATORS, load_onnx_graph
from esb_hw.frontend.onnx_import import load_onnx

RNG = np.random.default_rng(21)
FIXTURES = Path(__file__).parent / "fixtures"


def exactly(message):
    return f"^{re.escape(message)}$"


def graph_file(tmp_path, nodes, initializers, input_shape=("N", 2, 6, 6), opset=15, output="y", output_rank=None,
               name="model.onnx", tensors=(), input_type=TensorProto.FLOAT):
    """Save a graph reading 'x' whose output is ``output``; ``initializers`` are float32, ``tensors`` any
    TensorProto."""
    rank = output_rank or (2 if any(node.op_type in ("Flatten", "Gemm", "Reshape") for node in nodes) else 4)
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", input_type, list(input_shape))],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [f"d{i}" for i in range(rank)])],
        [numpy_helper.from_array(np.asarray(value, np.float32), key) for key, value in initializers.items()]
        + list(tensors))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def assert_matches_reference(path, x, input_shape=None, rtol=1e-5, atol=1e-5):
    """load_onnx_graph's float forward pass equals onnx.reference's run of the same file (float32)."""
    graph = load_onnx_graph(path, input_shape)
    expected = ReferenceEvaluator(str(path)).run(None, {"x": x.astype(np.float32)})[0]
    got = graph.forward(x)
    np.testing.assert_allclose(got, expected.reshape(len(x), -1), rtol=rtol, atol=atol)
    return graph, got


def structure(graph):
    return [(node.name, node.op, node.inputs, node.relu, node.upper) for node in graph.nodes]


def weights(name, out, channels, kernel=3, scale=None):
    scale = np.sqrt(2 / (channels * kernel * kernel)) if scale is None else scale
    return {name: RNG.normal(0, scale, (out, channels, kernel, kernel))}


def batch_norm(prefix, channels):
    return {f"{prefix}.s": RNG.uniform(0.5, 1.5, channels), f"{prefix}.o": RNG.normal(0, 0.3, channels),
            f"{prefix}.m": RNG.normal(0, 0.3, channels), f"{prefix}.v": RNG.uniform(0.5, 1.5, channels)}


def conv(inputs, output, name=None, kernel=3, **attributes):
    attributes.setdefault("pads", [kernel // 2] * 4)
    return helper.make_node("Conv", list(inputs), [output], name=name or output, kernel_shape=[kernel, kernel],
                            **attributes)


def bn(data, prefix, output):
    return helper.make_node("BatchNormalization", [data] + [f"{prefix}.{key}" for key in "somv"], [output],
                            name=prefix)


def relu(data, output, name=None):
    return helper.make_node("Relu", [data], [output], name=name or output)


def add(first, second, output, name=None):
    return helper.make_node("Add", [first, second], [output], name=name or output)


# ---- DAGs against onnx.reference -------------------------------------------------------------------------------
def residual_block(block_input):
    """Conv-BN-Relu-Conv-BN, Add with the block input, Relu; the block input is the graph's input ('x') or a stem
    Conv-BN-Relu's output ('r0')."""
    init = {**weights("w1", 4, 4), **weights("w2", 4, 4), **batch_norm("bn1", 4), **batch_norm("bn2", 4)}
    nodes = [conv([block_input, "w1"], "c1", "conv1"), bn("c1", "bn1", "n1"), relu("n1", "r1"),
             conv(["r1", "w2"], "c2", "conv2"), bn("c2", "bn2", "n2"), add("n2", block_input, "s", "add"),
             relu("s", "y", "relu")]
    if block_input == "x":
        return nodes, init, 4
    init |= {**weights("w0", 4, 2), **batch_norm("bn0", 4)}
    return [conv(["x", "w0"], "c0", "stem"), bn("c0", "bn0", "n0"), relu("n0", "r0"), *nodes], init, 2


@pytest.mark.parametrize("block_input", ["x", "r0"], ids=["on the graph's input", "after a stem"])
def test_residual_block_matches_onnx_reference(tmp_path, block_input):
    nodes, init, channels = residual_block(block_input)
    path = graph_file(tmp_path, nodes, init, ("N", channels, 6, 5))
    graph, _ = assert_matches_reference(path, RNG.normal(size=(3, channels, 6, 5)))
    skip = INPUT if block_input == "x" else "stem"
    expected = [("conv1", "conv2d", (skip,), True, None), ("conv2", "conv2d", ("conv1",), False, None),
                ("add", "add", ("conv2", skip), True, None)]
    if block_input == "r0":
        expected.insert(0, ("stem", "conv2d", (INPUT,), True, None))
    assert structure(graph) == expected  # BatchNorm and Relu folded, the Add a node of its own


def test_branch_read_by_two_convs_matches_onnx_reference(tmp_path):
    """One tensor read by a 3x3 and a 1x1 conv, merged by an Add, then a pooled classifier head."""
    init = {**weights("w0", 4, 2), "b0": RNG.normal(size=4), **weights("wa", 4, 4), **weights("wb", 4, 4, 1),
            **batch_norm("bna", 4), "fc": RNG.normal(size=(3, 4)), "fcb": RNG.normal(size=3)}
    nodes = [conv(["x", "w0", "b0"], "c0", "stem"), relu("c0", "r0"),
             conv(["r0", "wa"], "ca", "branch_a"), bn("ca", "bna", "na"),
             conv(["r0", "wb"], "cb", "branch_b", kernel=1),
             add("na", "cb", "s", "merge"), relu("s", "rs"),
             helper.make_node("GlobalAveragePool", ["rs"], ["gap"], name="gap"),
             helper.make_node("Flatten", ["gap"], ["flat"], name="flat", axis=1),
             helper.make_node("Gemm", ["flat", "fc", "fcb"], ["y"], name="fc", transB=1)]
    path = graph_file(tmp_path, nodes, init)
    graph, _ = assert_matches_reference(path, RNG.normal(size=(4, 2, 6, 6)))
    assert [(node.name, node.op, node.inputs) for node in graph.nodes] == [
        ("stem", "conv2d", (INPUT,)), ("branch_a", "conv2d", ("stem",)), ("branch_b", "conv2d", ("stem",)),
        ("merge", "add", ("branch_a", "branch_b")), ("gap", "global_avg_pool", ("merge",)),
        ("flat", "flatten", ("gap",)), ("fc", "linear", ("flat",))]
    assert graph.node("merge").relu and graph.classes == 3


CLIPS = {
    "ReLU6, opset 11 inputs": (11, 0.0, 6.0),
    "ReLU6, opset 13 inputs": (13, 0.0, 6.0),
    "ReLU6, opset 17 inputs": (17, 0.0, 6.0),
    "ReLU6, opset 10 attributes": (10, 0.0, 6.0),
    "upper 1.5, opset 6 attributes": (6, 0.0, 1.5),
    "min only, opset 13": (13, 0.0, None),
    "min only, opset 10": (10, 0.0, None),
}


def clip_node(data, output, opset, low, high, name="clip"):
    """Clip in its opset's form, and the tensors its bounds need."""
    if opset < 11:
        bounds = {key: value for key, value in (("min", low), ("max", high)) if value is not None}
        return helper.make_node("Clip", [data], [output], name=name, **bounds), []
    inputs, tensors = [data, "", ""], []
    for position, (key, value) in enumerate((("lo", low), ("hi", high)), start=1):
        if value is not None:
            inputs[position] = f"{name}.{key}"
            tensors.append(numpy_helper.from_array(np.array(value, np.float32), f"{name}.{key}"))
    return helper.make_node("Clip", inputs if inputs[2] else inputs[:2], [output], name=name), tensors


@pytest.mark.parametrize("opset, low, high", CLIPS.values(), ids=CLIPS.keys())
def test_clip_folds_as_relu_with_an_upper_bound(tmp_path, opset, low, high):
    """Conv -> Clip(0, upper) and Add -> Clip: the clip becomes relu (and upper) of the node before it."""
    clip, tensors = clip_node("c", "r", opset, low, high)
    second, more = clip_node("s", "y", opset, low, high, name="clip2")
    init = {**weights("w", 2, 2, scale=3.0), "b": RNG.normal(size=2)}
    nodes = [conv(["x", "w", "b"], "c", "conv"), clip, add("r", "x", "s", "add"), second]
    path = graph_file(tmp_path, nodes, init, opset=opset, tensors=tensors + more)
    x = RNG.normal(size=(4, 2, 6, 6)) * 3
    graph, got = assert_matches_reference(path, x)
    assert structure(graph) == [("conv", "conv2d", (INPUT,), True, high), ("add", "add", ("conv", INPUT), True, high)]
    assert got.min() == 0 and (got.max() == high if high is not None else got.max() > 6)


def test_grouped_depthwise_and_pools_match_onnx_reference(tmp_path):
    """A grouped conv, ResNet's 3x3 s2 p1 max pool, a depthwise conv with ReLU6 and a channel multiplier of 2, an
    average pool, a global pool."""
    init = {"wg": RNG.normal(size=(6, 2, 3, 3)), "wd": RNG.normal(size=(6, 1, 3, 3)),
            "wm": RNG.normal(size=(12, 1, 3, 3)), **batch_norm("bnd", 6)}
    clip, tensors = clip_node("nd", "rd", 13, 0.0, 6.0)
    nodes = [conv(["x", "wg"], "cg", "grouped", group=2),
             helper.make_node("MaxPool", ["cg"], ["p"], name="maxpool", kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             conv(["p", "wd"], "cd", "depthwise", group=6), bn("cd", "bnd", "nd"), clip,
             conv(["rd", "wm"], "cm", "multiplier", group=6, strides=[2, 2]),
             helper.make_node("AveragePool", ["cm"], ["a"], name="avgpool", kernel_shape=[2, 2], strides=[1, 1]),
             helper.make_node("GlobalAveragePool", ["a"], ["y"], name="gap")]
    path = graph_file(tmp_path, nodes, init, ("N", 4, 11, 10), tensors=tensors)
    graph, _ = assert_matches_reference(path, RNG.normal(size=(2, 4, 11, 10)))
    assert [(node.op, node.groups, node.kernel, node.stride, node.padding) for node in graph.nodes] == [
        ("conv2d", 2, 3, 1, 1), ("max_pool", 1, 3, 2, 1), ("conv2d", 6, 3, 1, 1), ("conv2d", 6, 3, 2, 1),
        ("avg_pool", 1, 2, 1, 0), ("global_avg_pool", 1, 1, 1, 0)]
    assert graph.node("depthwise").upper == 6.0 and graph.shapes["gap"] == (12, 1, 1)


POOL_FORMS = {
    "MaxPool ceil_mode 1, no partial window": ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2],
                                                           "pads": [1, 1, 1, 1], "ceil_mode": 1}, (7, 9)),
    "AveragePool ceil_mode 1, no partial window": ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2],
                                                                   "ceil_mode": 1}, (7, 5)),
    "AveragePool count_include_pad 1, no pads": ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2],
                                                                 "count_include_pad": 1}, (6, 8)),
    "AveragePool auto_pad VALID": ("AveragePool", {"kernel_shape": [3, 3], "auto_pad": "VALID"}, (5, 6)),
    "MaxPool auto_pad VALID, default strides": ("MaxPool", {"kernel_shape": [2, 2], "auto_pad": "VALID"}, (5, 4)),
    "MaxPool 1x1 stride 2": ("MaxPool", {"kernel_shape": [1, 1], "strides": [2, 2]}, (5, 5)),
}


@pytest.mark.parametrize("op, attributes, size", POOL_FORMS.values(), ids=POOL_FORMS.keys())
def test_pool_forms_match_onnx_reference(tmp_path, op, attributes, size):
    nodes = [conv(["x", "w"], "c", "conv"), helper.make_node(op, ["c"], ["y"], name="pool", **attributes)]
    path = graph_file(tmp_path, nodes, weights("w", 3, 2), ("N", 2, *size))
    assert_matches_reference(path, RNG.normal(size=(2, 2, *size)))


def test_bias_add_folds_and_names_are_made_unique(tmp_path):
    """A constant Add is a bias of the conv; unnamed nodes, a node named 'input' and a repeated name import."""
    init = {**weights("w", 3, 2), "bias": RNG.normal(size=(3, 1, 1)), **weights("w2", 3, 3)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "bias"], ["b"]), relu("b", "r", "input"),
             conv(["r", "w2"], "c2", "input"), conv(["c2", "w2"], "c3", "input"), add("c3", "r", "y", "input")]
    path = graph_file(tmp_path, nodes, init)
    graph, _ = assert_matches_reference(path, RNG.normal(size=(2, 2, 6, 6)))
    names = [node.name for node in graph.nodes]
    assert len(set(names)) == 4 and INPUT not in names
    assert [node.op for node in graph.nodes] == ["conv2d", "conv2d", "conv2d", "add"]
    assert graph.nodes[3].inputs == (names[2], names[0]) and graph.nodes[0].relu


def test_noop_operators_between_nodes(tmp_path):
    """Identity, Dropout and a Cast to the model's own type pass a tensor on, also into a residual Add."""
    init = {**weights("w", 2, 2), **batch_norm("bn", 2)}
    nodes = [conv(["x", "w"], "c", "conv"), helper.make_node("Identity", ["c"], ["i"], name="identity"),
             bn("i", "bn", "n"), helper.make_node("Dropout", ["n"], ["d"], name="dropout"), relu("d", "r"),
             helper.make_node("Cast", ["r"], ["k"], name="cast", to=TensorProto.FLOAT), add("k", "x", "y", "add")]
    graph, _ = assert_matches_reference(graph_file(tmp_path, nodes, init), RNG.normal(size=(2, 2, 6, 6)))
    assert structure(graph) == [("conv", "conv2d", (INPUT,), True, None), ("add", "add", ("conv", INPUT), False, None)]


# ---- chain models give the same outputs through both importers ---------------------------------------------------
TORCH_FIXTURES = ["torch_classifier_dynamo", "torch_classifier_dynamo_dynamic", "torch_classifier_legacy",
                  "torch_classifier_legacy_dynamic", "torch_classifier_legacy_flatten"]


@pytest.mark.parametrize("path, input_shape", [
    (EXAMPLES / "digits.onnx", (1, 8, 8)),
    (EXAMPLES.parent / "mnist5k" / "mnist5k.onnx", (1, 28, 28)),
    (FIXTURES / "torch_digits" / "model.onnx", None),
    *[(FIXTURES / f"{name}.onnx", (1, 8, 8)) for name in TORCH_FIXTURES],
], ids=lambda value: value.parent.name + "/" + value.name if isinstance(value, Path) else str(value))
def test_chain_models_give_the_same_outputs(path, input_shape):
    chain_notes, graph_notes = [], []
    chain = load_onnx(path, input_shape, notes=chain_notes)
    graph = load_onnx_graph(path, input_shape, notes=graph_notes)
    assert graph_notes == chain_notes
    x = RNG.normal(size=(6, *chain.input_shape))
    np.testing.assert_allclose(graph.forward(x), chain.forward(x), rtol=1e-9, atol=1e-9)
    assert [node.op for node in graph.nodes if node.op in ("conv2d", "linear")] == [
        layer.kind for layer in chain.layers]
    assert graph.macs() == sum(layer_macs(layer, shape) for layer, shape in zip(chain.layers, chain_shapes(chain),
                                                                               strict=True))


def chain_shapes(model):
    """Each chain layer's input shape, from the graph of the same layers (by output size)."""
    shapes, shape = [], tuple(model.input_shape)
    for layer in model.layers:
        shapes.append(shape)
        shape = layer.output_shape(shape)
    return shapes


def layer_macs(layer, shape):
    if layer.kind == "linear":
        return layer.weight.size
    out, _, kernel, _ = layer.weight.shape
    side = [(size + 2 * layer.padding - kernel) // layer.stride + 1 for size in shape[1:]]
    return int(np.prod(layer.weight.shape)) * side[0] * side[1]


CHAIN_FORMS = {
    # what the chain importer honours, written as a chain
    "Relu after a 2x2 MaxPool (the two commute)": (
        [conv(["x", "w"], "c", "conv"), helper.make_node("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[2, 2],
                                                         strides=[2, 2]), relu("p", "y", "relu")], 4),
    "Relu after a Flatten": (
        [conv(["x", "w"], "c", "conv"), helper.make_node("Flatten", ["c"], ["f"], name="flat", axis=1),
         relu("f", "r", "relu"), helper.make_node("Gemm", ["r", "g"], ["y"], name="fc", transB=1)], 2),
    "MaxPool auto_pad SAME_UPPER on an even input": (
        [conv(["x", "w"], "c", "conv"), helper.make_node("MaxPool", ["c"], ["y"], name="pool", kernel_shape=[2, 2],
                                                         strides=[2, 2], auto_pad="SAME_UPPER")], 4),
    "Conv, BatchNormalization, Relu, MaxPool, Flatten, Gemm, Softmax": (
        [conv(["x", "w"], "c", "conv"), bn("c", "bn", "n"), relu("n", "r", "relu"),
         helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("Flatten", ["p"], ["f"], name="flat", axis=1),
         helper.make_node("Gemm", ["f", "g2"], ["o"], name="fc", transB=1),
         helper.make_node("Softmax", ["o"], ["y"], name="softmax")], 2),
}


@pytest.mark.parametrize("nodes, rank", CHAIN_FORMS.values(), ids=CHAIN_FORMS.keys())
def test_what_the_chain_importer_honours_is_honoured(tmp_path, nodes, rank):
    """The module docstring: everything onnx_import honours for chains is honoured here."""
    init = {**weights("w", 2, 2), **batch_norm("bn", 2), "g": RNG.normal(size=(3, 72)),
            "g2": RNG.normal(size=(3, 18))}
    path = graph_file(tmp_path, nodes, init, output_rank=rank)
    x = RNG.normal(size=(3, 2, 6, 6))
    chain = load_onnx(path)
    np.testing.assert_allclose(load_onnx_graph(path).forward(x), chain.forward(x), rtol=1e-9, atol=1e-9)


def test_same_padding_that_is_symmetric_is_honoured(tmp_path):
    """SAME_UPPER on a 7x7 input with a 3x3 stride-2 window pads 1 on every side: the same as pads = 1."""
    nodes = [STEM, helper.make_node("MaxPool", ["c"], ["y"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                                    auto_pad="SAME_UPPER")]
    path = graph_file(tmp_path, nodes, W, ("N", 2, 7, 7))
    graph, _ = assert_matches_reference(path, RNG.normal(size=(2, 2, 7, 7)))
    assert graph.nodes[-1].padding == 1


def test_clip_after_a_padded_max_pool_folds_into_the_conv(tmp_path):
    """Clip(0, 6) is monotone, so it commutes with a max pool (even a padded one) and folds into the conv before."""
    nodes = [STEM, maxpool("c", "p"), helper.make_node("Clip", ["p"], ["y"], name="clip", min=0.0, max=6.0)]
    path = graph_file(tmp_path, nodes, W, opset=10)
    graph, _ = assert_matches_reference(path, 3 * RNG.normal(size=(2, 2, 6, 6)))
    assert [(node.op, node.relu, node.upper) for node in graph.nodes] == [("conv2d", True, 6.0),
                                                                         ("max_pool", False, None)]


def test_relu_after_a_pool_and_a_flatten_folds_into_the_conv(tmp_path):
    """Conv, MaxPool, Flatten, Relu, Gemm (the chain importer reads it): the Relu steps back through both."""
    nodes = [STEM, helper.make_node("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flat", axis=1), relu("f", "r", "relu"),
             helper.make_node("Gemm", ["r", "g"], ["y"], name="fc", transB=1)]
    path = graph_file(tmp_path, nodes, {**W, "g": RNG.normal(size=(3, 36))}, output_rank=2)
    graph, _ = assert_matches_reference(path, RNG.normal(size=(2, 2, 6, 6)))
    assert [(node.op, node.relu) for node in graph.nodes] == [("conv2d", True), ("max_pool", False),
                                                             ("flatten", False), ("linear", False)]


def test_a_relu_that_cannot_fold_names_its_own_input(tmp_path):
    """MaxPool on the graph's input, then Relu: the refusal names the pool, not the input behind it."""
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             relu("p", "r", "relu"), helper.make_node("Flatten", ["r"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "g"], ["y"], name="fc", transB=1)]
    path = graph_file(tmp_path, nodes, {"g": RNG.normal(size=(3, 18))}, output_rank=2)
    with pytest.raises(InputError, match=re.escape(f"{path}: node 'relu' (Relu): Relu folds into a conv2d or linear "
                                                   "or add node, and its input is a max_pool node ('pool')")):
        load_onnx_graph(path)


def test_relu_after_a_pool_of_a_branch_is_refused(tmp_path):
    """The conv's output is also read by another node: the Relu after the pool cannot move into the conv."""
    nodes = [STEM, maxpool("c", "p"), relu("p", "r", "relu"), maxpool("c", "q"), add("r", "q", "y", "add")]
    for node, name in zip(nodes[3:4], ["pool2"], strict=True):
        node.name = name
    path = graph_file(tmp_path, nodes, W)
    with pytest.raises(InputError, match=re.escape(f"{path}: node 'relu' (Relu): Relu folds into a conv2d or linear "
                                                   "or add node, and its input is a max_pool node ('pool')")):
        load_onnx_graph(path)


# ---- refusals ----------------------------------------------------------------------------------------------------
SUPPORTED = ("Conv, BatchNormalization, Relu, MaxPool, Flatten, Reshape, Gemm, MatMul, Add, Identity, Dropout, Cast, "
             "Constant, Clip, AveragePool, GlobalAveragePool, Shape, Gather, Unsqueeze, Concat, Softmax, LogSoftmax")

W = weights("w", 4, 2)
W4 = weights("w4", 4, 4)
BN = batch_norm("bn", 4)
STEM = conv(["x", "w"], "c", "conv")
POOLED = [STEM, helper.make_node("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2])]


def maxpool(data="c", output="y", **attributes):
    attributes = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], **attributes}
    return helper.make_node("MaxPool", [data], [output], name="pool", **attributes)


def avgpool(data="c", output="y", **attributes):
    attributes = {"kernel_shape": [2, 2], "strides": [2, 2], **attributes}
    return helper.make_node("AveragePool", [data], [output], name="pool", **attributes)


def refusal(nodes, initializers, message, input_shape=("N", 2, 6, 6), opset=15, tensors=()):
    return pytest.param(nodes, initializers, message, input_shape, opset, tensors)


def clip_refusal(low, high, opset):
    clip, tensors = clip_node("c", "y", opset, low, high)
    return [STEM, clip], tensors


REFUSALS = {
    "BatchNormalization on a branch": refusal(
        [STEM, bn("c", "bn", "n"), conv(["c", "w4"], "d", "other"), add("n", "d", "y", "add")], {**W, **W4, **BN},
        "node 'bn' (BatchNormalization): BatchNormalization cannot fold into node 'conv': its output 'c' is also read "
        "by another node"),
    "BatchNormalization after a branch point (pre-activation)": refusal(
        [STEM, relu("c", "r"), bn("r", "bn", "n"), add("n", "r", "y", "add")], {**W, **BN},
        "node 'bn' (BatchNormalization): BatchNormalization cannot fold into node 'conv': its output 'r' is also read "
        "by another node"),
    "Relu on a branch": refusal(
        [STEM, relu("c", "r", "relu"), conv(["c", "w4"], "d", "other"), add("r", "d", "y", "add")], {**W, **W4},
        "node 'relu' (Relu): Relu cannot fold into node 'conv': its output 'c' is also read by another node"),
    "Relu on the graph's input": refusal(
        [relu("x", "r", "relu"), conv(["r", "w"], "y", "conv")], W,
        "node 'relu' (Relu): Relu folds into a conv2d or linear or add node, and its input is the graph's input"),
    "BatchNormalization on the graph's input": refusal(
        [bn("x", "bn", "n"), conv(["n", "w"], "y", "conv")], {**W, **batch_norm("bn", 2)},
        "node 'bn' (BatchNormalization): BatchNormalization folds into a conv2d or linear node, and its input is the "
        "graph's input"),
    "BatchNormalization after an Add": refusal(
        [STEM, conv(["x", "w"], "d", "other"), add("c", "d", "s", "add"), bn("s", "bn", "y")], {**W, **BN},
        "node 'bn' (BatchNormalization): BatchNormalization folds into a conv2d or linear node, and its input is a add "
        "node ('add')"),
    "Relu after Relu": refusal(
        [STEM, relu("c", "r", "relu"), relu("r", "y", "again")], W,
        "node 'again' (Relu): Relu after Relu or Clip is not supported (the order is Conv/Gemm, BatchNormalization, "
        "bias, then Relu or Clip)"),
    "BatchNormalization after Relu": refusal(
        [STEM, relu("c", "r", "relu"), bn("r", "bn", "y")], {**W, **BN},
        "node 'bn' (BatchNormalization): BatchNormalization after Relu or Clip is not supported (the order is "
        "Conv/Gemm, BatchNormalization, bias, then Relu or Clip)"),
    "Clip min -1, opset 13": refusal(
        *clip_refusal(-1.0, 6.0, 13)[:1], W,
        "node 'clip' (Clip): a Clip with min = -1 is not supported: only a lower bound of 0 (ReLU, ReLU6) keeps "
        "hidden activations non-negative", opset=13, tensors=clip_refusal(-1.0, 6.0, 13)[1]),
    "Clip min 0.5, opset 10": refusal(
        *clip_refusal(0.5, 6.0, 10)[:1], W,
        "node 'clip' (Clip): a Clip with min = 0.5 is not supported: only a lower bound of 0 (ReLU, ReLU6) keeps "
        "hidden activations non-negative", opset=10),
    "Clip without min, opset 13": refusal(
        *clip_refusal(None, 6.0, 13)[:1], W,
        "node 'clip' (Clip): a Clip with min = none is not supported: only a lower bound of 0 (ReLU, ReLU6) keeps "
        "hidden activations non-negative", opset=13, tensors=clip_refusal(None, 6.0, 13)[1]),
    "Clip without min, opset 10": refusal(
        *clip_refusal(None, 6.0, 10)[:1], W,
        "node 'clip' (Clip): a Clip with min = none is not supported: only a lower bound of 0 (ReLU, ReLU6) keeps "
        "hidden activations non-negative", opset=10),
    "Clip max 0": refusal(
        *clip_refusal(0.0, 0.0, 13)[:1], W,
        "node 'clip' (Clip): a Clip with max = 0 is not supported: the upper bound must be finite and > 0", opset=13,
        tensors=clip_refusal(0.0, 0.0, 13)[1]),
    "Clip max -2, opset 10": refusal(
        *clip_refusal(0.0, -2.0, 10)[:1], W,
        "node 'clip' (Clip): a Clip with max = -2 is not supported: the upper bound must be finite and > 0",
        opset=10),
    "Clip bounds not scalars": refusal(
        [STEM, helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="clip")], {**W, "lo": np.zeros(2),
                                                                                   "hi": np.full(2, 6.0)},
        "node 'clip' (Clip): its bounds must be scalars, got 2 values", opset=13),
    "Add of different shapes": refusal(
        [*POOLED, add("c", "p", "y", "add")], W,
        "node 'add' (Add): an Add of two tensors needs the same shape (no broadcasting), got 1x4x6x6 and 1x4x3x3"),
    "Add that would broadcast": refusal(
        [STEM, helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"), add("c", "g", "y", "add")], W,
        "node 'add' (Add): an Add of two tensors needs the same shape (no broadcasting), got 2x4x6x6 and 2x4x1x1",
        (2, 2, 6, 6)),
    "MaxPool strides differ": refusal(
        [STEM, maxpool(strides=[1, 2])], W,
        "node 'pool' (MaxPool): attribute strides = [1, 2] is not supported: the strides differ between the axes"),
    "MaxPool pads differ": refusal(
        [STEM, maxpool(pads=[1, 1, 0, 0])], W,
        "node 'pool' (MaxPool): attribute pads = [1, 1, 0, 0] is not supported: the same on all sides"),
    "MaxPool non-square window": refusal(
        [STEM, maxpool(kernel_shape=[3, 2])], W,
        "node 'pool' (MaxPool): attribute kernel_shape = [3, 2] is not supported: only square 2-d windows"),
    "MaxPool dilations": refusal(
        [STEM, maxpool(dilations=[2, 2])], W,
        "node 'pool' (MaxPool): attribute dilations = [2, 2] is not supported: only 1"),
    "MaxPool auto_pad SAME_UPPER padding one side only": refusal(
        [STEM, helper.make_node("MaxPool", ["c"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2],
                                auto_pad="SAME_UPPER")], W,
        "node 'pool' (MaxPool): attribute auto_pad = SAME_UPPER is not supported: on the 7x7 input it pads [1] in "
        "total per axis, not the same on all sides", ("N", 2, 7, 7)),
    "MaxPool ceil_mode adds a window": refusal(
        [STEM, maxpool(ceil_mode=1)], W,
        "node 'pool' (MaxPool): attribute ceil_mode = 1 is not supported: on the 6x7 input it adds a partial window",
        ("N", 2, 6, 7)),
    "MaxPool ceil_mode adds a window in width only": refusal(
        [STEM, maxpool(ceil_mode=1)], W,
        "node 'pool' (MaxPool): attribute ceil_mode = 1 is not supported: on the 7x8 input it adds a partial window",
        ("N", 2, 7, 8)),
    "MaxPool Indices output": refusal(
        [STEM, helper.make_node("MaxPool", ["c"], ["y", "idx"], name="pool", kernel_shape=[2, 2], strides=[2, 2])], W,
        "node 'pool' (MaxPool): the Indices output 'idx' is not supported"),
    "AveragePool with pads": refusal(
        [STEM, avgpool(pads=[1, 1, 1, 1])], W,
        "node 'pool' (AveragePool): attribute pads = [1, 1, 1, 1] is not supported: no padding"),
    "AveragePool with pads, count_include_pad 1": refusal(
        [STEM, avgpool(pads=[1, 1, 1, 1], count_include_pad=1, kernel_shape=[3, 3])], W,
        "node 'pool' (AveragePool): attribute pads = [1, 1, 1, 1] is not supported: no padding"),
    "AveragePool strides differ": refusal(
        [STEM, avgpool(strides=[2, 1])], W,
        "node 'pool' (AveragePool): attribute strides = [2, 1] is not supported: the strides differ between the axes"),
    "AveragePool ceil_mode adds a window": refusal(
        [STEM, avgpool(ceil_mode=1)], W,
        "node 'pool' (AveragePool): attribute ceil_mode = 1 is not supported: on the 7x7 input it adds a partial "
        "window", ("N", 2, 7, 7)),
    "AveragePool after a Flatten": refusal(
        [STEM, helper.make_node("Flatten", ["c"], ["f"], name="flat"), avgpool("f")], W,
        "node 'pool' (AveragePool): AveragePool needs an NCHW input, got 1x144"),
    "GlobalAveragePool after a Flatten": refusal(
        [STEM, helper.make_node("Flatten", ["c"], ["f"], name="flat"),
         helper.make_node("GlobalAveragePool", ["f"], ["y"], name="gap")], W,
        "node 'gap' (GlobalAveragePool): GlobalAveragePool needs an NCHW input, got 1x144"),
    "Conv groups do not divide": refusal(
        [conv(["x", "wg"], "y", "grouped", group=3)], {"wg": np.ones((6, 1, 3, 3))},
        "node 'grouped' (Conv): attribute group = 3 is not supported: 4 input channels and weights of shape "
        "(6, 1, 3, 3) do not make equal groups", ("N", 4, 6, 6)),
    "Conv weights for another group count": refusal(
        [conv(["x", "wg"], "y", "grouped", group=2)], {"wg": np.ones((4, 1, 3, 3))},
        "node 'grouped' (Conv): attribute group = 2 is not supported: 4 input channels and weights of shape "
        "(4, 1, 3, 3) do not make equal groups", ("N", 4, 6, 6)),
    "unsupported operator": refusal(
        [STEM, helper.make_node("Sigmoid", ["c"], ["y"], name="squash")], W,
        f"node 'squash' (Sigmoid): operator Sigmoid is not supported (supported: {SUPPORTED})"),
    "Concat of two branches": refusal(
        [STEM, conv(["x", "w"], "d", "other"), helper.make_node("Concat", ["c", "d"], ["y"], name="concat", axis=1)],
        W, "node 'concat' (Concat): input #0 ('c') is not a constant: Concat is read only in a shape computation on "
           "constants (a Shape's output, initializers, Constant nodes)"),
    "a Conv whose weights are computed": refusal(
        [STEM, helper.make_node("Conv", ["x", "c"], ["y"], name="computed", kernel_shape=[3, 3])], W,
        "node 'computed' (Conv): input W ('c') is not a constant (an initializer or a Constant node)"),
    "an Add of constants": refusal(
        [STEM, add("a", "b", "s", "constants"), add("c", "s", "y", "add")], {**W, "a": np.ones(1), "b": np.ones(1)},
        "node 'constants' (Add): it reads only constants ('a', 'b'); constant folding is not supported"),
    "a dead branch": refusal(
        [STEM, conv(["c", "w4"], "d", "dead"), conv(["c", "w4"], "y", "out")], {**W, **W4},
        "node 'dead' does not lead to the graph's output ('out')"),
    "a dead branch, last": refusal(
        [STEM, conv(["c", "w4"], "y", "out"), conv(["c", "w4"], "d", "dead")], {**W, **W4},
        "node 'dead' does not lead to the graph's output 'y'"),
    "the output is the input": refusal(
        [STEM, helper.make_node("Identity", ["x"], ["y"], name="same")], W,
        "the graph's output 'y' is not computed by its nodes"),
    "no Conv, Gemm or MatMul": refusal(
        [helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])], {},
        "the model has no Conv, Gemm or MatMul"),
}


@pytest.mark.parametrize("nodes, initializers, message, input_shape, opset, tensors", REFUSALS.values(),
                         ids=REFUSALS.keys())
def test_refusals(tmp_path, nodes, initializers, message, input_shape, opset, tensors):
    path = graph_file(tmp_path, nodes, initializers, input_shape, opset=opset, tensors=tensors)
    with pytest.raises(InputError, match=exactly(f"{path}: {message}")):
        load_onnx_graph(path)


@pytest.mark.parametrize("noop", ["Identity", "Dropout", "Cast"])
@pytest.mark.parametrize("folded", ["BatchNormalization", "Relu"])
def test_fold_through_a_noop_on_a_branch_is_refused(tmp_path, noop, folded):
    """The conv's output 'c' is read by a no-op and by another conv: a BatchNorm or Relu after the no-op cannot fold
    into the conv (the other conv reads it unchanged), so it is refused naming the conv, as without the no-op; an
    import that does not refuse it must at least compute what onnx.reference does."""
    attributes = {"to": TensorProto.FLOAT} if noop == "Cast" else {}
    after = bn("i", "bn", "n") if folded == "BatchNormalization" else relu("i", "n", "bn")
    nodes = [STEM, helper.make_node(noop, ["c"], ["i"], name="noop", **attributes), after,
             conv(["c", "w4"], "d", "other"), add("n", "d", "y", "add")]
    path = graph_file(tmp_path, nodes, {**W, **W4, **BN})
    try:
        load_onnx_graph(path)
    except InputError as error:
        assert str(error).startswith(f"{path}: node 'bn' ({folded}): {folded} cannot fold into node 'conv'")
        return
    assert_matches_reference(path, RNG.normal(size=(2, 2, 6, 6)))


def test_an_input_that_no_earlier_node_computes(tmp_path, monkeypatch):
    """onnx.checker refuses a node reading a tensor nothing computes (naming it); the importer's own refusal, behind
    the checker, names the node and the tensor too."""
    nodes = [STEM, add("c", "z", "y", "add")]
    path = graph_file(tmp_path, nodes, W)
    with pytest.raises(InputError, match=re.escape(f"{path}: not a valid ONNX model (") + ".*'z'"):
        load_onnx_graph(path)
    monkeypatch.setattr(onnx.checker, "check_model", lambda *args, **kwargs: None)
    with pytest.raises(InputError, match=exactly(f"{path}: node 'add' (Add): input 'z' is neither a constant nor the "
                                                 "output of an earlier node")):
        load_onnx_graph(path)


def test_file_level_refusals(tmp_path):
    second = graph_file(tmp_path, [STEM, add("c", "x", "y", "add")], W, name="second.onnx")
    model = onnx.load(str(second))
    model.graph.input.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4, 6, 6]))
    second.write_bytes(model.SerializeToString())
    with pytest.raises(InputError, match=exactly(f"{second}: the model must have one data input, got 'x' and 'z' "
                                                 "(weights must be initializers or Constant nodes)")):
        load_onnx_graph(second)
    two = graph_file(tmp_path, [STEM, relu("c", "y")], W, name="two.onnx")
    model = onnx.load(str(two))
    model.graph.output.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 4, 6, 6]))
    two.write_bytes(model.SerializeToString())
    with pytest.raises(InputError, match=exactly(f"{two}: the model must have one output, got 2")):
        load_onnx_graph(two)
    with pytest.raises(InputError, match=exactly(f"{tmp_path / 'missing.onnx'}: no such file")):
        load_onnx_graph(tmp_path / "missing.onnx")
    fixed = graph_file(tmp_path, [STEM, relu("c", "y")], W, ("N", 2, 6, 6), name="fixed.onnx")
    with pytest.raises(InputError, match=exactly(f"{fixed}: the model's input is 2x6x6 (CxHxW), the data is 2x6x5")):
        load_onnx_graph(fixed, (2, 6, 5))


SHARED_REFUSALS = {
    "Conv strides differ": ([conv(["x", "w"], "c", "conv", strides=[1, 2]), relu("c", "y")], W),
    "Conv pads differ": ([conv(["x", "w"], "c", "conv", pads=[1, 0, 1, 0]), relu("c", "y")], W),
    "Conv dilations": ([conv(["x", "w"], "c", "conv", dilations=[2, 2]), relu("c", "y")], W),
    "Conv kernel_shape": ([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[1, 1])], W),
    "BatchNormalization training_mode": ([STEM, helper.make_node(
        "BatchNormalization", ["c", "bn.s", "bn.o", "bn.m", "bn.v"], ["y"], name="bn", training_mode=1)], {**W, **BN}),
    "BatchNormalization parameters": ([STEM, bn("c", "bn", "y")], {**W, **batch_norm("bn", 3)}),
    "Gemm transA": ([STEM, helper.make_node("Flatten", ["c"], ["f"], name="flat"),
                     helper.make_node("Gemm", ["f", "g"], ["y"], name="fc", transA=1)], {**W, "g": np.ones((144, 3))}),
    "Dropout mask": ([STEM, helper.make_node("Dropout", ["c"], ["y", "mask"], name="drop")], W),
    "Cast to another type": ([STEM, helper.make_node("Cast", ["c"], ["y"], name="cast", to=TensorProto.DOUBLE)], W),
    "Softmax before a node": ([STEM, helper.make_node("Flatten", ["c"], ["f"], name="flat"),
                               helper.make_node("Softmax", ["f"], ["s"], name="probs"), relu("s", "y", "after")], W),
    "Reshape to 4 dims": ([STEM, helper.make_node("Reshape", ["c", "shape"], ["y"], name="reshape")], W),
    "Constant value_string": ([STEM, helper.make_node("Constant", [], ["t"], name="text", value_string="bias"),
                               add("c", "t", "y", "add")], W),
    "Add bias shape": ([STEM, add("c", "bias", "y", "add")], {**W, "bias": np.ones(4)}),
}


@pytest.mark.parametrize("nodes, initializers", SHARED_REFUSALS.values(), ids=SHARED_REFUSALS.keys())
def test_chain_refusals_are_the_same(tmp_path, nodes, initializers):
    """The module docstring: what both importers refuse, they refuse with the same message."""
    path = graph_file(tmp_path, nodes, initializers, tensors=[numpy_helper.from_array(np.array([1, 4, 36, 1]),
                                                                                      "shape")])
    with pytest.raises(InputError) as chain:
        load_onnx(path)
    with pytest.raises(InputError, match=exactly(str(chain.value))):
        load_onnx_graph(path)


def test_graph_operators():
    assert GRAPH_OPERATORS == ("Conv", "BatchNormalization", "Relu", "MaxPool", "Flatten", "Reshape", "Gemm",
                               "MatMul", "Add", "Identity", "Dropout", "Cast", "Constant", "Clip", "AveragePool",
                               "GlobalAveragePool")
