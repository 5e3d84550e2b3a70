"""esb_hw/frontend/onnx_import.py: the shipped digits model, BatchNorm folding, every supported operator, and one
clear line with exit code 2 for an unsupported operator, a wrong input shape and a corrupted file."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from esb_hw.errors import InputError
from esb_hw.frontend.accuracy import EXAMPLES
from esb_hw.frontend.datasets import load_split
from esb_hw.frontend.model import load_npz
from esb_hw.frontend.onnx_import import load_onnx

RNG = np.random.default_rng(5)


def graph_file(tmp_path, nodes, initializers, input_shape=(1, 1, 4, 4), outputs=2, name="model.onnx"):
    """Save a chain graph whose last node writes 'y'."""
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "out"])],
        [numpy_helper.from_array(np.asarray(value, np.float32), key) for key, value in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def conv_bn_relu_pool_gemm(tmp_path, extra=None, size=4, name="model.onnx"):
    init = {"w": RNG.normal(size=(3, 1, 3, 3)), "b": RNG.normal(size=3), "s": RNG.uniform(0.5, 2, 3),
            "o": RNG.normal(size=3), "m": RNG.normal(size=3), "v": RNG.uniform(0.5, 2, 3),
            "fw": RNG.normal(size=(2 if size == 4 else 10, 3 * (size // 2) ** 2)), "fb": RNG.normal(size=2 if size == 4
                                                                                               else 10)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("BatchNormalization", ["c", "s", "o", "m", "v"], ["n"], name="bn", epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["g"], name="fc", transB=1)]
    return graph_file(tmp_path, nodes + (extra or []), init, (1, 1, size, size), name=name), init


def reference(init, x):
    """The graph of conv_bn_relu_pool_gemm in plain NumPy, BatchNorm applied as a separate step."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    conv = np.zeros((x.shape[0], 3, 4, 4))
    for o in range(3):
        for y in range(4):
            for xx in range(4):
                window = padded[:, :, y:y + 3, xx:xx + 3]
                conv[:, o, y, xx] = np.sum(window * init["w"][o], axis=(1, 2, 3)) + init["b"][o]
    norm = ((conv - init["m"][:, None, None]) / np.sqrt(init["v"][:, None, None] + 1e-3) * init["s"][:, None, None]
            + init["o"][:, None, None])
    pooled = np.maximum(norm, 0).reshape(-1, 3, 2, 2, 2, 2).max(axis=(3, 5))
    return pooled.reshape(len(x), -1) @ init["fw"].T + init["fb"]


def test_batch_norm_is_folded_exactly(tmp_path):
    path, init = conv_bn_relu_pool_gemm(tmp_path)
    model = load_onnx(path)
    assert [layer.kind for layer in model.layers] == ["conv2d", "linear"]
    assert model.layers[0].relu and model.layers[0].pool
    x = RNG.normal(size=(5, 1, 4, 4))
    np.testing.assert_allclose(model.forward(x), reference(init, x), rtol=1e-5, atol=1e-5)


def test_shipped_digits_onnx_equals_the_npz():
    onnx_model = load_onnx(EXAMPLES / "digits.onnx", (1, 8, 8))
    npz_model = load_npz(EXAMPLES / "digits.npz")
    images = load_split().test_images
    np.testing.assert_allclose(onnx_model.forward(images), npz_model.forward(images), rtol=1e-4, atol=1e-4)
    assert np.mean(onnx_model.predict(images) == load_split().test_labels) > 0.97
    graph_ops = [node.op_type for node in onnx.load(str(EXAMPLES / "digits.onnx")).graph.node]
    assert graph_ops.count("BatchNormalization") == 2  # the folding is the import's, not the file's


def test_shipped_mnist5k_onnx_equals_the_npz():
    onnx_model = load_onnx(EXAMPLES.parent / "mnist5k" / "mnist5k.onnx", (1, 28, 28))
    npz_model = load_npz(EXAMPLES.parent / "mnist5k" / "mnist5k.npz")
    images = load_split("mnist5k").test_images[:50]
    np.testing.assert_allclose(onnx_model.forward(images), npz_model.forward(images), rtol=1e-4, atol=1e-4)
    assert [layer.kind for layer in onnx_model.layers] == ["conv2d"] * 3 + ["linear"]


