"""Post-training quantization: a :class:`~esb_hw.frontend.model.FloatModel` becomes an :class:`IntegerModel`.

The flow (docs/network.md):

1. **Weights**, per output channel, onto a signed level set (:class:`WeightQuantizer`: an ESB format, which
   covers uniform (``e = 1``) and power-of-two (``k = 0``), or APoT), with a scale picked by DDA
   (``"dda"``: the level set's global Gaussian optimum times the channel's RMS), by the data (``"mse"``), or by the
   channel's largest magnitude (``"max"``);
2. **activations** calibrated on sample images: every layer's output gets a power-of-two scale
   (:meth:`~esb_hw.quant.ActivationQuantizer.calibrate`) chosen on the float model's activations;
3. **integer layers**: each layer folds its weight scale, input and output scales and (folded BatchNorm) bias into
   the requantization constants (:func:`esb_hw.quant.golden.fold_scales`). The last layer's outputs (the logits,
   which may be negative) carry a zero point: their codes are ``logit / scale + zero_point``, so the unsigned
   requantization keeps them and the argmax is unchanged. A fully connected layer becomes a convolution whose
   kernel covers its whole input, the form the layer engine runs;
4. :meth:`IntegerModel.run` is the golden model of the whole network; :func:`placement` says which layers the
   built array runs (the rest run on the host, through the same golden model) and :func:`compile_segments`
   compiles each run of consecutive array layers into a program.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..quant import ActivationQuantizer, ESBFormat, golden
from ..quant.activation import FRAC_BITS_RANGE
from ..quant.baselines import apot
from ..quant.dda import fit_alpha, mse_optimal_scale, optimal_scale
from .model import FloatModel

__all__ = ["SCALE_METHODS", "IntegerLayer", "IntegerModel", "QuantRecipe", "WeightQuantizer", "compile_segments",
           "placement", "quantize_model"]

SCALE_METHODS = ("dda", "mse", "max")
#: The formats of layers kept at 8 bits (``QuantRecipe.ends_8bit``): uniform 8-bit weights and uint8 activations.
EIGHT_BIT_WEIGHTS = "uniform:8"
EIGHT_BIT_ACTIVATIONS = ESBFormat(8, 8, signed=False)
#: Calibration uses at most this many images (evenly spaced), so that it is quick and independent of batch size.
CALIBRATION_IMAGES = 512


@dataclass(frozen=True)
class WeightQuantizer:
    """A signed weight level set, written ``esb:BITS:K``, ``uniform:BITS``, ``pot:BITS`` or ``apot:BITS``.

    ``uniform:b`` is ``ESB(b, b - 2)`` (levels ``0 .. 2**(b-1) - 1``) and ``pot:b`` is ``ESB(b, 0)`` (powers of
    two up to ``2**(2**(b-1) - 2)``, so ``b <= 5``): the same level sets as
    :func:`esb_hw.quant.baselines.uniform` and :func:`~esb_hw.quant.baselines.power_of_two`, and formats the
    hardware runs. ``apot:b`` is :func:`~esb_hw.quant.baselines.apot` (no hardware mapping; golden model only).
    """

    spec: str

    def __post_init__(self):
        parts = self.spec.split(":")
        try:
            numbers = [int(part) for part in parts[1:]]
        except ValueError:
            numbers = None
        family = parts[0]
        expected = {"esb": 2, "uniform": 1, "pot": 1, "apot": 1}
        if family not in expected or numbers is None or len(numbers) != expected[family]:
            raise InputError(f"weight format {self.spec!r}: expected esb:BITS:K, uniform:BITS, pot:BITS or apot:BITS")
        try:
            if family == "apot":
                apot(numbers[0])
            else:
                self.fmt  # noqa: B018 - validates
        except ValueError as error:
            raise InputError(f"weight format {self.spec!r}: {error}") from None

    @property
    def family(self) -> str:
        return self.spec.split(":")[0]

    @property
    def bits(self) -> int:
        return int(self.spec.split(":")[1])

    @property
    def fmt(self) -> ESBFormat | None:
        """The ESB format (None for APoT)."""
        family, bits = self.family, self.bits
        if family == "esb":
            return ESBFormat(bits, int(self.spec.split(":")[2]))
        if family == "uniform":
            return ESBFormat(bits, bits - 2)
        if family == "pot":
            return ESBFormat(bits, 0)
        return None

    @property
    def label(self) -> str:
        fmt = self.fmt
        if self.family == "esb":
            return f"ESB({fmt.bits},{fmt.k})"
        if self.family == "apot":
            return f"APoT {self.bits}b"
        return f"{'uniform' if self.family == 'uniform' else 'power-of-two'} {self.bits}b"

    def positive_levels(self) -> np.ndarray:
        """The non-negative integer levels, ascending (``0`` first)."""
        if self.fmt is not None:
            return self.fmt.integer_levels()[self.fmt.integer_levels() >= 0]
        normalized = np.array(apot(self.bits).positive_levels)
        integer = normalized / normalized[1]
        rounded = np.round(integer)
        assert np.allclose(integer, rounded, rtol=0, atol=1e-9), "APoT levels are multiples of the smallest"
        return rounded.astype(np.int64)

    def unit(self, weight: np.ndarray, method: str) -> np.ndarray:
        """The real value of integer level 1, per output channel (axis 0), for ``method`` in :data:`SCALE_METHODS`."""
        if method not in SCALE_METHODS:
            raise InputError(f"scale method must be one of {', '.join(SCALE_METHODS)}, got {method!r}")
        rows = np.asarray(weight, dtype=np.float64).reshape(weight.shape[0], -1)
        top = float(self.positive_levels()[-1])
        fmt = self.fmt
        if fmt is not None and method != "max":
            alpha = np.asarray(fit_alpha(rows, fmt, per_channel_axis=0, method=method)).reshape(-1)
            return alpha / 2.0**fmt.k
        # The max-scaled scale for every format; DDA and the data's MSE for APoT (a level set normalized to 1).
        level_set = apot(self.bits) if fmt is None else None
        dda_scale = optimal_scale(level_set.positive_levels)[0] if method == "dda" else None
        peaks = np.max(np.abs(rows), axis=1)
        units = np.empty(rows.shape[0])
        for index, row in enumerate(rows):
            if peaks[index] == 0:
                units[index] = 1.0 / top
            elif method == "max":
                units[index] = peaks[index] / top
            elif method == "dda":
                units[index] = dda_scale * math.sqrt(float(np.mean(row * row))) / top
            else:
                units[index] = mse_optimal_scale(row, level_set.quantize, 1.0)[0] / top
        return units

    def levels(self, weight: np.ndarray, unit: np.ndarray) -> np.ndarray:
        """Signed integer levels of ``weight`` at ``unit`` per channel (ESB: DESIGN §1 projection, ties to even;
        APoT: nearest level, ties to the smaller magnitude)."""
        weight = np.asarray(weight, dtype=np.float64)
        shape = (-1,) + (1,) * (weight.ndim - 1)
        fmt = self.fmt
        if fmt is not None:
            return fmt.level(fmt.encode(weight, (unit * 2.0**fmt.k).reshape(shape)))
        top = self.positive_levels()[-1]
        real = apot(self.bits).quantize(weight / unit.reshape(shape) / top)
        return np.round(real * top).astype(np.int64)

    def fake_quantize(self, weight: np.ndarray, method: str) -> np.ndarray:
        """The float weights after quantization (for quantization-aware training's forward pass)."""
        unit = self.unit(weight, method)
        return self.levels(weight, unit) * unit.reshape((-1,) + (1,) * (np.ndim(weight) - 1))


def _activation_format(bits: int, k: int | None = None) -> ESBFormat:
    return ESBFormat(bits, bits if k is None else k, signed=False)


@dataclass(frozen=True)
class QuantRecipe:
    """How to quantize a model.

    Attributes
    ----------
    weights : str
        A :class:`WeightQuantizer` spec for every layer.
    activations : ESBFormat
        The unsigned format of every activation (a plain integer for ``k = bits``).
    scale_method : {"dda", "mse", "max"}
        How each weight channel's scale is picked.
    ends_8bit : bool
        Keep the first and last layers at 8 bits: uniform 8-bit weights, uint8 input and logits.
    """

    weights: str
    activations: ESBFormat
    scale_method: str = "dda"
    ends_8bit: bool = False

    def __post_init__(self):
        WeightQuantizer(self.weights)
        if not isinstance(self.activations, ESBFormat) or self.activations.signed:
            raise InputError(f"activations must be an unsigned ESBFormat, got {self.activations}")
        if self.scale_method not in SCALE_METHODS:
            raise InputError(f"scale method must be one of {', '.join(SCALE_METHODS)}, got {self.scale_method!r}")

    @classmethod
    def for_config(cls, config, *, scale_method: str = "dda", ends_8bit: bool = False) -> QuantRecipe:
        """The recipe whose formats are a built array's own."""
        weight = config.weight_format
        return cls(f"esb:{weight.bits}:{weight.k}", config.activation_format, scale_method, ends_8bit)

    def layer_formats(self, index: int, count: int) -> tuple[WeightQuantizer, ESBFormat, ESBFormat]:
        """Layer ``index`` of ``count``: (weights, input format, output format)."""
        first, last = index == 0, index == count - 1
        weights = WeightQuantizer(EIGHT_BIT_WEIGHTS if self.ends_8bit and (first or last) else self.weights)
        input_format = EIGHT_BIT_ACTIVATIONS if self.ends_8bit and first else self.activations
        output_format = EIGHT_BIT_ACTIVATIONS if self.ends_8bit and last else self.activations
        return weights, input_format, output_format


@dataclass(frozen=True, eq=False)
class IntegerLayer:
    """One layer of the integer model, as the golden model runs it (always a conv2d: see the module docstring).

    ``weight_levels`` (``O, C, KH, KW``) are signed integer levels; ``weight_codes`` are their codes when the
    weights are an ESB format (None for APoT). Input and output are codes of ``input_format``/``output_format``;
    the real value of an output level ``L`` is ``(L - zero_point) * output_scale``.
    """

    name: str
    weights: WeightQuantizer
    weight_levels: np.ndarray
    weight_codes: np.ndarray | None
    unit: np.ndarray
    input_format: ESBFormat
    output_format: ESBFormat
    input_scale: float
    output_scale: float
    params: golden.RequantParams
    stride: int
    padding: int
    pool: bool
    zero_point: int = 0
    linear: bool = False

    def run(self, codes: np.ndarray) -> np.ndarray:
        """Input codes ``(N, C, H, W)`` to output codes."""
        accumulators = golden.conv2d(self.input_format.level(codes), self.weight_levels, self.stride, self.padding)
        outputs = golden.requantize(accumulators, self.params, self.output_format, relu=True)
        return golden.max_pool2x2(outputs) if self.pool else outputs

    @property
    def macs(self) -> int:
        return int(self.weight_levels.size)

    def engine_layer(self):
        """The :class:`esb_hw.compiler.lowering.Layer` the engine runs (ESB weights only)."""
        from ..compiler.lowering import Layer

        if self.weight_codes is None:
            raise InputError(f"layer {self.name!r}: {self.weights.label} weights have no hardware mapping")
        return Layer("conv2d", self.weight_codes, self.params, self.output_format, stride=self.stride,
                     padding=self.padding, pool=self.pool)


@dataclass(frozen=True, eq=False)
class IntegerModel:
    """The quantized network: input quantization, then :class:`IntegerLayer` in a chain."""

    recipe: QuantRecipe
    input_quantizer: ActivationQuantizer
    layers: list[IntegerLayer]
    shapes: list[tuple[int, int, int]] = field(default_factory=list)

    def input_codes(self, images) -> np.ndarray:
        """Images (float ``(N, C, H, W)``) to input codes."""
        return self.input_quantizer.encode(np.asarray(images, dtype=np.float64))

    def run(self, images, *, start: int = 0, stop: int | None = None, codes=None) -> list[np.ndarray]:
        """Every layer's output codes from ``start`` to ``stop``, for ``images`` (or input ``codes`` of layer
        ``start``)."""
        current = self.input_codes(images) if codes is None else np.asarray(codes)
        outputs = []
        for layer in self.layers[start:stop]:
            current = layer.run(current)
            outputs.append(current)
        return outputs

    def logit_levels(self, images=None, *, codes=None) -> np.ndarray:
        """``(N, classes)`` integer logits: the last layer's output levels (monotone in the real logits)."""
        last = codes if codes is not None else self.run(images)[-1]
        return self.layers[-1].output_format.level(last).reshape(len(last), -1)

    def logits(self, images=None, *, codes=None) -> np.ndarray:
        """Real logits: ``(level - zero_point) * scale``."""
        layer = self.layers[-1]
        return (self.logit_levels(images, codes=codes) - layer.zero_point) * layer.output_scale

    def predict(self, images=None, *, codes=None) -> np.ndarray:
        return np.argmax(self.logit_levels(images, codes=codes), axis=1)


def _calibration_subset(images: np.ndarray) -> np.ndarray:
    step = max(1, math.ceil(len(images) / CALIBRATION_IMAGES))
    return images[::step]


def _output_quantizer(samples: np.ndarray, fmt: ESBFormat, logits: bool,
                      name: str) -> tuple[ActivationQuantizer, int]:
    if not logits:
        return ActivationQuantizer.calibrate(samples, fmt, "mse"), 0
    zero_point = (fmt.max_level + 1) // 2
    if min(zero_point, fmt.max_level - zero_point) == 0:
        raise InputError(f"layer {name!r}: {fmt} outputs cannot hold signed logits (no level on one side of the zero "
                         "point); keep the last layer at 8 bits (--ends-8bit)")
    peak = float(np.max(np.abs(samples))) or 1.0
    # The largest power-of-two step whose zero_point levels below and above cover the logits' range.
    frac_bits = math.floor(math.log2(min(zero_point, fmt.max_level - zero_point) / peak))
    low, high = FRAC_BITS_RANGE
    if not low <= frac_bits <= high:
        raise InputError(f"layer {name!r}: logits of magnitude {peak:g} need a scale of 2**{-frac_bits}, outside "
                         f"2**{-high}..2**{-low}")
    return ActivationQuantizer(fmt, frac_bits), zero_point


def quantize_model(model: FloatModel, recipe: QuantRecipe, calibration_images) -> IntegerModel:
    """Post-training quantization of ``model`` by ``recipe``, calibrated on ``calibration_images``
    (float ``(N, C, H, W)``, normally training images; at most :data:`CALIBRATION_IMAGES` are used).

    Raises :class:`InputError` for a hidden layer without ReLU (hidden activations are unsigned codes), and for
    scales the requantization cannot hold, naming the layer."""
    images = _calibration_subset(model.check_input(calibration_images))
    with np.errstate(over="ignore", invalid="ignore"):
        activations = model.activations(images)
    for layer, output in zip(model.layers, activations, strict=True):
        if not np.all(np.isfinite(output)):
            raise InputError(f"layer {layer.name!r}: the float model's outputs are not finite on the calibration "
                             "images")
    count = len(model.layers)
    _, first_input, _ = recipe.layer_formats(0, count)
    input_quantizer = ActivationQuantizer.calibrate(images, first_input, "mse")
    input_scale = input_quantizer.scale
    layers, shapes = [], [model.input_shape]
    for index, layer in enumerate(model.layers):
        weights, input_format, output_format = recipe.layer_formats(index, count)
        last = index == count - 1
        if not last and not layer.relu:
            raise InputError(f"layer {layer.name!r} has no ReLU: hidden activations must be non-negative (a Relu "
                             "after each hidden Conv/Gemm)")
        shape = shapes[-1]
        weight = layer.weight
        if layer.kind == "linear":  # a convolution whose kernel covers the whole input
            weight = weight.reshape(weight.shape[0], *shape)
        unit = weights.unit(weight, recipe.scale_method)
        levels = weights.levels(weight, unit)
        codes = None if weights.fmt is None else weights.fmt.code_of_level(levels)
        # Logits (a last layer without ReLU) may be negative: they get a zero point.
        quantizer, zero_point = _output_quantizer(activations[index], output_format, last and not layer.relu,
                                                  layer.name)
        try:
            params = golden.fold_scales(unit, input_scale, quantizer.scale,
                                        layer.bias + zero_point * quantizer.scale)
        except ValueError as error:
            raise InputError(f"layer {layer.name!r}: {error}") from None
        layers.append(IntegerLayer(layer.name, weights, levels, codes, unit, input_format, output_format, input_scale,
                                   quantizer.scale, params, layer.stride if layer.kind == "conv2d" else 1,
                                   layer.padding if layer.kind == "conv2d" else 0, layer.pool, zero_point,
                                   layer.kind == "linear"))
        out = model.shapes[index + 1]
        shapes.append(out if len(out) == 3 else (out[0], 1, 1))
        input_scale = quantizer.scale
    return IntegerModel(recipe, input_quantizer, layers, shapes)


def _same_format(a: ESBFormat, b: ESBFormat) -> bool:
    return (a.bits, a.k, a.signed) == (b.bits, b.k, b.signed)


def placement(model: IntegerModel, config) -> list[str | None]:
    """Per layer: ``None`` if the built array (``config``) runs it, else the reason it runs on the host."""
    from ..compiler.program import compile_program

    reasons = []
    for index, layer in enumerate(model.layers):
        fmt = layer.weights.fmt
        if fmt is None or not _same_format(fmt, config.weight_format):
            reasons.append(f"weights {layer.weights.label}, the array has {config.weight_format}")
        elif not _same_format(layer.input_format, config.activation_format):
            reasons.append(f"input {layer.input_format}, the array has {config.activation_format}")
        elif not _same_format(layer.output_format, config.activation_format):
            reasons.append(f"output {layer.output_format}, the array has {config.activation_format}")
        else:
            try:
                compile_program(config, [layer.engine_layer()], model.shapes[index])
                reasons.append(None)
            except InputError as error:
                reasons.append(str(error).removeprefix("layer 0: ").removeprefix("layer 0 "))
    return reasons


@dataclass(frozen=True, eq=False)
class Segment:
    """Consecutive layers ``[first, end)`` run on the array (``program`` set) or on the host (``program`` None)."""

    first: int
    end: int
    program: object | None
    reason: str | None = None


def compile_segments(model: IntegerModel, config, batch: int = 1) -> list[Segment]:
    """Group the layers by :func:`placement` and compile each run of array layers into one program (at base 0) of
    ``batch`` images (:func:`esb_hw.compiler.program.compile_program`)."""
    from ..compiler.program import compile_program

    reasons = placement(model, config)
    segments, first = [], 0
    for index in range(1, len(reasons) + 1):
        if index < len(reasons) and (reasons[index] is None) == (reasons[first] is None):
            continue
        if reasons[first] is None:
            layers = [layer.engine_layer() for layer in model.layers[first:index]]
            try:
                segments.append(Segment(first, index, compile_program(config, layers, model.shapes[first],
                                                                      batch=batch)))
            except InputError:  # each layer compiles alone (placement): run them as one program each
                segments += [Segment(at, at + 1, compile_program(config, [layers[at - first]], model.shapes[at],
                                                                 batch=batch))
                             for at in range(first, index)]
        else:
            segments.append(Segment(first, index, None, "; ".join(sorted({reasons[i] for i in range(first, index)}))))
        first = index
    return segments
