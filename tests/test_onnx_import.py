"""esb_hw/frontend/onnx_import.py: the shipped models, BatchNorm folding, every supported operator and attribute
(honoured ones checked against onnx.reference), a refusal naming node, operator and attribute for everything else,
and one clear line with exit code 2 through the command line. Classifiers exported by torch.onnx.export (the files
in tests/fixtures, written by examples/export_torch_classifier.py) against onnx.reference, and, where torch is
installed, against a fresh export."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from esb_hw.errors import InputError
from esb_hw.frontend import onnx_import
from esb_hw.frontend.accuracy import EXAMPLES
from esb_hw.frontend.datasets import load_split
from esb_hw.frontend.model import load_npz
from esb_hw.frontend.onnx_import import load_onnx

RNG = np.random.default_rng(5)


def graph_file(tmp_path, nodes, initializers, input_shape=(1, 1, 4, 4), name="model.onnx", opset=13, tensors=(),
               extra_inputs=(), sparse=(), output_rank=None):
    """Save a chain graph whose last node writes 'y'; ``initializers`` are float32, ``tensors`` any TensorProto."""
    nodes[-1].output[0] = "y"
    rank = output_rank or (2 if any(node.op_type in ("Flatten", "Gemm", "MatMul") for node in nodes) else 4)
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape)), *extra_inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [f"d{i}" for i in range(rank)])],
        [numpy_helper.from_array(np.asarray(value, np.float32), key) for key, value in initializers.items()]
        + list(tensors), sparse_initializer=list(sparse))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def assert_matches_reference(path, x):
    """The import's float forward pass equals onnx.reference's run of the same file."""
    expected = ReferenceEvaluator(str(path)).run(None, {"x": x.astype(np.float32)})[0]
    np.testing.assert_allclose(load_onnx(path).forward(x), expected.reshape(len(x), -1), rtol=1e-5, atol=1e-5)


def conv_bn_relu_pool_gemm(tmp_path, extra=None, size=4, name="model.onnx", opset=13):
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
    return graph_file(tmp_path, nodes + (extra or []), init, (1, 1, size, size), name=name, opset=opset), init


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


def test_correct_model_matches_onnx_reference(tmp_path):
    """Opset 15: onnx.reference's BatchNormalization before opset 14 mixes in batch statistics (onnx/onnx#5799)."""
    path, _ = conv_bn_relu_pool_gemm(tmp_path, opset=15)
    assert_matches_reference(path, RNG.normal(size=(5, 1, 4, 4)))


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
    assert_matches_reference(a, x)
    assert_matches_reference(b, x)


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


def conv(name="conv", inputs=("x", "w"), output="c", **attributes):
    attributes.setdefault("kernel_shape", [1, 1])
    return helper.make_node("Conv", list(inputs), [output], name=name, **attributes)


def pool(name="pool", inputs=("c",), outputs=("p",), **attributes):
    attributes = {"kernel_shape": [2, 2], "strides": [2, 2], **attributes}
    return helper.make_node("MaxPool", list(inputs), list(outputs), name=name, **attributes)


def flat(name="flat", inputs=("c",), **attributes):
    return helper.make_node("Flatten", list(inputs), ["f"], name=name, **attributes)


def bn(name="bn", inputs=("c", "s", "o", "m", "v"), outputs=("n",), **attributes):
    return helper.make_node("BatchNormalization", list(inputs), list(outputs), name=name, **attributes)


def dropout(name="drop", inputs=("c",), outputs=("d",), **attributes):
    return helper.make_node("Dropout", list(inputs), list(outputs), name=name, **attributes)


