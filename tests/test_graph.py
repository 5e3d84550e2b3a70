"""esb_hw/frontend/graph.py: FloatNode and FloatGraph. Every operation's forward pass against onnx.reference on the
same graph written as ONNX (float64, so the two agree to rounding), ReLU and the upper clip, every validation error
with its message, a forward pass that frees a tensor only after its last reader, and the MAC count."""

import re

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from esb_hw.errors import InputError
from esb_hw.frontend.graph import INPUT, OPERATIONS, FloatGraph, FloatNode

RNG = np.random.default_rng(20)


def exactly(message):
    """A ``match`` for the whole message."""
    return f"^{re.escape(message)}$"


# ---- the same graph as ONNX, for onnx.reference ----------------------------------------------------------------
def to_onnx(graph: FloatGraph, opset=17):
    """``graph`` written as an ONNX model in float64, one ONNX operator per operation (Flatten before a Gemm that
    reads a CxHxW tensor, then Relu, Clip or Min for ``relu`` and ``upper``), independent of the code under test."""
    nodes, initializers = [], []

    def constant(name, value):
        initializers.append(numpy_helper.from_array(np.asarray(value, np.float64), name))
        return name

    names = {INPUT: "x"}
    for node in graph.nodes:
        inputs = [names[name] for name in node.inputs]
        raw = f"{node.name}.raw"
        if node.op == "conv2d":
            k = node.weight.shape[2]
            nodes.append(helper.make_node(
                "Conv", [inputs[0], constant(f"{node.name}.w", node.weight), constant(f"{node.name}.b", node.bias)],
                [raw], kernel_shape=[k, k], strides=[node.stride] * 2, pads=[node.padding] * 4, group=node.groups))
        elif node.op == "linear":
            data = inputs[0]
            if len(graph.shapes[node.inputs[0]]) > 1:
                nodes.append(helper.make_node("Flatten", [data], [f"{node.name}.flat"], axis=1))
                data = f"{node.name}.flat"
            nodes.append(helper.make_node("Gemm", [data, constant(f"{node.name}.w", node.weight),
                                                   constant(f"{node.name}.b", node.bias)], [raw], transB=1))
        elif node.op == "add":
            nodes.append(helper.make_node("Add", inputs, [raw]))
        elif node.op == "max_pool":
            nodes.append(helper.make_node("MaxPool", inputs, [raw], kernel_shape=[node.kernel] * 2,
                                          strides=[node.stride] * 2, pads=[node.padding] * 4))
        elif node.op == "avg_pool":
            nodes.append(helper.make_node("AveragePool", inputs, [raw], kernel_shape=[node.kernel] * 2,
                                          strides=[node.stride] * 2))
        elif node.op == "global_avg_pool":
            nodes.append(helper.make_node("GlobalAveragePool", inputs, [raw]))
        else:
            nodes.append(helper.make_node("Flatten", inputs, [raw], axis=1))
        out = raw
        if node.relu and node.upper is not None:
            out = f"{node.name}.clip"
            nodes.append(helper.make_node("Clip", [raw, constant(f"{node.name}.lo", 0.0),
                                                   constant(f"{node.name}.hi", node.upper)], [out]))
        elif node.relu:
            out = f"{node.name}.relu"
            nodes.append(helper.make_node("Relu", [raw], [out]))
        elif node.upper is not None:
            out = f"{node.name}.min"
            nodes.append(helper.make_node("Min", [raw, constant(f"{node.name}.hi", node.upper)], [out]))
        names[node.name] = out
    graph_proto = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, None)],
        [helper.make_tensor_value_info(names[graph.nodes[-1].name], TensorProto.DOUBLE, None)], initializers)
    return helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", opset)])


def onnx_forward(graph: FloatGraph, x):
    out = ReferenceEvaluator(to_onnx(graph)).run(None, {"x": np.asarray(x, np.float64)})[0]
    return out


def assert_matches_onnx(graph: FloatGraph, batch=2, scale=1.0):
    """graph.forward equals onnx.reference's run of the same graph; the output shape is graph.shapes' (per image)."""
    x = RNG.normal(size=(batch, *graph.input_shape)) * scale
    expected = onnx_forward(graph, x)
    assert expected.shape[1:] == graph.shapes[graph.output.name]
    got = graph.forward(x)
    assert got.shape == (batch, int(np.prod(expected.shape[1:])))
    np.testing.assert_allclose(got, expected.reshape(batch, -1), rtol=1e-10, atol=1e-10)
    return got, expected


