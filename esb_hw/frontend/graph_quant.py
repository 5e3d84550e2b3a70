"""Post-training quantization of a :class:`~esb_hw.frontend.graph.FloatGraph` into an :class:`IntegerGraph`, run
by the golden model, and each node's placement: the built array, or the host with the reason.

Every tensor is an unsigned activation code with a power-of-two scale and a *zero point*, the level that stands for
real 0 (docs/network.md):

- a ReLU (or ReLU6) output, the graph's input and a pool of those have zero point 0 and a scale calibrated on the
  float activations (``mse``, as :mod:`esb_hw.frontend.quantize` does for chains); a ReLU6 bound becomes an
  integer level (:func:`esb_hw.quant.golden.bound_level`), dropped where it is at or above the format's top level
  (the clamp then changes nothing);
- a tensor that may be negative (a residual branch's last BatchNorm, MobileNetV2's projections, a downsample, the
  logits) has its zero point in the middle of the levels and the power-of-two step of least squared error on the
  calibration activations (from the largest step that covers their range to 8 steps finer);
- a convolution or linear layer reads ``L - z`` (exact: its zero padding is then real 0), folds its weight scale,
  bias and output zero point into its requantization; a residual add folds both inputs' zero points and the
  output's into :class:`~esb_hw.quant.golden.AddParams`; a max pool keeps its input's codes and scale; an average
  pool sums ``L - z`` and requantizes.

Weight formats follow the recipe per conv/linear node, in order (``ends_8bit``: the first and last at 8 bits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..quant import ActivationQuantizer, ESBFormat, golden
from ..quant.activation import FRAC_BITS_RANGE
from .graph import INPUT, FloatGraph, FloatNode
from .quantize import QuantRecipe, WeightQuantizer, _calibration_subset, _same_format

__all__ = ["IntegerGraph", "IntegerNode", "Placement", "TensorCode", "place_graph", "quantize_graph"]


@dataclass(frozen=True)
class TensorCode:
    """How a tensor is stored: codes of the unsigned ``fmt``; real value ``(level - zero_point) * scale``."""

    fmt: ESBFormat
    scale: float
    zero_point: int = 0

    def real(self, codes) -> np.ndarray:
        """The real values of ``codes``."""
        return (self.fmt.level(codes) - self.zero_point) * self.scale


@dataclass(frozen=True, eq=False)
class IntegerNode:
    """One node of the integer graph; ``run`` is its golden model (input codes to output codes).

    ``weight_levels`` (conv2d ``(O, C / groups, K, K)``, linear ``(O, I)``) are signed levels, ``weight_codes`` their
    codes in the weight format (None for APoT); ``params`` the requantization (conv2d, linear, pools), ``add`` the
    residual add's constants; ``upper`` a bound as a level (ReLU6) or None."""

    name: str
    op: str
    inputs: tuple[str, ...]
    input_codes: tuple[TensorCode, ...]
    output: TensorCode
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    groups: int = 1
    weights: WeightQuantizer | None = None
    weight_levels: np.ndarray | None = None
    weight_codes: np.ndarray | None = None
    params: golden.RequantParams | None = None
    add: golden.AddParams | None = None
    upper: int | None = None

    def run(self, inputs: list[np.ndarray]) -> np.ndarray:
        """The node's output codes for its inputs' codes (each ``(N, ...)``): the golden model of the node."""
        first = self.input_codes[0]
        if self.op in ("max_pool", "flatten"):
            codes = inputs[0]
            return golden.max_pool(codes, self.kernel, self.stride, self.padding) if self.op == "max_pool" else \
                codes.reshape(len(codes), -1)
        if self.op == "add":
            second = self.input_codes[1]
            return golden.residual_add(first.fmt.level(inputs[0]), second.fmt.level(inputs[1]), self.add,
                                       self.output.fmt, relu=True, upper=self.upper)
        levels = first.fmt.level(inputs[0]) - first.zero_point
        if self.op == "conv2d":
            acc = golden.conv2d(levels, self.weight_levels, self.stride, self.padding, self.groups)
        elif self.op == "linear":
            acc = golden.linear(levels.reshape(len(levels), -1), self.weight_levels)
        elif self.op == "avg_pool":
            acc = golden.sum_pool(levels, self.kernel, self.stride)
        else:
            acc = golden.global_sum_pool(levels)
        return golden.requantize(acc, self.params, self.output.fmt, relu=True, upper=self.upper)

    @property
    def weighted(self) -> bool:
        return self.op in ("conv2d", "linear")


