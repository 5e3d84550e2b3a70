"""Lowering conv2d and linear layers onto the weight-stationary array, by address generation (no im2col copy).

This module is the layer engine's schedule, in NumPy: what the hardware's address generator, weight loader,
requantization lanes and pooling do, in the same order and with the same data. :func:`execute` runs a schedule
on activation codes; ``tests/test_lowering.py`` checks it bit-exactly against the golden model
(``conv2d``/``linear``, ``requantize``, ``max_pool2x2``) on many shapes. The hardware then follows the schedule.

The layout and the loop nest (docs/architecture.md, "The layer engine"):

- an activation tensor ``(C, H, W)`` is stored as words of ``cols`` channels: word ``(g, y, x)`` holds channels
  ``g * cols .. g * cols + cols - 1`` of pixel ``(y, x)`` (channels past ``C`` are code 0);
- the reduction of an output pixel runs over **chunks** ``(ky, kx, g)``: kernel position, then channel group.
  The activation vector of output pixel ``(oy, ox)`` in chunk ``(ky, kx, g)`` is word
  ``(g, stride * oy + ky - padding, stride * ox + kx - padding)``, or zeros where that pixel is padding;
- output channels go in **row blocks** of ``rows``; output pixels in **pixel blocks** of up to ``entries``
  (the array's running sums per row). With ``pool``, pixels are ordered so that each 2x2 window's four outputs
  are consecutive (a window never straddles two blocks when ``entries`` is a multiple of 4), and the pooling is a
  running maximum over each group of four codes;
- for each row block and pixel block, the chunks run in order: the array holds chunk ``j``'s ``rows x cols``
  weights while chunk ``j + 1`` loads into its shadow bank, and the block's ``len(block)`` beats stream through.

A linear layer ``(N, I) -> (N, O)`` is a 1x1 convolution of ``N`` one-pixel images: its pixels are the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.lib import data

from ..config import AcceleratorConfig
from ..errors import InputError
from ..layouts import pack, requant_params_layout, weight_fields
from ..quant import golden
from ..quant.format import ESBFormat

__all__ = ["BufferImages", "Layer", "Schedule", "activation_image", "beat_sequence", "buffer_images",
           "execute", "geometry", "load_sequence", "lower", "param_image", "reference",
           "weight_image"]

KINDS = ("conv2d", "linear")


@dataclass(frozen=True)
class Layer:
    """An integer layer as the engine runs it.

    Attributes
    ----------
    kind : {"conv2d", "linear"}
    weight_codes : int array
        ``(O, C / groups, KH, KW)`` for conv2d, ``(O, I)`` for linear: codes of the config's weight format.
    params : golden.RequantParams
        One ``(bias, M, S)`` per output channel.
    output_format : ESBFormat
        The unsigned format of the output codes (the next layer's activations).
    stride, padding : int
    pool : bool
        2x2 max-pool after requantization (conv2d only).
    groups : int
        A grouped conv2d: ``C`` and ``O`` in ``groups`` equal groups, output channel ``o`` reading the input channels
        of its group only (``groups = C``: depthwise). The array runs its dense equal (:meth:`dense_codes`), and the
        compiler's tiles read only each row block's groups (:func:`esb_hw.compiler.program.sparse_groups`).
    """

    kind: str
    weight_codes: np.ndarray
    params: golden.RequantParams
    output_format: ESBFormat
    stride: int = 1
    padding: int = 0
    pool: bool = False
    groups: int = 1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        codes = np.asarray(self.weight_codes)
        if codes.ndim != (4 if self.kind == "conv2d" else 2):
            raise InputError(f"{self.kind} weights must be {'OIHW' if self.kind == 'conv2d' else 'OI'}, "
                             f"got shape {codes.shape}")
        if 0 in codes.shape:
            raise InputError(f"weights must not be empty, got shape {codes.shape}")
        if self.params.channels != codes.shape[0]:
            raise InputError(f"{self.params.channels} requantization channels for {codes.shape[0]} outputs")
        if self.stride < 1 or self.padding < 0:
            raise InputError(f"stride must be >= 1 and padding >= 0, got {self.stride} and {self.padding}")
        if self.pool and self.kind != "conv2d":
            raise InputError("pooling needs a conv2d layer")
        if self.groups < 1 or (self.groups > 1 and (self.kind != "conv2d" or codes.shape[0] % self.groups)):
            raise InputError(f"groups must be >= 1 and divide a conv2d's {codes.shape[0]} outputs, got {self.groups}")
        object.__setattr__(self, "weight_codes", codes.astype(np.int64))

    @property
    def kernel(self) -> tuple[int, int]:
        return tuple(self.weight_codes.shape[2:]) if self.kind == "conv2d" else (1, 1)

    @property
    def out_channels(self) -> int:
        return self.weight_codes.shape[0]

    @property
    def in_channels(self) -> int:
        return self.weight_codes.shape[1] * self.groups

    def dense_codes(self, first: int = 0, end: int | None = None) -> np.ndarray:
        """Output channels ``[first, end)``'s weight codes over every input channel: ``(end - first, C, KH, KW)``
        for a conv2d (code 0, level 0 in every format, outside a grouped layer's own group), ``(end - first, I)`` for
        a linear layer."""
        codes = self.weight_codes[first:end]
        if self.groups == 1:
            return codes
        per_group, per_output_group = codes.shape[1], self.out_channels // self.groups
        dense = np.zeros((len(codes), self.in_channels, *codes.shape[2:]), dtype=np.int64)
        for row, output in enumerate(range(first, first + len(codes))):
            group = output // per_output_group
            dense[row, group * per_group:(group + 1) * per_group] = codes[row]
        return dense


@dataclass(frozen=True)
class Schedule:
    """The engine's plan for one layer on one array (see the module docstring).

    Attributes
    ----------
    config, layer
    input_shape : (C, H, W)
        One image (conv2d), or ``(I, N, 1)`` for a linear layer's batch of ``N``.
    output_size : (Ho, Wo)
        Before pooling.
    chunks : list of (ky, kx, g)
    pixels : int array (P, 2)
        Output pixels ``(oy, ox)`` in the order they run (pooling windows consecutive).
    entries : int
    pad_top : int
        Zero rows above the input: the layer's padding, or for a band of a tiled layer
        (:mod:`esb_hw.compiler.program`) the padding rows that fall inside the band.
    row_step : int
        Input rows between the windows of two output rows: 0 for the layer's stride. A batch's flatten
        (:func:`esb_hw.compiler.program.batched_flatten`) steps by a whole image.
    input_groups : tuple or None
        Per row block, the input channel groups ``(first, step, count)`` its tiles read, when the weights leave
        most groups of most row blocks at zero (a grouped or depthwise convolution, a residual add:
        :func:`esb_hw.compiler.program.sparse_groups`); None: every group.
    """

    config: AcceleratorConfig
    layer: Layer
    input_shape: tuple[int, int, int]
    output_size: tuple[int, int]
    chunks: list[tuple[int, int, int]]
    pixels: np.ndarray
    entries: int
    pad_top: int
    row_step: int = 0
    input_groups: tuple[tuple[int, int, int], ...] | None = None

    @property
    def window_step(self) -> int:
        """Input rows from one output row's windows to the next's."""
        return self.row_step or self.layer.stride

    @property
    def groups(self) -> int:
        return -(-self.input_shape[0] // self.config.cols)

    @property
    def row_blocks(self) -> int:
        return -(-self.layer.out_channels // self.config.rows)

    @property
    def pixel_blocks(self) -> list[np.ndarray]:
        return [self.pixels[start: start + self.entries] for start in range(0, len(self.pixels), self.entries)]

    @property
    def macs(self) -> int:
        """Useful multiply-accumulates: output elements times the reduction length (a group's, when grouped)."""
        kh, kw = self.layer.kernel
        return self.layer.out_channels * len(self.pixels) * (self.input_shape[0] // self.layer.groups) * kh * kw

    def beats(self) -> int:
        """Array beats: one per pixel, chunk and row block."""
        return self.row_blocks * len(self.pixels) * len(self.chunks)

    def source_words(self, chunk: tuple[int, int, int], pixels: np.ndarray) -> np.ndarray:
        """The activation word ``(g, y, x)`` each pixel reads in ``chunk``, as a flat index
        ``(g * H + y) * W + x``, or -1 where the pixel is padding (the beat carries zeros)."""
        ky, kx, g = chunk
        _, height, width = self.input_shape
        stride, padding = self.layer.stride, self.layer.padding
        y = self.window_step * pixels[:, 0] + ky - self.pad_top
        x = stride * pixels[:, 1] + kx - padding
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        return np.where(inside, (g * height + y) * width + x, -1)

    def weight_chunk(self, row_block: int, chunk: tuple[int, int, int]) -> np.ndarray:
        """The ``rows x cols`` weight codes the array holds for ``chunk`` of ``row_block`` (code 0 beyond the
        layer's channels)."""
        rows, cols = self.config.rows, self.config.cols
        ky, kx, g = chunk
        codes = self.layer.dense_codes(row_block * rows, (row_block + 1) * rows)
        if self.layer.kind == "linear":
            codes = codes[:, :, None, None]
        block = np.zeros((rows, cols), dtype=np.int64)
        out = codes[:, g * cols: (g + 1) * cols, ky, kx]
        block[: out.shape[0], : out.shape[1]] = out
        return block


def _pixel_order(height: int, width: int, pool: bool) -> np.ndarray:
    """Output pixels in raster order, or with each 2x2 pooling window's four pixels consecutive (window by
    window in raster order; rows and columns that no window covers are dropped, as the pooling drops them)."""
    if not pool:
        ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        return np.stack([ys.ravel(), xs.ravel()], axis=1)
    qy, qx, dy, dx = np.meshgrid(np.arange(height // 2), np.arange(width // 2), np.arange(2), np.arange(2),
                                 indexing="ij")
    return np.stack([(2 * qy + dy).ravel(), (2 * qx + dx).ravel()], axis=1)


def lower(config: AcceleratorConfig, layer: Layer, input_shape, *, entries: int = 32,
          check_reduction: bool = True) -> Schedule:
    """The schedule of ``layer`` on the array of ``config`` for an input of ``input_shape``: ``(C, H, W)`` for a
    conv2d, ``(N, I)`` for a linear layer.

    Raises
    ------
    InputError
        If the shapes disagree, the kernel is larger than the padded input, the reduction exceeds
        ``max_reduction``, pooling has no 2x2 window, or ``entries`` is not a multiple of 4 with pooling.
    """
    input_shape = tuple(int(size) for size in input_shape)
    if layer.kind == "linear":
        if len(input_shape) != 2:
            raise InputError(f"a linear layer takes (N, I), got input shape {input_shape}")
        batch, features = input_shape
        if features != layer.in_channels:
            raise InputError(f"the input has {features} features but the weights expect {layer.in_channels}")
        shape = (features, batch, 1)
        output_size = (batch, 1)
    else:
        if len(input_shape) != 3:
            raise InputError(f"a conv2d layer takes (C, H, W), got input shape {input_shape}")
        if input_shape[0] != layer.in_channels:
            raise InputError(f"the input has {input_shape[0]} channels but the weights expect {layer.in_channels}")
        shape = input_shape
        kh, kw = layer.kernel
        padded_h, padded_w = shape[1] + 2 * layer.padding, shape[2] + 2 * layer.padding
        if padded_h < kh or padded_w < kw:
            raise InputError(f"kernel {kh}x{kw} is larger than the padded input {padded_h}x{padded_w}")
        output_size = ((padded_h - kh) // layer.stride + 1, (padded_w - kw) // layer.stride + 1)
    kh, kw = layer.kernel
    if check_reduction and shape[0] * kh * kw > config.max_reduction:
        raise InputError(f"a reduction of {shape[0] * kh * kw} exceeds max_reduction {config.max_reduction}")
    if layer.pool and min(output_size) < 2:
        raise InputError(f"2x2 pooling needs an output of at least 2x2, got {output_size[0]}x{output_size[1]}")
    if layer.pool and entries % 4:
        raise InputError(f"with pooling, entries must be a multiple of 4, got {entries}")
    groups = -(-shape[0] // config.cols)
    chunks = [(ky, kx, g) for ky in range(kh) for kx in range(kw) for g in range(groups)]
    pixels = _pixel_order(*output_size, layer.pool)
    return Schedule(config, layer, shape, output_size, chunks, pixels, entries, layer.padding)


def _words(schedule: Schedule, codes: np.ndarray) -> np.ndarray:
    """The activation words of ``codes`` ``(C, H, W)``: ``(groups * H * W, cols)`` levels, zero-padded channels."""
    cols = schedule.config.cols
    channels, height, width = schedule.input_shape
    levels = np.zeros((schedule.groups * cols, height, width), dtype=np.int64)
    levels[:channels] = schedule.config.activation_format.level(codes)
    return levels.reshape(schedule.groups, cols, height * width).transpose(0, 2, 1).reshape(-1, cols)


def execute(schedule: Schedule, activation_codes) -> np.ndarray:
    """Run ``schedule`` on activation codes the way the engine does: per row block and pixel block, the chunks'
    weight blocks times the addressed activation words into ``entries`` running sums, then requantization and
    the pooling's running maximum. Returns output codes: ``(O, Ho, Wo)`` (pooled if the layer pools) for a
    conv2d, ``(N, O)`` for a linear layer."""
    config, layer = schedule.config, schedule.layer
    codes = np.asarray(activation_codes)
    if layer.kind == "linear":
        codes = codes.T[:, :, None]  # (I, N, 1)
    if codes.shape != schedule.input_shape:
        raise InputError(f"activation codes of shape {np.asarray(activation_codes).shape} do not match the "
                         f"schedule's input {schedule.input_shape}")
    words = np.vstack([_words(schedule, codes), np.zeros((1, config.cols), dtype=np.int64)])  # row -1: padding
    height, width = schedule.output_size
    if layer.pool:
        out = np.zeros((layer.out_channels, height // 2, width // 2), dtype=np.int64)
    else:
        out = np.zeros((layer.out_channels, height, width), dtype=np.int64)
    weight_levels = {}
    for row_block in range(schedule.row_blocks):
        channels = np.arange(row_block * config.rows, min((row_block + 1) * config.rows, layer.out_channels))
        params = golden.RequantParams(bias=layer.params.bias[channels], multiplier=layer.params.multiplier[channels],
                                      shift=layer.params.shift[channels])
        for block in schedule.pixel_blocks:
            sums = np.zeros((len(block), config.rows), dtype=np.int64)
            for chunk in schedule.chunks:
                key = (row_block, chunk)
                if key not in weight_levels:
                    weight_levels[key] = config.weight_format.level(schedule.weight_chunk(row_block, chunk))
                sums += words[schedule.source_words(chunk, block)] @ weight_levels[key].T
            # The block's sums leave pixel by pixel, each row's through the requantization of its channel.
            block_codes = golden.requantize(sums[:, : len(channels)], params, layer.output_format, relu=True,
                                            channel_axis=1).astype(np.int64)
            if layer.pool:  # a running maximum over each four consecutive pixels: one pooling window
                pooled = block_codes.reshape(-1, 4, len(channels)).max(axis=1)
                corners = block[::4]
                out[channels[:, None], corners[None, :, 0] // 2, corners[None, :, 1] // 2] = pooled.T
            else:
                out[channels[:, None], block[None, :, 0], block[None, :, 1]] = block_codes.T
    out = out.astype(layer.output_format.code_dtype)
    if layer.kind == "linear":
        return out[:, :, 0].T
    return out


def reference(config: AcceleratorConfig, layer: Layer, activation_codes) -> np.ndarray:
    """The golden model's output codes for ``layer`` (the specification :func:`execute` must equal)."""
    levels = config.activation_format.level(np.asarray(activation_codes))
    weights = config.weight_format.level(layer.weight_codes)
    if layer.kind == "linear":
        acc = golden.linear(levels, weights)
        return golden.requantize(acc, layer.params, layer.output_format, relu=True, channel_axis=1)
    acc = golden.conv2d(levels[None], weights, stride=layer.stride, padding=layer.padding, groups=layer.groups)
    codes = golden.requantize(acc, layer.params, layer.output_format, relu=True, channel_axis=1)
    if layer.pool:
        codes = golden.max_pool2x2(codes)
    return codes[0]


def beat_sequence(schedule: Schedule) -> list[tuple[int, int, int, int, int]]:
    """Every array beat in order: ``(word, entry, swap, first, last)``, ``word`` -1 for padding (zeros)."""
    beats = []
    for _ in range(schedule.row_blocks):
        for block in schedule.pixel_blocks:
            for index, chunk in enumerate(schedule.chunks):
                words = schedule.source_words(chunk, block)
                beats += [(int(word), entry, int(entry == 0), int(index == 0), int(index == len(schedule.chunks) - 1))
                          for entry, word in enumerate(words)]
    return beats


def load_sequence(schedule: Schedule) -> list[tuple[int, int]]:
    """Every weight load in order: ``(weight-buffer address, array row)``. The buffer holds the layer's weight
    chunks row block by row block, chunk by chunk, ``rows`` words each (:meth:`Schedule.weight_chunk`)."""
    rows, chunks = schedule.config.rows, len(schedule.chunks)
    loads = []
    for row_block in range(schedule.row_blocks):
        for _ in schedule.pixel_blocks:
            for index in range(chunks):
                base = (row_block * chunks + index) * rows
                loads += [(base + row, row) for row in range(rows)]
    return loads


def geometry(schedule: Schedule) -> dict:
    """The :func:`esb_hw.layouts.geometry_layout` record of ``schedule``: the walk's limits and the address
    steps that the sequencer adds, so that the hardware multiplies nothing."""
    layer = schedule.layer
    channels, height, width = schedule.input_shape
    out_h, out_w = schedule.output_size
    stride, padding = layer.stride, layer.padding
    kh, kw = layer.kernel
    groups = schedule.groups
    if layer.pool:
        limits = [out_h // 2, out_w // 2, 2, 2]
        # Steps of (oy, ox) when counter y, x, dy or dx steps (the inner ones wrapping to 0).
        oy_steps = [1, -1, 1, 0]
        ox_steps = [-(2 * (out_w // 2) - 1), 1, -1, 1]
    else:
        limits = [out_h, out_w, 1, 1]
        oy_steps = [1, 0, 0, 0]
        ox_steps = [-(out_w - 1), 1, 0, 0]
    y_steps = [schedule.window_step * step for step in oy_steps]
    x_steps = [stride * step for step in ox_steps]
    return {
        "limits": limits,
        "p_origin": -schedule.pad_top * width - padding,
        "p_steps": [dy * width + dx for dy, dx in zip(y_steps, x_steps, strict=True)],
        "y_steps": y_steps, "x_steps": x_steps,
        "pad_top": schedule.pad_top, "pad_left": padding, "in_height": height, "in_width": width,
        "kernel_h": kh, "kernel_w": kw, "groups": groups,
        "group_step": height * width,
        "kx_step": 1 - (groups - 1) * height * width,
        "ky_step": width - (kw - 1) - (groups - 1) * height * width,
        "row_blocks": schedule.row_blocks,
        "pixel_blocks": len(schedule.pixel_blocks),
        "block": schedule.entries,
        "pool": int(layer.pool),
        "output_pixels": len(schedule.pixels) // (4 if layer.pool else 1),
    }


@dataclass(frozen=True)
class BufferImages:
    """The on-chip buffers' contents for a layer (packed words, as the layouts define them) and the output
    buffer's expected contents.

    Attributes
    ----------
    activations : list of int
        Words ``(g, y, x)`` of ``cols`` codes.
    weights : list of int
        Per row block, chunk and array row: ``cols`` weights (:func:`esb_hw.layouts.weight_encoding`).
    params : list of int
        Per output channel, padded to whole row blocks: :func:`esb_hw.layouts.requant_params_layout` (``M = 0``,
        ``S = 1`` for the padding channels, whose codes are 0).
    outputs : list of int
        Per row block and output pixel (or pooling window) in raster order: ``rows`` codes.
    """

    activations: list[int]
    weights: list[int]
    params: list[int]
    outputs: list[int]


def activation_image(schedule: Schedule, activation_codes) -> list[int]:
    """The activation words ``(g, y, x)`` of ``activation_codes`` (``(C, H, W)``, or ``(N, I)`` for linear) as
    packed ``cols``-code words (channels past ``C`` are code 0)."""
    config = schedule.config
    cols = config.cols
    codes = np.asarray(activation_codes)
    inputs = codes.T[:, :, None] if schedule.layer.kind == "linear" else codes
    channels, height, width = schedule.input_shape
    padded = np.zeros((schedule.groups * cols, height, width), dtype=np.int64)
    padded[:channels] = inputs
    word_codes = padded.reshape(schedule.groups, cols, height * width).transpose(0, 2, 1).reshape(-1, cols)
    layout = data.ArrayLayout(config.activation_format.bits, cols)
    return [pack(layout, word.tolist()) for word in word_codes]


def weight_image(schedule: Schedule) -> list[int]:
    """The weight words: per row block, chunk and array row, ``cols`` weights (:func:`esb_hw.layouts.weight_fields`)."""
    config = schedule.config
    layout = data.ArrayLayout(config.weight_format.bits, config.cols)
    words = []
    for row_block in range(schedule.row_blocks):
        for chunk in schedule.chunks:
            fields = weight_fields(config, schedule.weight_chunk(row_block, chunk))
            words += [pack(layout, row.tolist()) for row in fields]
    return words


def param_image(schedule: Schedule) -> list[int]:
    """The parameter words: per output channel, padded to whole row blocks, :func:`requant_params_layout`
    (``M = 0``, ``S = 1`` for the padding channels, whose codes are then 0)."""
    config, layer = schedule.config, schedule.layer
    layout = requant_params_layout(config)
    words = []
    for channel in range(schedule.row_blocks * config.rows):
        if channel < layer.out_channels:
            words.append(pack(layout, {"bias": int(layer.params.bias[channel]),
                                       "multiplier": int(layer.params.multiplier[channel]),
                                       "shift": int(layer.params.shift[channel])}))
        else:
            words.append(pack(layout, {"bias": 0, "multiplier": 0, "shift": 1}))
    return words


def buffer_images(schedule: Schedule, activation_codes) -> BufferImages:
    """What the layer engine's buffers hold for ``schedule`` run on ``activation_codes``, and the output
    buffer it must produce (from :func:`execute`, which equals the golden model)."""
    config, layer = schedule.config, schedule.layer
    if config.rows != config.cols:
        raise InputError(f"the layer engine needs a square array, got {config.rows}x{config.cols}")
    rows = config.rows
    activation_layout = data.ArrayLayout(config.activation_format.bits, config.cols)
    activations = activation_image(schedule, activation_codes)
    weights, params = weight_image(schedule), param_image(schedule)
    result = execute(schedule, activation_codes)
    planes = result.T[:, :, None] if layer.kind == "linear" else result  # (O, Ho', Wo')
    out = np.zeros((schedule.row_blocks * rows, *planes.shape[1:]), dtype=np.int64)
    out[: layer.out_channels] = planes
    per_block = out.reshape(schedule.row_blocks, rows, -1).transpose(0, 2, 1).reshape(-1, rows)
    outputs = [pack(activation_layout, word.tolist()) for word in per_block]
    return BufferImages(activations, weights, params, outputs)

