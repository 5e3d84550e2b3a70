"""A float CNN as the flow sees it: a chain of conv2d and linear layers, each with its ReLU and 2x2 max-pool.

:class:`FloatModel` is what both importers (ONNX, :mod:`esb_hw.frontend.onnx_import`; NumPy ``.npz``, here) give,
with every BatchNorm already folded into its layer's weights and bias. :meth:`FloatModel.forward` is the NumPy
float reference (the first rung of the verification ladder, compared with the integer model by accuracy).

The ``.npz`` format: a ``graph`` entry holding JSON (``{"format": "esb-hw float model", "version": 1,
"input_shape": [C, H, W], "layers": [...]}``, one object per layer with ``name``, ``kind``, ``stride``,
``padding``, ``relu``, ``pool``) and, per layer, the arrays ``<name>.weight`` and ``<name>.bias``. Its bytes depend
only on its contents.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import InputError
from ..npzfile import write_npz

__all__ = ["FloatLayer", "FloatModel", "load_npz", "save_npz"]

NPZ_FORMAT = "esb-hw float model"
NPZ_VERSION = 1


@dataclass(frozen=True, eq=False)
class FloatLayer:
    """One layer: ``y = pool(relu(conv_or_linear(x) + bias))``.

    Attributes
    ----------
    name : str
    kind : {"conv2d", "linear"}
    weight : float64 array
        ``(O, C, KH, KW)`` or ``(O, I)``. A linear layer after a conv2d reads the flattened ``(C, H, W)`` input in C
        order, as PyTorch's ``Flatten`` does.
    bias : float64 array (O,)
    stride, padding : int
    relu, pool : bool
    """

    name: str
    kind: str
    weight: np.ndarray
    bias: np.ndarray
    stride: int = 1
    padding: int = 0
    relu: bool = False
    pool: bool = False

    def __post_init__(self):
        where = f"layer {self.name!r}"
        if self.kind not in ("conv2d", "linear"):
            raise InputError(f"{where}: kind must be conv2d or linear, got {self.kind!r}")
        weight = np.asarray(self.weight, dtype=np.float64)
        if weight.ndim != (4 if self.kind == "conv2d" else 2) or 0 in weight.shape:
            raise InputError(f"{where}: {self.kind} weights must be {'OIHW' if self.kind == 'conv2d' else 'OI'}, "
                             f"got shape {weight.shape}")
        bias = np.zeros(weight.shape[0]) if self.bias is None else np.asarray(self.bias, dtype=np.float64)
        if bias.shape != (weight.shape[0],):
            raise InputError(f"{where}: bias has shape {bias.shape}, expected ({weight.shape[0]},)")
        if not (np.all(np.isfinite(weight)) and np.all(np.isfinite(bias))):
            raise InputError(f"{where}: weights and bias must be finite")
        if self.stride < 1 or self.padding < 0:
            raise InputError(f"{where}: stride must be >= 1 and padding >= 0, got {self.stride} and {self.padding}")
        if self.pool and self.kind != "conv2d":
            raise InputError(f"{where}: 2x2 max-pooling follows a conv2d layer only")
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bias", bias)

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output shape for ``input_shape`` (``(C, H, W)`` or ``(I,)``); raises :class:`InputError` if they
        do not fit together."""
        where = f"layer {self.name!r}"
        if self.kind == "linear":
            features = int(np.prod(input_shape))
            if features != self.weight.shape[1]:
                raise InputError(f"{where}: a linear layer of {self.weight.shape[1]} inputs gets {features} "
                                 f"(input shape {'x'.join(map(str, input_shape))})")
            return (self.out_channels,)
        if len(input_shape) != 3:
            raise InputError(f"{where}: a conv2d needs a CxHxW input, got shape {input_shape}")
        channels, height, width = input_shape
        if channels != self.weight.shape[1]:
            raise InputError(f"{where}: the weights expect {self.weight.shape[1]} input channels, got {channels}")
        kh, kw = self.weight.shape[2:]
        out_h = (height + 2 * self.padding - kh) // self.stride + 1
        out_w = (width + 2 * self.padding - kw) // self.stride + 1
        if out_h < 1 or out_w < 1:
            raise InputError(f"{where}: kernel {kh}x{kw} is larger than the padded {height}x{width} input")
        if self.pool:
            if out_h < 2 or out_w < 2:
                raise InputError(f"{where}: 2x2 max-pooling needs at least 2x2 outputs, got {out_h}x{out_w}")
            out_h, out_w = out_h // 2, out_w // 2
        return (self.out_channels, out_h, out_w)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Float64 forward pass on a batch ``(N, *input_shape)``."""
        if self.kind == "linear":
            y = x.reshape(x.shape[0], -1) @ self.weight.T + self.bias
        else:
            pad = self.padding
            padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
            kh, kw = self.weight.shape[2:]
            windows = sliding_window_view(padded, (kh, kw), axis=(2, 3))[:, :, ::self.stride, ::self.stride]
            y = np.tensordot(windows, self.weight, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
            y = y + self.bias[None, :, None, None]
        if self.relu:
            y = np.maximum(y, 0.0)
        if self.pool:
            n, c, h, w = y.shape
            y = y[:, :, : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
        return np.ascontiguousarray(y)


@dataclass(frozen=True, eq=False)
class FloatModel:
    """A chain of :class:`FloatLayer` on inputs of ``input_shape`` (``(C, H, W)``)."""

    layers: list[FloatLayer]
    input_shape: tuple[int, ...]
    shapes: list[tuple[int, ...]] = field(init=False)

    def __post_init__(self):
        layers = list(self.layers)
        if not layers:
            raise InputError("a model needs at least one layer")
        shape = tuple(int(size) for size in self.input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InputError(f"the model input must be CxHxW, got {shape}")
        names = [layer.name for layer in layers]
        if len(set(names)) != len(names):
            raise InputError("layer names must be unique")
        shapes = [shape]
        for layer in layers:
            shapes.append(layer.output_shape(shapes[-1]))
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "shapes", shapes)

    @property
    def classes(self) -> int:
        return int(np.prod(self.shapes[-1]))

    def check_input(self, x) -> np.ndarray:
        array = np.asarray(x, dtype=np.float64)
        if array.ndim != 4 or array.shape[1:] != self.input_shape:
            raise InputError(f"the model takes inputs of shape Nx{'x'.join(map(str, self.input_shape))}, got "
                             f"{'x'.join(map(str, array.shape))}")
        return array

    def forward(self, x, *, upto: int | None = None) -> np.ndarray:
        """Float outputs of layer ``upto - 1`` (all layers by default) for a batch ``(N, C, H, W)``; the logits
        come out as ``(N, classes)``."""
        y = self.check_input(x)
        for layer in self.layers[:upto]:
            y = layer.forward(y)
        return y.reshape(y.shape[0], -1) if upto is None or upto == len(self.layers) else y

    def activations(self, x) -> list[np.ndarray]:
        """Every layer's float output for a batch, in order (calibration data)."""
        y = self.check_input(x)
        outputs = []
        for layer in self.layers:
            y = layer.forward(y)
            outputs.append(y)
        return outputs

    def predict(self, x) -> np.ndarray:
        return np.argmax(self.forward(x), axis=1)

    def parameter_count(self) -> int:
        return sum(layer.weight.size + layer.bias.size for layer in self.layers)


