"""esb_hw/frontend/reference_networks.py: each network, shrunk, imports with load_onnx_graph and agrees with
onnx.reference; the files are byte-identical for the same arguments; the full-size networks have torchvision's layer
shapes (ResNet-18/50 against the hand-written list in esb_hw.compiler.zoo), MACs and parameter counts; MobileNetV2's
structure; bad arguments are refused."""

import re

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from esb_hw.compiler.zoo import LayerShape, layer_macs, network_shapes
from esb_hw.errors import InputError
from esb_hw.frontend.graph import INPUT
from esb_hw.frontend.onnx_graph import load_onnx_graph
from esb_hw.frontend.reference_networks import (
    REFERENCE_NETWORKS,
    basic_block,
    inverted_residual,
    mobilenet_v2,
    reference_network,
    resnet,
)

RNG = np.random.default_rng(22)
SMALL = {"resnet18": 8, "resnet34": 8, "resnet50": 8, "mobilenetv2": 0.25}
#: torchvision's published figures (the weights' metadata): multiply-adds (its "GFLOPS") and parameters (BatchNorm's
#: running statistics are buffers, not parameters).
TORCHVISION = {"resnet18": (1.814e9, 11_689_512), "resnet34": (3.664e9, 21_797_672),
               "resnet50": (4.089e9, 25_557_032), "mobilenetv2": (0.301e9, 3_504_872)}


def exactly(message):
    return f"^{re.escape(message)}$"


def small(name, path=None, **options):
    options = {"size": 32, "width": SMALL[name], "classes": 10, **options}
    return reference_network(name, path, **options)


def layer_shapes(graph):
    """The conv2d and linear nodes as esb_hw.compiler.zoo's LayerShape."""
    shapes = []
    for node in graph.nodes:
        if node.op == "conv2d":
            _, height, width = graph.shapes[node.inputs[0]]
            assert height == width
            shapes.append(LayerShape(node.name, "conv2d", node.weight.shape[1] * node.groups, node.weight.shape[0],
                                     node.kernel, node.stride, node.padding, height))
        elif node.op == "linear":
            shapes.append(LayerShape(node.name, "linear", node.weight.shape[1], node.weight.shape[0], 1, 1, 0, 1))
    return shapes


def parameters(model):
    """torchvision's parameter count: every initializer but BatchNorm's running statistics and Clip's bounds."""
    return sum(int(np.prod(item.dims)) for item in model.graph.initializer
               if not item.name.endswith((".running_mean", ".running_var")) and len(item.dims))


# ---- small networks against onnx.reference ----------------------------------------------------------------------
@pytest.mark.parametrize("name", SMALL)
def test_small_network_matches_onnx_reference(tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    model = small(name, path)
    graph = load_onnx_graph(path)
    assert graph.input_shape == (3, 32, 32) and graph.classes == 10
    x = RNG.normal(size=(2, 3, 32, 32))
    reference = ReferenceEvaluator(model)
    expected = np.concatenate([reference.run(None, {"x": image[None].astype(np.float32)})[0] for image in x])
    got = graph.forward(x)
    assert got.shape == (2, 10)
    scale = np.abs(expected).max()
    assert scale > 1e-3  # the scores are not all (nearly) zero
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)
    assert not np.allclose(got[0], got[1], rtol=1e-3)  # two images, two answers


@pytest.mark.parametrize(("build", "ops"), [
    (basic_block, [("conv2d", 1, True), ("conv2d", 1, False), ("add", 1, True)]),
    (inverted_residual, [("conv2d", 1, True), ("conv2d", 48, True), ("conv2d", 1, False), ("add", 1, False)])])
