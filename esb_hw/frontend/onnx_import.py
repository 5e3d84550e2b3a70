"""Read a float CNN from ONNX into a :class:`~esb_hw.frontend.model.FloatModel`.

The graph must be a chain: one float NCHW input, each node reading the previous node's output plus constants
(initializers, ``Constant`` nodes, or shape computations folded to constants), one output. Every attribute of every
supported operator is either honoured exactly or refused with an :class:`~esb_hw.errors.InputError` that names the
node, its operator and the attribute with its value. Honoured:

- ``Conv``: 2-d, ``group`` 1, ``dilations`` 1, ``kernel_shape`` equal to the weights' (or absent), the same
  ``strides`` on both axes, ``pads`` the same on all sides; ``auto_pad`` ``NOTSET``, ``VALID`` (no padding), and
  ``SAME_UPPER``/``SAME_LOWER`` where, for the actual input size, they pad the same on all sides;
- ``BatchNormalization`` (folded into the layer before it): ``epsilon``, ``momentum`` (unused at inference),
  ``consumed_inputs``; inference mode only, so ``is_test`` must be 1 up to opset 6, ``spatial`` 1,
  ``training_mode`` 0, and only the ``Y`` output may be present;
- ``Relu`` (its opset-1 ``consumed_inputs`` does nothing);
- ``MaxPool``: ``kernel_shape`` 2x2, ``strides`` 2x2, ``dilations`` 1, ``pads`` 0; ``auto_pad`` ``NOTSET``/
  ``VALID``, and ``SAME_*`` or ``ceil_mode`` 1 only where the input's height and width are even (then they change
  nothing); ``storage_order`` (it only shapes the ``Indices`` output, which is refused). It may come before or
  after the ``Relu``: the two commute;
- ``Flatten``: ``axis`` 1 after normalising a negative axis against the tensor's rank (``-3`` on NCHW);
- ``Reshape`` with a constant shape (from opset 5 an input, before it the ``shape`` attribute) that flattens NCHW
  to (N, C*H*W) in C order, as ``Flatten`` does, or keeps a 2-d (N, F) tensor as it is: the shape resolves to
  exactly (N, C*H*W) (or (N, F)), each entry N, C*H*W, ``-1`` or, where ``allowzero`` is 0, ``0`` (the input's
  size on that axis); ``allowzero`` 1 is honoured where the shape has no 0 (``[1, -1]``, ``[-1, 64]`` ...);
  ``consumed_inputs`` does nothing. N is the input's declared batch size, or 1 where it is symbolic (the model is
  read per image);
- ``Gemm``: ``alpha``, ``beta``, ``transB``; ``transA`` 0; ``broadcast`` 1 where a ``C`` is given (opset < 7);
- ``MatMul`` on a 2-d input with a constant 2-d right operand;
- ``Add`` of a constant bias per output channel (after a Conv: a scalar, ``(C, 1, 1)`` or ``(1, C, 1, 1)``; after
  Gemm/MatMul: a scalar, ``(N,)`` or ``(1, N)``); up to opset 6 ``broadcast`` must be 1, the constant must be the
  second input and ``axis`` places it (``consumed_inputs`` does nothing);
- ``Identity``; ``Dropout`` at inference (``ratio``, ``seed``, ``consumed_inputs``): ``is_test`` 1 up to opset 6,
  a constant false ``training_mode`` input from opset 12, no ``mask`` output; ``Cast`` whose ``to`` is the model's
  own float type (a no-op, as ``.float()`` on a float tensor exports; ``saturate`` and ``round_mode`` act only on
  casts to 8-bit floats);
- ``Constant`` (``value``, ``value_float(s)``, ``value_int(s)``) as a source of weights;
- ``Shape`` (``start``, ``end``), ``Gather`` (``axis``), ``Unsqueeze`` (``axes``, an attribute up to opset 12, an
  input from 13) and ``Concat`` (``axis``) on constants, folded to a constant: the shape computation PyTorch's
  legacy exporter writes for ``x.view(x.size(0), -1)`` on a symbolic batch (``Shape`` -> ``Gather`` ->
  ``Unsqueeze`` -> ``Concat`` -> ``Reshape``). ``Shape`` may read any tensor of the chain (its shape is known, with
  N as above) or a constant; the other three read constants only;
- a final ``Softmax`` or ``LogSoftmax`` (``axis`` 1 or -1, the class axis of the 2-d (N, classes) output; the
  default of either opset) is dropped, since it does not change the predicted class, and reported in
  :func:`load_onnx`'s ``notes``: the imported model outputs the scores before it.

Refused: any other operator or domain, any attribute the importer does not read (``sparse_value``, ``value_string``
...), a ``training_mode`` input that is true or not a constant, sparse initializers, non-float weights (STRING, BOOL,
integers), a non-float or non-4-d input or a second input, and models that fail
``onnx.checker.check_model(full_check=True)`` (run after the walk, so the importer's own refusals, which name the
attribute or tensor, come first). Among the operators above: a ``Reshape`` to any other shape (4-d, 3-d such as
(N, H*W, C), or a first axis other than N, which mixes images), with a shape that is not a constant or not INT64,
or with a 0 where ``allowzero`` is 1; a ``Shape``, ``Gather``, ``Unsqueeze`` or ``Concat`` on anything but
constants (``Shape``: and the chain's tensors) or that does not fold (an index or axis out of range); a ``Cast`` to
any other type; a ``Softmax`` or ``LogSoftmax`` on another axis, on an NCHW tensor, or followed by any node but
``Constant``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .model import FloatLayer, FloatModel

__all__ = ["DROPPED_OPERATORS", "SHAPE_OPERATORS", "SUPPORTED_OPERATORS", "load_onnx"]

#: The operators whose output the imported model computes.
SUPPORTED_OPERATORS = ("Conv", "BatchNormalization", "Relu", "MaxPool", "Flatten", "Reshape", "Gemm", "MatMul", "Add",
                       "Identity", "Dropout", "Cast", "Constant")
#: Operators folded to constants (a Reshape's shape), never part of the computation.
SHAPE_OPERATORS = ("Shape", "Gather", "Unsqueeze", "Concat")
#: Operators dropped, with a note, as the last node: they do not change the predicted class (nor compute it).
DROPPED_OPERATORS = ("Softmax", "LogSoftmax")
_ACCEPTED = SUPPORTED_OPERATORS + SHAPE_OPERATORS + DROPPED_OPERATORS

#: Per operator, every attribute the importer reads (all opsets); any other attribute is refused by name.
_HANDLED_ATTRIBUTES = {
    "Conv": ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"),
    "BatchNormalization": ("consumed_inputs", "epsilon", "is_test", "momentum", "spatial", "training_mode"),
    "Relu": ("consumed_inputs",),
    "MaxPool": ("auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"),
    "Flatten": ("axis",),
    "Reshape": ("allowzero", "consumed_inputs", "shape"),
    "Gemm": ("alpha", "beta", "broadcast", "transA", "transB"),
    "MatMul": (),
    "Add": ("axis", "broadcast", "consumed_inputs"),
    "Identity": (),
    "Dropout": ("consumed_inputs", "is_test", "ratio", "seed"),
    "Cast": ("round_mode", "saturate", "to"),
    "Constant": ("value", "value_float", "value_floats", "value_int", "value_ints"),
    "Shape": ("end", "start"),
    "Gather": ("axis",),
    "Unsqueeze": ("axes",),
    "Concat": ("axis",),
    "Softmax": ("axis",),
    "LogSoftmax": ("axis",),
}

#: Input names for messages; the first is the data input (either one for Add).
_INPUT_ROLES = {"Conv": ("X", "W", "B"), "BatchNormalization": ("X", "scale", "B", "mean", "var"),
                "Gemm": ("A", "B", "C"), "MatMul": ("A", "B"), "Add": ("A", "B"),
                "Dropout": ("data", "ratio", "training_mode"), "Reshape": ("data", "shape"),
                "Gather": ("data", "indices"), "Unsqueeze": ("data", "axes")}

#: What a second (or later) output of an operator is; none is supported.
_EXTRA_OUTPUTS = {"MaxPool": "the Indices output", "Dropout": "the mask output",
                  "BatchNormalization": "the training-mode statistics output"}

_FLOAT_TYPES = ("FLOAT", "DOUBLE")
_WEIGHT_TYPES = ("FLOAT", "DOUBLE", "FLOAT16")


def _dims(shape) -> str:
    return "x".join(str(size) for size in shape)


def _one_line(text: str) -> str:
    return " ".join(str(text).replace("==> Context:", ";").split())


def _show(value) -> str:
    """An attribute value for a message: short lists in full, tensors and graphs by kind."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (int, str, np.integer, np.bool_)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(item) for item in value[:8]) + (", ...]" if len(value) > 8 else "]")
    if isinstance(value, np.ndarray):
        return _show(value.tolist()) if value.size <= 8 else f"an array of shape {value.shape}"
    return f"a {type(value).__name__}"