def save_npz(model: FloatModel, path: str | Path) -> None:
    """Write ``model`` in the ``.npz`` format of the module docstring (byte-identical for equal models)."""
    graph = {"format": NPZ_FORMAT, "version": NPZ_VERSION, "input_shape": list(model.input_shape),
             "layers": [{"name": layer.name, "kind": layer.kind, "stride": layer.stride, "padding": layer.padding,
                         "relu": layer.relu, "pool": layer.pool} for layer in model.layers]}
    arrays = {"graph": np.asarray(json.dumps(graph, sort_keys=True))}
    for layer in model.layers:
        arrays[f"{layer.name}.weight"] = layer.weight.astype(np.float32)
        arrays[f"{layer.name}.bias"] = layer.bias.astype(np.float32)
    write_npz(path, arrays)


def load_npz(path: str | Path) -> FloatModel:
    """Read a ``.npz`` float model; a missing, corrupted or malformed file raises :class:`InputError`."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "graph" not in archive.files:
                raise InputError(f"{path}: not an esb-hw float model (no 'graph' entry)")
            graph = json.loads(str(archive["graph"]))
            if not isinstance(graph, dict) or graph.get("format") != NPZ_FORMAT:
                raise InputError(f"{path}: not an esb-hw float model")
            if graph.get("version") != NPZ_VERSION:
                raise InputError(f"{path}: float model version {graph.get('version')!r} is not supported "
                                 f"(this esb-hw reads version {NPZ_VERSION})")
            layers = []
            for entry in graph["layers"]:
                name = entry["name"]
                for key in (f"{name}.weight", f"{name}.bias"):
                    if key not in archive.files:
                        raise InputError(f"{path}: layer {name!r} has no array {key!r}")
                layers.append(FloatLayer(name, entry["kind"], archive[f"{name}.weight"], archive[f"{name}.bias"],
                                         stride=int(entry["stride"]), padding=int(entry["padding"]),
                                         relu=bool(entry["relu"]), pool=bool(entry["pool"])))
            return FloatModel(layers, tuple(graph["input_shape"]))
    except InputError as error:
        if str(error).startswith(str(path)):
            raise
        raise InputError(f"{path}: {error}") from None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable float model ({type(error).__name__}: {error})") from None
