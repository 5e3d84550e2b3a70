"""The conv and linear layers of networks users bring, as shapes (torchvision's ResNet-18 and ResNet-50 at 224x224,
batch 1), for the cycle model and the benches.

A shape is ``(name, kind, in_channels, out_channels, kernel, stride, padding, input_size)``; ``input_size`` is the
side of the square input (1 for a linear layer). Pooling, residual adds and the softmax are not layers here: the
engine does not run them yet (issue 21), so they are not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ..config import AcceleratorConfig
from ..errors import InputError
from ..quant import golden
from .lowering import Layer
from .program import compile_program, predicted_cycles
from .timeline import MemoryTiming

__all__ = ["NETWORKS", "LayerShape", "layer_macs", "model_network", "network_shapes", "shape_layer"]


class LayerShape(NamedTuple):
    """One conv2d or linear layer's shape (see the module docstring)."""

    name: str
    kind: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: int
    input_size: int

    @property
    def output_size(self) -> int:
        return (self.input_size + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def macs(self) -> int:
        return layer_macs(self)


def layer_macs(shape: LayerShape) -> int:
    """Multiply-accumulates of one image through the layer."""
    return shape.out_channels * shape.in_channels * shape.kernel ** 2 * shape.output_size ** 2


def _resnet(blocks: tuple[int, ...], bottleneck: bool) -> list[LayerShape]:
    """torchvision's ResNet (v1.5: a bottleneck's stride is on its 3x3 conv) at 224x224."""
    shapes = [LayerShape("conv1", "conv2d", 3, 64, 7, 2, 3, 224)]
    size, channels = 56, 64  # after the stem's 3x3 stride-2 max pool
    expansion = 4 if bottleneck else 1
    for stage, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True), start=1):
        for block in range(count):
            stride = 2 if stage > 1 and block == 0 else 1
            out = width * expansion
            prefix = f"layer{stage}.{block}"
            if bottleneck:
                shapes += [LayerShape(f"{prefix}.conv1", "conv2d", channels, width, 1, 1, 0, size),
                           LayerShape(f"{prefix}.conv2", "conv2d", width, width, 3, stride, 1, size),
                           LayerShape(f"{prefix}.conv3", "conv2d", width, out, 1, 1, 0, size // stride)]
            else:
                shapes += [LayerShape(f"{prefix}.conv1", "conv2d", channels, width, 3, stride, 1, size),
                           LayerShape(f"{prefix}.conv2", "conv2d", width, width, 3, 1, 1, size // stride)]
            if block == 0 and (stride != 1 or channels != out):
                shapes.append(LayerShape(f"{prefix}.downsample", "conv2d", channels, out, 1, stride, 0, size))
            channels, size = out, size // stride
    shapes.append(LayerShape("fc", "linear", channels, 1000, 1, 1, 0, 1))
    return shapes


#: The networks by name.
NETWORKS = {"resnet18": ((2, 2, 2, 2), False), "resnet50": ((3, 4, 6, 3), True)}


def network_shapes(name: str) -> list[LayerShape]:
    """The conv and linear layers of network ``name`` (a key of :data:`NETWORKS`), in order."""
    if name not in NETWORKS:
        raise InputError(f"unknown network {name!r}; known: {', '.join(NETWORKS)}")
    return _resnet(*NETWORKS[name])


def shape_layer(config: AcceleratorConfig, shape: LayerShape, rng: np.random.Generator) -> Layer:
    """A layer of ``shape`` with random weight codes and a plain requantization (the cycle model depends on the
    shape only)."""
    weights = (rng.integers(0, config.weight_format.code_count, (shape.out_channels, shape.in_channels,
                                                                  shape.kernel, shape.kernel))
               if shape.kind == "conv2d" else
               rng.integers(0, config.weight_format.code_count, (shape.out_channels, shape.in_channels)))
    params = golden.requant_params(np.full(shape.out_channels, 1 / 64))
    return Layer(shape.kind, weights, params, config.activation_format, stride=shape.stride,
                 padding=shape.padding)


def model_network(config: AcceleratorConfig, shapes: list[LayerShape], memory: MemoryTiming, *,
                  progress: Callable[[str], None] | None = None) -> list[dict]:
    """Each layer of ``shapes`` compiled alone (its own program, as a layer that reads its input from memory and
    writes its output there) and run through the cycle model with ``memory`` (a MODEL); the first layer's taps are
    packed where that pays (:mod:`esb_hw.compiler.packing`). Returns one dict per layer: ``name``, ``macs``,
    ``tiles``, ``packed``, ``cycles``, ``compute_cycles``, ``memory_cycles``, ``bound`` and ``utilization``
    (``macs / (cycles x the array's MACs)``). Raises :class:`InputError` naming the layer when
    the config cannot run it."""
    rng = np.random.default_rng(0)
    results = []
    for number, shape in enumerate(shapes, 1):
        layer = shape_layer(config, shape, rng)
        input_shape = ((shape.in_channels, shape.input_size, shape.input_size) if shape.kind == "conv2d"
                       else (1, shape.in_channels))
        try:
            # Only the network's input is the host's to lay out: its first layer's taps may be packed.
            program = compile_program(config, [layer], input_shape, pack_input="auto" if number == 1 else False)
        except InputError as error:
            raise InputError(f"{shape.name}: {error}") from None
        predicted = predicted_cycles(program, memory)
        (bounds,) = predicted["layers"]
        cycles = predicted["cycles"]
        results.append({"name": shape.name, "macs": shape.macs, "tiles": len(program.tiles),
                        "packed": program.input_packing is not None, "cycles": cycles,
                        "compute_cycles": bounds["compute_cycles"], "memory_cycles": bounds["memory_cycles"],
                        "bound": bounds["bound"], "utilization": round(shape.macs / (cycles * config.macs), 4)})
        if progress is not None:
            progress(f"{number}/{len(shapes)} {shape.name}: {cycles:,} cycles, "
                     f"{100 * results[-1]['utilization']:.1f} % of the array, {bounds['bound']}-bound")
    return results
