"""Lowering onto the weight-stationary array (esb_hw/compiler/lowering.py): the engine's schedule, executed in
NumPy, equals the golden model bit for bit on convolutions and linear layers of every kind the engine takes."""

import numpy as np
import pytest

from esb_hw.compiler.lowering import Layer, execute, lower, reference
from esb_hw.data import shipped_config
from esb_hw.errors import InputError
from esb_hw.quant import ESBFormat, golden
from esb_hw.sim.layer_core import random_layer

DEFAULT = shipped_config("default")
ESB_ACTIVATIONS = shipped_config("esb5_act_esb")


CONV_CASES = [
    # (out, in, kernel, stride, padding, height, width, pool)
    (8, 8, 3, 1, 1, 8, 8, False),
    (5, 3, 3, 1, 0, 7, 9, False),  # channels and sizes that are not multiples of the array
    (9, 17, 1, 1, 0, 6, 5, False),
    (12, 10, 3, 2, 1, 9, 9, False),  # stride 2
    (8, 4, 5, 1, 2, 8, 6, True),  # pooling
    (3, 2, 7, 2, 3, 12, 11, True),  # 7x7, stride 2, odd sizes pooled
    (16, 9, 3, 1, 1, 10, 10, True),
    (4, 5, 2, 2, 0, 6, 6, False),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda case: "x".join(map(str, case[:3])) + f"s{case[3]}p{case[4]}")
@pytest.mark.parametrize("config", [DEFAULT, ESB_ACTIVATIONS], ids=["int8", "esb6"])
def test_convolutions_match_the_golden_model(config, case):
    out_channels, in_channels, kernel, stride, padding, height, width, pool = case
    rng = np.random.default_rng(sum(case))
    layer = random_layer(config, rng, "conv2d", out_channels, in_channels, kernel, stride, padding, pool)
    x = rng.integers(0, config.activation_format.code_count, (in_channels, height, width))
    schedule = lower(config, layer, x.shape, entries=8)
    got, want = execute(schedule, x), reference(config, layer, x)
    assert got.shape == want.shape and np.array_equal(got, want)
    assert 0 < (want > 0).mean() < 1  # the scales leave a mix of zero and non-zero codes: a real check


@pytest.mark.parametrize("batch, features, outputs", [(1, 8, 8), (7, 30, 10), (40, 64, 3)])
def test_linear_layers_match_the_golden_model(batch, features, outputs):
    rng = np.random.default_rng(batch)
    layer = random_layer(DEFAULT, rng, "linear", outputs, features)
    x = rng.integers(0, DEFAULT.activation_format.code_count, (batch, features))
    got = execute(lower(DEFAULT, layer, x.shape), x)
    assert np.array_equal(got, reference(DEFAULT, layer, x))


def test_checker_catches_a_wrong_address():
    """A schedule that reads one kernel column too far right (a typical off-by-one) gives different codes."""
    rng = np.random.default_rng(1)
    layer = random_layer(DEFAULT, rng, "conv2d", 8, 8, 3, 1, 1)
    x = rng.integers(0, 256, (8, 8, 8))
    schedule = lower(DEFAULT, layer, x.shape)
    good = schedule.source_words
    shifted = lambda chunk, pixels: good((chunk[0], min(chunk[1] + 1, 2), chunk[2]), pixels)  # noqa: E731
    object.__setattr__(schedule, "source_words", shifted)
    assert not np.array_equal(execute(schedule, x), reference(DEFAULT, layer, x))


def test_pooling_windows_are_consecutive_and_never_straddle_blocks():
    layer = random_layer(DEFAULT, np.random.default_rng(2), "conv2d", 4, 4, 3, 1, 1, pool=True)
    schedule = lower(DEFAULT, layer, (4, 6, 10), entries=8)
    pixels = schedule.pixels
    assert len(pixels) == 6 * 10 and len(pixels) % 4 == 0
    for window in pixels.reshape(-1, 4, 2):
        assert len({(y // 2, x // 2) for y, x in window}) == 1


def test_schedule_counts():
    """3x3, 32 -> 32 channels, 16x16 image, 16x16 array: 9 x 2 chunks, 2 row blocks, 256 pixels."""
    config = shipped_config("array16x16")
    layer = random_layer(config, np.random.default_rng(3), "conv2d", 32, 32, 3, 1, 1)
    schedule = lower(config, layer, (32, 16, 16))
    assert len(schedule.chunks) == 18 and schedule.row_blocks == 2 and len(schedule.pixels) == 256
    assert schedule.beats() == 2 * 256 * 18 and schedule.macs == 32 * 256 * 32 * 9
    assert schedule.macs / (schedule.beats() * config.macs) == 1.0  # every MAC of every beat is useful


@pytest.mark.parametrize("change, message", [
    ({"input_shape": (4, 8)}, "a conv2d layer takes \\(C, H, W\\), got input shape \\(4, 8\\)"),
    ({"input_shape": (5, 8, 8)}, "the input has 5 channels but the weights expect 4"),
    ({"input_shape": (4, 1, 1), "padding": 0}, "kernel 3x3 is larger than the padded input 1x1"),
    ({"entries": 6, "pool": True}, "with pooling, entries must be a multiple of 4, got 6"),
    ({"input_shape": (4, 2, 2), "padding": 0, "pool": True, "kernel": 2},
     "2x2 pooling needs an output of at least 2x2, got 1x1"),
])
def test_bad_layers_are_rejected(change, message):
    kernel = change.get("kernel", 3)
    rng = np.random.default_rng(0)
    layer = random_layer(DEFAULT, rng, "conv2d", 4, 4, kernel, 1, change.get("padding", 1), change.get("pool", False))
    with pytest.raises(InputError, match=message):
        lower(DEFAULT, layer, change.get("input_shape", (4, 8, 8)), entries=change.get("entries", 32))


def test_a_reduction_longer_than_max_reduction_is_rejected():
    config = shipped_config("default")
    layer = random_layer(config, np.random.default_rng(0), "conv2d", 4, 500, 3)
    with pytest.raises(InputError, match="a reduction of 4500 exceeds max_reduction 4096"):
        lower(config, layer, (500, 5, 5))


def test_layer_validation():
    params = golden.requant_params(np.ones(4))
    with pytest.raises(InputError, match="kind must be one of conv2d, linear, got 'pool'"):
        Layer("pool", np.zeros((4, 4)), params, ESBFormat(8, 8, False))
    with pytest.raises(InputError, match="pooling needs a conv2d layer"):
        Layer("linear", np.zeros((4, 4), int), params, ESBFormat(8, 8, False), pool=True)
    with pytest.raises(InputError, match="3 requantization channels for 4 outputs"):
        Layer("linear", np.zeros((4, 4), int), golden.requant_params(np.ones(3)), ESBFormat(8, 8, False))
