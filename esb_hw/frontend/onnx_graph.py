"""Read a float CNN that is a graph (branches and merges: ResNets, MobileNets) from ONNX into a
:class:`~esb_hw.frontend.graph.FloatGraph`.

Everything :mod:`esb_hw.frontend.onnx_import` honours for chains is honoured here, with the same exact refusals,
and also:

- a tensor read by several nodes (a branch), and ``Add`` of two tensors of the same shape (a merge: a residual
  add; a constant ``Add`` is still a bias);
- ``Conv`` with ``group`` > 1 (grouped and depthwise convolutions);
- ``Clip`` with a lower bound of exactly 0 and an optional upper bound (ReLU6), folded into the node before it
  (bounds are attributes up to opset 10, constant inputs from 11);
- ``MaxPool`` with a square ``kernel_shape``, the same stride on both axes, the same padding on all sides
  (``ResNet``'s 3x3 stride-2 pad-1 stem pool), ``auto_pad`` ``SAME_*`` where it pads the same on all sides, and
  ``ceil_mode`` 1 only where it adds no window;
- ``AveragePool`` with a square kernel, the same stride on both axes and no padding (``count_include_pad`` then
  changes nothing), ``ceil_mode`` as above; ``GlobalAveragePool``.

``BatchNormalization``, ``Relu``, ``Clip`` and a bias ``Add`` fold into the node that made their input, which must
then be read by nothing else, through any no-ops (a BatchNorm after a branch point, as in pre-activation ResNets,
is refused by name). The order is Conv/Gemm, BatchNormalization, bias, then Relu or Clip; an ``Add`` of two tensors
takes Relu or Clip. A Relu or Clip after a max pool or a flatten commutes with it (both are monotone) and folds
into the node before it, as the chain importer does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from . import onnx_import as chain
from .graph import INPUT, FloatGraph, FloatNode

__all__ = ["GRAPH_OPERATORS", "load_onnx_graph"]

#: The operators whose output the imported graph computes.
GRAPH_OPERATORS = chain.SUPPORTED_OPERATORS + ("Clip", "AveragePool", "GlobalAveragePool")
_ACCEPTED = GRAPH_OPERATORS + chain.SHAPE_OPERATORS + chain.DROPPED_OPERATORS
_ATTRIBUTES = {**chain._HANDLED_ATTRIBUTES, "Clip": ("max", "min"),
               "AveragePool": ("auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads",
                               "strides"),
               "GlobalAveragePool": ()}
_FOLDS_INTO = {"BatchNormalization": ("conv2d", "linear"), "Add": ("conv2d", "linear"),
               "Relu": ("conv2d", "linear", "add"), "Clip": ("conv2d", "linear", "add")}


class _GraphBuilder(chain._Builder):
    """The chain builder's operators, on a graph: ``current`` is the node's (first) data input, ``shape`` its
    shape; ``tensors`` maps every tensor to the graph node that computes it."""

    def __init__(self, path, constants: dict, shape, current: str, element: str, batch: int, readers: dict):
        super().__init__(path, constants, shape, current, element, batch)
        self.tensors = {current: INPUT}
        self.readers = readers  # tensor -> number of nodes (and graph outputs) that read it
        self.nodes: list[dict] = []
        self.produced: str | None = None
        self.same_as: dict[str, str] = {}  # a no-op's output -> the tensor it passes on
        self.reads: dict[str, tuple[str, ...]] = {}  # a graph node -> the tensors it reads

    def walk(self, nodes, opset: int) -> None:
        for index, proto in enumerate(nodes):
            node = chain._Node(self.path, proto, index, opset)
            if node.op not in _ACCEPTED or proto.domain not in ("", "ai.onnx"):
                raise node.fail(f"operator {node.op} is not supported (supported: {', '.join(_ACCEPTED)})")
            for name in node.attributes:
                if name not in _ATTRIBUTES[node.op]:
                    raise node.refuse(name, f"the importer does not read it on {node.op}")
            if node.op == "Constant":
                self.constant_node(node)
                continue
            if self.dropped is not None:
                raise self.dropped.fail(f"a {self.dropped.op} is dropped only as the last node, and node {node.name!r} "
                                        f"({node.op}) follows it")
            if node.op in chain.SHAPE_OPERATORS:
                self.fold(node)
                continue
            self.data = self.data_inputs(node)
            self.current = self.data[0]
            self.shape = self.shapes[self.current]
            self.produced = None
            getattr(self, f"op_{node.op}")(node)
            output = proto.output[0]
            self.tensors[output] = self.produced or self.tensors[self.current]
            self.shapes[output] = self.shape
            if self.produced is None:  # a no-op: the tensor it passes on is read by the no-op's readers too
                source = self.source(self.current)
                self.same_as[output] = source
                self.readers[source] = self.readers.get(source, 0) - 1 + self.readers.get(output, 0)

    def source(self, tensor: str) -> str:
        """The tensor a chain of no-ops passes on as ``tensor``."""
        return self.same_as.get(tensor, tensor)

    def data_inputs(self, node: chain._Node) -> list[str]:
        """The node's non-constant inputs, which earlier nodes compute: the first input (either input of an
        ``Add``); a second output is refused."""
        names = list(node.proto.input)
        roles = chain._INPUT_ROLES.get(node.op, ("input",))
        data = []
        for position, name in enumerate(names):
            if not name or name in self.constants:
                continue
            if name not in self.tensors:
                raise node.fail(f"input {name!r} is neither a constant nor the output of an earlier node")
            if position and not (node.op == "Add" and position == 1):
                role = roles[position] if position < len(roles) else f"#{position}"
                raise node.fail(f"input {role} ({name!r}) is not a constant (an initializer or a Constant node)")
            data.append(name)
        if not data:
            raise node.fail(f"it reads only constants ({', '.join(map(repr, names))}); constant folding is not "
                            "supported")
        for name in node.proto.output[1:]:
            if name:
                raise node.fail(f"{chain._EXTRA_OUTPUTS.get(node.op, 'a second output')} {name!r} is not supported")
        return data

    # ---- nodes --------------------------------------------------------------------------------------------
    def add_node(self, node: chain._Node, op: str, inputs: tuple[str, ...], **fields) -> dict:
        taken = {entry["name"] for entry in self.nodes} | {INPUT}
        name = node.name if node.name not in taken else f"{node.name}#{len(self.nodes)}"
        entry = {"name": name, "kind": op, "inputs": tuple(self.tensors[tensor] for tensor in inputs),
                 "relu": False, "upper": None, **fields}
        try:
            self.shape = self.float_node(entry).output_shape([self.shapes[tensor] for tensor in inputs])
        except InputError as error:
            raise node.fail(str(error)) from None
        self.nodes.append(entry)
        self.reads[name] = tuple(inputs)
        self.produced = name
        return entry

    @staticmethod
    def float_node(entry: dict) -> FloatNode:
        fields = {key: value for key, value in entry.items() if key != "kind"}
        return FloatNode(op=entry["kind"], **fields)

    def open_layer(self, node: chain._Node, kind: str, weight: np.ndarray, bias, **geometry) -> None:
        bias = np.zeros(weight.shape[0]) if bias is None else bias
        self.add_node(node, kind, (self.current,), weight=weight, bias=bias, **geometry)

    def modify(self, node: chain._Node, what: str) -> dict:
        """The node that computes the current tensor, for ``what`` to fold into; refused where another node also
        reads the tensor or the node's kind or state does not allow it."""
        producer = self.tensors[self.current]
        entry = next((item for item in self.nodes if item["name"] == producer), None)
        kinds = _FOLDS_INTO["BatchNormalization" if what == "BatchNormalization" else node.op]
        if entry is None or entry["kind"] not in kinds:
            made = "the graph's input" if entry is None else f"a {entry['kind']} node ({producer!r})"
            raise node.fail(f"{what} folds into a {' or '.join(kinds)} node, and its input is {made}")
        source = self.source(self.current)
        if self.readers.get(source, 0) > 1:
            raise node.fail(f"{what} cannot fold into node {producer!r}: its output {source!r} is also read by "
                            "another node")
        if entry["relu"] or entry["upper"] is not None:
            raise node.fail(f"{what} after Relu or Clip is not supported (the order is Conv/Gemm, "
                            "BatchNormalization, bias, then Relu or Clip)")
        self.produced = producer
        return entry

    def flatten(self) -> None:
        if len(self.shape) > 1:
            self.add_node(self.flatten_node, "flatten", (self.current,))

    # ---- operators ----------------------------------------------------------------------------------------
    def conv_groups(self, node: chain._Node, weight: np.ndarray) -> int:
        """Grouped and depthwise convolutions: ``group`` equal groups of the input and output channels; square
        kernels only."""
        kernel = list(weight.shape[2:])
        if kernel[0] != kernel[1]:
            raise node.refuse("kernel_shape", "only square kernels", default=kernel)
        groups = node.get("group", 1)
        if groups < 1 or self.shape[0] % groups or weight.shape[0] % groups or self.shape[0] // groups != \
                weight.shape[1]:
            raise node.refuse("group", f"{self.shape[0]} input channels and weights of shape {weight.shape} do not "
                                       "make equal groups", default=1)
        return int(groups)

    def op_Add(self, node: chain._Node) -> None:
        if len(self.data) == 1:
            super().op_Add(node)  # a bias
            return
        first, second = self.data
        if self.shapes[first] != self.shapes[second]:
            shape = chain._dims((self.batch, *self.shapes[first]))
            other = chain._dims((self.batch, *self.shapes[second]))
            raise node.fail(f"an Add of two tensors needs the same shape (no broadcasting), got {shape} and {other}")
        if node.opset < 7 and node.get("broadcast", 0):
            raise node.refuse("broadcast", "an Add of two tensors of the same shape does not broadcast")
        self.add_node(node, "add", (first, second))

    def through_pool(self, node: chain._Node) -> None:
        """A Relu or Clip after max pools and flattens that nothing else reads commutes with them (both are
        monotone): step back through them to the tensor before, to fold into the node that made it."""
        while True:
            producer = self.tensors[self.current]
            entry = next((item for item in self.nodes if item["name"] == producer), None)
            if entry is None or entry["kind"] not in ("max_pool", "flatten") or \
                    self.readers.get(self.source(self.current), 0) > 1:
                return
            (inner,) = self.reads[producer]
            if self.readers.get(self.source(inner), 0) != 1:
                return
            self.current = inner

    def op_Relu(self, node: chain._Node) -> None:
        self.activate(node, "Relu", True, None)

    def activate(self, node: chain._Node, what: str, relu: bool, upper: float | None) -> None:
        """Fold ReLU (and a bound) into the node before, or before a max pool or flatten after it."""
        current, shape = self.current, self.shape
        self.through_pool(node)
        if self.current != current:
            try:
                entry = self.modify(node, what)
            except InputError:  # the refusal names the node's own input
                self.current = current
                entry = self.modify(node, what)
        else:
            entry = self.modify(node, what)
        entry["relu"] = relu
        entry["upper"] = upper
        self.current, self.shape, self.produced = current, shape, self.tensors[current]

    def op_Clip(self, node: chain._Node) -> None:
        if node.opset < 11:
            low, high = node.get("min"), node.get("max")
        else:
            bounds = [self.floats(node, name).reshape(-1) if name else None for name in node.proto.input[1:3]]
            bounds += [None] * (2 - len(bounds))
            for value in bounds:
                if value is not None and value.size != 1:
                    raise node.fail(f"its bounds must be scalars, got {value.size} values")
            low, high = (None if value is None else float(value[0]) for value in bounds)
        if low != 0:
            raise node.fail(f"a Clip with min = {'none' if low is None else f'{low:g}'} is not supported: only a "
                            "lower bound of 0 (ReLU, ReLU6) keeps hidden activations non-negative")
        if high is not None and not (np.isfinite(high) and high > 0):
            raise node.fail(f"a Clip with max = {high:g} is not supported: the upper bound must be finite and > 0")
        self.activate(node, "Clip", True, None if high is None else float(high))

    def pool_geometry(self, node: chain._Node, padded: bool) -> tuple[int, int, int]:
        """(kernel, stride, padding) of a MaxPool/AveragePool, or the refusal naming the attribute."""
        if len(self.shape) != 3:
            raise node.fail(f"{node.op} needs an NCHW input, got {chain._dims((self.batch, *self.shape))}")
        kernel = list(node.get("kernel_shape", []))
        if len(kernel) != 2 or kernel[0] != kernel[1]:
            raise node.refuse("kernel_shape", "only square 2-d windows")
        strides = list(node.get("strides", [1, 1]))
        if len(strides) != 2 or strides[0] != strides[1]:
            raise node.refuse("strides", "the strides differ between the axes", default=[1, 1])
        if any(d != 1 for d in node.get("dilations", [1, 1])):
            raise node.refuse("dilations", "only 1")
        pads = list(node.get("pads", [0, 0, 0, 0]))
        auto_pad = node.get("auto_pad", "NOTSET")
        size, stride = self.shape[1], int(strides[0])
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            totals = {chain._same_padding(side, kernel[0], stride) for side in self.shape[1:]}
            if any(pads) or len(totals) != 1 or min(totals) % 2 or (min(totals) and not padded):
                raise node.refuse("auto_pad", f"on the {size}x{self.shape[2]} input it pads {sorted(totals)} in total "
                                              "per axis, not the same on all sides" + ("" if padded else
                                                                                      " (or at all)"))
            pads = [totals.pop() // 2] * 4
        elif auto_pad not in ("NOTSET", "VALID"):
            raise node.refuse("auto_pad", "unknown padding mode")
        if len(set(pads)) != 1 or (pads[0] and not padded):
            raise node.refuse("pads", "the same on all sides" if padded else "no padding")
        pad = int(pads[0])
        if node.get("ceil_mode", 0) and any((side + 2 * pad - kernel[0]) % stride for side in self.shape[1:]):
            raise node.refuse("ceil_mode", f"on the {size}x{self.shape[2]} input it adds a partial window")
        return int(kernel[0]), stride, pad

    def op_MaxPool(self, node: chain._Node) -> None:
        kernel, stride, padding = self.pool_geometry(node, padded=True)
        self.add_node(node, "max_pool", (self.current,), kernel=kernel, stride=stride, padding=padding)

    def op_AveragePool(self, node: chain._Node) -> None:
        kernel, stride, _ = self.pool_geometry(node, padded=False)
        self.add_node(node, "avg_pool", (self.current,), kernel=kernel, stride=stride)

    def op_GlobalAveragePool(self, node: chain._Node) -> None:
        if len(self.shape) != 3:
            raise node.fail(f"GlobalAveragePool needs an NCHW input, got {chain._dims((self.batch, *self.shape))}")
        self.add_node(node, "global_avg_pool", (self.current,))

    def op_Flatten(self, node: chain._Node) -> None:
        self.flatten_node = node
        super().op_Flatten(node)

    def op_Reshape(self, node: chain._Node) -> None:
        self.flatten_node = node
        super().op_Reshape(node)

    def graph(self, input_shape, output: str) -> FloatGraph:
        if not any(entry["kind"] in ("conv2d", "linear") for entry in self.nodes):
            raise InputError(f"{self.path}: the model has no Conv, Gemm or MatMul")
        producer = self.tensors[output]
        if self.nodes and self.nodes[-1]["name"] != producer:
            raise InputError(f"{self.path}: node {self.nodes[-1]['name']!r} does not lead to the graph's output "
                             f"{output!r}")
        try:
            return FloatGraph([self.float_node(entry) for entry in self.nodes], input_shape)
        except InputError as error:
            raise InputError(f"{self.path}: {error}") from None


def load_onnx_graph(path: str | Path, input_shape: tuple[int, int, int] | None = None, *,
                    notes: list[str] | None = None) -> FloatGraph:
    """Read ``path`` into a :class:`FloatGraph` (see the module docstring; ``input_shape`` and ``notes`` as in
    :func:`esb_hw.frontend.onnx_import.load_onnx`)."""
    import onnx

    path = Path(path)
    model = chain._load(path)
    graph = model.graph
    constants = {item.name: item for item in graph.initializer}
    data = chain._data_input(path, graph, constants)
    shape = chain._input_shape(path, data, input_shape)
    extra = [item.name for item in graph.input if item.name not in constants and item.name != data.name]
    if extra:
        raise InputError(f"{path}: the model must have one data input, got {data.name!r} and "
                         f"{', '.join(map(repr, extra))} (weights must be initializers or Constant nodes)")
    if len(graph.output) != 1:
        raise InputError(f"{path}: the model must have one output, got {len(graph.output)}")
    readers: dict[str, int] = {}
    for proto in graph.node:
        for name in proto.input:
            readers[name] = readers.get(name, 0) + 1
    readers[graph.output[0].name] = readers.get(graph.output[0].name, 0) + 1
    element = onnx.TensorProto.DataType.Name(data.type.tensor_type.elem_type)
    builder = _GraphBuilder(path, dict(constants), shape, data.name, element, chain._batch(data), readers)
    builder.walk(graph.node, chain._opset(model))
    output = graph.output[0].name
    if output not in builder.tensors or builder.tensors[output] == INPUT:
        raise InputError(f"{path}: the graph's output {output!r} is not computed by its nodes")
    chain._full_check(path, model)
    result = builder.graph(shape, output)
    if notes is not None:
        notes.extend(builder.notes)
    return result
