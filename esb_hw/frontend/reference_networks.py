"""The networks users bring, written as ONNX with seeded random weights (no downloads): torchvision's ResNet-18,
ResNet-50 (v1.5, the stride on the bottleneck's 3x3) and MobileNetV2, with their layer shapes.

Each is built with ``onnx.helper`` as PyTorch exports it at inference: Conv without bias, then
BatchNormalization, then Relu (ResNet) or Clip(0, 6) (MobileNetV2's ReLU6); residual adds of two tensors;
ResNet's 3x3 stride-2 max pool; GlobalAveragePool, Flatten and Gemm at the end. The weights are He-normal, the
BatchNorm statistics random (a block's last BatchNorm scaled down, as zero-initialised residuals train), all from
one seed, so the same arguments give byte-identical files. ``size``, ``width`` and ``classes`` shrink a network
for tests with its structure kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["REFERENCE_NETWORKS", "basic_block", "inverted_residual", "mobilenet_v2", "reference_network", "resnet"]

_RESNET_BLOCKS = {18: ((2, 2, 2, 2), False), 34: ((3, 4, 6, 3), False), 50: ((3, 4, 6, 3), True)}
#: MobileNetV2's inverted-residual settings: expansion t, channels c, repeats n, first stride s.
_MOBILENET_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1))
OPSET = 17


class _Writer:
    """Nodes and initializers of one ONNX graph, named as PyTorch names its modules."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.initializers = [], []

    def constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attributes) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
        return name

    def conv_bn(self, x: str, name: str, channels: int, out: int, kernel: int, stride: int = 1, groups: int = 1,
                act: str | None = "relu", gain: float = 1.0) -> str:
        """Conv (no bias) -> BatchNormalization -> ``act`` (``relu``, ``relu6`` or None)."""
        fan_in = channels // groups * kernel * kernel
        weight = self.rng.normal(0, np.sqrt(2 / fan_in), (out, channels // groups, kernel, kernel))
        y = self.node("Conv", [x, self.constant(f"{name}.weight", weight)], name, kernel_shape=[kernel, kernel],
                      strides=[stride, stride], pads=[kernel // 2] * 4, group=groups)
        scale = gain * self.rng.uniform(0.6, 1.0, out)
        bias = self.rng.normal(0, 0.1, out)
        mean = self.rng.normal(0, 0.1, out)
        variance = self.rng.uniform(0.8, 1.2, out)
        bn = f"{name}.bn"
        y = self.node("BatchNormalization", [y] + [self.constant(f"{bn}.{key}", value) for key, value in
                                                   (("weight", scale), ("bias", bias), ("running_mean", mean),
                                                    ("running_var", variance))], bn, epsilon=1e-5)
        if act == "relu":
            return self.node("Relu", [y], f"{name}.relu")
        if act == "relu6":
            return self.node("Clip", [y, self.constant(f"{name}.min", np.float32(0)),
                                      self.constant(f"{name}.max", np.float32(6))], f"{name}.relu6")
        return y

    def head(self, x: str, channels: int, classes: int) -> str:
        y = self.node("GlobalAveragePool", [x], "avgpool")
        y = self.node("Flatten", [y], "flatten", axis=1)
        weight = self.rng.normal(0, np.sqrt(1 / channels), (classes, channels))
        return self.node("Gemm", [y, self.constant("fc.weight", weight), self.constant("fc.bias", np.zeros(classes))],
                         "fc", transB=1)

    def model(self, name: str, size: int, output: str, classes: int, channels: int = 3,
              output_shape: tuple[int, ...] | None = None):
        from onnx import TensorProto, helper

        data = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])
        scores = helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, *(output_shape or (classes,))])
        graph = helper.make_graph(self.nodes, name, [data], [scores], self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="esb-hw")
        model.ir_version = 8
        return model


def _check(size: int, classes: int) -> None:
    if not isinstance(size, int) or size < 32:
        raise InputError(f"the input size must be an int >= 32 (five stride-2 stages), got {size!r}")
    if not isinstance(classes, int) or classes < 1:
        raise InputError(f"classes must be a positive int, got {classes!r}")