@dataclass(frozen=True, eq=False)
class IntegerGraph:
    """The quantized graph: input quantization, then :class:`IntegerNode` in the float graph's order."""

    recipe: QuantRecipe
    input_quantizer: ActivationQuantizer
    nodes: list[IntegerNode]
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def output(self) -> IntegerNode:
        return self.nodes[-1]

    def input_codes(self, images) -> np.ndarray:
        """Images (float ``(N, C, H, W)``) to input codes."""
        return self.input_quantizer.encode(np.asarray(images, dtype=np.float64))

    def run(self, images=None, *, codes=None, keep: bool = False) -> dict[str, np.ndarray]:
        """Output codes of the last node (and of every node if ``keep``) for ``images`` (float NCHW) or input
        ``codes``, under the node names (the input under :data:`~esb_hw.frontend.graph.INPUT`)."""
        values = {INPUT: self.input_codes(images) if codes is None else np.asarray(codes)}
        readers = {}
        for node in self.nodes:
            for name in node.inputs:
                readers[name] = readers.get(name, 0) + 1
        for node in self.nodes:
            values[node.name] = node.run([values[name] for name in node.inputs])
            if not keep:
                for name in node.inputs:
                    readers[name] -= 1
                    if readers[name] == 0:
                        del values[name]
        return values

    def logit_levels(self, images=None, *, codes=None) -> np.ndarray:
        """``(N, classes)`` integer logits (monotone in the real logits)."""
        last = self.run(images, codes=codes)[self.output.name]
        return self.output.output.fmt.level(last).reshape(len(last), -1)

    def logits(self, images=None, *, codes=None) -> np.ndarray:
        """Real logits: ``(level - zero_point) * scale``."""
        return (self.logit_levels(images, codes=codes) - self.output.output.zero_point) * self.output.output.scale

    def predict(self, images=None, *, codes=None) -> np.ndarray:
        """The predicted class of each image."""
        return np.argmax(self.logit_levels(images, codes=codes), axis=1)


def _signed_code(samples: np.ndarray, fmt: ESBFormat, name: str) -> TensorCode:
    """A tensor that may be negative: the zero point in the middle of the levels, and the power-of-two step with the
    least squared error on the samples, from the largest whose levels on both sides cover their range to 8 steps
    finer (ties to the finer; as activations are calibrated, ``mse``)."""
    zero_point = (fmt.max_level + 1) // 2
    room = min(zero_point, fmt.max_level - zero_point)
    if room == 0:
        raise InputError(f"node {name!r}: {fmt} activations cannot hold a tensor that may be negative (no level on "
                         "one side of the zero point)")
    data = np.asarray(samples, dtype=np.float64).ravel()
    if data.size > 1 << 20:
        data = data[:: math.ceil(data.size / (1 << 20))]
    peak = float(np.max(np.abs(data))) if data.size else 0.0
    peak = peak or 1.0
    covering = math.floor(math.log2(room / peak))
    low, high = FRAC_BITS_RANGE
    if not low <= covering <= high:
        raise InputError(f"node {name!r}: values of magnitude {peak:g} need a scale of 2**{-covering}, outside "
                         f"2**{-high}..2**{-low}")
    levels = fmt.integer_levels().astype(np.float64)
    best, best_error = covering, math.inf
    for frac_bits in range(covering, min(covering + 8, high) + 1):
        scale = math.ldexp(1.0, -frac_bits)
        shifted = np.clip(data / scale + zero_point, 0, fmt.max_level)
        index = np.clip(np.searchsorted(levels, shifted), 1, levels.size - 1)
        nearest = np.where(shifted - levels[index - 1] < levels[index] - shifted, levels[index - 1], levels[index])
        error = float(np.mean((data - (nearest - zero_point) * scale) ** 2))
        if error <= best_error:
            best, best_error = frac_bits, error
    return TensorCode(fmt, math.ldexp(1.0, -best), zero_point)