def tensor(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def reshape(name="flat", inputs=("c", "s"), output="f", **attributes):
    return helper.make_node("Reshape", list(inputs), [output], name=name, **attributes)


def gemm(inputs=("f", "g", "gb"), output="y", name="gemm"):
    return helper.make_node("Gemm", list(inputs), [output], name=name, transB=1)


def shape(value, name="s"):
    """An INT64 shape tensor, for ``tensors=``."""
    return [tensor(name, np.array(value, np.int64))]


def int_constant(name, value):
    return helper.make_node("Constant", [], [name], name=name, value=tensor(name, np.array(value, np.int64)))


def dynamic_flatten(data="c", opset=13):
    """What torch's legacy exporter writes for ``x.view(x.size(0), -1)`` on a symbolic batch: the shape
    (N, -1) computed as Shape -> Gather -> Unsqueeze -> Concat, into 's'."""
    unsqueeze = (helper.make_node("Unsqueeze", ["n"], ["n1"], name="unsqueeze", axes=[0]) if opset < 13
                 else helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsqueeze"))
    return [helper.make_node("Shape", [data], ["sh"], name="shape"), int_constant("zero", 0),
            helper.make_node("Gather", ["sh", "zero"], ["n"], name="gather", axis=0),
            *([] if opset < 13 else [int_constant("axes", [0])]), unsqueeze, int_constant("rest", [-1]),
            helper.make_node("Concat", ["n1", "rest"], ["s"], name="concat", axis=0)]


def softmax(scores):
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


W = {"w": np.ones((2, 1, 1, 1))}
W3 = {"w": RNG.normal(size=(2, 1, 3, 3))}
BN = {"s": RNG.uniform(0.5, 2, 2), "o": RNG.normal(size=2), "m": RNG.normal(size=2), "v": RNG.uniform(0.5, 2, 2)}
BN3 = {"s": RNG.uniform(0.5, 2, 3), "o": RNG.normal(size=3), "m": RNG.normal(size=3), "v": RNG.uniform(0.5, 2, 3)}
GEMM = {"g": RNG.normal(size=(3, 16)), "gb": RNG.normal(size=3)}
ODD = (1, 1, 7, 5)
#: A 1x1 Conv to (N, 2, 4, 4) and a Gemm on its 32 features (after a flatten), with distinct channels so that the
#: flatten's order shows.
FLAT = {"w": RNG.normal(size=(2, 1, 1, 1)), "g": RNG.normal(size=(3, 32)), "gb": RNG.normal(size=3)}


@pytest.mark.parametrize("nodes, initializers, message", [
    ([conv(group=2)], {"w": np.ones((2, 1, 1, 1))}, r"'conv' \(Conv\): attribute group = 2 is not supported"),
    ([conv(), helper.make_node("Relu", ["c"], ["r"], name="relu"),
      helper.make_node("Add", ["c", "r"], ["s"], name="residual")], W,
     r"'residual' \(Add\): .*the graph must be a chain"),
    ([helper.make_node("Relu", ["x"], ["r"], name="first")], {}, "Relu before any Conv, Gemm or MatMul"),
    ([conv(inputs=("x", "w", "b")), helper.make_node("BatchNormalization", ["c", "s", "o", "m", "v"], ["n"],
                                                     name="bn")],
     {**W, "b": np.ones(2), "s": np.ones(3), "o": np.ones(3), "m": np.ones(3), "v": np.ones(3)},
     r"'bn' \(BatchNormalization\): its parameters must have shape \(2,\)"),
    ([conv(), pool(kernel_shape=[3, 3])], W,
     r"'pool' \(MaxPool\): attribute kernel_shape = \[3, 3\] is not supported: only 2x2 max-pooling with stride 2"),
    ([conv(), flat(axis=2)], W, r"'flat' \(Flatten\): attribute axis = 2 is not supported"),
    ([conv(), flat(axis=1), conv(name="again", inputs=("f", "w"))],
     W, r"'again' \(Conv\): a Conv after a Flatten"),
    ([conv(), helper.make_node("Add", ["c", "c2"], ["s"], name="add")], W, "not a valid ONNX model"),
    ([conv(), helper.make_node("Add", ["c", "bias"], ["s"], name="add")], {**W, "bias": np.ones(2)},
     r"a bias of shape \(2,\) does not broadcast per channel"),
    ([flat(inputs=("x",)), helper.make_node("Gemm", ["f", "g", "gb"], ["y"], name="gemm", transB=1)],
     {"g": np.ones((3, 16)), "gb": np.ones((2, 3))}, r"a bias of shape \(2, 3\) does not fit 3 outputs"),
    ([flat(inputs=("x",)), helper.make_node("MatMul", ["f", "f"], ["y"], name="mm")], {},
     "the graph must be a chain"),
    ([conv(), dropout(outputs=("d", "mask"))], W, r"'drop' \(Dropout\): the mask output 'mask' is not supported"),
    ([flat(inputs=("x",))], {}, "the model has no Conv, Gemm or MatMul"),
    ([conv(), helper.make_node("Relu", ["c"], ["r"], name="relu"), helper.make_node("Relu", ["r"], ["r2"],
                                                                                    name="relu2")], W,
     r"'relu2' \(Relu\): Relu after Relu"),
])
def test_every_import_error_names_its_node(tmp_path, nodes, initializers, message):
    path = graph_file(tmp_path, nodes, initializers)
    with pytest.raises(InputError, match=message):
        load_onnx(path)


def refusal(nodes, initializers=None, message="", input_shape=(1, 1, 4, 4), opset=13, **graph):
    return pytest.param(nodes, initializers or {}, message, input_shape, opset, graph)


REFUSALS = {
    # MaxPool: each attribute by name, the odd-size SAME_UPPER/ceil_mode cases naming the input size
    "maxpool SAME_UPPER odd": refusal(
        [conv(pads=[1, 1, 1, 1], kernel_shape=[3, 3]), pool(auto_pad="SAME_UPPER", strides=[2, 2])], W3,
        r"node 'pool' \(MaxPool\): attribute auto_pad = SAME_UPPER is not supported: on the 7x5 input", ODD),
    "maxpool SAME_LOWER odd": refusal(
        [conv(), pool(auto_pad="SAME_LOWER")], W,
        r"node 'pool' \(MaxPool\): attribute auto_pad = SAME_LOWER is not supported: on the 7x5 input", ODD),
    "maxpool ceil_mode odd": refusal(
        [conv(), pool(ceil_mode=1)], W,
        r"node 'pool' \(MaxPool\): attribute ceil_mode = 1 is not supported: on the 7x5 input", ODD),
    "maxpool dilations": refusal(
        [conv(), pool(dilations=[2, 2])], W, r"node 'pool' \(MaxPool\): attribute dilations = \[2, 2\] is not "
                                             r"supported", (1, 1, 6, 6)),
    "maxpool default strides": refusal(
        [conv(), pool(strides=[1, 1])], W, r"node 'pool' \(MaxPool\): attribute strides = \[1, 1\] is not supported"),
    "maxpool pads": refusal(
        [conv(), pool(pads=[0, 0, 1, 1])], W, r"node 'pool' \(MaxPool\): attribute pads = \[0, 0, 1, 1\] is not "
                                              r"supported"),
    "maxpool Indices": refusal(
        [conv(), pool(outputs=("p", "idx"), storage_order=1)], W,
        r"node 'pool' \(MaxPool\): the Indices output 'idx' is not supported"),
    # Conv
    "conv kernel_shape": refusal(
        [conv(kernel_shape=[3, 3])], W,
        r"node 'conv' \(Conv\): attribute kernel_shape = \[3, 3\] is not supported: the weights' kernel is \[1, 1\]"),
    "conv SAME_UPPER uneven": refusal(
        [conv(kernel_shape=[2, 2], auto_pad="SAME_UPPER")], {"w": np.ones((2, 1, 2, 2))},
        r"node 'conv' \(Conv\): attribute auto_pad = SAME_UPPER is not supported: on the 4x4 input it pads \[1\]"),
    "conv SAME_LOWER differs per axis": refusal(
        [conv(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER")], W3,
        r"node 'conv' \(Conv\): attribute auto_pad = SAME_LOWER is not supported: on the 4x5 input", (1, 1, 4, 5)),
    "conv pads with auto_pad": refusal(
        [conv(auto_pad="VALID", pads=[1, 1, 1, 1])], W,
        r"node 'conv' \(Conv\): attribute pads = \[1, 1, 1, 1\] is not supported: pads are given together with "
        r"auto_pad = VALID"),
    "conv strides differ": refusal(
        [conv(strides=[1, 2])], W, r"node 'conv' \(Conv\): attribute strides = \[1, 2\] is not supported: the strides "
                                   r"differ between the axes"),
    "conv pads differ": refusal(
        [conv(kernel_shape=[3, 3], pads=[1, 0, 1, 0])], W3,
        r"node 'conv' \(Conv\): attribute pads = \[1, 0, 1, 0\] is not supported: the padding must be the same"),
    "conv dilations": refusal(
        [conv(kernel_shape=[3, 3], dilations=[2, 2])], W3, r"node 'conv' \(Conv\): attribute dilations = \[2, 2\]",
        (1, 1, 6, 6)),
    # Dropout, in each opset's form
    "dropout training_mode true": refusal(
        [conv(), dropout(inputs=("c", "r", "t"))], {**W, "r": np.float32(0.5)},
        r"node 'drop' \(Dropout\): input training_mode \('t'\) = True is not supported", tensors=[tensor("t", True)]),
    "dropout training_mode from a Constant": refusal(
        [conv(), helper.make_node("Constant", [], ["t"], name="mode", value=tensor("t", True)),
         dropout(inputs=("c", "", "t"))], W, r"node 'drop' \(Dropout\): input training_mode \('t'\) = True"),
    "dropout training_mode not constant": refusal(
        [conv(), dropout(inputs=("c", "", "t"))], W,
        r"node 'drop' \(Dropout\): input training_mode \('t'\) is not a constant",
        extra_inputs=[helper.make_tensor_value_info("t", TensorProto.BOOL, [])]),
    "dropout ratio not constant": refusal(
        [conv(), dropout(inputs=("c", "r"))], W, r"node 'drop' \(Dropout\): input ratio \('r'\) is not a constant",
        extra_inputs=[helper.make_tensor_value_info("r", TensorProto.FLOAT, [])]),
    "dropout opset 6 is_test absent": refusal(
        [conv(), dropout()], W, r"node 'drop' \(Dropout\): attribute is_test = 0 is not supported", opset=6),
    "dropout opset 6 is_test 0": refusal(
        [conv(), dropout(is_test=0, ratio=0.2)], W, r"node 'drop' \(Dropout\): attribute is_test = 0", opset=6),
    # BatchNormalization, in each opset's form
    "bn opset 6 is_test 0": refusal(
        [conv(), bn(is_test=0)], {**W, **BN},
        r"node 'bn' \(BatchNormalization\): attribute is_test = 0 is not supported", opset=6),
    "bn opset 6 spatial 0": refusal(
        [conv(), bn(is_test=1, spatial=0)], {**W, **BN},
        r"node 'bn' \(BatchNormalization\): attribute spatial = 0 is not supported", opset=6),
    "bn opset 15 training_mode": refusal(
        [conv(), bn(training_mode=1)], {**W, **BN},
        r"node 'bn' \(BatchNormalization\): attribute training_mode = 1 is not supported", opset=15),
    "bn opset 9 statistics outputs": refusal(
        [conv(), bn(outputs=("n", "mean", "var", "saved_mean", "saved_var"))], {**W, **BN},
        r"node 'bn' \(BatchNormalization\): the training-mode statistics output 'mean' is not supported", opset=9),
    # Gemm, Add, Flatten
    "gemm transA": refusal(
        [flat(inputs=("x",)), helper.make_node("Gemm", ["f", "g", "gb"], ["y"], name="gemm", transA=1)],
        {"g": np.ones((16, 3)), "gb": np.ones(3)}, r"node 'gemm' \(Gemm\): attribute transA = 1 is not supported"),
    "gemm opset 6 broadcast 0": refusal(
        [flat(inputs=("x",)), helper.make_node("Gemm", ["f", "g", "gb"], ["y"], name="gemm", transB=1)], GEMM,
        r"node 'gemm' \(Gemm\): attribute broadcast = 0 is not supported", opset=6),
    "add opset 6 broadcast 0": refusal(
        [conv(), helper.make_node("Add", ["c", "b"], ["a"], name="add")], {**W, "b": np.ones(2)},
        r"node 'add' \(Add\): attribute broadcast = 0 is not supported", opset=6),
    "flatten axis -2": refusal(
        [conv(), flat(axis=-2)], W,
        r"node 'flat' \(Flatten\): attribute axis = -2 is not supported: on this 4-d tensor only axis 1 \(or -3\)"),
    "matmul on NCHW": refusal(
        [conv(), helper.make_node("MatMul", ["c", "k"], ["y"], name="mm")], {**W, "k": np.ones((4, 3))},
        r"node 'mm' \(MatMul\): its input must be 2-d"),
    # tensors the importer cannot read as weights
    "STRING initializer": refusal(
        [conv(), helper.make_node("Add", ["c", "s"], ["a"], name="add")], W,
        r"node 'add' \(Add\): tensor 's' has element type STRING; a float tensor is needed",
        tensors=[helper.make_tensor("s", TensorProto.STRING, [1], [b"bias"])]),
    "BOOL weights": refusal(
        [conv()], {}, r"node 'conv' \(Conv\): tensor 'w' has element type BOOL",
        tensors=[tensor("w", np.ones((2, 1, 1, 1), bool))]),
    "INT64 weights": refusal(
        [conv()], {}, r"node 'conv' \(Conv\): tensor 'w' has element type INT64",
        tensors=[tensor("w", np.ones((2, 1, 1, 1), np.int64))]),
    "sparse initializer": refusal(
        [conv()], {}, r"the sparse initializer 'w' is not supported",
        sparse=[helper.make_sparse_tensor(tensor("w", np.ones(1, np.float32)), tensor("w_i", np.zeros(1, np.int64)),
                                          [2, 1, 1, 1])]),
    "Constant sparse_value": refusal(
        [helper.make_node("Constant", [], ["w"], name="weights", sparse_value=helper.make_sparse_tensor(
            tensor("w", np.ones(1, np.float32)), tensor("w_i", np.zeros(1, np.int64)), [2, 1, 1, 1])), conv()], {},
        r"node 'weights' \(Constant\): attribute sparse_value = a SparseTensorProto is not supported"),
    "Constant value_string": refusal(
        [conv(), helper.make_node("Constant", [], ["s"], name="text", value_string="bias"),
         helper.make_node("Add", ["c", "s"], ["a"], name="add")], W,
        r"node 'text' \(Constant\): attribute value_string = bias is not supported"),
    "non-float input": refusal(
        [conv()], W, r"the input 'x' must be a float tensor, got UINT8", input_type=TensorProto.UINT8),
    # Reshape: only a flatten to (N, C*H*W), or (N, F) kept
    "reshape keeps 4 dims": refusal(
        [conv(), reshape(), gemm()], FLAT, r"node 'flat' \(Reshape\): shape \[1, 2, 16, 1\] turns the 1x2x4x4 input "
                                           r"into 1x2x16x1; only a flatten to \(N, C\*H\*W\) = 1x32 is supported",
        tensors=shape([1, 2, 16, 1])),
    "reshape channels last, 3-d": refusal(
        [conv(), reshape(), gemm()], FLAT, r"node 'flat' \(Reshape\): shape \[1, 16, 2\] turns the 1x2x4x4 input "
                                           r"into 1x16x2; only a flatten", tensors=shape([1, 16, 2])),
    "reshape channels into the batch": refusal(
        [conv(), reshape(), gemm()], FLAT, r"node 'flat' \(Reshape\): shape \[2, -1\] turns the 1x2x4x4 input into "
                                           r"2x16; only a flatten", tensors=shape([2, -1])),
    "reshape the batch into the features": refusal(
        [conv(), reshape(), gemm()], FLAT, r"node 'flat' \(Reshape\): shape \[-1, 16\] turns the 2x2x4x4 input "
                                           r"into 4x16; only a flatten to \(N, C\*H\*W\) = 2x32",
        (2, 1, 4, 4), tensors=shape([-1, 16])),
    "reshape to 1-d": refusal(
        [conv(), reshape(), gemm()], FLAT, r"node 'flat' \(Reshape\): shape \[-1\] turns the 1x2x4x4 input into 32;",
        tensors=shape([-1])),
    "reshape 0 with allowzero 1": refusal(
        [conv(), reshape(allowzero=1), gemm()], FLAT,
        r"node 'flat' \(Reshape\): shape \[0, -1\] is not supported: with allowzero = 1 its 0 makes an empty "
        r"dimension", opset=14, tensors=shape([0, -1])),
    "reshape two -1": refusal(
        [conv(), reshape(), gemm()], FLAT, r"node 'flat' \(Reshape\): shape \[-1, -1\] is not a valid shape",
        tensors=shape([-1, -1])),
    "reshape does not fit": refusal(
        [conv(), reshape(), gemm()], FLAT, r"node 'flat' \(Reshape\): shape \[1, 33\] does not fit the 1x2x4x4 "
                                           r"input \(32 values\)", tensors=shape([1, 33])),
    "reshape 0 past the input's rank": refusal(
        [flat(inputs=("x",)), reshape(inputs=("f", "s"), output="f2")], {},
        r"node 'flat' \(Reshape\): shape \[1, 16, 0\] copies \(0\) an axis the 1x16 input does not have",
        tensors=shape([1, 16, 0])),
    "reshape changes a 2-d tensor": refusal(
        [flat(inputs=("x",)), reshape(inputs=("f", "s"), output="f2")], {},
        r"node 'flat' \(Reshape\): shape \[2, 8\] turns the 1x16 input into 2x8; only keeping \(N, F\) = 1x16 is "
        r"supported", tensors=shape([2, 8])),
    "reshape shape not constant": refusal(
        [conv(), reshape(), gemm()], FLAT, r"node 'flat' \(Reshape\): input shape \('s'\) is not a constant",
        extra_inputs=[helper.make_tensor_value_info("s", TensorProto.INT64, [2])]),
    "reshape FLOAT shape": refusal(
        [conv(), reshape(), gemm()], FLAT,
        r"node 'flat' \(Reshape\): shape 's' has element type FLOAT; INT64 is needed", tensors=[tensor(
            "s", np.array([1.0, -1.0], np.float32))]),
    # shape computations
    "Gather on the data": refusal(
        [conv(), int_constant("i", [0]), helper.make_node("Gather", ["c", "i"], ["y"], name="gather")], W,
        r"node 'gather' \(Gather\): input data \('c'\) is not a constant: Gather is read only in a shape computation"),
    "Shape of a second input": refusal(
        [conv(), helper.make_node("Shape", ["z"], ["sh"], name="shape")], W,
        r"node 'shape' \(Shape\): input 'z' is neither a tensor of the chain nor a constant",
        extra_inputs=[helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])]),
    "Gather index out of range": refusal(
        [conv(), helper.make_node("Shape", ["c"], ["sh"], name="shape"), int_constant("i", 7),
         helper.make_node("Gather", ["sh", "i"], ["n"], name="gather")], W,
        r"node 'gather' \(Gather\): its constant inputs do not fold \(index 7 is out of bounds"),
    "Unsqueeze repeated axis": refusal(
        [conv(), int_constant("n", 1), int_constant("axes", [0, 0]),
         helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsqueeze")], W,
        r"node 'unsqueeze' \(Unsqueeze\): its constant inputs do not fold \(repeated axis"),
    # Cast: a no-op only
    "Cast to FLOAT16": refusal(
        [conv(), helper.make_node("Cast", ["c"], ["h"], name="cast", to=TensorProto.FLOAT16)], W,
        r"node 'cast' \(Cast\): attribute to = FLOAT16 is not supported: only a Cast to the model's own type "
        r"\(FLOAT\), which changes nothing, is"),
    "Cast to no type": refusal(
        [conv(), helper.make_node("Cast", ["c"], ["h"], name="cast", to=99)], W,
        r"node 'cast' \(Cast\): attribute to = 99 is not an ONNX tensor type"),
    # a final Softmax/LogSoftmax only
    "Softmax not the last node": refusal(
        [flat(inputs=("x",)), gemm(output="o"), helper.make_node("Softmax", ["o"], ["p"], name="probs"),
         helper.make_node("Identity", ["p"], ["y"], name="after")], GEMM,
        r"node 'probs' \(Softmax\): a Softmax is dropped only as the last node, and node 'after' \(Identity\) "
        r"follows it"),
    "LogSoftmax before a Gemm": refusal(
        [flat(inputs=("x",)), gemm(output="o"), helper.make_node("LogSoftmax", ["o"], ["p"], name="probs"),
         helper.make_node("Gemm", ["p", "g2"], ["y"], name="again")], {**GEMM, "g2": np.ones((3, 2))},
        r"node 'probs' \(LogSoftmax\): a LogSoftmax is dropped only as the last node, and node 'again' \(Gemm\)"),
    "Softmax axis 0": refusal(
        [flat(inputs=("x",)), gemm(output="o"), helper.make_node("Softmax", ["o"], ["p"], name="probs", axis=0)], GEMM,
        r"node 'probs' \(Softmax\): attribute axis = 0 is not supported: on the 2-d \(N, classes\) output only the "
        r"class axis, 1 or -1, keeps the predicted class"),
    "LogSoftmax axis -2": refusal(
        [flat(inputs=("x",)), gemm(output="o"), helper.make_node("LogSoftmax", ["o"], ["p"], name="probs", axis=-2)],
        GEMM, r"node 'probs' \(LogSoftmax\): attribute axis = -2 is not supported", opset=11),
    "Softmax on NCHW": refusal(
        [conv(), helper.make_node("Softmax", ["c"], ["p"], name="probs", axis=1)], W,
        r"node 'probs' \(Softmax\): a final Softmax is dropped only on the 2-d \(N, classes\) output, its input is "
        r"1x2x4x4"),
}


@pytest.mark.parametrize("nodes, initializers, message, input_shape, opset, graph", REFUSALS.values(),
                         ids=REFUSALS.keys())
def test_refusal_names_node_and_attribute(tmp_path, nodes, initializers, message, input_shape, opset, graph):
    input_type = graph.pop("input_type", None)
    path = graph_file(tmp_path, nodes, initializers, input_shape, opset=opset, **graph)
    if input_type is not None:
        model = onnx.load(str(path))
        model.graph.input[0].type.tensor_type.elem_type = input_type
        path.write_bytes(model.SerializeToString())
    with pytest.raises(InputError, match=message) as caught:
        load_onnx(path)
    assert len(str(caught.value).splitlines()) == 1


def honour(nodes, initializers, input_shape=(2, 1, 4, 4), opset=13, **graph):
    return pytest.param(nodes, initializers, input_shape, opset, graph)


HONOURED = {
    "conv SAME_UPPER 3x3 stride 1 on 7x5, maxpool VALID": honour(
        [conv(kernel_shape=[3, 3], auto_pad="SAME_UPPER"), pool(auto_pad="VALID")], W3, (2, 1, 7, 5)),
    "conv SAME_LOWER 3x3 stride 2 on 5x5": honour(
        [conv(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER")], W3, (2, 1, 5, 5)),
    "conv VALID, maxpool SAME_UPPER even": honour(
        [conv(kernel_shape=[3, 3], auto_pad="VALID"), pool(auto_pad="SAME_UPPER")], W3, (2, 1, 6, 8)),
    "maxpool ceil_mode even, storage_order": honour(
        [conv(), pool(ceil_mode=1, storage_order=1)], W, (2, 1, 6, 4)),
    "flatten axis -3, gemm alpha beta transB": honour(
        [conv(), flat(axis=-3), helper.make_node("Gemm", ["f", "g", "gb"], ["y"], name="gemm", transB=1,
                                                 alpha=0.5, beta=2.0)],
        {**W, "g": RNG.normal(size=(3, 32)), "gb": RNG.normal(size=(1, 3))}),
    "dropout opset 13 training_mode false, ratio, seed": honour(
        [conv(), helper.make_node("Constant", [], ["t"], name="mode", value=tensor("t", False)),
         dropout(inputs=("c", "r", "t"), seed=3)], {**W, "r": np.float32(0.4)}),
    "dropout opset 10 ratio": honour([conv(), dropout(ratio=0.3)], W, opset=10),
    "bn opset 6 is_test 1, momentum, spatial 1": honour(
        [conv(), bn(is_test=1, momentum=0.5, spatial=1, epsilon=1e-3)], {**W, **BN}, opset=6),
    "bn opset 15 training_mode 0 after a gemm": honour(
        [flat(inputs=("x",)), helper.make_node("Gemm", ["f", "g", "gb"], ["c"], name="gemm", transB=1),
         bn(training_mode=0, momentum=0.1)], {**GEMM, **BN3}, opset=15),
    "gemm opset 6 broadcast 1": honour(
        [flat(inputs=("x",)), helper.make_node("Gemm", ["f", "g", "gb"], ["y"], name="gemm", transB=1, broadcast=1,
                                               alpha=1.5)], GEMM, opset=6),
    "weights and biases from Constant nodes": honour(
        [helper.make_node("Constant", [], ["w"], name="weights", value=tensor("w", RNG.normal(size=(2, 1, 3, 3))
                                                                              .astype(np.float32))),
         helper.make_node("Constant", [], ["b"], name="bias", value_floats=[0.5, -0.5]),
         conv(inputs=("x", "w", "b"), kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("Constant", [], ["k"], name="shift", value_float=0.25),
         helper.make_node("Add", ["k", "c"], ["a"], name="add")], {}),
    "cast to the model's own type": honour(
        [conv(), helper.make_node("Cast", ["c"], ["k"], name="cast", to=TensorProto.FLOAT)], W),
    "cast to the model's own type, saturate 0 (opset 19)": honour(
        [conv(), helper.make_node("Cast", ["c"], ["k"], name="cast", to=TensorProto.FLOAT, saturate=0)], W, opset=19),
    "matmul, (1, N) bias": honour(
        [flat(inputs=("x",)), helper.make_node("MatMul", ["f", "g"], ["m"], name="mm"),
         helper.make_node("Add", ["m", "gb"], ["a"], name="add")], {"g": RNG.normal(size=(16, 3)),
                                                                    "gb": RNG.normal(size=(1, 3))}),
}


@pytest.mark.parametrize("nodes, initializers, input_shape, opset, graph", HONOURED.values(), ids=HONOURED.keys())
def test_honoured_attributes_match_onnx_reference(tmp_path, nodes, initializers, input_shape, opset, graph):
    path = graph_file(tmp_path, nodes, initializers, input_shape, opset=opset, **graph)
    assert_matches_reference(path, RNG.normal(size=input_shape))


def test_legacy_honoured_forms_by_hand(tmp_path):
    """Forms onnx.reference does not implement: Add's opset-6 ``axis`` broadcast, opset-6 Dropout with ``is_test``,
    opset-1 ``consumed_inputs``."""
    add = helper.make_node("Add", ["d", "b"], ["a"], name="add", broadcast=1, axis=1)
    path = graph_file(tmp_path, [conv(), dropout(is_test=1, ratio=0.3), add], {**W, "b": [1.0, -2.0]}, opset=6,
                      name="opset6.onnx")
    x = RNG.normal(size=(2, 1, 4, 4))
    expected = np.concatenate([x + 1.0, x - 2.0], axis=1)
    np.testing.assert_allclose(load_onnx(path).forward(x), expected.reshape(2, -1), rtol=1e-6, atol=1e-6)
    nodes = [conv(), bn(consumed_inputs=[0, 0, 0, 1, 1], is_test=1, epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["r"], name="relu", consumed_inputs=[0])]
    path = graph_file(tmp_path, nodes, {**W, **BN}, opset=1, name="opset1.onnx")
    s, o, m, v = (BN[key][None, :, None, None] for key in "somv")
    expected = np.maximum((np.concatenate([x, x], axis=1) - m) / np.sqrt(v + 1e-3) * s + o, 0)
    np.testing.assert_allclose(load_onnx(path).forward(x), expected.reshape(2, -1), rtol=1e-5, atol=1e-5)


def test_unknown_attribute_is_refused_by_name(tmp_path, monkeypatch):
    """The checker refuses an attribute outside the schema (one line naming node and attribute); behind it, the
    importer refuses any attribute it does not read."""
    relu = helper.make_node("Relu", ["c"], ["r"], name="relu", alpha=0.5)
    path = graph_file(tmp_path, [conv(), relu], W)
    with pytest.raises(InputError, match=r"not a valid ONNX model \(Unrecognized attribute: alpha for operator Relu ; "
                                         r"Bad node spec for node. Name: relu OpType: Relu\)"):
        load_onnx(path)
    monkeypatch.setattr(onnx.checker, "check_model", lambda *args, **kwargs: None)
    with pytest.raises(InputError, match=r"node 'relu' \(Relu\): attribute alpha = 0.5 is not supported: the importer "
                                         r"does not read it on Relu"):
        load_onnx(path)


def test_every_handled_attribute_is_in_the_schema():
    """The attributes the importer reads are the union of the operators' schemas over all opsets."""
    for op, handled in onnx_import._HANDLED_ATTRIBUTES.items():
        schemas = {onnx.defs.get_schema(op, version) for version in range(1, onnx.defs.onnx_opset_version() + 1)
                   if onnx.defs.has(op)}
        names = {name for schema in schemas for name in schema.attributes}
        refused = {"sparse_value", "value_string", "value_strings"} if op == "Constant" else set()
        assert set(handled) == names - refused, op


def test_full_check_failure_is_one_line(tmp_path):
    """A graph the structural checker passes but type inference does not: a DOUBLE weight on a FLOAT input."""
    path = graph_file(tmp_path, [conv()], {}, tensors=[tensor("w", np.ones((2, 1, 1, 1)))])
    with pytest.raises(InputError, match=r"not a valid ONNX model \(.*node name: conv\)") as caught:
        load_onnx(path)
    assert len(str(caught.value).splitlines()) == 1


def test_graph_level_errors(tmp_path):
    path = graph_file(tmp_path, [conv()], W, input_shape=(1, 1, 4))
    with pytest.raises(InputError, match="must be NxCxHxW, got 3 dimensions"):
        load_onnx(path)
    path = graph_file(tmp_path, [conv()], W, input_shape=("N", "C", 4, 4))
    with pytest.raises(InputError, match="the input's CxHxW must be fixed"):
        load_onnx(path)
    assert load_onnx(path, (1, 4, 4)).input_shape == (1, 4, 4)  # the caller's shape fills symbolic sizes
    path = graph_file(tmp_path, [conv()], W, extra_inputs=[helper.make_tensor_value_info("z", TensorProto.FLOAT,
                                                                                        [1])])
    with pytest.raises(InputError, match=r"the model must have one data input, got 'x' and 'z'"):
        load_onnx(path)


def test_relu_and_pool_commute_and_bias_shapes(tmp_path):
    """Conv -> MaxPool -> Relu imports like Conv -> Relu -> MaxPool; a (1, C, 1, 1) Add is a per-channel bias."""
    nodes = [conv(), helper.make_node("Add", ["c", "bias"], ["a"], name="add"),
             pool(inputs=("a",)), helper.make_node("Relu", ["p"], ["r"], name="relu")]
    bias = np.array([-1.0, 2.0]).reshape(1, 2, 1, 1)
    model = load_onnx(graph_file(tmp_path, nodes, {**W, "bias": bias}))
    x = RNG.normal(size=(2, 1, 4, 4))
    expected = np.maximum((x + bias).reshape(2, 2, 2, 2, 2, 2).max(axis=(3, 5)), 0)
    np.testing.assert_allclose(model.forward(x), expected.reshape(2, -1), rtol=1e-6, atol=1e-6)
    gemm = helper.make_node("Gemm", ["f", "g", "gb"], ["y"], name="gemm", transB=1)
    model = load_onnx(graph_file(tmp_path, [flat(inputs=("x",)), gemm],
                                 {"g": np.ones((3, 16)), "gb": np.arange(3).reshape(1, 3)}, name="row_bias.onnx"))
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


def digits_shaped_same_upper_pool(tmp_path):
    """8x8 digits through a 2x2 Conv (7x7), a SAME_UPPER 2x2 pool (4x4 in ONNX) and a 32-input Gemm: the pool is
    what must be named, not the Gemm whose input size it changes."""
    nodes = [conv(kernel_shape=[2, 2]), pool(auto_pad="SAME_UPPER"), flat(inputs=("p",)),
             helper.make_node("Gemm", ["f", "g"], ["y"], name="fc", transB=1)]
    return graph_file(tmp_path, nodes, {"w": RNG.normal(size=(2, 1, 2, 2)), "g": RNG.normal(size=(10, 32))},
                      (1, 1, 8, 8), name="same_upper.onnx")


def test_cli_bad_models_exit_2_with_one_line(tmp_path):
    """The bad files of the issues, through the user's command."""
    unsupported, _ = conv_bn_relu_pool_gemm(tmp_path, [helper.make_node("Sigmoid", ["g"], ["s"], name="probs")],
                                            size=8, name="unsupported.onnx")
    wrong_shape, _ = conv_bn_relu_pool_gemm(tmp_path, name="wrong_shape.onnx")
    corrupted = tmp_path / "corrupted.onnx"
    corrupted.write_bytes(b"\x08\x07garbage" * 10)
    invalid, _ = conv_bn_relu_pool_gemm(tmp_path, size=8, name="invalid.onnx")
    model = onnx.load(str(invalid))
    model.graph.output[0].type.tensor_type.shape.dim.add().dim_param = "extra"  # declared rank 3, inferred 2
    invalid.write_bytes(model.SerializeToString())
    expectations = {unsupported: "node 'probs' (Sigmoid): operator Sigmoid is not supported",
                    wrong_shape: "the model's input is 1x4x4 (CxHxW), the data is 1x8x8",
                    corrupted: "not a valid ONNX model",
                    digits_shaped_same_upper_pool(tmp_path): "node 'pool' (MaxPool): attribute auto_pad = SAME_UPPER "
                                                             "is not supported: on the 7x7 input",
                    invalid: "not a valid ONNX model ([ShapeInferenceError]"}
    for path, message in expectations.items():
        result = _cli("--model", str(path))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ") and message in lines[0], lines
        assert re.match(r"error: \S+: ", lines[0])


# ---- Reshape as a flatten, a final Softmax ------------------------------------------------------------------------
def flatten_form(nodes, input_shape=(1, 1, 4, 4), opset=13, tensors=(), initializers=None):
    return pytest.param(nodes, input_shape, opset, list(tensors), initializers or FLAT)


RESHAPE_FORMS = {
    "[1, -1]": flatten_form([conv(), reshape(), gemm()], tensors=shape([1, -1])),
    "[1, 32]": flatten_form([conv(), reshape(), gemm()], tensors=shape([1, 32])),
    "[-1, 32], symbolic batch": flatten_form([conv(), reshape(), gemm()], ("N", 1, 4, 4), tensors=shape([-1, 32])),
    "[0, -1], symbolic batch": flatten_form([conv(), reshape(), gemm()], ("N", 1, 4, 4), tensors=shape([0, -1])),
    "[2, -1], batch 2": flatten_form([conv(), reshape(), gemm()], (2, 1, 4, 4), tensors=shape([2, -1])),
    "[0, 32], allowzero 0": flatten_form([conv(), reshape(allowzero=0), gemm()], ("N", 1, 4, 4), 14,
                                         shape([0, 32])),
    "[1, -1], allowzero 1 (torch's dynamo export)": flatten_form([conv(), reshape(allowzero=1), gemm()], opset=14,
                                                                 tensors=shape([1, -1])),
    "[-1, 32], allowzero 1, symbolic batch": flatten_form([conv(), reshape(allowzero=1), gemm()], ("N", 1, 4, 4), 21,
                                                          shape([-1, 32])),
    "shape from a Constant node": flatten_form(
        [conv(), helper.make_node("Constant", [], ["s"], name="target", value_ints=[1, -1]), reshape(), gemm()]),
    "after Relu and MaxPool": flatten_form(
        [conv(), helper.make_node("Relu", ["c"], ["r"], name="relu"), pool(inputs=("r",)),
         reshape(inputs=("p", "s")), gemm(inputs=("f", "g8", "gb"))], tensors=shape([1, -1]),
        initializers={**FLAT, "g8": RNG.normal(size=(3, 8))}),
    "on the input, before a MatMul": flatten_form(
        [reshape(inputs=("x", "s")), helper.make_node("MatMul", ["f", "k"], ["y"], name="mm")], ("N", 1, 4, 4),
        tensors=shape([0, 16]), initializers={"k": RNG.normal(size=(16, 3))}),
    "2-d kept, after a Flatten": flatten_form(
        [conv(), flat(), reshape(inputs=("f", "s"), output="f2"), gemm(inputs=("f2", "g", "gb"))], ("N", 1, 4, 4),
        tensors=shape([0, -1])),
    "2-d kept, after the Gemm": flatten_form(
        [conv(), flat(), gemm(output="o"), reshape(inputs=("o", "s"), output="y")], tensors=shape([1, 3])),
    "Shape, Gather, Unsqueeze, Concat (torch's legacy export), symbolic batch": flatten_form(
        [conv(), *dynamic_flatten(), reshape(), gemm()], ("N", 1, 4, 4)),
    "the same at opset 11 (Unsqueeze axes as an attribute)": flatten_form(
        [conv(), *dynamic_flatten(opset=11), reshape(), gemm()], ("N", 1, 4, 4), 11),
    "Shape start/end (opset 15), Concat": flatten_form(
        [conv(), helper.make_node("Shape", ["c"], ["n1"], name="shape", start=0, end=1), int_constant("rest", [-1]),
         helper.make_node("Concat", ["n1", "rest"], ["s"], name="concat", axis=-1), reshape(), gemm()],
        ("N", 1, 4, 4), 15),
    "Shape of the input, batch 2": flatten_form(
        [helper.make_node("Shape", ["x"], ["sh"], name="shape", end=-3), int_constant("rest", [32]),
         helper.make_node("Concat", ["sh", "rest"], ["s"], name="concat", axis=0), conv(), reshape(), gemm()],
        (2, 1, 4, 4), 15),
}


@pytest.mark.parametrize("nodes, input_shape, opset, tensors, initializers", RESHAPE_FORMS.values(),
                         ids=RESHAPE_FORMS.keys())
def test_reshape_flatten_forms_match_onnx_reference(tmp_path, nodes, input_shape, opset, tensors, initializers):
    path = graph_file(tmp_path, nodes, initializers, input_shape, opset=opset, tensors=tensors)
    batch = input_shape[0] if isinstance(input_shape[0], int) else 3
    assert_matches_reference(path, RNG.normal(size=(batch, 1, 4, 4)))


def test_reshape_opset_4_shape_attribute_by_hand(tmp_path):
    """Before opset 5 the shape is an attribute (onnx.reference has no Reshape-1)."""
    nodes = [conv(), helper.make_node("Reshape", ["c"], ["f"], name="flat", shape=[0, -1], consumed_inputs=[0]),
             helper.make_node("MatMul", ["f", "k"], ["y"], name="mm")]
    weights = {"w": FLAT["w"], "k": RNG.normal(size=(32, 3))}
    model = load_onnx(graph_file(tmp_path, nodes, weights, ("N", 1, 4, 4), opset=4))
    x = RNG.normal(size=(3, 1, 4, 4))
    expected = (x * weights["w"].reshape(1, 2, 1, 1)).reshape(3, -1) @ weights["k"]
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-6, atol=1e-6)
    refused = graph_file(tmp_path, [conv(), helper.make_node("Reshape", ["c"], ["f"], name="flat")], W, opset=4,
                         name="no_shape.onnx")
    with pytest.raises(InputError, match=r"node 'flat' \(Reshape\): attribute shape is missing"):
        load_onnx(refused)


def test_cast_of_a_double_model_to_double_is_a_no_op(tmp_path):
    nodes = [conv(), helper.make_node("Cast", ["c"], ["k"], name="cast", to=TensorProto.DOUBLE)]
    path = graph_file(tmp_path, nodes, {}, tensors=[tensor("w", RNG.normal(size=(2, 1, 1, 1)))])
    model = onnx.load(str(path))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.elem_type = TensorProto.DOUBLE
    path.write_bytes(model.SerializeToString())
    assert_matches_reference(path, RNG.normal(size=(1, 1, 4, 4)))
    model.graph.node[1].attribute[0].i = TensorProto.FLOAT
    path.write_bytes(model.SerializeToString())
    with pytest.raises(InputError, match=r"node 'cast' \(Cast\): attribute to = FLOAT is not supported: only a Cast "
                                         r"to the model's own type \(DOUBLE\)"):
        load_onnx(path)


SOFTMAX_FORMS = {
    "Softmax, opset 13 default axis": ("Softmax", {}, 13),
    "Softmax axis 1": ("Softmax", {"axis": 1}, 13),
    "Softmax, opset 11 default axis": ("Softmax", {}, 11),
    "LogSoftmax axis -1": ("LogSoftmax", {"axis": -1}, 13),
    "LogSoftmax, opset 11 axis 1": ("LogSoftmax", {"axis": 1}, 11),
}


@pytest.mark.parametrize("op, attributes, opset", SOFTMAX_FORMS.values(), ids=SOFTMAX_FORMS.keys())
def test_final_softmax_is_dropped_with_a_note(tmp_path, op, attributes, opset):
    nodes = [conv(), reshape(), gemm(output="o"), helper.make_node(op, ["o"], ["p"], name="probs", **attributes)]
    path = graph_file(tmp_path, nodes, FLAT, ("N", 1, 4, 4), opset=opset, tensors=shape([0, -1]))
    notes = ["an earlier note"]
    model = load_onnx(path, notes=notes)
    assert notes == ["an earlier note", f"{path}: node 'probs' ({op}): dropped, a final {op} does not change the "
                                        "predicted class (the model outputs the scores before it)"]
    x = RNG.normal(size=(6, 1, 4, 4))
    expected = ReferenceEvaluator(str(path)).run(None, {"x": x.astype(np.float32)})[0]
    probabilities = softmax(model.forward(x))
    np.testing.assert_allclose(np.log(probabilities) if op == "LogSoftmax" else probabilities, expected, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(model.predict(x), expected.argmax(axis=1))
    np.testing.assert_array_equal(load_onnx(path).forward(x), model.forward(x))  # notes are optional


def test_no_note_from_a_failed_import(tmp_path):
    nodes = [flat(inputs=("x",)), gemm(output="o"), helper.make_node("Softmax", ["o"], ["p"], name="probs"),
             helper.make_node("Relu", ["p"], ["y"], name="after")]
    notes = []
    with pytest.raises(InputError, match=r"node 'probs' \(Softmax\): a Softmax is dropped only as the last node"):
        load_onnx(graph_file(tmp_path, nodes, GEMM), notes=notes)
    assert notes == []


# ---- classifiers exported by torch.onnx.export --------------------------------------------------------------------
FIXTURES = Path(__file__).parent / "fixtures"
EXPORT_SCRIPT = Path(__file__).parents[1] / "examples" / "export_torch_classifier.py"
#: The nodes every export has before and after the flatten (torch folds nothing else away or in).
_HEAD, _TAIL = ["Conv", "Relu", "MaxPool", "Conv", "Relu"], ["Gemm", "Softmax"]
_COMPUTED_SHAPE = ["Shape", "Constant", "Gather", "Constant", "Unsqueeze", "Constant", "Concat", "Reshape"]
#: tests/fixtures/<name>.onnx: the options of examples/export_torch_classifier.py's export() that wrote it, the
#: flatten's nodes as torch 2.13 writes them, and the Reshape's constant shape (None: computed, or no Reshape).
TORCH_FIXTURES = {
    "torch_classifier_dynamo": ({"dynamo": True, "flatten": "view"}, ["Reshape"], [1, -1]),
    "torch_classifier_dynamo_dynamic": ({"dynamo": True, "flatten": "view", "dynamic_batch": True}, ["Reshape"],
                                        [-1, 64]),
    "torch_classifier_legacy": ({"dynamo": False, "flatten": "view"}, ["Constant", "Reshape"], [1, -1]),
    "torch_classifier_legacy_dynamic": ({"dynamo": False, "flatten": "view", "dynamic_batch": True}, _COMPUTED_SHAPE,
                                        None),
    "torch_classifier_legacy_flatten": ({"dynamo": False, "flatten": "flatten"}, ["Flatten"], None),
}


def constant_shape(model):
    """The values of the Reshape's shape input where it is an initializer or a Constant node, else None."""
    reshapes = [node for node in model.graph.node if node.op_type == "Reshape"]
    if not reshapes:
        return None
    name = reshapes[0].input[1]
    tensors = {item.name: item for item in model.graph.initializer}
    tensors |= {node.output[0]: node.attribute[0].t for node in model.graph.node if node.op_type == "Constant"}
    return numpy_helper.to_array(tensors[name]).tolist() if name in tensors else None


def assert_torch_classifier_imports(path, flatten_nodes, x):
    """The file has torch's nodes; it imports as two convolutions and a linear layer whose softmax is onnx.reference's
    output, image by image (a fixed batch of 1) or as one batch (a symbolic one)."""
    model = onnx.load(str(path))
    assert [node.op_type for node in model.graph.node] == _HEAD + flatten_nodes + _TAIL
    notes = []
    imported = load_onnx(path, (1, 8, 8), notes=notes)
    assert [layer.kind for layer in imported.layers] == ["conv2d", "conv2d", "linear"] and imported.classes == 10
    assert len(notes) == 1 and "(Softmax): dropped, a final Softmax does not change the predicted class" in notes[0]
    data = model.graph.input[0]
    reference = ReferenceEvaluator(model)
    if data.type.tensor_type.shape.dim[0].dim_param:
        expected = reference.run(None, {data.name: x.astype(np.float32)})[0]
    else:
        expected = np.concatenate([reference.run(None, {data.name: image[None].astype(np.float32)})[0] for image in x])
    np.testing.assert_allclose(softmax(imported.forward(x)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(imported.predict(x), expected.argmax(axis=1))
    return imported


@pytest.mark.parametrize("name", TORCH_FIXTURES)
def test_torch_exported_classifier_matches_onnx_reference(name):
    _, flatten_nodes, target = TORCH_FIXTURES[name]
    path = FIXTURES / f"{name}.onnx"
    assert constant_shape(onnx.load(str(path))) == target
    assert_torch_classifier_imports(path, flatten_nodes, RNG.normal(size=(8, 1, 8, 8)))


def test_torch_fixtures_are_one_model():
    """The five files hold the same weights (one seeded model), so they import to the same function."""
    x = RNG.normal(size=(4, 1, 8, 8))
    outputs = [load_onnx(FIXTURES / f"{name}.onnx", (1, 8, 8)).forward(x) for name in TORCH_FIXTURES]
    for output in outputs[1:]:
        np.testing.assert_allclose(output, outputs[0], rtol=1e-6, atol=1e-6)


def export_script():
    spec = importlib.util.spec_from_file_location("export_torch_classifier", EXPORT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("name", TORCH_FIXTURES)
def test_torch_fixtures_regenerate_byte_identical(tmp_path, name):
    """examples/export_torch_classifier.py with the fixture's options writes the fixture again, byte for byte."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    options = TORCH_FIXTURES[name][0]
    fresh = export_script().export(tmp_path / f"{name}.onnx", **options)
    flags = f"--{'dynamo' if options['dynamo'] else 'legacy'} --flatten {options['flatten']}" + (
        " --dynamic-batch" if options.get("dynamic_batch") else "")
    assert fresh.read_bytes() == (FIXTURES / f"{name}.onnx").read_bytes(), (
        f"torch's export changed; if on purpose: python examples/export_torch_classifier.py tests/fixtures/{name}.onnx "
        f"{flags}")


@pytest.mark.slow
@pytest.mark.parametrize("dynamic_batch", [False, True], ids=["fixed batch", "symbolic batch"])
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
@pytest.mark.parametrize("flatten", ["view", "reshape", "flatten", "module"])
def test_every_torch_flatten_style_imports(tmp_path, flatten, dynamo, dynamic_batch):
    """What torch emits for x.view(x.size(0), -1), x.reshape(x.shape[0], -1), torch.flatten(x, 1) and nn.Flatten():
    dynamo always a Reshape to a constant shape; legacy a Flatten for the last two and, for the first two, a
    constant Reshape (fixed batch) or the Shape -> Gather -> Unsqueeze -> Concat computation (symbolic batch). Each
    imports and agrees with torch's own forward pass."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    script = export_script()
    path = script.export(tmp_path / "model.onnx", dynamo=dynamo, flatten=flatten, dynamic_batch=dynamic_batch)
    if dynamo:
        flatten_nodes = ["Reshape"]
    elif flatten in ("flatten", "module"):
        flatten_nodes = ["Flatten"]
    else:
        flatten_nodes = _COMPUTED_SHAPE if dynamic_batch else ["Constant", "Reshape"]
    x = RNG.normal(size=(5, 1, 8, 8))
    imported = assert_torch_classifier_imports(path, flatten_nodes, x)
    with torch.no_grad():
        expected = script.build_model(flatten)(torch.from_numpy(x.astype(np.float32))).numpy()
    np.testing.assert_allclose(softmax(imported.forward(x)), expected, rtol=1e-5, atol=1e-6)
