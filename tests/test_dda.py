"""DDA and the MSE-optimal scales (esb_hw/quant/dda.py)."""

import math

import numpy as np
import pytest

from esb_hw.quant import ESBFormat, expected_mse, fit_alpha, lambda_for, optimal_scale, quantize

# Published global optima for unit Gaussians (Gong et al., TPDS 2022, Table of DDA lambdas).
PUBLISHED_GAUSSIAN = {(3, 0): 0.5181, (4, 1): 0.4871, (5, 2): 0.4828, (6, 3): 0.4997, (8, 5): 0.5527}


def positive_levels(fmt):
    levels = fmt.levels()
    return levels[levels >= 0]


def monte_carlo_mse(fmt, scale, samples):
    return float(np.mean((samples - quantize(samples, fmt, scale)) ** 2))


def agrees_with_monte_carlo(fmt, scale, dist, samples):
    """The analytic expectation lies within 4 standard errors of the sample mean."""
    errors = (samples - quantize(samples, fmt, scale)) ** 2
    standard_error = errors.std() / math.sqrt(errors.size)
    return abs(float(expected_mse(positive_levels(fmt), scale, dist)) - errors.mean()) <= 4 * standard_error


@pytest.mark.parametrize(("bits", "k"), sorted(PUBLISHED_GAUSSIAN))
def test_gaussian_lambda_matches_published_global_optima(bits, k):
    assert lambda_for(ESBFormat(bits, k)) == pytest.approx(PUBLISHED_GAUSSIAN[(bits, k)], abs=5e-4)


def test_published_4_0_entry_is_a_local_minimum_not_the_global_one():
    """The paper lists 0.0381 for ESB(4,0). That is a local minimum of the expected error; the global
    one is near 0.0655, and it is what lambda_for returns."""
    levels = positive_levels(ESBFormat(4, 0))
    ours = lambda_for(ESBFormat(4, 0))
    assert ours == pytest.approx(0.0655, abs=5e-4)
    published = 0.0381
    around = expected_mse(levels, published * np.array([0.98, 1.0, 1.02]))
    assert around[1] < around[0] and around[1] < around[2]  # a local minimum...
    assert expected_mse(levels, ours) < around[1]  # ...that is not the global one


@pytest.mark.parametrize("fmt", [ESBFormat(3, 0), ESBFormat(4, 1), ESBFormat(5, 2), ESBFormat(6, 3),
                                 ESBFormat(4, 0), ESBFormat(7, 4), ESBFormat(5, 2, signed=False)], ids=str)
@pytest.mark.parametrize("dist", ["gaussian", "laplace"])
def test_lambda_is_the_global_minimum_of_a_dense_scan(fmt, dist):
    levels = positive_levels(fmt)
    scan = np.geomspace(1e-3, 20.0, 40001) / fmt.max_value
    best_scanned = float(expected_mse(levels, scan, dist).min())
    ours = float(expected_mse(levels, lambda_for(fmt, dist), dist))
    assert ours <= best_scanned * (1 + 1e-9)


@pytest.mark.parametrize(("fmt", "dist"), [(ESBFormat(4, 1), "gaussian"), (ESBFormat(3, 0), "laplace"),
                                            (ESBFormat(6, 3), "gaussian"), (ESBFormat(5, 1), "laplace")],
                         ids=str)
def test_expected_mse_agrees_with_monte_carlo(fmt, dist):
    rng = np.random.default_rng(11)
    samples = rng.standard_normal(400_000) if dist == "gaussian" else rng.laplace(0, 1 / math.sqrt(2), 400_000)
    for scale in (0.5 * lambda_for(fmt, dist), lambda_for(fmt, dist), 2 * lambda_for(fmt, dist)):
        assert agrees_with_monte_carlo(fmt, scale, dist, samples)


def test_monte_carlo_check_rejects_the_wrong_distribution():
    samples = np.random.default_rng(11).standard_normal(400_000)
    fmt = ESBFormat(4, 1)
    assert not agrees_with_monte_carlo(fmt, lambda_for(fmt), "laplace", samples)