def test_matmul_add_and_gemm_forms_agree(tmp_path):
    weight, bias = RNG.normal(size=(3, 16)), RNG.normal(size=3)
    flat = helper.make_node("Flatten", ["x"], ["f"], name="flat", axis=1)
    a = graph_file(tmp_path, [flat, helper.make_node("MatMul", ["f", "wt"], ["m"], name="mm"),
                              helper.make_node("Add", ["m", "bias"], ["a"], name="add")],
                   {"wt": weight.T, "bias": bias}, name="a.onnx")
    flat = helper.make_node("Flatten", ["x"], ["f"], name="flat", axis=1)
    b = graph_file(tmp_path, [flat, helper.make_node("Gemm", ["f", "wt", "bias"], ["g"], name="gemm", alpha=2.0,
                                                     beta=0.5)],
                   {"wt": weight.T, "bias": bias}, name="b.onnx")
    x = RNG.normal(size=(2, 1, 4, 4))
    # a linear layer straight on the image: the importer accepts it on a CxHxW input
    np.testing.assert_allclose(load_onnx(a).forward(x), x.reshape(2, -1) @ weight.T + bias, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(load_onnx(b).forward(x), 2 * x.reshape(2, -1) @ weight.T + 0.5 * bias, rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("node, message", [
    (helper.make_node("Sigmoid", ["g"], ["s"], name="squash"), r"node 'squash' \(Sigmoid\): operator Sigmoid is not "
                                                                r"supported"),
    (helper.make_node("Relu", ["g"], ["r2"], name="again"), None),
])
def test_unsupported_operator_names_node_and_operator(tmp_path, node, message):
    path, _ = conv_bn_relu_pool_gemm(tmp_path, [node])
    if message is None:
        load_onnx(path)  # a Relu after the classifier is supported
        return
    with pytest.raises(InputError, match=message):
        load_onnx(path)


@pytest.mark.parametrize("attributes, message", [
    ({"group": 1, "dilations": [2, 2]}, "dilations"),
    ({"strides": [1, 2]}, "strides .* differ"),
    ({"pads": [1, 0, 1, 0]}, "not the same on all sides"),
])
def test_conv_attributes_out_of_reach(tmp_path, attributes, message):
    node = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], **attributes)
    path = graph_file(tmp_path, [node], {"w": RNG.normal(size=(2, 1, 3, 3))})
    with pytest.raises(InputError, match=r"node 'conv' \(Conv\): .*" + message):
        load_onnx(path)


def conv(name="conv", inputs=("x", "w"), output="c", **attributes):
    return helper.make_node("Conv", list(inputs), [output], name=name, kernel_shape=[1, 1], **attributes)


W = {"w": np.ones((2, 1, 1, 1))}


