"""Write a :class:`~esb_hw.frontend.model.FloatModel` as ONNX (opset 13), optionally with explicit BatchNorm nodes.

``esb_hw/frontend/train.py`` ships its model through this, with each BatchNorm kept as its own node so that the
import's folding (:mod:`esb_hw.frontend.onnx_import`) is what the flow runs. The bytes depend only on the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .model import FloatModel

__all__ = ["OPSET", "save_onnx", "to_onnx"]

OPSET = 13


def to_onnx(model: FloatModel, batch_norms: dict | None = None, *, name: str = "esb_hw_model"):
    """The ONNX ``ModelProto`` of ``model``: per layer ``Conv``/``Gemm`` (a ``Flatten`` before the first ``Gemm``
    after a conv), then ``BatchNormalization`` if ``batch_norms`` has the layer's name (a tuple ``(scale, offset,
    mean, variance, epsilon)``), ``Relu`` and ``MaxPool`` as the layer says. The input is ``input`` of shape
    ``(N, C, H, W)`` with a symbolic ``N``; the output is ``logits``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    batch_norms = batch_norms or {}
    nodes, initializers = [], []
    current = "input"

    def constant(key: str, value) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), key))
        return key

    def node(op: str, inputs: list[str], label: str, **attributes) -> None:
        nonlocal current
        output = f"{label}_out"
        nodes.append(helper.make_node(op, inputs, [output], name=label, **attributes))
        current = output

    spatial = True
    for layer in model.layers:
        if layer.kind == "conv2d":
            kh, kw = layer.weight.shape[2:]
            node("Conv", [current, constant(f"{layer.name}.weight", layer.weight),
                          constant(f"{layer.name}.bias", layer.bias)], layer.name, kernel_shape=[kh, kw],
                 strides=[layer.stride] * 2, pads=[layer.padding] * 4)
        else:
            if spatial:
                node("Flatten", [current], f"{layer.name}_flatten", axis=1)
                spatial = False
            node("Gemm", [current, constant(f"{layer.name}.weight", layer.weight),
                          constant(f"{layer.name}.bias", layer.bias)], layer.name, transB=1)
        if layer.name in batch_norms:
            scale, offset, mean, variance, epsilon = batch_norms[layer.name]
            node("BatchNormalization", [current, constant(f"{layer.name}_bn.scale", scale),
                                        constant(f"{layer.name}_bn.bias", offset),
                                        constant(f"{layer.name}_bn.mean", mean),
                                        constant(f"{layer.name}_bn.var", variance)],
                 f"{layer.name}_bn", epsilon=float(epsilon))
        if layer.relu:
            node("Relu", [current], f"{layer.name}_relu")
        if layer.pool:
            node("MaxPool", [current], f"{layer.name}_pool", kernel_shape=[2, 2], strides=[2, 2])
    nodes[-1].output[0] = "logits"
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *model.input_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", model.classes])],
        initializers)
    proto = helper.make_model(graph, producer_name="esb-hw", opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto


def save_onnx(model: FloatModel, path: str | Path, batch_norms: dict | None = None) -> None:
    Path(path).write_bytes(to_onnx(model, batch_norms).SerializeToString())
