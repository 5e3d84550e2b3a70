"""Baseline quantizers (esb_hw/quant/baselines.py): uniform, power-of-two, APoT."""

import numpy as np
import pytest

from esb_hw.quant import ESBFormat, optimal_scale
from esb_hw.quant.baselines import apot, nearest_level, power_of_two, uniform


def test_uniform_levels():
    assert uniform(3).positive_levels == (0, 1 / 3, 2 / 3, 1)
    assert len(uniform(8).levels()) == 255


def test_power_of_two_levels():
    assert power_of_two(3).positive_levels == (0, 0.25, 0.5, 1)
    # Same level set as ESB with k = 0 where ESB allows it.
    esb = ESBFormat(4, 0).levels()
    assert np.array_equal(power_of_two(4).levels(), esb / esb.max())


def test_apot_levels_from_the_definition():
    # 4 bits: 3 magnitude bits -> groups of 2 and 1 bits: {0, 1, 1/4, 1/16} + {0, 1/2}, normalized by 1.5.
    sums = sorted({a + b for a in (0, 1, 0.25, 0.0625) for b in (0, 0.5)})
    assert apot(4).positive_levels == pytest.approx(tuple(s / 1.5 for s in sums))
    assert len(apot(8).positive_levels) <= 2**7


def test_nearest_level_ties_go_to_the_smaller_magnitude():
    levels = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    assert nearest_level(np.array([0.25, -0.25, 0.75, -0.75, 3.0, -3.0]), levels).tolist() == [
        0.0, 0.0, 0.5, -0.5, 1.0, -1.0]


@pytest.mark.parametrize("quantizer", [uniform(4), power_of_two(5), apot(6)], ids=lambda q: q.name)
def test_quantize_lands_on_levels(quantizer):
    values = np.random.default_rng(0).standard_normal(1000)
    out = quantizer.quantize(values, 0.7)
    assert np.all(np.isin(np.round(out / 0.7, 12), np.round(quantizer.levels(), 12)))


def test_uniform_beats_pot_on_gaussian_at_4_bits():
    assert optimal_scale(uniform(4).positive_levels)[1] < optimal_scale(power_of_two(4).positive_levels)[1]


@pytest.mark.parametrize(("factory", "bits", "message"), [
    (uniform, 1, r"bits must be in 2\.\.16, got 1"), (apot, 2, r"bits must be in 3\.\.16, got 2"),
    (power_of_two, 17, r"bits must be in 2\.\.16, got 17"),
])
def test_bad_bits(factory, bits, message):
    with pytest.raises(ValueError, match=message):
        factory(bits)