def resnet(depth: int = 18, *, size: int = 224, width: int = 64, classes: int = 1000, seed: int = 0):
    """torchvision's ResNet-``depth`` (18, 34 or 50) as an ``onnx.ModelProto``; ``width`` is the first stage's
    channels (64 in torchvision)."""
    if depth not in _RESNET_BLOCKS:
        raise InputError(f"ResNet depth must be one of {', '.join(map(str, _RESNET_BLOCKS))}, got {depth}")
    _check(size, classes)
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise InputError(f"the ResNet width (its first stage's channels) must be a positive int, got {width!r}")
    blocks, bottleneck = _RESNET_BLOCKS[depth]
    writer = _Writer(seed)
    x = writer.conv_bn("x", "conv1", 3, width, 7, 2)
    x = writer.node("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    channels, expansion = width, 4 if bottleneck else 1
    for stage, count in enumerate(blocks, start=1):
        planes = width << (stage - 1)
        for block in range(count):
            stride = 2 if stage > 1 and block == 0 else 1
            out = planes * expansion
            prefix = f"layer{stage}.{block}"
            if bottleneck:
                y = writer.conv_bn(x, f"{prefix}.conv1", channels, planes, 1)
                y = writer.conv_bn(y, f"{prefix}.conv2", planes, planes, 3, stride)
                y = writer.conv_bn(y, f"{prefix}.conv3", planes, out, 1, act=None, gain=0.3)
            else:
                y = writer.conv_bn(x, f"{prefix}.conv1", channels, planes, 3, stride)
                y = writer.conv_bn(y, f"{prefix}.conv2", planes, planes, 3, act=None, gain=0.3)
            skip = x
            if stride != 1 or channels != out:
                skip = writer.conv_bn(x, f"{prefix}.downsample", channels, out, 1, stride, act=None)
            y = writer.node("Add", [y, skip], f"{prefix}.add")
            x = writer.node("Relu", [y], f"{prefix}.relu")
            channels = out
    return writer.model(f"resnet{depth}", size, writer.head(x, channels, classes), classes)


def _divisible(value: float, divisor: int = 8) -> int:
    """torchvision's ``_make_divisible``: the nearest multiple of ``divisor``, never 10 % below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def mobilenet_v2(*, size: int = 224, width: float = 1.0, classes: int = 1000, seed: int = 0):
    """torchvision's MobileNetV2 (``width`` is its ``width_mult``) as an ``onnx.ModelProto``."""
    _check(size, classes)
    if not 0 < width <= 4:
        raise InputError(f"the MobileNetV2 width multiplier must be in (0, 4], got {width}")
    writer = _Writer(seed)
    channels = _divisible(32 * width)
    x = writer.conv_bn("x", "features.0", 3, channels, 3, 2, act="relu6")
    index = 1
    for expansion, wanted, repeats, first_stride in _MOBILENET_SETTINGS:
        out = _divisible(wanted * width)
        for repeat in range(repeats):
            stride = first_stride if repeat == 0 else 1
            prefix = f"features.{index}"
            hidden = channels * expansion
            y = x
            if expansion != 1:
                y = writer.conv_bn(y, f"{prefix}.expand", channels, hidden, 1, act="relu6")
            y = writer.conv_bn(y, f"{prefix}.depthwise", hidden, hidden, 3, stride, groups=hidden, act="relu6")
            y = writer.conv_bn(y, f"{prefix}.project", hidden, out, 1, act=None,
                               gain=0.3 if stride == 1 and channels == out else 1.0)
            if stride == 1 and channels == out:
                y = writer.node("Add", [y, x], f"{prefix}.add")
            x, channels, index = y, out, index + 1
    last = _divisible(1280 * max(1.0, width))
    x = writer.conv_bn(x, f"features.{index}", channels, last, 1, act="relu6")
    return writer.model("mobilenetv2", size, writer.head(x, last, classes), classes)


def basic_block(*, channels: int = 64, size: int = 56, seed: int = 0):
    """One ResNet-18 basic block alone (layer1's shape by default): conv 3x3, BN, ReLU, conv 3x3, BN, plus the
    block's input, ReLU. Its input (the previous block's ReLU output) and output are ``channels x size x size``."""
    _check(size, 1)
    writer = _Writer(seed)
    y = writer.conv_bn("x", "conv1", channels, channels, 3)
    y = writer.conv_bn(y, "conv2", channels, channels, 3, act=None, gain=0.3)
    y = writer.node("Add", [y, "x"], "add")
    y = writer.node("Relu", [y], "relu")
    return writer.model("basic_block", size, y, 0, channels, (channels, size, size))


def inverted_residual(*, channels: int = 24, expansion: int = 6, size: int = 56, seed: int = 0):
    """One MobileNetV2 inverted-residual block with its residual (features.3's shape by default): 1x1 expand,
    BN, ReLU6, depthwise 3x3, BN, ReLU6, 1x1 project, BN, plus the block's input. The input is non-negative here
    (the block reads a ReLU6 output, as ``features.2``'s would be with a ReLU)."""
    _check(size, 1)
    writer = _Writer(seed)
    hidden = channels * expansion
    y = writer.conv_bn("x", "expand", channels, hidden, 1, act="relu6")
    y = writer.conv_bn(y, "depthwise", hidden, hidden, 3, groups=hidden, act="relu6")
    y = writer.conv_bn(y, "project", hidden, channels, 1, act=None, gain=0.3)
    y = writer.node("Add", [y, "x"], "add")
    return writer.model("inverted_residual", size, y, 0, channels, (channels, size, size))


#: The reference networks by name: a builder taking ``size``, ``classes``, ``seed`` (and ``width``).
REFERENCE_NETWORKS = {
    "resnet18": lambda **options: resnet(18, **options),
    "resnet34": lambda **options: resnet(34, **options),
    "resnet50": lambda **options: resnet(50, **options),
    "mobilenetv2": lambda **options: mobilenet_v2(**options),
}


def reference_network(name: str, path: str | Path | None = None, **options):
    """The ``onnx.ModelProto`` of reference network ``name`` (``options``: ``size``, ``width``, ``classes``,
    ``seed``), also written to ``path`` if given."""
    import onnx

    if name not in REFERENCE_NETWORKS:
        raise InputError(f"unknown reference network {name!r}; known: {', '.join(REFERENCE_NETWORKS)}")
    model = REFERENCE_NETWORKS[name](**options)
    if path is not None:
        onnx.save(model, str(path))
    return model
