"""Kernel taps packed onto the array's columns for a first layer with few input channels (the host lays its input
out; no hardware change).

The engine reduces an output pixel over chunks ``(ky, kx, g)``: one kernel tap and ``cols`` channels each, so a
3-channel 7x7 stem on 64 columns uses 3 of them in each of 49 chunks (under 5 % of the array). The host writes the
first layer's input anyway, so it can write it already unrolled: channel ``(ky * kw + kx) * C + c`` of output pixel
``(oy, ox)`` holds input channel ``c`` at ``(stride * oy + ky - padding, stride * ox + kx - padding)`` (code 0 for
padding, which is what the engine sends for padding). The layer becomes a 1x1 convolution with stride 1 over
``C * kh * kw`` channels (the stem: 147 channels in 3 chunks). The integer sums are the same terms, so the outputs
are bit-exact; the input is ``kh * kw / stride**2`` times larger in memory.
"""

from __future__ import annotations

import numpy as np

from ..config import AcceleratorConfig
from ..errors import InputError
from .lowering import Layer

__all__ = ["TapPacking", "pack_taps", "packed_chunks", "unpacked_chunks", "worth_packing"]


class TapPacking:
    """How a conv2d layer's taps are packed: its kernel, stride and padding, and its input shape ``(C, H, W)``."""

    def __init__(self, layer: Layer, input_shape: tuple[int, ...]):
        if layer.kind != "conv2d" or len(input_shape) != 3:
            raise InputError("only a conv2d layer's taps can be packed")
        self.kernel = tuple(int(side) for side in np.asarray(layer.weight_codes).shape[2:])
        self.stride, self.padding = layer.stride, layer.padding
        self.input_shape = tuple(int(size) for size in input_shape)
        channels, height, width = self.input_shape
        kh, kw = self.kernel
        self.output_size = ((height + 2 * self.padding - kh) // self.stride + 1,
                            (width + 2 * self.padding - kw) // self.stride + 1)
        if min(self.output_size) < 1:
            raise InputError(f"a {kh}x{kw} kernel does not fit a {height}x{width} input with padding {self.padding}")
        self.packed_shape = (channels * kh * kw, *self.output_size)

    def layer(self, layer: Layer) -> Layer:
        """The 1x1, stride-1 layer over the packed channels (weights reordered to match :meth:`codes`)."""
        weights = np.asarray(layer.weight_codes)
        out_channels = weights.shape[0]
        packed = weights.transpose(0, 2, 3, 1).reshape(out_channels, -1, 1, 1)  # (O, ky, kx, C) -> taps outer
        return Layer("conv2d", packed, layer.params, layer.output_format, stride=1, padding=0, pool=layer.pool)

    def codes(self, activation_codes) -> np.ndarray:
        """The packed input codes ``(C * kh * kw, OH, OW)`` of input codes ``(C, H, W)``."""
        codes = np.asarray(activation_codes)
        if codes.shape != self.input_shape:
            raise InputError(f"the input codes have shape {codes.shape}, the program expects {self.input_shape}")
        channels, _, _ = self.input_shape
        kh, kw = self.kernel
        pad, stride = self.padding, self.stride
        padded = np.pad(codes, ((0, 0), (pad, pad), (pad, pad)))
        out_h, out_w = self.output_size
        taps = [padded[:, ky: ky + stride * (out_h - 1) + 1: stride, kx: kx + stride * (out_w - 1) + 1: stride]
                for ky in range(kh) for kx in range(kw)]
        return np.concatenate(taps, axis=0).astype(codes.dtype)


def pack_taps(layer: Layer, input_shape) -> tuple[TapPacking, Layer]:
    """The packing of ``layer`` (a first conv2d layer) and its packed 1x1 layer."""
    packing = TapPacking(layer, tuple(input_shape))
    return packing, packing.layer(layer)


def unpacked_chunks(config: AcceleratorConfig, layer: Layer, channels: int) -> int:
    kh, kw = np.asarray(layer.weight_codes).shape[2:]
    return int(kh * kw * -(-channels // config.cols))


def packed_chunks(config: AcceleratorConfig, layer: Layer, channels: int) -> int:
    kh, kw = np.asarray(layer.weight_codes).shape[2:]
    return -(-int(channels * kh * kw) // config.cols)


def worth_packing(config: AcceleratorConfig, layer: Layer, input_shape) -> bool:
    """Pack a first conv2d layer when it at least halves the chunks per pixel (a kernel larger than 1x1 whose
    channels leave most of the columns idle)."""
    if layer.kind != "conv2d" or len(input_shape) != 3 or np.asarray(layer.weight_codes).shape[2:] == (1, 1):
        return False
    channels = int(input_shape[0])
    return 2 * packed_chunks(config, layer, channels) <= unpacked_chunks(config, layer, channels)
