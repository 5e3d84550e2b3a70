"""Programs for the layer engine: layers become tiles, tiles become descriptors, and everything one memory image.

A **program** runs a chain of layers, each layer's output codes feeding the next (docs/memory.md):

- a layer is cut into **tiles** that fit the buffers' banks: ``row_blocks`` of output channels times a
  **band** of output rows. A band reads the input rows its kernel window covers (with its own top padding), all
  channel groups; a tile loads its row blocks' weights and parameters, and writes its row blocks' part of the
  band's outputs;
- each tile is one :func:`~esb_hw.layouts.descriptor_layout` record; the engine runs them in order, loading tile
  ``i + 1`` while tile ``i`` computes and storing tile ``i - 1`` (double buffering). Tiles go row blocks first,
  then bands, and every band but the first ``reuse_weights``: a set of row blocks' weights is loaded once. The
  first tile of each layer after the first is a ``barrier``: it waits until the previous layer's outputs are all in
  memory;
- the image holds, 4 KiB aligned: the descriptors, the input activations, then per layer its weights, its
  parameters and the space for its outputs. Activations (and outputs) are words ``(g, y, x)`` of ``cols`` codes;
  a linear layer's batch of ``N`` is ``N`` pixels of one row;
- a conv layer whose weights leave most input channel groups of its row blocks at zero (a grouped or depthwise
  convolution as its dense equal, or a residual add as a 1x1 convolution of the two inputs' channels) has
  **group-sparse** tiles (:func:`sparse_groups`): one row block each, reading and weighing only the groups its
  weights touch, an arithmetic progression of planes (one transfer of ``count`` segments ``step`` planes apart);
- a **batch** of ``N`` images (``compile_program(..., batch=N)``) stores each tensor's images one under the other
  in every channel group (words ``(g, n, y, x)``: the images stacked along the rows). A conv layer runs its tiles
  image by image, each set of row blocks for all images before the next set (its weights load once per batch), and
  layers overlap across images as they do across tiles; a linear layer after the convs (the flatten) runs the
  batch as ``N`` pixels, its window stepping a whole image (:func:`batched_flatten`), so each weight chunk serves
  ``N`` images.

:func:`compile_program` rejects, with the reason, a chain the config cannot run. :func:`predicted_cycles`
estimates a program's cycles from start to done, tile by tile (a MODEL, checked against simulation).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from amaranth.lib import data

from ..config import AcceleratorConfig
from ..contract.checks import window_failure
from ..contract.limits import MAX_BATCH, MAX_KERNEL, MAX_PADDING, PAGE_BYTES, STRIDES
from ..errors import InputError
from ..layouts import (
    DESCRIPTOR_BYTES,
    ENGINE_ERRORS,
    GEOMETRY_COUNT_BITS,
    GEOMETRY_SIZE_BITS,
    MEMORY_BEAT_BYTES,
    TRANSFER_SEGMENT_BITS,
    TRANSFER_WORD_BITS,
    buffer_word_bits,
    descriptor_image,
    engine_error,
    load_crc,
    memory_word_bytes,
    pack,
    pack_memory_words,
    unpack,
    unpack_memory_words,
)
from .lowering import (
    Layer,
    Schedule,
    _pixel_order,
    activation_image,
    geometry,
    lower,
    param_image,
    weight_image,
)
from .packing import TapPacking, pack_taps, worth_packing
from .timeline import MEMORY_MODEL, EngineTimeline, MemoryTiming

__all__ = ["Program", "Tile", "compile_program", "descriptor_error", "input_image", "predicted_beats",
           "program_error", "predicted_cycles", "read_output", "run_in_numpy"]

REGION_ALIGNMENT = PAGE_BYTES
ENGINE_ERROR_CODES = {name: code for code, (name, _) in ENGINE_ERRORS.items()}


@dataclass(frozen=True)
class Tile:
    """One descriptor: ``row_blocks`` ``[first, end)`` of layer ``layer`` on output rows ``band`` ``[first, end)``
    (before pooling) of image ``image`` of the batch, reading input rows ``input_rows``; ``schedule`` is its own
    lowering (the sub-layer of its channels on the band's input)."""

    layer: int
    row_blocks: tuple[int, int]
    band: tuple[int, int]
    input_rows: tuple[int, int]
    schedule: Schedule
    descriptor: dict
    image: int = 0

    @property
    def macs(self) -> int:
        return self.schedule.macs


@dataclass(frozen=True)
class Program:
    """A compiled chain of layers.

    Attributes
    ----------
    config : AcceleratorConfig
    layers : list of Layer
    shapes : list of tuple
        Each layer's input shape (``(C, H, W)`` of one image, or ``(N, I)``), then the last layer's output shape.
    schedules : list of Schedule
        Each whole layer's lowering (of one image, for a conv layer of a batch: :attr:`layer_images`).
    tiles : list of Tile
    image : bytes
        The memory image from ``base``: descriptors, input, weights and parameters; output space is zero.
    regions : dict
        Name -> ``(address, bytes)``: ``descriptors``, ``input``, ``weights_<i>``, ``params_<i>``, ``output_<i>``.
    base : int
        The image's address in memory.
    input_packing : TapPacking or None
        The first layer's taps packed onto the columns (:mod:`esb_hw.compiler.packing`): ``layers[0]`` is then the
        packed 1x1 layer, ``shapes[0]`` the packed input's shape, and :func:`input_image` packs the input codes.
    batch : int
        Images per run: the input codes are ``(batch, C, H, W)`` when ``batch > 1``.
    """

    config: AcceleratorConfig
    layers: list[Layer]
    shapes: list[tuple[int, ...]]
    schedules: list[Schedule]
    tiles: list[Tile]
    image: bytes
    regions: dict[str, tuple[int, int]] = field(default_factory=dict)
    base: int = 0
    input_packing: TapPacking | None = None
    batch: int = 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of the input codes the program takes (before any packing): ``(batch, C, H, W)`` for a batch."""
        shape = self.input_packing.input_shape if self.input_packing is not None else self.shapes[0]
        return (self.batch, *shape) if self.batch > 1 else shape

    @property
    def layer_images(self) -> list[int]:
        """Per layer, how many times its schedule runs: ``batch`` for a conv layer (one image each), 1 for a layer
        that takes the batch as pixels (a linear layer)."""
        return _layer_images(self.schedules, self.shapes, self.batch)

    @property
    def program_address(self) -> int:
        return self.regions["descriptors"][0]

    @property
    def macs(self) -> int:
        """The multiply-accumulates the array performs: every tile's (a group-sparse tile's zeros inside its
        groups included)."""
        return sum(tile.macs for tile in self.tiles)

    @property
    def memory_size(self) -> int:
        """The smallest memory window that holds the program (``MEMORY_SIZE``): to the image's end, in whole
        beats."""
        end = self.base + len(self.image)
        return end + -end % MEMORY_BEAT_BYTES

    def output_region(self, layer: int = -1) -> tuple[int, int]:
        return self.regions[f"output_{layer % len(self.layers)}"]


def _layer_images(schedules: list[Schedule], shapes: list, batch: int) -> list[int]:
    return [batch if len(shape) == 3 and not schedule.row_step else 1
            for schedule, shape in zip(schedules, shapes, strict=False)]


def _align(value: int, alignment: int = REGION_ALIGNMENT) -> int:
    return -(-value // alignment) * alignment


def _output_shape(schedule: Schedule) -> tuple[int, ...]:
    layer = schedule.layer
    height, width = schedule.output_size
    if layer.kind == "linear" or schedule.row_step:
        return (height, layer.out_channels)
    if layer.pool:
        height, width = height // 2, width // 2
    return (layer.out_channels, height, width)


def _check_layer(config: AcceleratorConfig, index: int, layer: Layer, schedule: Schedule) -> None:
    where = f"layer {index}"
    kh, kw = layer.kernel
    if max(kh, kw) > MAX_KERNEL:
        raise InputError(f"{where}: kernel {kh}x{kw} is not supported (1x1 to {MAX_KERNEL}x{MAX_KERNEL})")
    if layer.stride not in STRIDES:
        raise InputError(f"{where}: stride {layer.stride} is not supported ({' or '.join(map(str, STRIDES))})")
    if layer.padding > MAX_PADDING:
        raise InputError(f"{where}: padding {layer.padding} is not supported (0..{MAX_PADDING})")
    channels, height, width = schedule.input_shape
    groups = _tile_groups(schedule)  # what one tile reads: every group, or a group-sparse tile's own
    channels = min(channels, groups * config.cols)
    if channels * kh * kw > config.max_reduction:
        raise InputError(f"{where}: a reduction of {channels * kh * kw} exceeds max_reduction {config.max_reduction}")
    limits = {"input height": height, "input width": width, "input channels": channels,
              "output height": schedule.output_size[0], "output width": schedule.output_size[1]}
    for name, value in limits.items():
        if value >= 1 << GEOMETRY_SIZE_BITS:
            raise InputError(f"{where}: {name} {value} exceeds {(1 << GEOMETRY_SIZE_BITS) - 1}")
    if groups >= 1 << GEOMETRY_COUNT_BITS:
        raise InputError(f"{where}: {groups} channel groups exceed {(1 << GEOMETRY_COUNT_BITS) - 1}")
    fmt, wanted = layer.output_format, config.activation_format
    if (fmt.bits, fmt.k, fmt.signed) != (wanted.bits, wanted.k, wanted.signed):
        raise InputError(f"{where}: output format {fmt} differs from the config's activations {wanted}")


def sparse_groups(schedule: Schedule) -> tuple[tuple[int, int, int], ...] | None:
    """Per row block of a conv2d layer, the input channel groups its weights touch, as ``(first, step, count)``: the
    groups with a non-zero weight level if they are evenly spaced, else every group from the first such to the
    last (a row block of zeros reads group 0 alone). None (every group, the dense tiles) unless that at least
    halves the layer's chunks."""
    layer, config = schedule.layer, schedule.config
    groups = schedule.groups
    if layer.kind != "conv2d" or groups == 1:
        return None
    rows, cols = config.rows, config.cols
    nonzero = np.zeros((schedule.row_blocks * rows, groups * cols), dtype=bool)
    if layer.groups > 1:  # a grouped layer: each output channel's own group
        per_group, per_output_group = layer.weight_codes.shape[1], layer.out_channels // layer.groups
        for output in range(layer.out_channels):
            group = output // per_output_group
            nonzero[output, group * per_group:(group + 1) * per_group] = True
    else:
        levels = config.weight_format.level(layer.weight_codes)
        nonzero[:layer.out_channels, :layer.in_channels] = (levels != 0).any(axis=(2, 3))
    used = nonzero.reshape(schedule.row_blocks, rows, groups, cols).any(axis=(1, 3))
    plan = []
    for row_block in used:
        touched = np.flatnonzero(row_block)
        if len(touched) <= 1:
            plan.append((int(touched[0]) if len(touched) else 0, 1, 1))
            continue
        steps = set(np.diff(touched).tolist())
        step = steps.pop() if len(steps) == 1 else 1
        plan.append((int(touched[0]), step, (int(touched[-1]) - int(touched[0])) // step + 1))
    if 2 * sum(count for *_, count in plan) > schedule.row_blocks * groups:
        return None
    return tuple(plan)


def _tile_groups(schedule: Schedule) -> int:
    """The most input channel groups a tile of ``schedule`` reads."""
    if schedule.input_groups is None:
        return schedule.groups
    return max(count for *_, count in schedule.input_groups)


def _tile_shape(config: AcceleratorConfig, index: int, schedule: Schedule) -> tuple[int, int]:
    """The largest tile (row blocks, output rows per band) that fits the buffers: as many row blocks as fit,
    then as many rows as fit (one row block a tile for a group-sparse layer). Raises :class:`InputError` naming the
    buffer that cannot hold the smallest tile."""
    rows = config.rows
    layer = schedule.layer
    channels, height, width = schedule.input_shape
    out_height, out_width = schedule.output_size
    kh, kw = layer.kernel
    groups = _tile_groups(schedule)
    chunks = kh * kw * groups
    step = 2 if layer.pool else 1
    usable_height = out_height - out_height % 2 if layer.pool else out_height

    def input_rows(band: int) -> int:
        return min(height, (band - 1) * schedule.window_step + kh)

    def output_words(band: int) -> int:
        return (band // 2) * (out_width // 2) if layer.pool else band * out_width

    where = f"layer {index}"
    needs = [("weight", chunks * rows, config.weight_words), ("param", rows, config.param_words),
             ("activation", groups * input_rows(step) * width, config.activation_words),
             ("output", output_words(step), config.output_words)]
    for name, need, have in needs:
        if need > have:
            raise InputError(f"{where} does not fit: its smallest tile needs {need} {name} words, the buffer "
                             f"has {have} per bank (raise engine.{name}_words)")
    if output_words(step) >= 1 << TRANSFER_WORD_BITS:
        raise InputError(f"{where}: an output row needs more than {(1 << TRANSFER_WORD_BITS) - 1} words")
    most_row_blocks = min(schedule.row_blocks, config.weight_words // (chunks * rows), config.param_words // rows,
                          config.output_words // output_words(step), (1 << TRANSFER_SEGMENT_BITS) - 1,
                          (1 << GEOMETRY_COUNT_BITS) - 1)
    if schedule.input_groups is not None:
        most_row_blocks = 1

    def longest_band(row_blocks: int) -> int:
        band = step
        while band + step <= usable_height:
            grown = band + step
            if (groups * input_rows(grown) * width > config.activation_words
                    or row_blocks * output_words(grown) > config.output_words
                    or output_words(grown) >= 1 << TRANSFER_WORD_BITS):
                break
            band = grown
        return band

    # Among a few tile shapes, the one the cycle model says is fastest: big tiles load fewer weights again, but
    # the first tile's load and the last one's store are not hidden behind computation.
    def modelled(shape: tuple[int, int]) -> tuple[int, int]:
        tiles = describe_layer(config, index, schedule, _cut(schedule, *shape), 0, REGION_ALIGNMENT,
                               2 * REGION_ALIGNMENT, 3 * REGION_ALIGNMENT)
        cycles = EngineTimeline(config).run([(tile.descriptor, tile.schedule) for tile in tiles])
        return cycles, len(tiles)

    candidates = set()
    for row_blocks in {most_row_blocks, -(-most_row_blocks // 2), -(-most_row_blocks // 4), 1}:
        band = longest_band(row_blocks)
        for divisor in (1, 2, 4, 8):
            candidates.add((row_blocks, max(step, band // divisor // step * step)))
    fitting = [shape for shape in sorted(candidates) if _fits(config, schedule, _cut(schedule, *shape))]
    if not fitting:
        raise InputError(f"{where} does not fit: a band of padding rows only must merge into its neighbour, and "
                         "the merged band does not fit the buffers (raise engine.output_words)")
    return min(fitting, key=modelled)


def _sub_layer(schedule: Schedule, row_blocks: tuple[int, int]) -> tuple[Layer, list, int]:
    """The layer of ``row_blocks``' output channels as its tiles run it: its chunks and input channels. A
    group-sparse tile's layer reads only its groups' channels, in the order the buffer holds their planes."""
    config, layer = schedule.config, schedule.layer
    rows, cols = config.rows, config.cols
    first, end = row_blocks[0] * rows, min(row_blocks[1] * rows, layer.out_channels)
    params = type(layer.params)(bias=layer.params.bias[first:end], multiplier=layer.params.multiplier[first:end],
                                shift=layer.params.shift[first:end])
    codes = layer.dense_codes(first, end)
    channels, chunks = schedule.input_shape[0], schedule.chunks
    if schedule.input_groups is not None:
        group, step, count = schedule.input_groups[row_blocks[0]]
        chosen = np.concatenate([np.arange(g * cols, min((g + 1) * cols, channels))
                                 for g in range(group, group + step * count, step)])
        codes, channels = codes[:, chosen], len(chosen)
        kh, kw = layer.kernel
        chunks = [(ky, kx, g) for ky in range(kh) for kx in range(kw) for g in range(count)]
    sub = Layer(layer.kind, codes, params, layer.output_format, stride=layer.stride, padding=layer.padding,
                pool=layer.pool)  # dense: the row block's codes over the tile's channels
    return sub, chunks, channels


def _tile_schedule(schedule: Schedule, row_blocks: tuple[int, int], band: tuple[int, int]) -> tuple[Schedule, tuple]:
    config, layer = schedule.config, schedule.layer
    sub, chunks, channels = _sub_layer(schedule, row_blocks)
    width = schedule.input_shape[2]
    top = schedule.window_step * band[0] - schedule.pad_top  # the band's first window row in input coordinates
    input_first, input_end = _band_input_rows(schedule, band)
    pixels = _pixel_order(band[1] - band[0], schedule.output_size[1], layer.pool)
    tile = Schedule(config, sub, (channels, input_end - input_first, width), (band[1] - band[0],
                    schedule.output_size[1]), chunks, pixels, balanced_block(len(pixels), schedule.entries,
                                                                             layer.pool),
                    input_first - top, schedule.row_step)
    return tile, (input_first, input_end)


def _weight_offsets(schedule: Schedule) -> list[int]:
    """Each row block's first word in the layer's weight region, then the region's length in words: its chunks'
    ``rows`` words each, row block after row block."""
    kh, kw = schedule.layer.kernel
    counts = ([schedule.groups] * schedule.row_blocks if schedule.input_groups is None
              else [count for *_, count in schedule.input_groups])
    offsets = [0]
    for count in counts:
        offsets.append(offsets[-1] + count * kh * kw * schedule.config.rows)
    return offsets


def _weight_region(schedule: Schedule) -> list[int]:
    """The words of a layer's weight region (:func:`_weight_offsets`): each row block's
    :func:`~esb_hw.compiler.lowering.weight_image` of its tiles' layer."""
    if schedule.input_groups is None:
        return weight_image(schedule)
    words = []
    for row_block in range(schedule.row_blocks):
        sub, chunks, channels = _sub_layer(schedule, (row_block, row_block + 1))
        words += weight_image(Schedule(schedule.config, sub, (channels, 1, 1), (1, 1), chunks,
                                       _pixel_order(1, 1, False), schedule.entries, 0))
    return words


def balanced_block(pixels: int, entries: int, pool: bool) -> int:
    """Pixels per block: as few blocks as ``entries`` allow, of nearly equal sizes (a multiple of 4 with pooling).
    A short last block would cost a whole weight hand-off per chunk (``rows + 4`` cycles) for a few beats."""
    blocks = -(-pixels // entries)
    block = -(-pixels // blocks)
    if pool:
        block = min(entries, -(-block // 4) * 4)
    return block


def _transfer(address: int, words: int, segments: int = 1, stride: int = 0) -> dict:
    return {"address": address, "stride": stride, "words": words, "segments": segments}


def compile_program(config: AcceleratorConfig, layers, input_shape, activation_codes=None, *,
                    base: int = 0, pack_input: bool | str = False, batch: int = 1) -> Program:
    """Compile ``layers`` (a chain) for an input of ``input_shape`` into tiles, descriptors and a memory image
    placed at ``base`` (4 KiB aligned), with ``activation_codes`` as the input (zeros if None).

    ``batch``: images per run for a chain that starts with a conv layer (``input_shape`` is one image's
    ``(C, H, W)``; ``activation_codes`` are then ``(batch, C, H, W)``). A chain that starts with a linear layer
    takes its batch as the ``N`` of its ``(N, I)`` input.

    ``pack_input``: pack the first conv2d layer's kernel taps onto the columns (:mod:`esb_hw.compiler.packing`;
    the host then writes the input unrolled); ``"auto"`` packs when that at least halves its chunks.

    The phases: :func:`lower_layers` (each layer onto the array), :func:`tile_layers` (the tile shapes the cycle
    model finds fastest), :func:`allocate` (the memory map), :func:`describe` (a descriptor per tile) and
    :func:`build_image` (the memory image).

    Raises
    ------
    InputError
        For a layer the config cannot run (a kernel, stride or padding out of range, an output format that is not
        the config's activations, a chain whose shapes disagree, a tile that cannot fit the buffers), naming the
        layer and the reason.
    """
    if config.rows != config.cols:
        raise InputError(f"the layer engine needs a square array, got {config.rows}x{config.cols}")
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise InputError(f"batch must be an int in 1..{MAX_BATCH}, got {batch!r}")
    if batch > 1 and len(input_shape) != 3:
        raise InputError(f"a batch needs a chain that starts with a conv2d layer; a linear layer takes its batch as "
                         f"the N of its (N, I) input, got input shape {tuple(input_shape)}")
    if base % REGION_ALIGNMENT:
        raise InputError(f"base must be a multiple of {REGION_ALIGNMENT}, got {base}")
    layers = list(layers)
    if pack_input not in (False, True, "auto"):
        raise InputError(f"pack_input must be True, False or 'auto', got {pack_input!r}")
    packing = None
    if pack_input is True and layers and layers[0].groups > 1:
        raise InputError("layer 0: a grouped layer's taps cannot be packed")
    if layers and layers[0].groups == 1 and (pack_input is True or (
            pack_input == "auto" and worth_packing(config, layers[0], input_shape))):
        try:
            packing, layers[0] = pack_taps(layers[0], input_shape)
        except InputError as error:
            raise InputError(f"layer 0: {error}") from None
        input_shape = packing.packed_shape
        if activation_codes is not None:
            activation_codes = _batch_codes(activation_codes, batch, packing.input_shape)
            activation_codes = np.stack([packing.codes(codes) for codes in activation_codes])
            activation_codes = activation_codes if batch > 1 else activation_codes[0]
    schedules, shapes = lower_layers(config, layers, input_shape, batch)
    layers = [schedule.layer for schedule in schedules]  # a linear layer after a conv2d, as the conv2d it runs as
    images = _layer_images(schedules, shapes, batch)
    tiles_per_layer = tile_layers(config, schedules)
    regions, end = allocate(config, schedules, sum(len(tiles) * count for tiles, count in
                                                   zip(tiles_per_layer, images, strict=True)), base, images)
    tiles = describe(config, schedules, tiles_per_layer, regions, images)
    image, tiles = build_image(config, schedules, tiles, regions, base, end, shapes[0], activation_codes, batch)
    return Program(config, layers, shapes, schedules, tiles, image, regions, base, packing, batch)



def _batch_codes(activation_codes, batch: int, shape: tuple[int, ...]) -> np.ndarray:
    """``activation_codes`` as ``(batch, *shape)``, checked."""
    codes = np.asarray(activation_codes)
    wanted = (batch, *shape) if batch > 1 else tuple(shape)
    if codes.shape != wanted:
        raise InputError(f"the input codes have shape {codes.shape}, the program expects {wanted}")
    return codes.reshape(batch, *shape)


def _stacked(codes: np.ndarray) -> np.ndarray:
    """A batch's codes ``(N, C, H, W)`` as the program stores them: ``(C, N * H, W)``, the images stacked along the
    rows."""
    count, channels, height, width = codes.shape
    return codes.transpose(1, 0, 2, 3).reshape(channels, count * height, width)


def flatten_into_conv(layer: Layer, shape: tuple[int, int, int], index: int = 0) -> Layer:
    """A linear layer that reads a ``(C, H, W)`` tensor flattened in NCHW order (``I = C * H * W``, C-order over
    ``C, H, W``, as ``torch.flatten(x, 1)`` and ONNX ``Flatten`` do) as the equal conv2d: kernel ``H x W``, no
    padding, output ``(O, 1, 1)``."""
    channels, height, width = shape
    outputs, inputs = layer.weight_codes.shape
    if inputs != channels * height * width:
        raise InputError(f"layer {index}: a linear layer of {inputs} inputs after a {channels}x{height}x{width} "
                         f"(CxHxW) output; the flatten gives {channels * height * width}")
    return replace(layer, kind="conv2d", stride=1, padding=0, pool=False,
                               weight_codes=layer.weight_codes.reshape(outputs, channels, height, width))


def reads_whole_image(layer: Layer, shape: tuple[int, ...]) -> bool:
    """Whether ``layer`` on one image's ``shape`` has one output pixel whose window is the whole image: a linear
    layer after a conv2d (the flatten), or a conv2d whose kernel is the image, unpadded and unpooled."""
    return len(shape) == 3 and (layer.kind == "linear" or (
        layer.kernel == tuple(shape[1:]) and layer.padding == 0 and not layer.pool))


def batched_flatten(config: AcceleratorConfig, layer: Layer, shape: tuple[int, int, int], batch: int,
                    index: int = 0) -> Schedule:
    """A layer that :func:`reads_whole_image` of each of ``batch`` images' ``(C, H, W)`` tensors, as one schedule:
    the conv2d (a linear layer's is :func:`flatten_into_conv`) over the images stacked along the rows
    (``(C, batch * H, W)``, as a batched program stores them), its window stepping a whole image (``row_step``
    ``H``). Its output pixels are the images, so each weight chunk serves the whole batch; its output is the
    ``(N, O)`` of a linear layer."""
    channels, height, width = shape
    conv = flatten_into_conv(layer, shape, index) if layer.kind == "linear" else layer
    if batch * height >= 1 << GEOMETRY_SIZE_BITS:
        raise InputError(f"layer {index}: a batch of {batch} images of {height} rows stacks {batch * height} rows "
                         f"for the flatten, the engine counts at most {(1 << GEOMETRY_SIZE_BITS) - 1}; use a batch "
                         f"of at most {((1 << GEOMETRY_SIZE_BITS) - 1) // height}")
    try:  # the reduction is checked on the tiles (_check_layer)
        schedule = lower(config, conv, shape, entries=config.entries, check_reduction=False)
    except InputError as error:
        raise InputError(f"layer {index}: {error}") from None
    schedule = replace(schedule, input_shape=(channels, batch * height, width), output_size=(batch, 1),
                       pixels=_pixel_order(batch, 1, False), row_step=height)
    return replace(schedule, input_groups=sparse_groups(schedule))


def lower_layers(config: AcceleratorConfig, layers: list[Layer], input_shape,
                 batch: int = 1) -> tuple[list[Schedule], list]:
    """Phase 1: each layer's lowering onto the array (:func:`esb_hw.compiler.lowering.lower`), checked, and the
    shapes from the input to the last output. A linear layer after a conv2d reads its input flattened in NCHW
    order: its schedule is the equal conv2d's (:func:`flatten_into_conv`). With ``batch > 1``, a layer that
    :func:`reads_whole_image` runs the batch as pixels (:func:`batched_flatten`): its output is ``(batch, O)``, and
    a 1x1 conv2d after it runs as the linear layer it is; ``layers`` is not changed."""
    if not layers:
        raise InputError("a program needs at least one layer")
    if len(layers) > 256:
        raise InputError(f"a program has at most 256 layers, got {len(layers)}")
    shapes = [tuple(int(size) for size in input_shape)]
    schedules = []
    for index, layer in enumerate(layers):
        shape = shapes[-1]
        if batch > 1 and reads_whole_image(layer, shape):
            schedule = batched_flatten(config, layer, shape, batch, index)
            layer = schedule.layer
        else:
            if batch > 1 and len(shape) == 2 and layer.kind == "conv2d":  # after the batch's flatten: 1x1 pixels
                if layer.kernel != (1, 1) or layer.padding or layer.pool:
                    raise InputError(f"layer {index}: a {layer.kernel[0]}x{layer.kernel[1]} conv2d (padding "
                                     f"{layer.padding}{', pooled' if layer.pool else ''}) on the 1x1 output of a "
                                     f"layer that reads the whole image; compile it with batch 1")
                layer = replace(layer, kind="linear", stride=1, weight_codes=layer.weight_codes[:, :, 0, 0])
            if layer.kind == "linear" and len(shape) == 3:
                layer = flatten_into_conv(layer, shape, index)
            try:  # the reduction is checked on the tiles (a group-sparse tile reduces over its groups only)
                schedule = lower(config, layer, shape, entries=config.entries, check_reduction=False)
            except InputError as error:
                raise InputError(f"layer {index}: {error}") from None
            schedule = replace(schedule, input_groups=sparse_groups(schedule))
        _check_layer(config, index, layer, schedule)
        schedules.append(schedule)
        shapes.append(_output_shape(schedule))
    return schedules, shapes


def _band_input_rows(schedule: Schedule, band: tuple[int, int]) -> tuple[int, int]:
    """The input rows ``[first, end)`` the windows of output rows ``band`` read (empty for rows of padding only)."""
    layer = schedule.layer
    height = schedule.input_shape[1]
    first = max(0, schedule.window_step * band[0] - schedule.pad_top)
    end = min(height, schedule.window_step * (band[1] - 1) - schedule.pad_top + layer.kernel[0])
    return first, end


def _bands(schedule: Schedule, band: int) -> list[tuple[int, int]]:
    """The output rows cut into bands of ``band`` rows, a band whose windows read padding only merged into its
    neighbour (the engine refuses a transfer of no rows: a 1x1 kernel with padding has such rows at the edges)."""
    height = schedule.output_size[0]
    usable = height - height % 2 if schedule.layer.pool else height
    bands = [(oy, min(oy + band, usable)) for oy in range(0, usable, band)]

    def empty(rows: tuple[int, int]) -> bool:
        first, end = _band_input_rows(schedule, rows)
        return end <= first

    while len(bands) > 1 and empty(bands[0]):
        bands[:2] = [(bands[0][0], bands[1][1])]
    while len(bands) > 1 and empty(bands[-1]):
        bands[-2:] = [(bands[-2][0], bands[-1][1])]
    return bands


def _cut(schedule: Schedule, row_blocks: int, band: int) -> list[tuple[int, int, int, int]]:
    """A layer's tiles for a tile shape: ``(row block first, end, output row first, end)``, row blocks outer."""
    return [(rb, min(rb + row_blocks, schedule.row_blocks), oy, oy_end)
            for rb in range(0, schedule.row_blocks, row_blocks) for oy, oy_end in _bands(schedule, band)]


def _fits(config: AcceleratorConfig, schedule: Schedule, tiles: list[tuple[int, int, int, int]]) -> bool:
    """Every tile's activations and outputs fit their banks (after :func:`_bands` merged a band)."""
    width = schedule.input_shape[2]
    out_width = schedule.output_size[1]
    for rb_first, rb_end, oy_first, oy_end in tiles:
        first, end = _band_input_rows(schedule, (oy_first, oy_end))
        rows = oy_end - oy_first
        words = (rows // 2) * (out_width // 2) if schedule.layer.pool else rows * out_width
        if (end <= first or _tile_groups(schedule) * (end - first) * width > config.activation_words
                or (rb_end - rb_first) * words > config.output_words or words >= 1 << TRANSFER_WORD_BITS):
            return False
    return True


def tile_layers(config: AcceleratorConfig, schedules: list[Schedule]) -> list[list[tuple[int, int, int, int]]]:
    """Phase 2: each layer cut into tiles (:func:`_tile_shape`)."""
    return [_cut(schedule, *_tile_shape(config, index, schedule)) for index, schedule in enumerate(schedules)]


def allocate(config: AcceleratorConfig, schedules: list[Schedule], tiles: int,
             base: int, images: list[int] | None = None) -> tuple[dict[str, tuple[int, int]], int]:
    """Phase 3: the memory map from ``base``, each region 4 KiB aligned: the descriptors, the input, then per layer
    its weights, parameters and outputs (``images[i]`` images of layer ``i``'s input and output). Returns the
    regions and the end address."""
    images = images or [1] * len(schedules)
    sizes = {name: memory_word_bytes(value) for name, value in buffer_word_bits(config).items()}
    regions = {}
    cursor = base

    def region(name: str, size: int) -> None:
        nonlocal cursor
        regions[name] = (cursor, size)
        cursor = _align(cursor + max(size, 1))

    region("descriptors", tiles * DESCRIPTOR_BYTES)
    first = schedules[0]
    region("input", images[0] * first.groups * first.input_shape[1] * first.input_shape[2] * sizes["activation"])
    for index, schedule in enumerate(schedules):
        region(f"weights_{index}", _weight_offsets(schedule)[-1] * sizes["weight"])
        region(f"params_{index}", schedule.row_blocks * config.rows * sizes["param"])
        region(f"output_{index}", images[index] * schedule.row_blocks * _layer_pixels(schedule) * sizes["output"])
    return regions, cursor


def _layer_pixels(schedule: Schedule) -> int:
    """The output words of one row block: every output pixel, after pooling."""
    out_h, out_w = schedule.output_size
    return (out_h // 2) * (out_w // 2) if schedule.layer.pool else out_h * out_w


def describe(config: AcceleratorConfig, schedules: list[Schedule], tiles_per_layer: list, regions: dict,
             images: list[int] | None = None) -> list[Tile]:
    """Phase 4: a :class:`Tile` with its descriptor for every tile, in program order (``images[i]`` images of layer
    ``i``)."""
    images = images or [1] * len(schedules)
    tiles = []
    for index, (schedule, layer_tiles) in enumerate(zip(schedules, tiles_per_layer, strict=True)):
        input_address = regions["input"][0] if index == 0 else regions[f"output_{index - 1}"][0]
        tiles += describe_layer(config, index, schedule, layer_tiles, input_address, regions[f"weights_{index}"][0],
                                regions[f"params_{index}"][0], regions[f"output_{index}"][0], images[index])
    return tiles


def describe_layer(config: AcceleratorConfig, index: int, schedule: Schedule, layer_tiles: list,
                   input_address: int, weights_address: int, params_address: int, output_address: int,
                   images: int = 1) -> list[Tile]:
    """The tiles of one layer with their descriptors, for ``images`` images stacked along the rows of its input and
    output (each set of row blocks runs its bands for every image before the next set). The first tile of every
    layer after the first is a ``barrier``; every later tile of the same row blocks reuses the weights."""
    sizes = {name: memory_word_bytes(value) for name, value in buffer_word_bits(config).items()}
    _, height, width = schedule.input_shape
    out_w = schedule.output_size[1]
    layer_pixels = _layer_pixels(schedule)
    plane = images * height * width * sizes["activation"]
    weight_offsets = _weight_offsets(schedule)
    row_block_sets: dict[tuple[int, int], list] = {}
    for tile in layer_tiles:
        row_block_sets.setdefault(tile[:2], []).append(tile)
    order = [(image, tile) for bands in row_block_sets.values() for image in range(images) for tile in bands]
    tiles = []
    for number, (image, (rb_first, rb_end, oy_first, oy_end)) in enumerate(order):
        tile_schedule, (iy_first, iy_end) = _tile_schedule(schedule, (rb_first, rb_end), (oy_first, oy_end))
        record = geometry(tile_schedule)
        band_start = (oy_first // 2) * (out_w // 2) if schedule.layer.pool else oy_first * out_w
        first_of_set = image == 0 and (rb_first, rb_end, oy_first, oy_end) == row_block_sets[(rb_first, rb_end)][0]
        output_start = (rb_first * images + image) * layer_pixels + band_start
        rows_start = (image * height + iy_first) * width * sizes["activation"]
        group, step, count = (0, 1, schedule.groups) if schedule.input_groups is None else \
            schedule.input_groups[rb_first]  # a group-sparse tile has one row block and reads its groups only
        activations = _transfer(input_address + group * plane + rows_start, (iy_end - iy_first) * width, count,
                                step * plane)
        weights = _transfer(weights_address + weight_offsets[rb_first] * sizes["weight"],
                            weight_offsets[rb_end] - weight_offsets[rb_first])
        descriptor = {
            "geometry": record, "in_channels": tile_schedule.input_shape[0], "stride": schedule.layer.stride,
            "layer": index, "barrier": int(index > 0 and number == 0), "reuse_weights": int(not first_of_set),
            "activations": activations, "weights": weights,
            "params": _transfer(params_address + rb_first * config.rows * sizes["param"],
                                (rb_end - rb_first) * config.rows),
            "outputs": _transfer(output_address + output_start * sizes["output"], record["output_pixels"],
                                 rb_end - rb_first, images * layer_pixels * sizes["output"]),
            "weights_crc": 0,  # set by build_image, from the image
        }
        tiles.append(Tile(index, (rb_first, rb_end), (oy_first, oy_end), (iy_first, iy_end), tile_schedule,
                          descriptor, image))
    return tiles


def build_image(config: AcceleratorConfig, schedules: list[Schedule], tiles: list[Tile], regions: dict, base: int,
                end: int, input_shape, activation_codes, batch: int = 1) -> tuple[bytes, list[Tile]]:
    """Phase 5: the memory image from ``base`` to ``end``: the input codes, the weights, the parameters, and the
    packed descriptors (each checked as the engine would, with its ``weights_crc`` taken from the image); output
    space is zero. Returns the image and the tiles with their final descriptors."""
    bits = buffer_word_bits(config)
    image = bytearray(end - base)

    def put(address: int, blob: bytes) -> None:
        image[address - base: address - base + len(blob)] = blob

    if activation_codes is not None:
        codes = _batch_codes(activation_codes, batch, input_shape)
        if codes.min(initial=0) < 0 or codes.max(initial=0) >= config.activation_format.code_count:
            raise InputError(f"input codes must be in 0..{config.activation_format.code_count - 1}")
        put(regions["input"][0], pack_memory_words(bits["activation"], _input_words(schedules[0], codes)))
    for index, schedule in enumerate(schedules):
        put(regions[f"weights_{index}"][0], pack_memory_words(bits["weight"], _weight_region(schedule)))
        put(regions[f"params_{index}"][0], pack_memory_words(bits["param"], param_image(schedule)))
    memory = memoryview(image)
    final = []
    for number, tile in enumerate(tiles):
        descriptor = {**tile.descriptor, "weights_crc": load_crc(_Offset(memory, base), tile.descriptor, config)}
        code = descriptor_error(config, descriptor, memory_size=end + -end % MEMORY_BEAT_BYTES)
        if code:  # a compiler bug, not the user's: the engine would refuse the descriptor
            raise AssertionError(f"descriptor {number} fails the engine's check: {engine_error(code)}")
        put(regions["descriptors"][0] + number * DESCRIPTOR_BYTES,
            descriptor_image(descriptor, where=f"descriptor {number}"))
        final.append(replace(tile, descriptor=descriptor))
    return bytes(image), final


class _Offset:
    """The image seen from ``MEMORY_BASE``: byte ``i`` is the image's byte ``i - base``."""

    def __init__(self, image, base: int):
        self.image, self.base = image, base

    def __getitem__(self, key: slice):
        return self.image[key.start - self.base:key.stop - self.base]


def program_error(config: AcceleratorConfig, descriptors: list[dict], *, memory_size: int) -> tuple[int, int]:
    """``(code, index)`` of the first descriptor the engine refuses, as the engine goes through a program: the
    checker's verdict (:func:`descriptor_error`), then the engine's own rule that a descriptor may not reuse weights
    that no earlier descriptor of the run loaded (a run's first descriptor, or one after only reusing ones);
    ``(0, len(descriptors))`` when every descriptor passes."""
    have_weights = False
    for index, descriptor in enumerate(descriptors):
        code = descriptor_error(config, descriptor, memory_size=memory_size)
        if code:
            return code, index
        if descriptor["reuse_weights"] and not have_weights:
            return ENGINE_ERROR_CODES["inconsistent"], index
        have_weights = True
    return 0, len(descriptors)


def descriptor_error(config: AcceleratorConfig, descriptor: dict, *, memory_size: int) -> int:
    """The error code (:data:`esb_hw.layouts.ENGINE_ERRORS`) that the engine's descriptor checker
    (:class:`esb_hw.hw.core.checker.DescriptorChecker`) gives ``descriptor`` in a memory window of
    ``memory_size`` bytes, or 0: the same checks in the same order, in Python (``tests/test_checker.py`` holds the
    two equal). The window check's detail is :func:`esb_hw.contract.checks.window_failure`."""
    codes = {name: code for code, (name, _) in ENGINE_ERRORS.items()}
    g = descriptor["geometry"]
    transfers = {"activation": descriptor["activations"], "weight": descriptor["weights"],
                 "param": descriptor["params"], "output": descriptor["outputs"]}
    sizes = [*g["limits"], g["in_height"], g["in_width"], g["kernel_h"], g["kernel_w"], g["groups"],
             g["row_blocks"], g["pixel_blocks"], g["block"], g["output_pixels"], descriptor["in_channels"],
             descriptor["stride"]]
    sizes += [transfer[key] for transfer in transfers.values() for key in ("words", "segments")]
    if 0 in sizes:
        return codes["zero_size"]
    if g["kernel_h"] > MAX_KERNEL or g["kernel_w"] > MAX_KERNEL or descriptor["stride"] not in (0, *STRIDES):
        return codes["unsupported_kernel"]
    bits = buffer_word_bits(config)
    for name, transfer in transfers.items():
        size = memory_word_bytes(bits[name])
        if transfer["address"] % size or transfer["stride"] % size:
            return codes["misaligned"]
    if g["block"] > config.entries:
        return codes["does_not_fit"]
    window = g["pool"] + 1
    if (g["limits"][2] != window or g["limits"][3] != window
            or descriptor["activations"]["segments"] != g["groups"]
            or descriptor["outputs"]["segments"] != g["row_blocks"]
            or descriptor["outputs"]["words"] != g["output_pixels"]
            or descriptor["weights"]["segments"] != 1 or descriptor["params"]["segments"] != 1):
        return codes["inconsistent"]
    a, w, p, o = (transfers[name] for name in ("activation", "weight", "param", "output"))
    walk = g["output_pixels"] * (4 if g["pool"] else 1)
    cover = g["pixel_blocks"] * g["block"]
    checks = [
        ("reduction_too_long", descriptor["in_channels"] * g["kernel_h"] * g["kernel_w"] <= config.max_reduction),
        ("does_not_fit", a["segments"] * a["words"] <= config.activation_words),
        ("does_not_fit", w["words"] <= config.weight_words),
        ("does_not_fit", p["words"] <= config.param_words),
        ("does_not_fit", o["segments"] * o["words"] <= config.output_words),
        ("inconsistent", g["in_height"] * g["in_width"] == a["words"]),
        ("inconsistent", g["groups"] * config.cols >= descriptor["in_channels"]),
        ("inconsistent", g["groups"] * config.cols < descriptor["in_channels"] + config.cols),
        ("inconsistent", g["limits"][0] * g["limits"][1] == g["output_pixels"]),
        ("inconsistent", cover >= walk),
        ("inconsistent", cover < walk + g["block"]),
        ("inconsistent", g["row_blocks"] * g["kernel_h"] * g["kernel_w"] * g["groups"] * config.rows == w["words"]),
        ("inconsistent", g["row_blocks"] * config.rows == p["words"]),
    ]
    for name, passed in checks:
        if not passed:
            return codes[name]
    word_bytes = {name: memory_word_bytes(value) for name, value in bits.items()}
    if window_failure(descriptor, word_bytes, memory_size):
        return codes["outside_window"]
    return 0


def _input_words(schedule: Schedule, codes: np.ndarray) -> list[int]:
    """The input region's words for ``codes``: ``(batch, ...)``, the first layer's inputs."""
    if len(codes) == 1:
        return activation_image(schedule, codes[0])
    stacked = _stacked(codes)
    return activation_image(replace(schedule, input_shape=stacked.shape), stacked)


def input_image(program: Program, activation_codes) -> tuple[int, bytes]:
    """The input region's address and bytes for ``activation_codes`` (to run the same program on new inputs)."""
    codes = np.asarray(activation_codes)
    if codes.shape != program.input_shape:
        raise InputError(f"the input codes have shape {codes.shape}, the program expects {program.input_shape}")
    codes = codes.reshape(program.batch, *codes.shape[program.batch > 1:])
    if program.input_packing is not None:
        codes = np.stack([program.input_packing.codes(image) for image in codes])
    bits = buffer_word_bits(program.config)["activation"]
    return program.regions["input"][0], pack_memory_words(bits, _input_words(program.schedules[0], codes))


def read_output(program: Program, blob: bytes, layer: int = -1) -> np.ndarray:
    """Layer ``layer``'s output codes from its output region's bytes ``blob``: ``(O, Ho', Wo')`` for a conv2d
    (pooled if it pools; ``(batch, O, Ho', Wo')`` in a batch), ``(N, O)`` for linear."""
    config = program.config
    index = layer % len(program.layers)
    schedule = program.schedules[index]
    images = program.layer_images[index]
    bits = buffer_word_bits(config)["output"]
    word = data.ArrayLayout(config.activation_format.bits, config.rows)
    shape = program.shapes[index + 1]
    dtype = schedule.layer.output_format.code_dtype
    pixels = int(np.prod(shape[1:])) if len(shape) == 3 else shape[0]
    count = schedule.row_blocks * images * pixels
    words = unpack_memory_words(bits, blob, count)
    codes = np.array([unpack(word, value) for value in words], dtype=np.int64)
    planes = codes.reshape(schedule.row_blocks, images, pixels, config.rows).transpose(1, 0, 3, 2)
    planes = planes.reshape(images, schedule.row_blocks * config.rows, pixels)[:, : schedule.layer.out_channels]
    if len(shape) == 2:  # a linear layer, or a batch's flatten: (N, O)
        return planes[0].T.astype(dtype)
    if program.batch > 1:
        return planes.reshape(images, *shape).astype(dtype)
    return planes[0].reshape(shape).astype(dtype)


def _read_words(memory, transfer: dict, bits: int) -> list[int]:
    size = memory_word_bytes(bits)
    words = []
    for segment in range(transfer["segments"]):
        address = transfer["address"] + segment * transfer["stride"]
        words += unpack_memory_words(bits, bytes(memory[address: address + transfer["words"] * size]),
                                     transfer["words"])
    return words


def run_in_numpy(program: Program, memory: bytearray) -> None:
    """Run ``program`` on ``memory`` (a ``bytearray`` holding the image at ``program.base``) the way the engine
    does, descriptor by descriptor: read each tile's activation runs, compute the tile
    (:func:`~esb_hw.compiler.lowering.execute`), write its output runs. The NumPy twin of the engine's memory
    traffic: it checks the tiling, the descriptors and the memory map against the golden model."""
    from .lowering import execute

    config = program.config
    bits = buffer_word_bits(config)
    word = data.ArrayLayout(config.activation_format.bits, config.cols)
    size = memory_word_bytes(bits["output"])
    for tile in program.tiles:
        d, schedule = tile.descriptor, tile.schedule
        words = _read_words(memory, d["activations"], bits["activation"])
        codes = np.array([unpack(word, value) for value in words], dtype=np.int64)
        channels, height, width = schedule.input_shape
        codes = codes.reshape(-1, height * width, config.cols).transpose(0, 2, 1).reshape(-1, height, width)
        codes = codes[:channels]
        if schedule.layer.kind == "linear":
            codes = codes[:, :, 0].T
        result = execute(schedule, codes)
        planes = result.T if schedule.layer.kind == "linear" else result.reshape(result.shape[0], -1)
        blocks = -(-planes.shape[0] // config.rows)
        padded = np.zeros((blocks * config.rows, planes.shape[1]), dtype=np.int64)
        padded[: planes.shape[0]] = planes
        out = d["outputs"]
        for block in range(blocks):
            block_words = [pack(word, padded[block * config.rows: (block + 1) * config.rows, pixel].tolist())
                           for pixel in range(planes.shape[1])]
            blob = pack_memory_words(bits["output"], block_words)
            address = out["address"] + block * out["stride"]
            memory[address: address + len(blob)] = blob
            assert len(blob) == out["words"] * size


def predicted_cycles(program: Program, memory: MemoryTiming = MEMORY_MODEL) -> dict:
    """The engine's cycles from start to done for ``program`` with ``memory`` (a MODEL:
    :class:`esb_hw.compiler.timeline.EngineTimeline`, the one cycle model). Returns ``{"cycles",
    "compute_cycles", "tiles", "layers"}``, ``tiles`` holding each tile's :class:`~esb_hw.compiler.timeline.TileTimes`
    and ``layers`` one dict per layer (:func:`layer_bounds`)."""
    timeline = EngineTimeline(program.config, memory)
    work = [(tile.descriptor, tile.schedule) for tile in program.tiles]
    cycles = timeline.run(work)
    compute = sum(times.compute[1] - times.compute[0] for times in timeline.tiles)
    return {"cycles": cycles, "compute_cycles": compute, "tiles": timeline.tiles,
            "layers": layer_bounds(program, timeline, memory, cycles)}


def layer_bounds(program: Program, timeline: EngineTimeline, memory: MemoryTiming, cycles: int) -> list[dict]:
    """Per layer, from a run of ``timeline`` over the whole program (a MODEL): ``cycles`` (from the previous
    layer's last store to its own; the last layer ends at the run's ``cycles``), ``compute_cycles`` (its tiles in
    the layer core), ``memory_cycles`` (its busier direction at the memory's pace per beat, or all its bytes over the
    bandwidth if that takes longer) and ``bound``: ``"memory"`` when ``memory_cycles`` exceed ``compute_cycles``, else
    ``"compute"``."""
    layers = []
    previous_end = 0
    for index in range(len(program.layers)):
        chosen = [number for number, tile in enumerate(program.tiles) if tile.layer == index]
        if not chosen:
            continue
        times = [timeline.tiles[number] for number in chosen]
        work = [(program.tiles[number].descriptor, None) for number in chosen]
        read, written = timeline.moved_bytes(work)
        memory_cycles = max(read, written) / MEMORY_BEAT_BYTES * memory.pace  # a beat each way at most
        if memory.bandwidth is not None:
            memory_cycles = max(memory_cycles, (read + written) / memory.bandwidth)
        end = cycles if index == program.tiles[-1].layer else round(times[-1].store[1] + 1)
        compute = sum(time.compute[1] - time.compute[0] for time in times)
        layers.append({"layer": index, "cycles": end - previous_end, "compute_cycles": compute,
                       "memory_cycles": round(memory_cycles), "bytes": read + written,
                       "bound": "memory" if memory_cycles > compute else "compute"})
        previous_end = end
    return layers


def predicted_beats(program: Program) -> dict:
    """The memory beats the engine moves for ``program``, exactly: ``{"read", "written"}``. Reads are each
    descriptor (:data:`~esb_hw.layouts.DESCRIPTOR_BEATS` beats) and each tile's loads (parameters, weights and
    activations, or only activations when the tile reuses the weights); writes are each tile's outputs. Each
    segment of a transfer moves every beat its bytes touch (words of up to 16 bytes share a beat)."""
    read, written = EngineTimeline(program.config).moved_bytes(
        [(tile.descriptor, tile.schedule) for tile in program.tiles])
    return {"read": read // MEMORY_BEAT_BYTES, "written": written // MEMORY_BEAT_BYTES}


def to_bundle(program: Program, name: str = "program", activation_codes=None):
    """``program`` as the driver runs it (:class:`esb_hw.driver.ProgramBundle`), with the expected output bytes
    from :func:`run_in_numpy`; ``activation_codes`` replace the program's input. The program must be compiled at
    base 0: the hardware adds ``MEMORY_BASE``."""
    from ..driver import ProgramBundle
    from ..regmap import config_id

    if program.base != 0:
        raise InputError(f"a bundle needs a program compiled at base 0 (the hardware adds MEMORY_BASE), got base "
                         f"{program.base}")
    memory = bytearray(program.image)
    if activation_codes is not None:
        address, blob = input_image(program, activation_codes)
        memory[address:address + len(blob)] = blob
    image = bytes(memory)
    run_in_numpy(program, memory)
    address, size = program.output_region()
    return ProgramBundle(image=image, program_address=program.program_address,
                         descriptors=len(program.tiles), layers=len(program.layers), output_address=address,
                         output_bytes=size, config_id=config_id(program.config.to_dict()),
                         array=(program.config.rows, program.config.cols),
                         expected=bytes(memory[address:address + size]), name=name)