def conv(name="conv", inputs=(INPUT,), channels=2, out=3, kernel=3, groups=1, **fields):
    weight = RNG.normal(size=(out, channels // groups, kernel, kernel))
    return FloatNode(name, "conv2d", inputs, weight=weight, bias=RNG.normal(size=out), groups=groups, **fields)


def linear(name="fc", inputs=(INPUT,), features=18, out=4, **fields):
    return FloatNode(name, "linear", inputs, weight=RNG.normal(size=(out, features)), bias=RNG.normal(size=out),
                     **fields)


# ---- every operation against onnx.reference --------------------------------------------------------------------
CONVS = {
    # channels, out, kernel, stride, padding, groups, height, width
    "dense 3x3 s1 p1": (3, 4, 3, 1, 1, 1, 6, 7),
    "dense 3x3 s1 p0": (2, 3, 3, 1, 0, 1, 5, 5),
    "dense 3x3 s2 p1": (3, 4, 3, 2, 1, 1, 8, 7),
    "dense 1x1 s2": (2, 5, 1, 2, 0, 1, 7, 7),
    "dense 7x7 s2 p3 (ResNet's stem)": (3, 4, 7, 2, 3, 1, 11, 12),
    "dense 5x5 s2 p2": (3, 4, 5, 2, 2, 1, 9, 8),
    "groups 2": (4, 6, 3, 1, 0, 2, 7, 6),
    "groups 2 s2 p1": (4, 2, 3, 2, 1, 2, 7, 8),
    "groups 3 1x1": (6, 9, 1, 1, 0, 3, 4, 5),
    "depthwise s1 p1": (4, 4, 3, 1, 1, 4, 6, 6),
    "depthwise s2 p1": (5, 5, 3, 2, 1, 5, 8, 7),
    "depthwise, channel multiplier 2": (3, 6, 3, 1, 1, 3, 5, 6),
    "depthwise, channel multiplier 2, s2": (3, 6, 3, 2, 1, 3, 7, 7),
}


@pytest.mark.parametrize("channels, out, kernel, stride, padding, groups, height, width", CONVS.values(),
                         ids=CONVS.keys())
def test_conv2d_matches_onnx_reference(channels, out, kernel, stride, padding, groups, height, width):
    node = conv(channels=channels, out=out, kernel=kernel, groups=groups, stride=stride, padding=padding)
    graph = FloatGraph([node], (channels, height, width))
    assert graph.shapes["conv"] == (out, (height + 2 * padding - kernel) // stride + 1,
                                    (width + 2 * padding - kernel) // stride + 1)
    assert node.kernel == kernel
    assert_matches_onnx(graph, batch=3)


def test_depthwise_conv_by_hand():
    """groups = C: each output channel sees its own input channel only (a multiplier of 2: channels c -> 2c, 2c+1)."""
    weight = RNG.normal(size=(4, 1, 1, 1))
    node = FloatNode("dw", "conv2d", (INPUT,), weight=weight, groups=2)
    x = RNG.normal(size=(2, 2, 3, 3))
    y = FloatGraph([node], (2, 3, 3)).activations(x)["dw"]
    for channel in range(4):
        np.testing.assert_allclose(y[:, channel], weight[channel, 0, 0, 0] * x[:, channel // 2], rtol=1e-12)


def test_linear_matches_onnx_reference():
    """On a CxHxW input the weights read the flattened input in C order."""
    assert_matches_onnx(FloatGraph([linear(features=2 * 3 * 4, out=5)], (2, 3, 4)), batch=4)


def test_add_matches_onnx_reference():
    nodes = [conv("a", out=2, padding=1), conv("b", out=2, padding=1), FloatNode("sum", "add", ("a", "b"))]
    assert_matches_onnx(FloatGraph(nodes, (2, 5, 6)))


POOLS = {
    "max 3x3 s2 p1 (ResNet's stem), even": ("max_pool", 3, 2, 1, 8, 8),
    "max 3x3 s2 p1, odd": ("max_pool", 3, 2, 1, 7, 9),
    "max 2x2 s2": ("max_pool", 2, 2, 0, 6, 5),
    "max 3x3 s1 p1": ("max_pool", 3, 1, 1, 4, 5),
    "max 3x3 s1 p2": ("max_pool", 3, 1, 2, 4, 4),
    "average 2x2 s2": ("avg_pool", 2, 2, 0, 6, 7),
    "average 3x3 s1": ("avg_pool", 3, 1, 0, 5, 6),
    "average 3x3 s2": ("avg_pool", 3, 2, 0, 8, 7),
    "average 7x7 (a global pool by window)": ("avg_pool", 7, 1, 0, 7, 7),
}


@pytest.mark.parametrize("op, kernel, stride, padding, height, width", POOLS.values(), ids=POOLS.keys())
def test_pools_match_onnx_reference(op, kernel, stride, padding, height, width):
    graph = FloatGraph([FloatNode("pool", op, (INPUT,), kernel=kernel, stride=stride, padding=padding)],
                       (3, height, width))
    assert graph.shapes["pool"] == (3, (height + 2 * padding - kernel) // stride + 1,
                                    (width + 2 * padding - kernel) // stride + 1)
    assert_matches_onnx(graph)


def test_max_pool_padding_never_wins():
    """On all-negative inputs a padded window's maximum is still an input value, never the padding's."""
    graph = FloatGraph([FloatNode("pool", "max_pool", (INPUT,), kernel=3, stride=2, padding=1)], (2, 5, 5))
    x = -1 - RNG.uniform(size=(2, 2, 5, 5))
    y = graph.forward(x)
    assert np.all(y < -1)
    assert y[0, 0] == x[0, 0, :2, :2].max()  # the corner window: 2x2 inputs and five padded positions
    np.testing.assert_array_equal(y, onnx_forward(graph, x).reshape(2, -1))


def test_global_average_pool_and_flatten_match_onnx_reference():
    gap = FloatGraph([FloatNode("gap", "global_avg_pool", (INPUT,))], (3, 5, 4))
    assert gap.shapes["gap"] == (3, 1, 1)
    assert_matches_onnx(gap)
    flatten = FloatGraph([FloatNode("flat", "flatten", (INPUT,))], (3, 2, 4))
    assert flatten.shapes["flat"] == (24,)
    x = RNG.normal(size=(2, 3, 2, 4))
    np.testing.assert_array_equal(flatten.forward(x), x.reshape(2, 24))  # C order over (C, H, W)
    assert_matches_onnx(flatten)


# ---- relu and upper -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("relu, upper", [(True, None), (True, 6.0), (True, 0.5)],
                         ids=["relu", "relu6", "relu, upper 0.5"])
@pytest.mark.parametrize("op", ["conv2d", "linear", "add"])
def test_relu_and_upper_match_onnx_reference(op, relu, upper):
    if op == "conv2d":
        nodes = [conv("out", padding=1, relu=relu, upper=upper)]
    elif op == "linear":
        nodes = [linear("out", features=2 * 3 * 3, out=6, relu=relu, upper=upper)]
    else:
        nodes = [conv("a", out=2, padding=1), FloatNode("out", "add", ("a", INPUT), relu=relu, upper=upper)]
    graph = FloatGraph(nodes, (2, 3, 3))
    got, _ = assert_matches_onnx(graph, batch=8, scale=4.0)  # values well beyond [0, 6]
    low, high = (0.0 if relu else -np.inf), (np.inf if upper is None else upper)
    assert got.min() >= low and got.max() <= high
    assert np.any(got == high) if upper is not None else got.max() > 6
    assert np.any(got == 0) if relu else got.min() < 0


def test_relu6_by_hand():
    node = FloatNode("fc", "linear", (INPUT,), weight=np.eye(4), relu=True, upper=6.0)
    x = np.array([[-3.0, 2.5, 6.0, 9.0]]).reshape(1, 4, 1, 1)
    np.testing.assert_array_equal(FloatGraph([node], (4, 1, 1)).forward(x), [[0.0, 2.5, 6.0, 6.0]])


# ---- validation -------------------------------------------------------------------------------------------------
W3 = np.ones((2, 1, 3, 3))

NODE_ERRORS = {
    "unknown op": (dict(name="n", op="conv3d", inputs=(INPUT,)),
                   "node 'n': op must be one of conv2d, linear, add, max_pool, avg_pool, global_avg_pool, flatten, "
                   "got 'conv3d'"),
    "add with one input": (dict(name="a", op="add", inputs=(INPUT,)), "node 'a': add reads 2 input(s), got 1"),
    "pool with two inputs": (dict(name="p", op="max_pool", inputs=(INPUT, INPUT), kernel=2),
                             "node 'p': max_pool reads 1 input(s), got 2"),
    "conv with no input": (dict(name="c", op="conv2d", inputs=(), weight=W3),
                           "node 'c': conv2d reads 1 input(s), got 0"),
    "non-square kernel": (dict(name="c", op="conv2d", inputs=(INPUT,), weight=np.ones((2, 1, 3, 1))),
                          "node 'c': the kernel must be square, got 3x1"),
    "conv weights 3-d": (dict(name="c", op="conv2d", inputs=(INPUT,), weight=np.ones((2, 1, 3))),
                         "node 'c': conv2d weights must be OIHW, got shape (2, 1, 3)"),
    "conv weights empty": (dict(name="c", op="conv2d", inputs=(INPUT,), weight=np.ones((0, 1, 3, 3))),
                           "node 'c': conv2d weights must be OIHW, got shape (0, 1, 3, 3)"),
    "conv without weights": (dict(name="c", op="conv2d", inputs=(INPUT,)),
                             "node 'c': conv2d weights must be OIHW, got shape ()"),
    "linear weights 1-d": (dict(name="l", op="linear", inputs=(INPUT,), weight=np.ones(4)),
                           "node 'l': linear weights must be OI, got shape (4,)"),
    "bias shape": (dict(name="c", op="conv2d", inputs=(INPUT,), weight=W3, bias=np.ones(3)),
                   "node 'c': bias has shape (3,), expected (2,)"),
    "NaN weight": (dict(name="c", op="conv2d", inputs=(INPUT,), weight=np.full((2, 1, 3, 3), np.nan)),
                   "node 'c': weights and bias must be finite"),
    "infinite bias": (dict(name="l", op="linear", inputs=(INPUT,), weight=np.ones((2, 4)), bias=[1, np.inf]),
                      "node 'l': weights and bias must be finite"),
    "weights on a pool": (dict(name="p", op="max_pool", inputs=(INPUT,), weight=W3),
                          "node 'p': a max_pool has no weights"),
    "bias on an add": (dict(name="a", op="add", inputs=(INPUT, INPUT), bias=np.ones(2)),
                       "node 'a': a add has no weights"),
    "stride 0": (dict(name="c", op="conv2d", inputs=(INPUT,), weight=W3, stride=0),
                 "node 'c': kernel, stride and groups must be >= 1 and padding >= 0"),
    "negative padding": (dict(name="c", op="conv2d", inputs=(INPUT,), weight=W3, padding=-1),
                         "node 'c': kernel, stride and groups must be >= 1 and padding >= 0"),
    "pool kernel 0": (dict(name="p", op="avg_pool", inputs=(INPUT,), kernel=0),
                      "node 'p': kernel, stride and groups must be >= 1 and padding >= 0"),
    "groups 0": (dict(name="c", op="conv2d", inputs=(INPUT,), weight=W3, groups=0),
                 "node 'c': kernel, stride and groups must be >= 1 and padding >= 0"),
    "groups on a pool": (dict(name="p", op="max_pool", inputs=(INPUT,), kernel=2, groups=2),
                         "node 'p': only a conv2d has groups"),
    "groups on a linear": (dict(name="l", op="linear", inputs=(INPUT,), weight=np.ones((2, 4)), groups=2),
                           "node 'l': only a conv2d has groups"),
    "outputs do not split into groups": (dict(name="c", op="conv2d", inputs=(INPUT,),
                                              weight=np.ones((3, 1, 3, 3)), groups=2),
                                         "node 'c': 3 output channels do not split into 2 groups"),
    "max pool padding as large as the window": (dict(name="p", op="max_pool", inputs=(INPUT,), kernel=2, padding=2),
                                                "node 'p': padding 2 must be smaller than the 2x2 window"),
    "average pool with padding": (dict(name="p", op="avg_pool", inputs=(INPUT,), kernel=3, padding=1),
                                  "node 'p': an average pool has no padding"),
    "relu on a max pool": (dict(name="p", op="max_pool", inputs=(INPUT,), kernel=2, relu=True),
                           "node 'p': ReLU and clips follow a conv2d, linear or add only"),
    "relu on an average pool": (dict(name="p", op="avg_pool", inputs=(INPUT,), kernel=2, relu=True),
                                "node 'p': ReLU and clips follow a conv2d, linear or add only"),
    "upper on a flatten": (dict(name="f", op="flatten", inputs=(INPUT,), upper=6.0),
                           "node 'f': ReLU and clips follow a conv2d, linear or add only"),
    "relu on a global pool": (dict(name="g", op="global_avg_pool", inputs=(INPUT,), relu=True),
                              "node 'g': ReLU and clips follow a conv2d, linear or add only"),
    "upper 0": (dict(name="c", op="conv2d", inputs=(INPUT,), weight=W3, relu=True, upper=0.0),
                "node 'c': the upper bound must be finite and > 0, got 0.0"),
    "upper without relu": (dict(name="c", op="conv2d", inputs=(INPUT,), weight=W3, upper=6.0),
                           "node 'c': an upper bound comes with ReLU (a clip to [0, upper]), so relu must be set"),
    "upper negative": (dict(name="c", op="conv2d", inputs=(INPUT,), weight=W3, relu=True, upper=-1.0),
                       "node 'c': the upper bound must be finite and > 0, got -1.0"),
    "upper infinite": (dict(name="a", op="add", inputs=(INPUT, INPUT), relu=True, upper=np.inf),
                       "node 'a': the upper bound must be finite and > 0, got inf"),
    "upper NaN": (dict(name="a", op="add", inputs=(INPUT, INPUT), relu=True, upper=np.nan),
                  "node 'a': the upper bound must be finite and > 0, got nan"),
}


@pytest.mark.parametrize("fields, message", NODE_ERRORS.values(), ids=NODE_ERRORS.keys())
def test_node_errors(fields, message):
    with pytest.raises(InputError, match=exactly(message)):
        FloatNode(**fields)


def test_operations_and_their_inputs():
    assert OPERATIONS == {"conv2d": 1, "linear": 1, "add": 2, "max_pool": 1, "avg_pool": 1, "global_avg_pool": 1,
                          "flatten": 1}


def test_node_fields_are_normalised():
    """Inputs become a tuple, weights float64, a missing bias zeros, and a conv's kernel is its weights'."""
    node = FloatNode("c", "conv2d", [INPUT], weight=np.ones((2, 1, 3, 3), np.float32), kernel=5)
    assert node.inputs == (INPUT,) and node.kernel == 3
    assert node.weight.dtype == np.float64 and node.bias.dtype == np.float64
    np.testing.assert_array_equal(node.bias, np.zeros(2))


def chain(*nodes, shape=(2, 4, 4)):
    return FloatGraph(list(nodes), shape)


def relu_conv(name, inputs=(INPUT,), channels=2, out=2, **fields):
    return conv(name, inputs, channels=channels, out=out, kernel=1, **fields)


GRAPH_ERRORS = {
    "no nodes": (lambda: FloatGraph([], (2, 4, 4)), "a graph needs at least one node"),
    "input not CxHxW": (lambda: FloatGraph([FloatNode("f", "flatten", (INPUT,))], (1, 4)),
                        "the graph's input must be CxHxW, got (1, 4)"),
    "input with an empty axis": (lambda: FloatGraph([FloatNode("f", "flatten", (INPUT,))], (1, 0, 4)),
                                 "the graph's input must be CxHxW, got (1, 0, 4)"),
    "names repeat": (lambda: chain(relu_conv("a"), relu_conv("a", ("a",))),
                     "node names must be unique and not 'input': 'a' repeats"),
    "a node named input": (lambda: chain(relu_conv(INPUT)),
                           "node names must be unique and not 'input': 'input' repeats"),
    "reads a later node": (lambda: chain(relu_conv("a", ("b",)), relu_conv("b")),
                           "node 'a' reads 'b', which is not an earlier node"),
    "reads itself": (lambda: chain(relu_conv("a", ("a",))), "node 'a' reads 'a', which is not an earlier node"),
    "reads an unknown tensor": (lambda: chain(relu_conv("a"), FloatNode("s", "add", ("a", "x"))),
                                "node 's' reads 'x', which is not an earlier node"),
    "a dead node": (lambda: chain(relu_conv("a"), relu_conv("dead", ("a",)), relu_conv("out", ("a",))),
                    "node 'dead' does not lead to the graph's output ('out')"),
    "a dead first node": (lambda: chain(relu_conv("dead"), relu_conv("out")),
                          "node 'dead' does not lead to the graph's output ('out')"),
    "a dead branch of two": (lambda: chain(relu_conv("a"), relu_conv("b", ("a",)), relu_conv("c", ("b",)),
                                           relu_conv("out", ("a",))),
                             "node 'c' does not lead to the graph's output ('out')"),
    "add of different shapes": (lambda: chain(relu_conv("a", out=3), FloatNode("s", "add", ("a", INPUT))),
                                "node 's': an add needs two inputs of the same shape, got 3x4x4 and 2x4x4"),
    "add of a pooled tensor": (lambda: chain(FloatNode("p", "max_pool", (INPUT,), kernel=2, stride=2),
                                             FloatNode("s", "add", (INPUT, "p"))),
                               "node 's': an add needs two inputs of the same shape, got 2x4x4 and 2x2x2"),
    "linear inputs": (lambda: chain(linear("fc", features=10)),
                      "node 'fc': a linear layer of 10 inputs gets 32 (input shape 2x4x4)"),
    "conv channels": (lambda: chain(conv("c", channels=3, out=2)),
                      "node 'c': the weights expect 3 input channels (1 group(s) of 3), got 2"),
    "depthwise channels": (lambda: chain(conv("c", channels=4, out=4, groups=4)),
                           "node 'c': the weights expect 4 input channels (4 group(s) of 1), got 2"),
    "grouped channels": (lambda: chain(conv("c", channels=2, out=2, groups=2), shape=(4, 4, 4)),
                         "node 'c': the weights expect 2 input channels (2 group(s) of 1), got 4"),
    "conv window larger than the input": (lambda: chain(conv("c", kernel=5, padding=0)),
                                          "node 'c': window 5x5 is larger than the padded 4x4 input"),
    "pool window larger than the input": (lambda: chain(FloatNode("p", "avg_pool", (INPUT,), kernel=3),
                                                        shape=(2, 2, 5)),
                                          "node 'p': window 3x3 is larger than the padded 2x5 input"),
    "pool after a flatten": (lambda: chain(FloatNode("f", "flatten", (INPUT,)),
                                           FloatNode("p", "max_pool", ("f",), kernel=2)),
                             "node 'p': a max_pool needs a CxHxW input, got shape (32,)"),
    "conv after a linear": (lambda: chain(linear("fc", features=32), relu_conv("c", ("fc",))),
                            "node 'c': a conv2d needs a CxHxW input, got shape (4,)"),
    "global pool after a flatten": (lambda: chain(FloatNode("f", "flatten", (INPUT,)),
                                                  FloatNode("g", "global_avg_pool", ("f",))),
                                    "node 'g': a global_avg_pool needs a CxHxW input, got shape (32,)"),
}


@pytest.mark.parametrize("build, message", GRAPH_ERRORS.values(), ids=GRAPH_ERRORS.keys())
def test_graph_errors(build, message):
    with pytest.raises(InputError, match=exactly(message)):
        build()


@pytest.mark.parametrize("shape, shown", [((2, 2, 4, 5), "2x2x4x5"), ((2, 4, 4), "2x4x4"), ((1, 3, 4, 4), "1x3x4x4")])
def test_input_shape_is_checked(shape, shown):
    graph = chain(relu_conv("a"))
    with pytest.raises(InputError, match=exactly(f"the graph takes inputs of shape Nx2x4x4, got {shown}")):
        graph.forward(np.zeros(shape))
    with pytest.raises(InputError, match=exactly(f"the graph takes inputs of shape Nx2x4x4, got {shown}")):
        graph.activations(np.zeros(shape))


# ---- a graph: branches, merges, freeing ---------------------------------------------------------------------------
def branchy_graph():
    """The input is read by the first and the last add; 'a' by three nodes, the last of them late; 'b' twice by one
    add; then a pool, a grouped conv, a global pool, a flatten and a linear layer."""
    nodes = [
        conv("a", channels=2, out=2, kernel=3, padding=1, relu=True),
        conv("b", ("a",), channels=2, out=2, kernel=1),
        conv("c", ("a",), channels=2, out=2, kernel=3, padding=1, groups=2),
        FloatNode("bb", "add", ("b", "b")),
        FloatNode("d", "add", ("bb", "c"), relu=True),
        FloatNode("e", "add", ("d", INPUT)),
        FloatNode("f", "add", ("e", "a"), relu=True, upper=6.0),
        FloatNode("pool", "max_pool", ("f",), kernel=3, stride=2, padding=1),
        conv("g", ("pool",), channels=2, out=4, kernel=3, stride=1, padding=1, relu=True),
        FloatNode("gap", "global_avg_pool", ("g",)),
        FloatNode("flat", "flatten", ("gap",)),
        linear("fc", ("flat",), features=4, out=3),
    ]
    return FloatGraph(nodes, (2, 6, 5))


def test_forward_frees_only_what_no_later_node_reads():
    graph = branchy_graph()
    x = RNG.normal(size=(3, 2, 6, 5)) * 2
    got, _ = assert_matches_onnx(graph, batch=3, scale=2.0)
    values = graph.activations(x)
    assert set(values) == {INPUT, *(node.name for node in graph.nodes)}
    np.testing.assert_array_equal(graph.forward(x), values["fc"])
    np.testing.assert_array_equal(graph.forward(x), graph.forward(x))  # nothing kept or changed between runs
    np.testing.assert_array_equal(graph.predict(x), values["fc"].argmax(axis=1))


def test_forward_keeps_the_input_it_is_given():
    graph = branchy_graph()
    x = RNG.normal(size=(2, 2, 6, 5))
    before = x.copy()
    graph.forward(x)
    np.testing.assert_array_equal(x, before)


def test_graph_queries():
    graph = branchy_graph()
    assert graph.output.name == "fc" and graph.classes == 3
    assert graph.node("c").groups == 2
    with pytest.raises(KeyError):
        graph.node("missing")
    readers = graph.consumers()
    assert readers[INPUT] == ["a", "e"]
    assert readers["a"] == ["b", "c", "f"]
    assert readers["b"] == ["bb", "bb"]
    assert readers["fc"] == []
    assert graph.shapes["pool"] == (2, 3, 3) and graph.shapes["gap"] == (4, 1, 1) and graph.shapes["flat"] == (4,)


def test_the_output_is_the_last_node_flattened():
    graph = FloatGraph([conv("a", out=3, kernel=3, padding=1)], (2, 4, 4))
    assert graph.classes == 48
    x = RNG.normal(size=(2, 2, 4, 4))
    assert graph.forward(x).shape == (2, 48)
    assert graph.activations(x)["a"].shape == (2, 3, 4, 4)


def test_macs():
    nodes = [
        conv("c", channels=3, out=4, kernel=3, padding=1),  # 4 x 3 x 3x3 per output, 6x6 outputs: 3888
        conv("dw", ("c",), channels=4, out=4, kernel=3, stride=2, padding=1, groups=4),  # 9 per output, 3x3: 324
        conv("g", ("dw",), channels=4, out=6, kernel=1, groups=2),  # 2 per output, 6 x 3x3: 108
        FloatNode("p", "max_pool", ("g",), kernel=3, stride=1, padding=1),
        FloatNode("s", "add", ("p", "g"), relu=True),
        FloatNode("a", "avg_pool", ("s",), kernel=3),
        FloatNode("gap", "global_avg_pool", ("a",)),
        FloatNode("flat", "flatten", ("gap",)),
        linear("fc", ("flat",), features=6, out=10),  # 60
    ]
    graph = FloatGraph(nodes, (3, 6, 6))
    assert [node.macs_per_output for node in nodes] == [27, 9, 2, 0, 0, 0, 0, 0, 6]
    assert graph.macs() == 3888 + 324 + 108 + 60


def test_a_linear_graph_is_a_graph():
    """A single linear layer on the image: its own output, its MACs the weight's size."""
    graph = FloatGraph([linear("fc", features=2 * 3 * 3, out=4)], (2, 3, 3))
    assert graph.macs() == 4 * 18
    assert_matches_onnx(graph)