class _Node:
    """One node as the importer reads it: name, operator, opset and attributes, and how to refuse it."""

    def __init__(self, path, proto, index: int, opset: int):
        import onnx

        self.path, self.proto, self.opset = path, proto, opset
        self.name = proto.name or f"#{index}"
        self.op = proto.op_type
        self.attributes = {item.name: onnx.helper.get_attribute_value(item) for item in proto.attribute}

    def get(self, name: str, default=None):
        value = self.attributes.get(name, default)
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

    def fail(self, reason: str) -> InputError:
        return InputError(_one_line(f"{self.path}: node {self.name!r} ({self.op}): {reason}"))

    def refuse(self, attribute: str, why: str, default=None) -> InputError:
        """The error for an attribute (``default``: its value when absent) that cannot be honoured."""
        value = self.attributes.get(attribute, default)
        return self.fail(f"attribute {attribute} = {_show(value)} is not supported: {why}")

    def refuse_unknown_attributes(self) -> None:
        for name in self.attributes:
            if name not in _HANDLED_ATTRIBUTES[self.op]:
                raise self.refuse(name, f"the importer does not read it on {self.op}")


def _same_padding(size: int, kernel: int, stride: int) -> int:
    """The total padding ``auto_pad = SAME_*`` adds along an axis of ``size`` (dilation 1)."""
    out = -(-size // stride)
    return max((out - 1) * stride + kernel - size, 0)


class _Builder:
    """Walks the node chain and folds it into layers: a layer is open until the next Conv/Gemm/MatMul starts.

    ``shape`` is the current tensor's per-image shape, ``(C, H, W)`` or ``(F,)``; ``current`` its name; ``element``
    the chain's element type (``FLOAT``, ``DOUBLE``); ``batch`` the N that shape computations see.
    """

    def __init__(self, path, constants: dict, shape: tuple[int, ...], current: str, element: str = "FLOAT",
                 batch: int = 1):
        self.path = path
        self.constants = constants  # name -> TensorProto
        self.shape = shape
        self.current = current
        self.element = element
        self.batch = batch
        self.shapes = {current: shape}  # every chain tensor's per-image shape, for Shape
        self.layers: list[dict] = []
        self.flattened = False  # the open layer is a conv2d whose output was flattened
        self.dropped: _Node | None = None  # a final Softmax/LogSoftmax, once seen
        self.notes: list[str] = []

    # ---- constants ----------------------------------------------------------------------------------------
    def array(self, node: _Node, name: str) -> np.ndarray:
        from onnx import numpy_helper

        try:
            return numpy_helper.to_array(self.constants[name])
        except (ValueError, TypeError, OSError, RuntimeError) as error:
            raise node.fail(f"tensor {name!r} cannot be read ({error})") from None

    def floats(self, node: _Node, name: str) -> np.ndarray:
        """The float constant ``name``, as float64; a tensor of another element type is refused by name."""
        import onnx

        if name not in self.constants:
            raise node.fail(f"input {name!r} must be a constant (an initializer or a Constant node)")
        kind = onnx.TensorProto.DataType.Name(self.constants[name].data_type)
        if kind not in _WEIGHT_TYPES:
            raise node.fail(f"tensor {name!r} has element type {kind}; a float tensor is needed")
        return self.array(node, name).astype(np.float64)

    def constant_node(self, node: _Node) -> None:
        from onnx import numpy_helper

        if len(node.attributes) != 1:
            raise node.fail("a Constant needs exactly one value attribute")
        (attribute, value), = node.attributes.items()
        if attribute != "value":
            dtype = np.float32 if attribute.startswith("value_float") else np.int64
            value = numpy_helper.from_array(np.asarray(value, dtype=dtype))
        self.constants[node.proto.output[0]] = value

    # ---- shape computations, folded -----------------------------------------------------------------------
    def fold(self, node: _Node) -> None:
        """A Shape/Gather/Unsqueeze/Concat evaluated now; its output becomes a constant."""
        from onnx import numpy_helper

        for name in node.proto.output[1:]:
            if name:
                raise node.fail(f"a second output {name!r} is not supported")
        try:
            value = getattr(self, f"fold_{node.op}")(node)
        except InputError:
            raise
        except (ValueError, IndexError, TypeError) as error:
            raise node.fail(f"its constant inputs do not fold ({error})") from None
        output = node.proto.output[0]
        self.constants[output] = numpy_helper.from_array(np.asarray(value), output)

    def folded_input(self, node: _Node, position: int) -> np.ndarray:
        """Input ``position`` of a shape computation, which must be a constant."""
        name = node.proto.input[position]
        if name not in self.constants:
            roles = _INPUT_ROLES.get(node.op, ())
            role = roles[position] if position < len(roles) else f"#{position}"
            raise node.fail(f"input {role} ({name!r}) is not a constant: {node.op} is read only in a shape computation "
                            "on constants (a Shape's output, initializers, Constant nodes)")
        return self.array(node, name)

    def fold_Shape(self, node: _Node) -> np.ndarray:
        name = node.proto.input[0]
        if name in self.shapes:
            dims = (self.batch, *self.shapes[name])
        elif name in self.constants:
            dims = tuple(self.constants[name].dims)
        else:
            raise node.fail(f"input {name!r} is neither a tensor of the chain nor a constant")
        start, end = node.get("start", 0), node.get("end", len(dims))
        return np.array(dims[slice(start, end)], dtype=np.int64)

    def fold_Gather(self, node: _Node) -> np.ndarray:
        return np.take(self.folded_input(node, 0), self.folded_input(node, 1), axis=node.get("axis", 0))

    def fold_Unsqueeze(self, node: _Node) -> np.ndarray:
        data = self.folded_input(node, 0)
        axes = node.get("axes") if node.opset < 13 else self.folded_input(node, 1).reshape(-1).tolist()
        return np.expand_dims(data, tuple(int(axis) for axis in axes))

    def fold_Concat(self, node: _Node) -> np.ndarray:
        if node.get("axis") is None:
            raise node.fail("attribute axis is missing")
        arrays = [self.folded_input(node, position) for position in range(len(node.proto.input))]
        return np.concatenate(arrays, axis=node.get("axis"))

    # ---- the chain ----------------------------------------------------------------------------------------
    def walk(self, nodes, opset: int) -> None:
        for index, proto in enumerate(nodes):
            node = _Node(self.path, proto, index, opset)
            if node.op not in _ACCEPTED or proto.domain not in ("", "ai.onnx"):
                raise node.fail(f"operator {node.op} is not supported (supported: {', '.join(_ACCEPTED)})")
            node.refuse_unknown_attributes()
            if node.op == "Constant":
                self.constant_node(node)
                continue
            if self.dropped is not None:
                raise self.dropped.fail(f"a {self.dropped.op} is dropped only as the last node, and node {node.name!r} "
                                        f"({node.op}) follows it")
            if node.op in SHAPE_OPERATORS:
                self.fold(node)
                continue
            self.link(node)
            getattr(self, f"op_{node.op}")(node)
            self.current = proto.output[0]
            self.shapes[self.current] = self.shape

    def link(self, node: _Node) -> None:
        """Refuse a node that does not read the current tensor, reads another non-constant, or has a second output."""
        inputs = list(node.proto.input)
        data = 1 if node.op == "Add" and inputs[0] != self.current and inputs[1] == self.current else 0
        if inputs[data] != self.current:
            raise node.fail(f"the graph must be a chain: each node reads the previous node's output "
                            f"({self.current!r}), this one reads {inputs[data]!r}")
        roles = _INPUT_ROLES.get(node.op, ("input",))
        for position, name in enumerate(inputs):
            if position != data and name and name not in self.constants:
                role = roles[position] if position < len(roles) else f"#{position}"
                raise node.fail(f"input {role} ({name!r}) is not a constant (an initializer or a Constant node); "
                                "the graph must be a chain of nodes reading the previous node's output and constants")
        for name in node.proto.output[1:]:
            if name:
                raise node.fail(f"{_EXTRA_OUTPUTS.get(node.op, 'a second output')} {name!r} is not supported")

    # ---- layers -------------------------------------------------------------------------------------------
    @property
    def last(self) -> dict | None:
        return self.layers[-1] if self.layers else None

    def open_layer(self, node: _Node, kind: str, weight: np.ndarray, bias, **geometry) -> None:
        layer = {"name": node.name, "kind": kind, "weight": weight,
                 "bias": np.zeros(weight.shape[0]) if bias is None else bias, "relu": False, "pool": False,
                 **geometry}
        try:
            self.shape = FloatLayer(**layer).output_shape(self.shape)
        except InputError as error:
            raise node.fail(str(error)) from None
        self.layers.append(layer)
        self.flattened = False

    def modify(self, node: _Node, what: str) -> dict:
        """The open layer, if ``what`` (BatchNorm, ReLU, a pool, a bias) may still apply to it. ReLU and max-pooling
        commute, so either order is accepted."""
        last = self.last
        if last is None:
            raise node.fail(f"{what} before any Conv, Gemm or MatMul is not supported")
        if self.flattened and what != "Relu":
            raise node.fail(f"{what} after a Flatten is not supported")
        commutes = (what == "2x2 max-pooling" and not last["pool"]) or (what == "Relu" and not last["relu"])
        if not commutes and (last["pool"] or last["relu"]):
            raise node.fail(f"{what} after {'pooling' if last['pool'] else 'Relu'} is not supported "
                            "(the order is Conv/Gemm, BatchNormalization, Relu, MaxPool)")
        return last

    def require_2d(self, node: _Node) -> None:
        if len(self.shape) != 1:
            raise node.fail("its input must be 2-d (N, features), got an NCHW tensor; put a Flatten before it")

    # ---- operators: Conv ----------------------------------------------------------------------------------
    def op_Conv(self, node: _Node) -> None:
        if len(self.shape) != 3:
            raise node.fail("a Conv after a Flatten or a fully connected layer is not supported")
        weight = self.floats(node, node.proto.input[1])
        bias = self.floats(node, node.proto.input[2]) if len(node.proto.input) > 2 and node.proto.input[2] else None
        if weight.ndim != 4:
            raise node.fail(f"only 2-d convolutions are supported, got weights of shape {weight.shape}")
        kernel = list(weight.shape[2:])
        if list(node.get("kernel_shape", kernel)) != kernel:
            raise node.refuse("kernel_shape", f"the weights' kernel is {kernel}")
        groups = self.conv_groups(node, weight)
        if any(d != 1 for d in node.get("dilations", [1, 1])):
            raise node.refuse("dilations", "only 1")
        strides = list(node.get("strides", [1, 1]))
        if len(set(strides)) != 1:
            raise node.refuse("strides", "the strides differ between the axes")
        padding = self.conv_padding(node, kernel, strides[0])
        grouped = {"groups": groups} if groups != 1 else {}
        self.open_layer(node, "conv2d", weight, bias, stride=int(strides[0]), padding=padding, **grouped)

    def conv_groups(self, node: _Node, weight: np.ndarray) -> int:
        """The Conv's ``group``: a chain takes dense convolutions only."""
        if node.get("group", 1) != 1:
            raise node.refuse("group", "only 1 (a dense convolution)")
        return 1

    def conv_padding(self, node: _Node, kernel: list[int], stride: int) -> int:
        """The symmetric padding ``pads``/``auto_pad`` give on the current input, or a refusal naming them."""
        auto_pad = node.get("auto_pad", "NOTSET")
        pads = list(node.get("pads", [0, 0, 0, 0]))
        if auto_pad == "NOTSET":
            if len(set(pads)) != 1:
                raise node.refuse("pads", "the padding must be the same on all sides")
            return int(pads[0])
        if any(pads):
            raise node.refuse("pads", f"pads are given together with auto_pad = {auto_pad}")
        if auto_pad == "VALID":
            return 0
        if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
            raise node.refuse("auto_pad", "unknown padding mode")
        totals = {_same_padding(size, k, stride) for size, k in zip(self.shape[1:], kernel, strict=True)}
        if len(totals) != 1 or min(totals) % 2:
            raise node.refuse("auto_pad", f"on the {self.shape[1]}x{self.shape[2]} input it pads {sorted(totals)} in "
                                          "total per axis, not the same on all sides")
        return totals.pop() // 2

    # ---- operators: fully connected -----------------------------------------------------------------------
    def op_Gemm(self, node: _Node) -> None:
        self.require_2d(node)
        if node.get("transA", 0):
            raise node.refuse("transA", "A is the data (N, features)")
        has_bias = len(node.proto.input) > 2 and bool(node.proto.input[2])
        if node.opset < 7 and has_bias and not node.get("broadcast", 0):
            raise node.refuse("broadcast", "without it C must have the shape of the whole batch's output", default=0)
        weight = self.floats(node, node.proto.input[1])
        if weight.ndim != 2:
            raise node.fail(f"the weight must be a matrix, got shape {weight.shape}")
        weight = (weight if node.get("transB", 0) else weight.T) * node.get("alpha", 1.0)
        bias = None
        if has_bias:
            value = self.floats(node, node.proto.input[2]) * node.get("beta", 1.0)
            bias = self.linear_bias(node, value, weight.shape[0])
        self.open_layer(node, "linear", weight, bias, stride=1, padding=0)

    def op_MatMul(self, node: _Node) -> None:
        self.require_2d(node)
        weight = self.floats(node, node.proto.input[1])
        if weight.ndim != 2:
            raise node.fail(f"the right operand must be a matrix, got shape {weight.shape}")
        self.open_layer(node, "linear", weight.T, None, stride=1, padding=0)

    def linear_bias(self, node: _Node, value: np.ndarray, channels: int) -> np.ndarray:
        """A bias for an (N, channels) output: a scalar, (channels,) or (1, channels), as ONNX broadcasts it."""
        if value.ndim <= 2 and value.shape[:-1] in ((), (1,)) and value.shape[-1:] in ((), (1,), (channels,)):
            return np.broadcast_to(value.reshape(-1), (channels,)).copy()
        raise node.fail(f"a bias of shape {value.shape} does not fit {channels} outputs")

    # ---- operators: Add, BatchNormalization ---------------------------------------------------------------
    def op_Add(self, node: _Node) -> None:
        last = self.modify(node, "Add")
        position = 0 if node.proto.input[1] == self.current and node.proto.input[0] != self.current else 1
        value = self.floats(node, node.proto.input[position])
        if node.opset < 7:
            value = self.legacy_broadcast(node, value, position)
        channels = last["weight"].shape[0]
        if last["kind"] == "linear":
            bias = self.linear_bias(node, value, channels)
        else:  # an NCHW output: ONNX broadcasts from the right, so a per-channel bias is (C, 1, 1) or (1, C, 1, 1)
            padded = (1,) * (4 - value.ndim) + value.shape if value.ndim <= 4 else value.shape
            if value.ndim > 4 or padded[0] != 1 or padded[2:] != (1, 1) or padded[1] not in (1, channels):
                raise node.fail(f"a bias of shape {value.shape} does not broadcast per channel over "
                                f"{channels} channels (use shape ({channels}, 1, 1))")
            bias = np.broadcast_to(value.reshape(-1), (channels,))
        last["bias"] = last["bias"] + bias

    def legacy_broadcast(self, node: _Node, value: np.ndarray, position: int) -> np.ndarray:
        """Opset < 7 ``broadcast``/``axis``: B is aligned with A at ``axis`` (default: the trailing axes)."""
        if not node.get("broadcast", 0):
            raise node.refuse("broadcast", "without it B must have A's shape, the batch included", default=0)
        if position != 1:
            raise node.fail("before opset 7 only B broadcasts, so the constant must be the second input")
        rank = 1 + len(self.shape)
        axis = node.get("axis", rank - value.ndim)
        axis = axis + rank if axis < 0 else axis
        if not 0 <= axis <= rank - value.ndim:
            raise node.refuse("axis", f"a B of shape {value.shape} does not fit a {rank}-d A there")
        return value.reshape((1,) * axis + value.shape + (1,) * (rank - axis - value.ndim))

    def op_BatchNormalization(self, node: _Node) -> None:
        if node.opset < 7 and not node.get("is_test", 0):
            raise node.refuse("is_test", "without it BatchNormalization runs in training mode", default=0)
        if not node.get("spatial", 1):
            raise node.refuse("spatial", "only per-channel statistics (spatial = 1) are folded")
        if node.get("training_mode", 0):
            raise node.refuse("training_mode", "only inference-mode BatchNormalization is folded")
        last = self.modify(node, "BatchNormalization")
        scale, offset, mean, variance = (self.floats(node, name) for name in node.proto.input[1:5])
        channels = last["weight"].shape[0]
        if any(array.shape != (channels,) for array in (scale, offset, mean, variance)):
            raise node.fail(f"its parameters must have shape ({channels},)")
        factor = scale / np.sqrt(variance + node.get("epsilon", 1e-5))
        last["weight"] = last["weight"] * factor.reshape((-1,) + (1,) * (last["weight"].ndim - 1))
        last["bias"] = (last["bias"] - mean) * factor + offset

    # ---- operators: Relu, MaxPool, Flatten, no-ops --------------------------------------------------------
    def op_Relu(self, node: _Node) -> None:
        self.modify(node, "Relu")["relu"] = True

    def op_MaxPool(self, node: _Node) -> None:
        self.check_pool_window(node)
        last = self.modify(node, "2x2 max-pooling")
        if last["kind"] != "conv2d":
            raise node.fail("max-pooling follows a Conv only")
        self.check_pool_edges(node)
        last["pool"] = True
        self.shape = (self.shape[0], self.shape[1] // 2, self.shape[2] // 2)

    def check_pool_window(self, node: _Node) -> None:
        why = "only 2x2 max-pooling with stride 2 and no padding is supported"
        if list(node.get("kernel_shape", [])) != [2, 2]:
            raise node.refuse("kernel_shape", why)
        if list(node.get("strides", [1, 1])) != [2, 2]:
            raise node.refuse("strides", why, default=[1, 1])
        if any(d != 1 for d in node.get("dilations", [1, 1])):
            raise node.refuse("dilations", why)
        if any(node.get("pads", [0])):
            raise node.refuse("pads", why)

    def check_pool_edges(self, node: _Node) -> None:
        """``auto_pad`` SAME_* and ``ceil_mode`` 1 change nothing on an even input, else they are refused."""
        if len(self.shape) != 3 or min(self.shape[1:]) < 2:
            raise node.fail(f"2x2 max-pooling needs an NCHW input of at least 2x2, got shape {self.shape}")
        odd = self.shape[1] % 2 or self.shape[2] % 2
        size = f"{self.shape[1]}x{self.shape[2]}"
        auto_pad = node.get("auto_pad", "NOTSET")
        if auto_pad not in ("NOTSET", "VALID") and (auto_pad not in ("SAME_UPPER", "SAME_LOWER") or odd):
            raise node.refuse("auto_pad", f"on the {size} input it pads an odd edge")
        if node.get("ceil_mode", 0) and odd:
            raise node.refuse("ceil_mode", f"on the {size} input it adds a partial window")

    def op_Flatten(self, node: _Node) -> None:
        rank = 1 + len(self.shape)
        axis = node.get("axis", 1)
        if (axis + rank if axis < 0 else axis) != 1:
            raise node.refuse("axis", f"on this {rank}-d tensor only axis 1 (or {1 - rank}) keeps the batch apart",
                              default=1)
        self.flatten()

    def flatten(self) -> None:
        """(N, C, H, W) to (N, C*H*W) in C order; a 2-d tensor stays as it is."""
        if len(self.shape) > 1:
            self.shape = (int(np.prod(self.shape)),)
            self.flattened = True

    def op_Reshape(self, node: _Node) -> None:
        """A flatten (or, on 2-d, nothing) written as a Reshape to a constant shape; see :meth:`reshaped`."""
        import onnx

        if node.opset < 5:
            if "shape" not in node.attributes:
                raise node.fail("attribute shape is missing")
            target = np.asarray(node.get("shape"), dtype=np.int64)
        else:
            name = node.proto.input[1]
            kind = onnx.TensorProto.DataType.Name(self.constants[name].data_type)
            if kind != "INT64":
                raise node.fail(f"shape {name!r} has element type {kind}; INT64 is needed")
            target = self.array(node, name)
        full = (self.batch, *self.shape)
        wanted = (self.batch, int(np.prod(self.shape)))
        result = self.reshaped(node, target, full)
        if result != wanted:
            what = "a flatten to (N, C*H*W)" if len(full) == 4 else "keeping (N, F)"
            raise node.fail(f"shape {_show(target)} turns the {_dims(full)} input into {_dims(result)}; only {what} = "
                            f"{_dims(wanted)} is supported")
        self.flatten()

    def reshaped(self, node: _Node, target: np.ndarray, full: tuple[int, ...]) -> tuple[int, ...]:
        """The shape Reshape gives the ``full`` input for ``target`` (ONNX rules for 0 and -1), or a refusal."""
        shown = f"shape {_show(target)}"
        if target.ndim != 1:
            raise node.fail(f"{shown} must be a 1-d tensor, got {target.ndim} dimensions")
        dims = [int(size) for size in target]
        if node.get("allowzero", 0) and 0 in dims:
            raise node.fail(f"{shown} is not supported: with allowzero = 1 its 0 makes an empty dimension")
        if dims.count(-1) > 1 or any(size < -1 for size in dims):
            raise node.fail(f"{shown} is not a valid shape: at most one -1, no other negative size")
        if any(size == 0 and axis >= len(full) for axis, size in enumerate(dims)):
            raise node.fail(f"{shown} copies (0) an axis the {_dims(full)} input does not have")
        dims = [full[axis] if size == 0 else size for axis, size in enumerate(dims)]
        total, known = int(np.prod(full)), int(np.prod([size for size in dims if size != -1]))
        if (-1 in dims and (known == 0 or total % known)) or (-1 not in dims and known != total):
            raise node.fail(f"{shown} does not fit the {_dims(full)} input ({total} values)")
        return tuple(total // known if size == -1 else size for size in dims)

    def op_Identity(self, node: _Node) -> None:
        pass

    def op_Cast(self, node: _Node) -> None:
        import onnx

        try:
            to = onnx.TensorProto.DataType.Name(node.get("to"))
        except ValueError:
            raise node.fail(f"attribute to = {node.get('to')} is not an ONNX tensor type") from None
        if to != self.element:
            raise node.fail(f"attribute to = {to} is not supported: only a Cast to the model's own type "
                            f"({self.element}), which changes nothing, is")

    def op_Softmax(self, node: _Node) -> None:
        """Dropped (a note says so); :meth:`walk` refuses any node after it."""
        if len(self.shape) != 1:
            raise node.fail(f"a final {node.op} is dropped only on the 2-d (N, classes) output, its input is "
                            f"{_dims((self.batch, *self.shape))}")
        axis = node.get("axis", 1 if node.opset < 13 else -1)
        if axis not in (1, -1):
            raise node.refuse("axis", "on the 2-d (N, classes) output only the class axis, 1 or -1, keeps the "
                                      "predicted class", default=axis)
        self.dropped = node
        self.notes.append(_one_line(f"{self.path}: node {node.name!r} ({node.op}): dropped, a final {node.op} does "
                                    "not change the predicted class (the model outputs the scores before it)"))

    op_LogSoftmax = op_Softmax

    def op_Dropout(self, node: _Node) -> None:
        if node.opset < 7 and not node.get("is_test", 0):
            raise node.refuse("is_test", "without it Dropout runs in training mode", default=0)
        inputs = node.proto.input
        if len(inputs) > 2 and inputs[2]:
            flag = self.array(node, inputs[2])
            if flag.size != 1 or flag.reshape(-1)[0]:
                raise node.fail(f"input training_mode ({inputs[2]!r}) = {_show(flag)} is not supported: "
                                "only inference-mode Dropout (training_mode false) is")

    # ---- the result ---------------------------------------------------------------------------------------
    def model(self, input_shape: tuple[int, ...]) -> FloatModel:
        if not self.layers:
            raise InputError(f"{self.path}: the model has no Conv, Gemm or MatMul")
        try:
            return FloatModel([FloatLayer(**layer) for layer in self.layers], input_shape)
        except InputError as error:
            raise InputError(f"{self.path}: {error}") from None


# ---- the file and the graph's ends ------------------------------------------------------------------------------
def _check_failure(path: Path, error: Exception) -> InputError:
    reason = _one_line(error) or type(error).__name__
    return InputError(f"{path}: not a valid ONNX model ({reason[:300]})")


def _checker_errors() -> tuple:
    import onnx
    from google.protobuf.message import DecodeError

    return (DecodeError, onnx.checker.ValidationError, onnx.shape_inference.InferenceError, ValueError, OSError,
            RuntimeError)


def _load(path: Path):
    """The model, read and structurally checked (schemas, attributes, topological order)."""
    import onnx

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except _checker_errors() as error:
        raise _check_failure(path, error) from None
    for sparse in model.graph.sparse_initializer:
        raise InputError(f"{path}: the sparse initializer {sparse.values.name!r} is not supported (store it dense)")
    return model


def _full_check(path: Path, model) -> None:
    """``check_model(full_check=True)``: types and shapes, by strict shape inference."""
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except _checker_errors() as error:
        raise _check_failure(path, error) from None


def _opset(model) -> int:
    return max((item.version for item in model.opset_import if item.domain in ("", "ai.onnx")), default=0)


def _data_input(path: Path, graph, constants: dict):
    """The graph's first input that is not an initializer: a float NCHW tensor."""
    import onnx

    inputs = [item for item in graph.input if item.name not in constants]
    if not inputs:
        raise InputError(f"{path}: the model has no input that is not an initializer")
    data = inputs[0]
    kind = data.type.WhichOneof("value")
    element = onnx.TensorProto.DataType.Name(data.type.tensor_type.elem_type) if kind == "tensor_type" else kind
    if element not in _FLOAT_TYPES:
        raise InputError(f"{path}: the input {data.name!r} must be a float tensor, got {element}")
    return data


def _input_shape(path: Path, data, input_shape) -> tuple[int, int, int]:
    """The (C, H, W) the model runs on: the declared one, with the caller's ``input_shape`` for symbolic sizes."""
    dims = [dim.dim_value if dim.HasField("dim_value") else None for dim in data.type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise InputError(f"{path}: the input {data.name!r} must be NxCxHxW, got {len(dims)} dimensions")
    declared = tuple(dims[1:])
    if input_shape is not None:
        input_shape = tuple(int(size) for size in input_shape)
        if any(have is not None and have != want for have, want in zip(declared, input_shape, strict=True)):
            raise InputError(f"{path}: the model's input is {'x'.join(str(d) for d in declared)} (CxHxW), the data is "
                             f"{'x'.join(map(str, input_shape))}")
        return input_shape
    if None in declared:
        raise InputError(f"{path}: the input's CxHxW must be fixed, got {declared}")
    return declared


def _check_ends(path: Path, graph, builder: _Builder, constants: dict, data) -> None:
    """One data input and one output, the last node's."""
    extra = [item.name for item in graph.input if item.name not in constants and item.name != data.name]
    if extra:
        raise InputError(f"{path}: the model must have one data input, got {data.name!r} and "
                         f"{', '.join(map(repr, extra))} (weights must be initializers or Constant nodes)")
    if len(graph.output) != 1:
        raise InputError(f"{path}: the model must have one output, got {len(graph.output)}")
    if builder.current != graph.output[0].name:
        raise InputError(f"{path}: the graph's output {graph.output[0].name!r} is not the last node's output")


def _batch(data) -> int:
    """The batch size shape computations see: the declared one, or 1 where it is symbolic."""
    dims = data.type.tensor_type.shape.dim
    return dims[0].dim_value if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else 1


def load_onnx(path: str | Path, input_shape: tuple[int, int, int] | None = None, *,
              notes: list[str] | None = None) -> FloatModel:
    """Read ``path`` into a :class:`FloatModel` (see the module docstring for what is honoured and refused).

    ``input_shape`` (``(C, H, W)``): the shape the caller will feed; a model whose declared input differs
    raises :class:`InputError`. Symbolic (or missing) dimensions take ``input_shape``.
    ``notes``: if given, a list that gets one line (``"<path>: node '<name>' (<op>): ..."``) per change of the
    model's output the import made, for the caller to show: a final Softmax or LogSoftmax dropped. Nothing is
    added when the import fails.
    """
    import onnx

    path = Path(path)
    model = _load(path)
    graph = model.graph
    constants = {item.name: item for item in graph.initializer}
    data = _data_input(path, graph, constants)
    shape = _input_shape(path, data, input_shape)
    element = onnx.TensorProto.DataType.Name(data.type.tensor_type.elem_type)
    builder = _Builder(path, dict(constants), shape, data.name, element, _batch(data))
    builder.walk(graph.node, _opset(model))
    _check_ends(path, graph, builder, constants, data)
    _full_check(path, model)
    result = builder.model(shape)
    if notes is not None:
        notes.extend(builder.notes)
    return result