def _output_code(node: FloatNode, samples: np.ndarray, fmt: ESBFormat, signed: bool) -> TensorCode:
    if signed:
        return _signed_code(samples, fmt, node.name)
    quantizer = ActivationQuantizer.calibrate(samples, fmt, "mse")
    return TensorCode(fmt, quantizer.scale, 0)


def _upper_level(node: FloatNode, code: TensorCode) -> int | None:
    if node.upper is None:
        return None
    level = golden.bound_level(node.upper, code.scale, code.fmt)
    return None if level >= code.fmt.max_level else level


def quantize_graph(graph: FloatGraph, recipe: QuantRecipe, calibration_images) -> IntegerGraph:
    """Post-training quantization of ``graph`` by ``recipe`` (the module docstring), calibrated on
    ``calibration_images`` (float ``(N, C, H, W)``; at most
    :data:`~esb_hw.frontend.quantize.CALIBRATION_IMAGES`). Raises :class:`InputError` naming the node for
    activations that are not finite or scales the integer arithmetic cannot hold."""
    images = _calibration_subset(graph.check_input(calibration_images))
    with np.errstate(over="ignore", invalid="ignore"):
        activations = graph.activations(images)
    for node in graph.nodes:
        if not np.all(np.isfinite(activations[node.name])):
            raise InputError(f"node {node.name!r}: the float graph's outputs are not finite on the calibration images")
    weighted = [node.name for node in graph.nodes if node.op in ("conv2d", "linear")]
    _, first_input, _ = recipe.layer_formats(0, len(weighted))
    input_quantizer = ActivationQuantizer.calibrate(images, first_input, "mse")
    codes = {INPUT: TensorCode(first_input, input_quantizer.scale, 0)}
    nodes = []
    for node in graph.nodes:
        inputs = tuple(codes[name] for name in node.inputs)
        samples = activations[node.name]
        last = node is graph.output
        signed = (not node.relu) and (last or np.min(samples) < 0 or any(code.zero_point for code in inputs))
        try:
            integer = _quantize_node(node, inputs, samples, signed, recipe, weighted, graph.shapes)
        except ValueError as error:
            raise InputError(f"node {node.name!r}: {error}") from None
        codes[node.name] = integer.output
        nodes.append(integer)
    return IntegerGraph(recipe, input_quantizer, nodes, dict(graph.shapes))


def _quantize_node(node: FloatNode, inputs: tuple[TensorCode, ...], samples: np.ndarray, signed: bool,
                   recipe: QuantRecipe, weighted: list[str], shapes: dict) -> IntegerNode:
    common = {"name": node.name, "op": node.op, "inputs": node.inputs, "input_codes": inputs, "kernel": node.kernel,
              "stride": node.stride, "padding": node.padding, "groups": node.groups}
    first = inputs[0]
    if node.op in ("max_pool", "flatten"):
        return IntegerNode(**common, output=first)
    if node.op == "add":
        output = _output_code(node, samples, recipe.activations, signed)
        params = golden.add_params(inputs[0].scale, inputs[1].scale, output.scale,
                                   (inputs[0].zero_point, inputs[1].zero_point, output.zero_point))
        return IntegerNode(**common, output=output, add=params, upper=_upper_level(node, output))
    if node.op in ("avg_pool", "global_avg_pool"):
        output = _output_code(node, samples, recipe.activations, signed)
        window = node.kernel ** 2 if node.op == "avg_pool" else int(np.prod(shapes[node.inputs[0]][1:]))
        real_scale = first.scale / (window * output.scale)
        params = golden.requant_params(real_scale, output.zero_point / real_scale if output.zero_point else None)
        return IntegerNode(**common, output=output, params=params)
    weights, _, output_format = recipe.layer_formats(weighted.index(node.name), len(weighted))
    output = _output_code(node, samples, output_format, signed)
    weight = node.weight
    unit = weights.unit(weight, recipe.scale_method)
    levels = weights.levels(weight, unit)
    weight_codes = None if weights.fmt is None else weights.fmt.code_of_level(levels)
    params = golden.fold_scales(unit, first.scale, output.scale, node.bias + output.zero_point * output.scale)
    return IntegerNode(**common, output=output, weights=weights, weight_levels=levels, weight_codes=weight_codes,
                       params=params, upper=_upper_level(node, output))