def test_single_blocks_match_onnx_reference(tmp_path, build, ops):
    """The blocks bench/real_shapes.py runs at their real shapes, small here: the residual add reads the input."""
    path = tmp_path / "block.onnx"
    onnx.save(build(channels=8, size=32), str(path))
    graph = load_onnx_graph(path)
    assert [(node.op, node.groups, node.relu) for node in graph.nodes] == ops
    assert graph.nodes[-1].inputs[1] == INPUT and graph.shapes[graph.nodes[-1].name] == (8, 32, 32)
    x = np.abs(RNG.normal(size=(2, 8, 32, 32)))
    reference = ReferenceEvaluator(str(path))
    expected = np.concatenate([reference.run(None, {"x": image[None].astype(np.float32)})[0] for image in x])
    np.testing.assert_allclose(graph.forward(x), expected.reshape(2, -1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", SMALL)
def test_same_arguments_give_the_same_bytes(tmp_path, name):
    first = small(name, tmp_path / "first.onnx").SerializeToString()
    assert small(name).SerializeToString() == first
    assert (tmp_path / "first.onnx").read_bytes() == first
    assert small(name, seed=0).SerializeToString() == first  # 0 is the default seed
    other = small(name, seed=1).SerializeToString()
    assert other != first and len(other) == len(first)  # only the weights differ


def test_networks_by_name():
    assert list(REFERENCE_NETWORKS) == ["resnet18", "resnet34", "resnet50", "mobilenetv2"]
    assert small("resnet50").SerializeToString() == resnet(50, size=32, width=8, classes=10).SerializeToString()
    assert small("mobilenetv2").SerializeToString() == mobilenet_v2(size=32, width=0.25,
                                                                    classes=10).SerializeToString()


@pytest.mark.parametrize("name", SMALL)
def test_written_as_pytorch_exports_it(name):
    """Conv without bias, then BatchNormalization, then Relu (ResNet) or Clip(0, 6) (MobileNetV2); Adds of two
    tensors; ResNet's 3x3 stride-2 max pool; GlobalAveragePool, Flatten and Gemm at the end; a valid model."""
    model = small(name)
    onnx.checker.check_model(model, full_check=True)
    nodes = list(model.graph.node)
    constants = {item.name: numpy_helper.to_array(item) for item in model.graph.initializer}
    produced = {node.output[0]: node for node in nodes}
    readers = {}
    for node in nodes:
        for tensor in node.input:
            readers.setdefault(tensor, []).append(node)
    assert [node.op_type for node in nodes[-3:]] == ["GlobalAveragePool", "Flatten", "Gemm"]
    for node in nodes:
        if node.op_type == "Conv":
            assert len(node.input) == 2
            (after,) = readers[node.output[0]]
            assert after.op_type == "BatchNormalization"
        elif node.op_type == "Add":
            assert all(tensor in produced or tensor == "x" for tensor in node.input)
            assert not any(tensor in constants for tensor in node.input)
        elif node.op_type == "Clip":
            assert [float(constants[tensor]) for tensor in node.input[1:]] == [0.0, 6.0]
    ops = {node.op_type for node in nodes}
    if name == "mobilenetv2":
        assert "Clip" in ops and "Relu" not in ops and "MaxPool" not in ops
    else:
        assert "Relu" in ops and "Clip" not in ops
        (pool,) = [node for node in nodes if node.op_type == "MaxPool"]
        attributes = {item.name: onnx.helper.get_attribute_value(item) for item in pool.attribute}
        assert attributes == {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    assert [item.version for item in model.opset_import if item.domain in ("", "ai.onnx")] == [17]


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenetv2"])
def test_weights_are_he_normal(name):
    """A conv's weights have standard deviation sqrt(2 / fan_in), fan_in = C / groups x K x K (the large ones, where
    the sample is big enough to tell)."""
    model = small(name, width=1.0 if name == "mobilenetv2" else 16)
    checked = 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        weight = numpy_helper.to_array(next(item for item in model.graph.initializer if item.name == node.input[1]))
        if weight.size < 5000:
            continue
        fan_in = int(np.prod(weight.shape[1:]))
        assert abs(weight.std() / np.sqrt(2 / fan_in) - 1) < 0.05, node.name
        assert abs(weight.mean()) < 5 * np.sqrt(2 / fan_in / weight.size), node.name
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_a_blocks_last_batch_norm_is_scaled_down(name):
    model = small(name)
    scales = {item.name[:-len(".bn.weight")]: numpy_helper.to_array(item) for item in model.graph.initializer
              if item.name.endswith(".bn.weight")}
    last = "conv3" if name == "resnet50" else "conv2"
    blocks = sorted({key.rsplit(".", 1)[0] for key in scales if key.startswith("layer")})
    assert len(blocks) == (8 if name == "resnet18" else 16)
    for block in blocks:
        others = [value for key, value in scales.items() if key.startswith(block + ".") and
                  not key.endswith(last)]
        assert scales[f"{block}.{last}"].max() < min(value.min() for value in others), block


# ---- full size: torchvision's shapes, MACs, parameters ------------------------------------------------------------
def full_size(tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    model = reference_network(name, path)
    return model, load_onnx_graph(path)


@pytest.mark.parametrize("name", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_full_size_resnet_has_torchvisions_layers(tmp_path, name):
    model, graph = full_size(tmp_path, name)
    assert graph.input_shape == (3, 224, 224) and graph.classes == 1000
    shapes = layer_shapes(graph)
    assert shapes == network_shapes(name)
    macs, count = TORCHVISION[name]
    assert graph.macs() == sum(layer_macs(shape) for shape in shapes)
    assert round(graph.macs() / 1e9, 3) == macs / 1e9
    assert parameters(model) == count
    assert graph.shapes["maxpool"] == (64, 56, 56) and graph.shapes["avgpool"] == (shapes[-1].in_channels, 1, 1)


@pytest.mark.slow
def test_full_size_resnet34(tmp_path):
    """No hand-written list for ResNet-34: its MACs and parameters are torchvision's, its stages 3, 4, 6, 3 basic
    blocks."""
    model, graph = full_size(tmp_path, "resnet34")
    macs, count = TORCHVISION["resnet34"]
    assert round(graph.macs() / 1e9, 3) == macs / 1e9
    assert parameters(model) == count
    adds = [node.name for node in graph.nodes if node.op == "add"]
    assert [sum(name.startswith(f"layer{stage}.") for name in adds) for stage in (1, 2, 3, 4)] == [3, 4, 6, 3]
    assert all(graph.node(name).relu for name in adds)


def test_full_size_mobilenet_v2(tmp_path):
    model, graph = full_size(tmp_path, "mobilenetv2")
    macs, count = TORCHVISION["mobilenetv2"]
    assert round(graph.macs() / 1e9, 3) == macs / 1e9
    assert parameters(model) == count
    convs = [node for node in graph.nodes if node.op == "conv2d"]
    linears = [node for node in graph.nodes if node.op == "linear"]
    depthwise = [node for node in convs if node.groups > 1]
    adds = [node for node in graph.nodes if node.op == "add"]
    assert (len(convs), len(linears), len(depthwise), len(adds)) == (52, 1, 17, 10)
    # torchvision's features: 3 -> 32 stride 2, 17 inverted residuals, 320 -> 1280, then a 1280 -> 1000 classifier
    first, last = layer_shapes(graph)[0], layer_shapes(graph)[-2]
    assert (first.in_channels, first.out_channels, first.kernel, first.stride, first.input_size) == (3, 32, 3, 2, 224)
    assert (last.in_channels, last.out_channels, last.kernel, last.input_size) == (320, 1280, 1, 7)
    assert linears[0].weight.shape == (1000, 1280)
    for node in depthwise:
        assert node.groups == node.weight.shape[0] and node.weight.shape[1:] == (1, 3, 3)
        assert node.relu and node.upper == 6.0
    assert [node.stride for node in depthwise] == [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]
    assert [graph.shapes[node.name][0] for node in depthwise] == [32, 96, 144, 144, 192, 192, 192, 384, 384, 384, 384,
                                                                    576, 576, 576, 960, 960, 960]
    projections = [convs[convs.index(node) + 1] for node in depthwise]
    assert [node.weight.shape[0] for node in projections] == [16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96,
                                                              160, 160, 160, 320]
    assert not any(node.relu or node.upper is not None for node in projections)  # linear bottlenecks
    assert all(not node.relu and node.upper is None for node in adds)
    assert graph.shapes[graph.consumers()[INPUT][0]] == (32, 112, 112)
    assert graph.shapes["avgpool"] == (1280, 1, 1)


@pytest.mark.parametrize("width, channels, last", [(0.25, [8, 8, 8, 8, 16, 24, 40, 80], 1280),
                                                   (0.5, [16, 8, 16, 16, 32, 48, 80, 160], 1280),
                                                   (1.4, [48, 24, 32, 48, 88, 136, 224, 448], 1792)])
def test_mobilenet_v2_width_multiplier(width, channels, last):
    """torchvision's _make_divisible rounding: the stem, each stage's output channels, and the last conv (never below
    1280)."""
    path_free = reference_network("mobilenetv2", size=32, width=width, classes=10)
    weights = {item.name: tuple(item.dims) for item in path_free.graph.initializer}
    stage_ends = ["features.1", "features.3", "features.6", "features.10", "features.13", "features.16",
                  "features.17"]
    assert [weights["features.0.weight"][0]] + [weights[f"{prefix}.project.weight"][0] for prefix in stage_ends] \
        == channels
    assert weights["features.18.weight"][0] == last and weights["fc.weight"] == (10, last)


# ---- refusals ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("build, message", [
    (lambda: reference_network("vgg16"), "unknown reference network 'vgg16'; known: resnet18, resnet34, resnet50, "
                                         "mobilenetv2"),
    (lambda: reference_network("ResNet18"), "unknown reference network 'ResNet18'; known: resnet18, resnet34, "
                                            "resnet50, mobilenetv2"),
    (lambda: resnet(20), "ResNet depth must be one of 18, 34, 50, got 20"),
    (lambda: resnet(101), "ResNet depth must be one of 18, 34, 50, got 101"),
    (lambda: mobilenet_v2(width=0), "the MobileNetV2 width multiplier must be in (0, 4], got 0"),
    (lambda: mobilenet_v2(width=-0.5), "the MobileNetV2 width multiplier must be in (0, 4], got -0.5"),
    (lambda: mobilenet_v2(width=4.5), "the MobileNetV2 width multiplier must be in (0, 4], got 4.5"),
    (lambda: reference_network("mobilenetv2", width=float("nan")),
     "the MobileNetV2 width multiplier must be in (0, 4], got nan"),
], ids=["unknown", "case matters", "depth 20", "depth 101", "width 0", "width negative", "width 4.5", "width NaN"])
def test_bad_arguments(build, message):
    with pytest.raises(InputError, match=exactly(message)):
        build()


@pytest.mark.parametrize("width", [0, -8])
def test_bad_resnet_width(tmp_path, width):
    """A ResNet's width is its first stage's channels: 0 or fewer is bad input (InputError), not a crash."""
    with pytest.raises(InputError):
        reference_network("resnet18", tmp_path / "bad.onnx", size=32, width=width, classes=10)
