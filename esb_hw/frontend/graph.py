"""A float CNN that is a graph, not a chain: residual adds, pooling, grouped and depthwise convolutions.

:class:`FloatGraph` is what :func:`esb_hw.frontend.onnx_graph.load_onnx_graph` reads from an ONNX file (ResNets,
MobileNets), with every BatchNorm folded into its convolution and every ReLU or clip into the node before it.
:meth:`FloatGraph.forward` is the NumPy float reference, checked against ``onnx.reference``.

A node reads one or two earlier nodes' outputs (or the graph's input, :data:`INPUT`) and computes:

- ``conv2d``: ``groups`` equal groups of channels (``groups = C`` is depthwise), square kernel, stride, padding;
- ``linear``: the flattened input times ``weight (O, I)`` (C order over ``(C, H, W)``);
- ``add``: the sum of two tensors of the same shape (a residual add);
- ``max_pool``: ``kernel x kernel`` windows, ``stride``, ``padding`` (padding never wins);
- ``avg_pool``: the mean of ``kernel x kernel`` windows, ``stride``, no padding;
- ``global_avg_pool``: the mean over H and W, to ``(C, 1, 1)``;
- ``flatten``: ``(C, H, W)`` to ``(C*H*W,)``.

then, for ``conv2d``, ``linear`` and ``add``, ``relu`` (``max(y, 0)``) and ``upper`` (``min(y, upper)``: ReLU6 is
``relu`` with ``upper = 6``). The graph's output is its last node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import InputError

__all__ = ["INPUT", "OPERATIONS", "FloatGraph", "FloatNode"]

#: The name a node uses to read the graph's input.
INPUT = "input"
#: Operation -> number of inputs.
OPERATIONS = {"conv2d": 1, "linear": 1, "add": 2, "max_pool": 1, "avg_pool": 1, "global_avg_pool": 1,
              "flatten": 1}
_WEIGHTED = ("conv2d", "linear")
_ACTIVATED = ("conv2d", "linear", "add")


@dataclass(frozen=True, eq=False)
class FloatNode:
    """One node (see the module docstring). ``weight`` is ``(O, C / groups, K, K)`` for ``conv2d`` and ``(O, I)`` for
    ``linear``, ``bias`` ``(O,)``; ``kernel`` is the pool window's side (for ``conv2d``: the weight's)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    groups: int = 1
    relu: bool = False
    upper: float | None = None

    def __post_init__(self):
        where = f"node {self.name!r}"
        if self.op not in OPERATIONS:
            raise InputError(f"{where}: op must be one of {', '.join(OPERATIONS)}, got {self.op!r}")
        inputs = tuple(self.inputs)
        if len(inputs) != OPERATIONS[self.op]:
            raise InputError(f"{where}: {self.op} reads {OPERATIONS[self.op]} input(s), got {len(inputs)}")
        object.__setattr__(self, "inputs", inputs)
        if self.op in _WEIGHTED:
            weight = np.asarray(self.weight, dtype=np.float64)
            if weight.ndim != (4 if self.op == "conv2d" else 2) or 0 in weight.shape:
                raise InputError(f"{where}: {self.op} weights must be {'OIHW' if self.op == 'conv2d' else 'OI'}, "
                                 f"got shape {weight.shape}")
            if self.op == "conv2d" and weight.shape[2] != weight.shape[3]:
                raise InputError(f"{where}: the kernel must be square, got {weight.shape[2]}x{weight.shape[3]}")
            bias = np.zeros(weight.shape[0]) if self.bias is None else np.asarray(self.bias, dtype=np.float64)
            if bias.shape != (weight.shape[0],):
                raise InputError(f"{where}: bias has shape {bias.shape}, expected ({weight.shape[0]},)")
            if not (np.all(np.isfinite(weight)) and np.all(np.isfinite(bias))):
                raise InputError(f"{where}: weights and bias must be finite")
            object.__setattr__(self, "weight", weight)
            object.__setattr__(self, "bias", bias)
            if self.op == "conv2d":
                object.__setattr__(self, "kernel", weight.shape[2])
        elif self.weight is not None or self.bias is not None:
            raise InputError(f"{where}: a {self.op} has no weights")
        if self.stride < 1 or self.padding < 0 or self.kernel < 1 or self.groups < 1:
            raise InputError(f"{where}: kernel, stride and groups must be >= 1 and padding >= 0")
        if self.groups != 1 and self.op != "conv2d":
            raise InputError(f"{where}: only a conv2d has groups")
        if self.op == "conv2d" and self.weight.shape[0] % self.groups:
            raise InputError(f"{where}: {self.weight.shape[0]} output channels do not split into {self.groups} groups")
        if self.op == "max_pool" and self.padding >= self.kernel:
            raise InputError(f"{where}: padding {self.padding} must be smaller than the {self.kernel}x{self.kernel} "
                             "window")
        if self.op == "avg_pool" and self.padding:
            raise InputError(f"{where}: an average pool has no padding")
        if (self.relu or self.upper is not None) and self.op not in _ACTIVATED:
            raise InputError(f"{where}: ReLU and clips follow a conv2d, linear or add only")
        if self.upper is not None and not self.relu:
            raise InputError(f"{where}: an upper bound comes with ReLU (a clip to [0, upper]), so relu must be set")
        if self.upper is not None and not (np.isfinite(self.upper) and self.upper > 0):
            raise InputError(f"{where}: the upper bound must be finite and > 0, got {self.upper}")

    @property
    def macs_per_output(self) -> int:
        """Multiply-accumulates per output value (0 for nodes without weights)."""
        if self.op == "conv2d":
            return int(np.prod(self.weight.shape[1:]))
        return self.weight.shape[1] if self.op == "linear" else 0

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        """The per-image output shape for the inputs' ``shapes``; :class:`InputError` if they do not fit."""
        where = f"node {self.name!r}"
        shape = shapes[0]
        if self.op == "linear":
            if int(np.prod(shape)) != self.weight.shape[1]:
                raise InputError(f"{where}: a linear layer of {self.weight.shape[1]} inputs gets "
                                 f"{int(np.prod(shape))} (input shape {'x'.join(map(str, shape))})")
            return (self.weight.shape[0],)
        if self.op == "add":
            if shapes[0] != shapes[1]:
                raise InputError(f"{where}: an add needs two inputs of the same shape, got "
                                 f"{'x'.join(map(str, shapes[0]))} and {'x'.join(map(str, shapes[1]))}")
            return shape
        if len(shape) != 3:
            raise InputError(f"{where}: a {self.op} needs a CxHxW input, got shape {shape}")
        channels, height, width = shape
        if self.op == "flatten":
            return (channels * height * width,)
        if self.op == "global_avg_pool":
            return (channels, 1, 1)
        if self.op == "conv2d" and channels != self.weight.shape[1] * self.groups:
            raise InputError(f"{where}: the weights expect {self.weight.shape[1] * self.groups} input channels "
                             f"({self.groups} group(s) of {self.weight.shape[1]}), got {channels}")
        out_h = (height + 2 * self.padding - self.kernel) // self.stride + 1
        out_w = (width + 2 * self.padding - self.kernel) // self.stride + 1
        if out_h < 1 or out_w < 1:
            raise InputError(f"{where}: window {self.kernel}x{self.kernel} is larger than the padded "
                             f"{height}x{width} input")
        return (self.weight.shape[0] if self.op == "conv2d" else channels, out_h, out_w)

    def forward(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Float64 output for a batch of inputs (``(N, *shape)`` each)."""
        x = inputs[0]
        if self.op == "conv2d":
            y = _conv2d(x, self.weight, self.stride, self.padding, self.groups) + self.bias[None, :, None, None]
        elif self.op == "linear":
            y = x.reshape(x.shape[0], -1) @ self.weight.T + self.bias
        elif self.op == "add":
            y = x + inputs[1]
        elif self.op == "max_pool":
            pad = self.padding
            padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
            y = _windows(padded, self.kernel, self.stride).max(axis=(4, 5))
        elif self.op == "avg_pool":
            y = _windows(x, self.kernel, self.stride).mean(axis=(4, 5))
        elif self.op == "global_avg_pool":
            y = x.mean(axis=(2, 3), keepdims=True)
        else:
            y = x.reshape(x.shape[0], -1)
        if self.relu:
            y = np.maximum(y, 0.0)
        if self.upper is not None:
            y = np.minimum(y, self.upper)
        return np.ascontiguousarray(y)


def _windows(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    return sliding_window_view(x, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride]


def _conv2d(x: np.ndarray, weight: np.ndarray, stride: int, padding: int, groups: int) -> np.ndarray:
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = _windows(padded, weight.shape[2], stride)  # (N, C, OH, OW, K, K)
    if groups == 1:
        return np.tensordot(windows, weight, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    n, _, out_h, out_w, kh, kw = windows.shape
    per_group = weight.shape[1]
    grouped = windows.reshape(n, groups, per_group, out_h, out_w, kh, kw)
    kernels = weight.reshape(groups, -1, per_group, kh, kw)
    y = np.einsum("ngcxyij,gkcij->ngkxy", grouped, kernels, optimize=True)
    return y.reshape(n, weight.shape[0], out_h, out_w)


@dataclass(frozen=True, eq=False)
class FloatGraph:
    """:class:`FloatNode` in a topological order on inputs of ``input_shape`` (``(C, H, W)``); the output is the
    last node's. Every node must lead to the output."""

    nodes: list[FloatNode]
    input_shape: tuple[int, ...]
    shapes: dict[str, tuple[int, ...]] = field(init=False)

    def __post_init__(self):
        nodes = list(self.nodes)
        if not nodes:
            raise InputError("a graph needs at least one node")
        shape = tuple(int(size) for size in self.input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InputError(f"the graph's input must be CxHxW, got {shape}")
        shapes = {INPUT: shape}
        for node in nodes:
            if node.name in shapes:
                raise InputError(f"node names must be unique and not {INPUT!r}: {node.name!r} repeats")
            for name in node.inputs:
                if name not in shapes:
                    raise InputError(f"node {node.name!r} reads {name!r}, which is not an earlier node")
            shapes[node.name] = node.output_shape([shapes[name] for name in node.inputs])
        used = {nodes[-1].name}
        for node in reversed(nodes):
            if node.name not in used:
                raise InputError(f"node {node.name!r} does not lead to the graph's output ({nodes[-1].name!r})")
            used.update(node.inputs)
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "shapes", shapes)

    @property
    def output(self) -> FloatNode:
        return self.nodes[-1]

    @property
    def classes(self) -> int:
        return int(np.prod(self.shapes[self.output.name]))

    def node(self, name: str) -> FloatNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def consumers(self) -> dict[str, list[str]]:
        """Per tensor (the input and each node), the nodes that read it, in order."""
        readers = {INPUT: [], **{node.name: [] for node in self.nodes}}
        for node in self.nodes:
            for name in node.inputs:
                readers[name].append(node.name)
        return readers

    def macs(self) -> int:
        """Multiply-accumulates of one image through the conv2d and linear nodes."""
        return sum(node.macs_per_output * int(np.prod(self.shapes[node.name])) for node in self.nodes)

    def check_input(self, x) -> np.ndarray:
        """``x`` as float64 ``(N, C, H, W)``; :class:`InputError` for another shape."""
        array = np.asarray(x, dtype=np.float64)
        if array.ndim != 4 or array.shape[1:] != self.input_shape:
            raise InputError(f"the graph takes inputs of shape Nx{'x'.join(map(str, self.input_shape))}, got "
                             f"{'x'.join(map(str, array.shape))}")
        return array

    def activations(self, x) -> dict[str, np.ndarray]:
        """Every node's float output for a batch ``(N, C, H, W)`` (and the input, under :data:`INPUT`)."""
        values = {INPUT: self.check_input(x)}
        for node in self.nodes:
            values[node.name] = node.forward([values[name] for name in node.inputs])
        return values

    def forward(self, x) -> np.ndarray:
        """The output for a batch, as ``(N, classes)`` (flattened)."""
        values = {INPUT: self.check_input(x)}
        readers = {name: len(names) for name, names in self.consumers().items()}
        for node in self.nodes:
            values[node.name] = node.forward([values[name] for name in node.inputs])
            for name in node.inputs:  # free what no later node reads
                readers[name] -= 1
                if readers[name] == 0:
                    del values[name]
        y = values[self.output.name]
        return y.reshape(y.shape[0], -1)

    def predict(self, x) -> np.ndarray:
        """The predicted class of each image."""
        return np.argmax(self.forward(x), axis=1)