@pytest.mark.parametrize("nodes, initializers, message", [
    ([conv(group=2)], {"w": np.ones((2, 1, 1, 1))}, r"'conv' \(Conv\): group 2 is not supported"),
    ([conv(auto_pad="SAME_UPPER")], W, "auto_pad is not supported"),
    ([conv(), helper.make_node("Relu", ["c"], ["r"], name="relu"),
      helper.make_node("Add", ["c", "r"], ["s"], name="residual")], W,
     r"'residual' \(Add\): the graph must be a chain"),
    ([helper.make_node("Relu", ["x"], ["r"], name="first")], {}, "Relu before any Conv, Gemm or MatMul"),
    ([conv(inputs=("x", "w", "b")), helper.make_node("BatchNormalization", ["c", "s", "o", "m", "v"], ["n"],
                                                     name="bn")],
     {**W, "b": np.ones(2), "s": np.ones(3), "o": np.ones(3), "m": np.ones(3), "v": np.ones(3)},
     r"'bn' \(BatchNormalization\): its parameters must have shape \(2,\)"),
    ([conv(), helper.make_node("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[3, 3], strides=[2, 2])], W,
     r"'pool' \(MaxPool\): only 2x2 pooling with stride 2"),
    ([conv(), helper.make_node("Flatten", ["c"], ["f"], name="flat", axis=2)], W, "only axis = 1"),
    ([conv(), helper.make_node("Flatten", ["c"], ["f"], name="flat", axis=1), conv(name="again", inputs=("f", "w"))],
     W, r"'again' \(Conv\): a Conv after a Flatten"),
    ([conv(), helper.make_node("Add", ["c", "c2"], ["s"], name="add")], W, "not a valid ONNX model"),
    ([conv(), helper.make_node("Add", ["c", "bias"], ["s"], name="add")], {**W, "bias": np.ones(2)},
     r"a bias of shape \(2,\) does not broadcast per channel"),
    ([helper.make_node("Flatten", ["x"], ["f"], name="flat"),
      helper.make_node("Gemm", ["f", "g", "gb"], ["y"], name="gemm", transB=1)],
     {"g": np.ones((3, 16)), "gb": np.ones((2, 3))}, r"a bias of shape \(2, 3\) does not fit 3 outputs"),
    ([helper.make_node("Flatten", ["x"], ["f"], name="flat"),
      helper.make_node("Gemm", ["f", "g"], ["y"], name="gemm", transA=1)], {"g": np.ones((16, 3))}, "transA = 1"),
    ([helper.make_node("Flatten", ["x"], ["f"], name="flat"),
      helper.make_node("MatMul", ["f", "f"], ["y"], name="mm")], {}, "the graph must be a chain"),
    ([conv(), helper.make_node("Dropout", ["c"], ["d", "mask"], name="drop")], W, "mask output"),
    ([helper.make_node("Flatten", ["x"], ["f"], name="flat")], {}, "the model has no Conv, Gemm or MatMul"),
    ([conv(), helper.make_node("Relu", ["c"], ["r"], name="relu"), helper.make_node("Relu", ["r"], ["r2"],
                                                                                    name="relu2")], W,
     r"'relu2' \(Relu\): Relu after Relu"),
])
def test_every_import_error_names_its_node(tmp_path, nodes, initializers, message):
    path = graph_file(tmp_path, nodes, initializers)
    with pytest.raises(InputError, match=message):
        load_onnx(path)


def test_graph_level_errors(tmp_path):
    path = graph_file(tmp_path, [conv()], W, input_shape=(1, 1, 4))
    with pytest.raises(InputError, match="must be NxCxHxW, got 3 dimensions"):
        load_onnx(path)
    path = graph_file(tmp_path, [conv()], W, input_shape=("N", "C", 4, 4))
    with pytest.raises(InputError, match="the input's CxHxW must be fixed"):
        load_onnx(path)
    assert load_onnx(path, (1, 4, 4)).input_shape == (1, 4, 4)  # the caller's shape fills symbolic sizes


def test_relu_and_pool_commute_and_bias_shapes(tmp_path):
    """Conv -> MaxPool -> Relu imports like Conv -> Relu -> MaxPool; a (1, C, 1, 1) Add is a per-channel bias."""
    nodes = [conv(), helper.make_node("Add", ["c", "bias"], ["a"], name="add"),
             helper.make_node("MaxPool", ["a"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Relu", ["p"], ["r"], name="relu")]
    bias = np.array([-1.0, 2.0]).reshape(1, 2, 1, 1)
    model = load_onnx(graph_file(tmp_path, nodes, {**W, "bias": bias}))
    x = RNG.normal(size=(2, 1, 4, 4))
    expected = np.maximum((x + bias).reshape(2, 2, 2, 2, 2, 2).max(axis=(3, 5)), 0)
    np.testing.assert_allclose(model.forward(x), expected.reshape(2, -1), rtol=1e-6, atol=1e-6)
    flat = helper.make_node("Flatten", ["x"], ["f"], name="flat")
    gemm = helper.make_node("Gemm", ["f", "g", "gb"], ["y"], name="gemm", transB=1)
    model = load_onnx(graph_file(tmp_path, [flat, gemm], {"g": np.ones((3, 16)), "gb": np.arange(3).reshape(1, 3)},
                                 name="row_bias.onnx"))
    np.testing.assert_allclose(model.layers[0].bias, [0, 1, 2])


def test_wrong_input_shape_and_corrupted_file(tmp_path):
    path, _ = conv_bn_relu_pool_gemm(tmp_path)
    with pytest.raises(InputError, match=r"the model's input is 1x4x4 \(CxHxW\), the data is 1x8x8"):
        load_onnx(path, (1, 8, 8))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(InputError, match="not a valid ONNX model"):
        load_onnx(broken)
    with pytest.raises(InputError, match="no such file"):
        load_onnx(tmp_path / "absent.onnx")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "esb_hw.infer", "--golden-only", "--images", "5", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_bad_models_exit_2_with_one_line(tmp_path):
    """The three bad files of the issue, through the user's command."""
    unsupported, _ = conv_bn_relu_pool_gemm(tmp_path, [helper.make_node("Softmax", ["g"], ["s"], name="probs")],
                                            size=8, name="unsupported.onnx")
    wrong_shape, _ = conv_bn_relu_pool_gemm(tmp_path, name="wrong_shape.onnx")
    corrupted = tmp_path / "corrupted.onnx"
    corrupted.write_bytes(b"\x08\x07garbage" * 10)
    expectations = {unsupported: "node 'probs' (Softmax): operator Softmax is not supported",
                    wrong_shape: "the model's input is 1x4x4 (CxHxW), the data is 1x8x8",
                    corrupted: "not a valid ONNX model"}
    for path, message in expectations.items():
        result = _cli("--model", str(path))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ") and message in lines[0], lines