def test_expected_mse_extremes():
    levels = positive_levels(ESBFormat(4, 1))
    # Tiny scale: everything rounds to the top level or zero, error tends to the variance and beyond.
    assert expected_mse(levels, 1e-9) == pytest.approx(1.0, rel=1e-6)
    assert expected_mse(levels, np.array([[0.3, 0.5]])).shape == (1, 2)


def test_optimal_scale_errors():
    with pytest.raises(ValueError, match="dist must be one of gaussian, laplace, got 'cauchy'"):
        optimal_scale([0, 1], "cauchy")
    with pytest.raises(ValueError, match="positive_levels must contain a level > 0"):
        optimal_scale([0.0])
    with pytest.raises(TypeError, match="fmt must be an ESBFormat"):
        lambda_for((4, 1))


# ---- fit_alpha -------------------------------------------------------------------------------------
def test_fit_alpha_dda_per_tensor_and_per_channel():
    rng = np.random.default_rng(5)
    weights = rng.standard_normal((4, 3, 3, 3)) * np.array([0.1, 1.0, 3.0, 0.0]).reshape(4, 1, 1, 1)
    fmt = ESBFormat(4, 1)
    rms = math.sqrt(float(np.mean(weights**2)))
    assert fit_alpha(weights, fmt) == pytest.approx(lambda_for(fmt) * rms)
    per_channel = fit_alpha(weights, fmt, per_channel_axis=0)
    assert per_channel.shape == (4, 1, 1, 1)
    for channel in range(3):
        channel_rms = math.sqrt(float(np.mean(weights[channel] ** 2)))
        assert per_channel[channel, 0, 0, 0] == pytest.approx(lambda_for(fmt) * channel_rms)
    assert per_channel[3, 0, 0, 0] == 1.0  # an all-zero channel
    assert np.all(quantize(weights, fmt, per_channel)[3] == 0)
    assert fit_alpha(weights, fmt, per_channel_axis=-4).shape == (4, 1, 1, 1)


def test_fit_alpha_laplace_uses_the_laplace_lambda():
    weights = np.random.default_rng(1).laplace(size=1000)
    fmt = ESBFormat(5, 2)
    rms = math.sqrt(float(np.mean(weights**2)))
    assert fit_alpha(weights, fmt, dist="laplace") == pytest.approx(lambda_for(fmt, "laplace") * rms)


def test_fit_alpha_mse_minimizes_the_error_on_the_data():
    rng = np.random.default_rng(9)
    weights = rng.standard_t(3, size=5000)  # heavy tails: DDA's Gaussian assumption is off
    fmt = ESBFormat(4, 1)
    alpha = fit_alpha(weights, fmt, method="mse")
    best = monte_carlo_mse(fmt, alpha, weights)
    assert best <= monte_carlo_mse(fmt, fit_alpha(weights, fmt), weights)
    for factor in np.linspace(0.5, 2.0, 61):
        assert best <= monte_carlo_mse(fmt, alpha * factor, weights) + 1e-15


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"method": "minmax"}, ValueError, "method must be 'dda' or 'mse', got 'minmax'"),
    ({"per_channel_axis": 2}, ValueError, r"per_channel_axis must be in -2\.\.1 for a 2-d tensor, got 2"),
    ({"per_channel_axis": 1.0}, TypeError, "per_channel_axis must be an int or None"),
    ({"dist": "normal"}, ValueError, "dist must be one of gaussian, laplace"),
])
def test_fit_alpha_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        fit_alpha(np.ones((2, 2)), ESBFormat(4, 1), **kwargs)


def test_fit_alpha_bad_tensors():
    with pytest.raises(ValueError, match="w must be finite"):
        fit_alpha(np.array([1.0, np.nan]), ESBFormat(4, 1))
    with pytest.raises(ValueError, match="w must not be empty"):
        fit_alpha(np.array([]), ESBFormat(4, 1))
