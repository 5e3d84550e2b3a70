"""Read a float CNN from ONNX into a :class:`~esb_hw.frontend.model.FloatModel`.

Supported: a chain (each node takes the previous node's output) of ``Conv`` (groups 1, no dilation, the same
stride and symmetric padding on both axes), ``BatchNormalization`` (inference form, folded into the layer before
it), ``Relu`` and ``MaxPool`` (2x2, stride 2, no padding; in either order, they commute), ``Flatten`` (axis 1),
``Gemm`` (``transA = 0``), ``MatMul`` with a constant right operand, ``Add`` of a constant bias broadcast per
output channel (after a Conv: a scalar, ``(C, 1, 1)`` or ``(1, C, 1, 1)``; after Gemm/MatMul: a scalar, ``(N,)``
or ``(1, N)``), and the no-ops ``Identity`` and ``Dropout``. Weights must be initializers. Anything else raises
:class:`~esb_hw.errors.InputError` naming the node and its operator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .model import FloatLayer, FloatModel

__all__ = ["SUPPORTED_OPERATORS", "load_onnx"]

SUPPORTED_OPERATORS = ("Conv", "BatchNormalization", "Relu", "MaxPool", "Flatten", "Gemm", "MatMul", "Add",
                       "Identity", "Dropout")


def _attributes(node) -> dict:
    import onnx

    return {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}


def _node_name(node, index: int) -> str:
    return node.name or f"#{index}"


class _Builder:
    """Folds the node chain into layers: a layer is open until the next Conv/Gemm/MatMul starts."""

    def __init__(self, path, initializers: dict):
        self.path = path
        self.initializers = initializers
        self.layers: list[dict] = []
        self.flattened = False

    def fail(self, node, index: int, reason: str) -> InputError:
        return InputError(f"{self.path}: node {_node_name(node, index)!r} ({node.op_type}): {reason}")

    def constant(self, node, index: int, name: str) -> np.ndarray:
        if name not in self.initializers:
            raise self.fail(node, index, f"input {name!r} must be a constant (an initializer)")
        return self.initializers[name]

    @property
    def last(self) -> dict | None:
        return self.layers[-1] if self.layers else None

    def open_layer(self, node, index: int, kind: str, weight: np.ndarray, bias, **geometry) -> None:
        last = self.last
        if kind == "conv2d" and last is not None and (last["kind"] == "linear" or self.flattened):
            raise self.fail(node, index, "a Conv after a Flatten or a fully connected layer is not supported")
        self.layers.append({"name": _node_name(node, index), "kind": kind, "weight": weight.astype(np.float64),
                            "bias": (np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64)),
                            "relu": False, "pool": False, **geometry})

    def modify(self, node, index: int, what: str) -> dict:
        """The open layer, if ``what`` (BatchNorm, ReLU, a pool, a bias) may still apply to it. ReLU and max-pooling
        commute, so either order is accepted."""
        last = self.last
        if last is None:
            raise self.fail(node, index, f"{what} before any Conv, Gemm or MatMul is not supported")
        if self.flattened and what != "Relu":
            raise self.fail(node, index, f"{what} after a Flatten is not supported")
        commutes = (what == "2x2 max-pooling" and not last["pool"]) or (what == "Relu" and not last["relu"])
        if not commutes and (last["pool"] or last["relu"]):
            raise self.fail(node, index, f"{what} after {'pooling' if last['pool'] else 'Relu'} is not supported "
                                         "(the order is Conv/Gemm, BatchNormalization, Relu, MaxPool)")
        return last

    # ---- operators ----------------------------------------------------------------------------------------
    def conv(self, node, index: int) -> None:
        attributes = _attributes(node)
        weight = self.constant(node, index, node.input[1])
        bias = self.constant(node, index, node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if weight.ndim != 4:
            raise self.fail(node, index, f"only 2-d convolutions are supported, got weights of shape {weight.shape}")
        if attributes.get("group", 1) != 1:
            raise self.fail(node, index, f"group {attributes['group']} is not supported (only 1)")
        if any(d != 1 for d in attributes.get("dilations", [1, 1])):
            raise self.fail(node, index, f"dilations {list(attributes['dilations'])} are not supported")
        if attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise self.fail(node, index, "auto_pad is not supported; give explicit pads")
        strides = list(attributes.get("strides", [1, 1]))
        pads = list(attributes.get("pads", [0, 0, 0, 0]))
        if len(set(strides)) != 1:
            raise self.fail(node, index, f"strides {strides} differ between the axes")
        if len(set(pads)) != 1:
            raise self.fail(node, index, f"pads {pads} are not the same on all sides")
        self.open_layer(node, index, "conv2d", weight, bias, stride=int(strides[0]), padding=int(pads[0]))

    def gemm(self, node, index: int) -> None:
        attributes = _attributes(node)
        if attributes.get("transA", 0):
            raise self.fail(node, index, "transA = 1 is not supported")
        weight = self.constant(node, index, node.input[1])
        if weight.ndim != 2:
            raise self.fail(node, index, f"the weight must be a matrix, got shape {weight.shape}")
        weight = weight if attributes.get("transB", 0) else weight.T
        weight = weight * attributes.get("alpha", 1.0)
        bias = None
        if len(node.input) > 2 and node.input[2]:
            value = self.constant(node, index, node.input[2]).astype(np.float64) * attributes.get("beta", 1.0)
            bias = self._linear_bias(node, index, value, weight.shape[0])
        self.open_layer(node, index, "linear", weight, bias, stride=1, padding=0)
        self.flattened = False

    def matmul(self, node, index: int) -> None:
        weight = self.constant(node, index, node.input[1])
        if weight.ndim != 2:
            raise self.fail(node, index, f"the right operand must be a matrix, got shape {weight.shape}")
        self.open_layer(node, index, "linear", weight.T, None, stride=1, padding=0)
        self.flattened = False

    def _linear_bias(self, node, index: int, value: np.ndarray, channels: int) -> np.ndarray:
        """A bias for an (N, channels) output: a scalar, (channels,) or (1, channels), as ONNX broadcasts it."""
        if value.ndim <= 2 and value.shape[:-1] in ((), (1,)) and value.shape[-1:] in ((), (1,), (channels,)):
            return np.broadcast_to(value.reshape(-1), (channels,)).copy()
        raise self.fail(node, index, f"a bias of shape {value.shape} does not fit {channels} outputs")

    def add(self, node, index: int) -> None:
        last = self.modify(node, index, "Add")
        constant = next((name for name in node.input if name in self.initializers), None)
        if constant is None:
            raise self.fail(node, index, "only the addition of a constant bias is supported")
        value = self.initializers[constant].astype(np.float64)
        channels = last["weight"].shape[0]
        if last["kind"] == "linear" and not self.flattened:
            bias = self._linear_bias(node, index, value, channels)
        else:  # an NCHW output: ONNX broadcasts from the right, so a per-channel bias is (C, 1, 1) or (1, C, 1, 1)
            padded = (1,) * (4 - value.ndim) + value.shape if value.ndim <= 4 else value.shape
            if value.ndim > 4 or padded[0] != 1 or padded[2:] != (1, 1) or padded[1] not in (1, channels):
                raise self.fail(node, index, f"a bias of shape {value.shape} does not broadcast per channel over "
                                             f"{channels} channels (use shape ({channels}, 1, 1))")
            bias = np.broadcast_to(value.reshape(-1), (channels,))
        last["bias"] = last["bias"] + bias

    def batch_norm(self, node, index: int) -> None:
        last = self.modify(node, index, "BatchNormalization")
        attributes = _attributes(node)
        if attributes.get("training_mode", 0):
            raise self.fail(node, index, "training_mode = 1 is not supported")
        scale, offset, mean, variance = (self.constant(node, index, name).astype(np.float64)
                                         for name in node.input[1:5])
        channels = last["weight"].shape[0]
        if any(array.shape != (channels,) for array in (scale, offset, mean, variance)):
            raise self.fail(node, index, f"its parameters must have shape ({channels},)")
        factor = scale / np.sqrt(variance + attributes.get("epsilon", 1e-5))
        last["weight"] = last["weight"] * factor.reshape((-1,) + (1,) * (last["weight"].ndim - 1))
        last["bias"] = (last["bias"] - mean) * factor + offset

    def relu(self, node, index: int) -> None:
        self.modify(node, index, "Relu")["relu"] = True

    def max_pool(self, node, index: int) -> None:
        last = self.modify(node, index, "2x2 max-pooling")
        attributes = _attributes(node)
        kernel = list(attributes.get("kernel_shape", []))
        strides = list(attributes.get("strides", [1, 1]))
        pads = list(attributes.get("pads", [0, 0, 0, 0]))
        if (kernel != [2, 2] or strides != [2, 2] or any(pads) or attributes.get("ceil_mode", 0)
                or any(d != 1 for d in attributes.get("dilations", [1, 1]))):
            raise self.fail(node, index, f"only 2x2 pooling with stride 2 and no padding is supported, got kernel "
                                         f"{kernel}, strides {strides}, pads {pads}")
        if last["kind"] != "conv2d":
            raise self.fail(node, index, "max-pooling follows a Conv only")
        last["pool"] = True

    def flatten(self, node, index: int) -> None:
        if _attributes(node).get("axis", 1) != 1:
            raise self.fail(node, index, "only axis = 1 is supported")
        self.flattened = True


def _load(path: Path):
    import onnx
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except (DecodeError, onnx.checker.ValidationError, ValueError, OSError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{path}: not a valid ONNX model ({reason[:160]})") from None
    return model


def load_onnx(path: str | Path, input_shape: tuple[int, int, int] | None = None) -> FloatModel:
    """Read ``path`` into a :class:`FloatModel`.

    ``input_shape`` (``(C, H, W)``): the shape the caller will feed; a model whose declared input differs
    raises :class:`InputError`. Symbolic (or missing) dimensions take ``input_shape``.
    """
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    model = _load(path)
    graph = model.graph
    initializers = {item.name: numpy_helper.to_array(item) for item in graph.initializer}
    inputs = [item for item in graph.input if item.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise InputError(f"{path}: the model must have one input and one output, got {len(inputs)} and "
                         f"{len(graph.output)}")
    dims = [dim.dim_value if dim.HasField("dim_value") else None
            for dim in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise InputError(f"{path}: the input {inputs[0].name!r} must be NxCxHxW, got {len(dims)} dimensions")
    declared = tuple(dims[1:])
    if input_shape is not None:
        input_shape = tuple(int(size) for size in input_shape)
        if any(have is not None and have != want for have, want in zip(declared, input_shape, strict=True)):
            raise InputError(f"{path}: the model's input is {'x'.join(str(d) for d in declared)} (CxHxW), the data is "
                             f"{'x'.join(map(str, input_shape))}")
        shape = input_shape
    elif None in declared:
        raise InputError(f"{path}: the input's CxHxW must be fixed, got {declared}")
    else:
        shape = declared

    builder = _Builder(path, initializers)
    handlers = {"Conv": builder.conv, "Gemm": builder.gemm, "MatMul": builder.matmul, "Add": builder.add,
                "BatchNormalization": builder.batch_norm, "Relu": builder.relu, "MaxPool": builder.max_pool,
                "Flatten": builder.flatten, "Identity": lambda node, index: None,
                "Dropout": lambda node, index: None}
    current = inputs[0].name
    for index, node in enumerate(graph.node):
        if node.op_type not in handlers or (node.domain not in ("", "ai.onnx")):
            raise builder.fail(node, index, f"operator {node.op_type} is not supported (supported: "
                                            f"{', '.join(SUPPORTED_OPERATORS)})")
        data_inputs = [name for name in node.input if name and name not in initializers]
        if data_inputs != [current]:
            raise builder.fail(node, index, "the graph must be a chain: each node reads the previous node's output")
        if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
            raise builder.fail(node, index, "a Dropout's mask output is not supported")
        handlers[node.op_type](node, index)
        current = node.output[0]
    if current != graph.output[0].name:
        raise InputError(f"{path}: the graph's output {graph.output[0].name!r} is not the last node's output")
    if not builder.layers:
        raise InputError(f"{path}: the model has no Conv, Gemm or MatMul")
    try:
        layers = [FloatLayer(**layer) for layer in builder.layers]
        return FloatModel(layers, shape)
    except InputError as error:
        raise InputError(f"{path}: {error}") from None
    except onnx.checker.ValidationError as error:  # pragma: no cover - checked in _load
        raise InputError(f"{path}: {error}") from None