@dataclass(frozen=True, eq=False)
class Placement:
    """Where a node runs: ``engine`` (the built array; ``program`` is the node compiled alone, a
    :class:`esb_hw.compiler.program.Program` at base 0) or ``host`` (the golden model, with ``reason``)."""

    node: str
    where: str
    reason: str | None = None
    program: object | None = None

    def engine_input(self, inputs: list[np.ndarray]) -> np.ndarray:
        """The program's input codes ``(N, C', H, W)`` for the node's inputs' codes: the first input, or for a
        residual add both inputs' channels, the first's padded with code 0 to whole groups of the array's columns
        (:func:`_add_layer`)."""
        if len(inputs) == 1:
            return inputs[0]
        first, second = inputs
        cols = self.program.config.cols
        padded = -(-first.shape[1] // cols) * cols
        gap = np.zeros((len(first), padded - first.shape[1], *first.shape[2:]), dtype=first.dtype)
        return np.concatenate([first, gap, second], axis=1)


def _engine_layer(node: IntegerNode, shape: tuple[int, ...], config):
    """The compiler's layer for ``node`` and its input shape, or the reason the array cannot run it. An input zero
    point ``z`` (no padding) folds into the bias: the engine sums ``w * L``, and ``sum(w * (L - z)) = sum(w * L) - z
    * sum(w)``, exactly. A grouped or depthwise convolution keeps its groups (the compiler's tiles read only each
    row block's); an average pool is a depthwise convolution of weight level 1 over its window (a global one's
    window is the whole map), its ``1 / window`` already in the requantization; a residual add is
    :func:`_add_layer`."""
    from ..compiler.lowering import Layer

    if node.op == "add":
        return _add_layer(node, shape, config)
    params = node.params
    if node.op in ("avg_pool", "global_avg_pool"):
        channels, height, width = shape
        kernel = (node.kernel, node.kernel) if node.op == "avg_pool" else (height, width)
        codes = np.full((channels, 1, *kernel), int(config.weight_format.code_of_level(1)))
        sums = np.full(channels, kernel[0] * kernel[1])
        groups, stride = channels, node.stride if node.op == "avg_pool" else 1
        params = golden.RequantParams(*(np.broadcast_to(value, channels).copy()
                                        for value in (params.bias, params.multiplier, params.shift)))
    else:
        codes, groups, stride = node.weight_codes, node.groups, node.stride
        sums = node.weight_levels.reshape(len(node.weight_levels), -1).sum(axis=1)
    zero_point = node.input_codes[0].zero_point
    if zero_point:
        params = golden.RequantParams(params.bias - zero_point * sums, params.multiplier, params.shift)
    if node.op == "linear":  # a convolution whose kernel covers the whole input
        full = shape if len(shape) == 3 else (shape[0], 1, 1)
        return Layer("conv2d", codes.reshape(codes.shape[0], *full), params, node.output.fmt), full
    return Layer("conv2d", codes, params, node.output.fmt, stride=stride, padding=node.padding, groups=groups), shape


def _add_layer(node: IntegerNode, shape: tuple[int, ...], config):
    """A residual add ``y = (La * Ma + Lb * Mb + offset + 2**(S-1)) >> S`` as the array runs it, or the reason it
    cannot: a 1x1 convolution over both inputs' channels (``a``'s padded to whole groups of the columns, then
    ``b``'s), output ``c`` weighing ``a_c`` by ``wa`` and ``b_c`` by ``wb``, requantized by ``((acc + bias) * M +
    2**(S-1)) >> S``. That is the add exactly when ``Ma = M * wa``, ``Mb = M * wb`` and ``offset = M * bias`` for
    weight levels ``wa``, ``wb`` (power-of-two activation scales make ``Ma`` and ``Mb`` powers of two); the
    largest such ``M`` is used."""
    from ..compiler.lowering import Layer

    add, fmt = node.add, config.weight_format
    levels = {int(level) for level in fmt.integer_levels() if level > 0}
    choices = [(add.multiplier_a // wa, wa, add.multiplier_b // (add.multiplier_a // wa)) for wa in sorted(levels)
               if add.multiplier_a % wa == 0]
    exact = [(m, wa, wb) for m, wa, wb in choices
             if m < 1 << 16 and add.multiplier_b == m * wb and wb in levels and add.offset % m == 0]
    if not exact:
        return (f"residual add: its input scales (M = {add.multiplier_a} and {add.multiplier_b}) are not weight "
                f"levels of {fmt} times one multiplier")
    multiplier, wa, wb = max(exact)
    channels, height, width = shape if len(shape) == 3 else (shape[0], 1, 1)  # an add of two vectors: 1x1 maps
    padded = -(-channels // config.cols) * config.cols
    codes = np.zeros((channels, padded + channels, 1, 1), dtype=np.int64)
    codes[np.arange(channels), np.arange(channels)] = int(fmt.code_of_level(wa))
    codes[np.arange(channels), padded + np.arange(channels)] = int(fmt.code_of_level(wb))
    params = golden.RequantParams(np.full(channels, add.offset // multiplier), np.full(channels, multiplier),
                                  np.full(channels, add.shift))
    return Layer("conv2d", codes, params, node.output.fmt), (padded + channels, height, width)


def _host_reason(node: IntegerNode, config) -> str | None:
    """Why the built array (``config``) cannot run ``node``, or None if it may."""
    if node.op == "max_pool":
        return (f"{node.kernel}x{node.kernel} stride-{node.stride} max pool: in a graph a max pool runs on the host "
                "(the engine's fused 2x2 max pool is used by chains only)")
    if node.op == "flatten":
        return "a layout change, no arithmetic"
    if node.op in ("avg_pool", "global_avg_pool"):
        if 1 not in config.weight_format.integer_levels():
            return f"an average pool needs weight level 1, which {config.weight_format} lacks"
    elif node.op != "add":
        fmt = node.weights.fmt
        if fmt is None or not _same_format(fmt, config.weight_format):
            return f"weights {node.weights.label}, the array has {config.weight_format}"
    first = node.input_codes[0]
    for code in node.input_codes:
        if not _same_format(code.fmt, config.activation_format):
            return f"input {code.fmt}, the array has {config.activation_format}"
    if not _same_format(node.output.fmt, config.activation_format):
        return f"output {node.output.fmt}, the array has {config.activation_format}"
    if first.zero_point and node.padding:
        return (f"its input has zero point {first.zero_point} and it pads: the engine pads with level 0, not the "
                "zero point")
    if node.upper is not None:
        return f"a bound at level {node.upper} (ReLU6): the engine clamps at the format's top level only"
    return None


def place_graph(graph: IntegerGraph, config, *, progress=None, batch: int = 1) -> list[Placement]:
    """Per node: the built array (``config``) if it can run the node alone (a program of one layer and ``batch``
    images compiles; the graph's first layer may have its taps packed, as the host lays out the input), else the
    host, with the reason. ``progress``: called with one line per node compiled."""
    from ..compiler.program import compile_program

    placements = []
    for index, node in enumerate(graph.nodes):
        reason = _host_reason(node, config)
        if reason is None:
            engine = _engine_layer(node, graph.shapes[node.inputs[0]], config)
            if isinstance(engine, str):
                reason = engine
        if reason is None:
            layer, shape = engine
            try:
                program = compile_program(config, [layer], shape, batch=batch,
                                          pack_input="auto" if node.inputs[0] == INPUT else False)
            except InputError as error:
                reason = str(error).removeprefix("layer 0: ").removeprefix("layer 0 ")
            else:
                placements.append(Placement(node.name, "engine", None, program))
                if progress is not None:
                    progress(f"{index + 1}/{len(graph.nodes)} {node.name}: compiled, {len(program.tiles)} tiles")
                continue
        placements.append(Placement(node.name, "host", reason))
    return placements
