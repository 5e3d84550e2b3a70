"""esb_hw/frontend/onnx_import.py: the shipped models, BatchNorm folding, every supported operator and attribute
(honoured ones checked against onnx.reference), a refusal naming node, operator and attribute for everything else,
and one clear line with exit code 2 through the command line."""

import re
import subprocess
import sys

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


W = {"w": np.ones((2, 1, 1, 1))}
W3 = {"w": RNG.normal(size=(2, 1, 3, 3))}
BN = {"s": RNG.uniform(0.5, 2, 2), "o": RNG.normal(size=2), "m": RNG.normal(size=2), "v": RNG.uniform(0.5, 2, 2)}
BN3 = {"s": RNG.uniform(0.5, 2, 3), "o": RNG.normal(size=3), "m": RNG.normal(size=3), "v": RNG.uniform(0.5, 2, 3)}
GEMM = {"g": RNG.normal(size=(3, 16)), "gb": RNG.normal(size=3)}
ODD = (1, 1, 7, 5)


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
    unsupported, _ = conv_bn_relu_pool_gemm(tmp_path, [helper.make_node("Softmax", ["g"], ["s"], name="probs")],
                                            size=8, name="unsupported.onnx")
    wrong_shape, _ = conv_bn_relu_pool_gemm(tmp_path, name="wrong_shape.onnx")
    corrupted = tmp_path / "corrupted.onnx"
    corrupted.write_bytes(b"\x08\x07garbage" * 10)
    invalid, _ = conv_bn_relu_pool_gemm(tmp_path, size=8, name="invalid.onnx")
    model = onnx.load(str(invalid))
    model.graph.output[0].type.tensor_type.shape.dim.add().dim_param = "extra"  # declared rank 3, inferred 2
    invalid.write_bytes(model.SerializeToString())
    expectations = {unsupported: "node 'probs' (Softmax): operator Softmax is not supported",
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
