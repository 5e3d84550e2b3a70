"""Activation quantizer (esb_hw/quant/activation.py)."""

import numpy as np
import pytest

from esb_hw.quant import ActivationQuantizer, ESBFormat

UINT8 = ESBFormat(8, 8, signed=False)


def test_values_are_levels_times_power_of_two_scale():
    quantizer = ActivationQuantizer(ESBFormat(5, 2, signed=False), frac_bits=3)
    codes = np.arange(32)
    assert np.array_equal(quantizer.decode(codes), quantizer.level(codes) * 2.0**-3)
    assert quantizer.scale == 0.125 and quantizer.alpha == 0.5


@pytest.mark.parametrize("fmt", [UINT8, ESBFormat(4, 1, signed=False), ESBFormat(6, 3, signed=False)], ids=str)
def test_calibration_picks_the_best_frac_bits(fmt):
    samples = np.maximum(np.random.default_rng(4).standard_normal(20000) * 3.0, 0)
    chosen = ActivationQuantizer.calibrate(samples, fmt)

    def error(f):
        return np.mean((samples - ActivationQuantizer(fmt, f).quantize(samples)) ** 2)

    errors = {f: error(f) for f in range(-8, 40)}
    assert error(chosen.frac_bits) == min(errors.values())


def test_max_calibration_covers_the_peak_without_wasting_range():
    samples = np.array([0.0, 1.0, 5.3])
    chosen = ActivationQuantizer.calibrate(samples, UINT8, method="max")
    assert UINT8.max_level * chosen.scale >= 5.3
    assert UINT8.max_level * chosen.scale / 2 < 5.3


def test_negative_samples_are_relu_like_and_zero_samples_are_fine():
    assert ActivationQuantizer.calibrate(np.zeros(10), UINT8).frac_bits == 0
    quantizer = ActivationQuantizer(UINT8, 4)
    assert np.array_equal(quantizer.encode(np.array([-3.0, 0.0, 1.0])), [0, 0, 16])


@pytest.mark.parametrize(("args", "error", "message"), [
    ((ESBFormat(4, 1), 2), ValueError, r"fmt must be unsigned \(signed=False\) for activations, got ESB\(4,1\)"),
    ((UINT8, 99), ValueError, r"frac_bits must be in -32\.\.64, got 99"),
    ((UINT8, 2.0), TypeError, "frac_bits must be an int, got float"),
    (((8, 8), 2), TypeError, "fmt must be an ESBFormat"),
])
def test_constructor_errors(args, error, message):
    with pytest.raises(error, match=message):
        ActivationQuantizer(*args)


def test_calibration_errors():
    with pytest.raises(ValueError, match="method must be 'mse' or 'max'"):
        ActivationQuantizer.calibrate(np.ones(3), UINT8, method="p99")
    with pytest.raises(ValueError, match="samples must be finite"):
        ActivationQuantizer.calibrate(np.array([np.inf]), UINT8)
    with pytest.raises(ValueError, match="samples must not be empty"):
        ActivationQuantizer.calibrate(np.array([]), UINT8)
