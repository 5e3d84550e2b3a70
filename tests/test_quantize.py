"""esb_hw/frontend/quantize.py: weight level sets and scales, calibration, the integer model, and where each layer
runs. The integer model's programs are checked bit-exactly against the compiler's independent NumPy run."""

import dataclasses

import numpy as np
import pytest

from esb_hw.compiler.program import read_output, run_in_numpy, to_bundle
from esb_hw.data import shipped_config
from esb_hw.errors import InputError
from esb_hw.frontend.accuracy import load_digits_model
from esb_hw.frontend.datasets import load_split
from esb_hw.frontend.model import FloatLayer, FloatModel
from esb_hw.frontend.quantize import QuantRecipe, WeightQuantizer, compile_segments, placement, quantize_model
from esb_hw.quant import ESBFormat, lambda_for
from esb_hw.quant.baselines import apot, power_of_two, uniform

DEFAULT = shipped_config("default")
UINT8 = ESBFormat(8, 8, signed=False)


@pytest.mark.parametrize("spec, message", [
    ("esb:4", "expected esb:BITS:K"), ("float:8", "expected esb:BITS:K"), ("esb:4:x", "expected"),
    ("pot:7", "weight format 'pot:7'"), ("apot:2", "weight format 'apot:2'"), ("esb:9:0", "weight format"),
])
def test_bad_weight_specs(spec, message):
    with pytest.raises(InputError, match=message):
        WeightQuantizer(spec)


@pytest.mark.parametrize("bits", [3, 4, 5])
def test_uniform_pot_and_apot_level_sets_are_the_baselines(bits):
    for spec, baseline in ((f"uniform:{bits}", uniform(bits)), (f"pot:{bits}", power_of_two(bits)),
                           (f"apot:{bits}", apot(bits))):
        levels = WeightQuantizer(spec).positive_levels()
        assert levels.dtype == np.int64 and levels[0] == 0
        np.testing.assert_allclose(levels / levels[-1], baseline.positive_levels, rtol=0, atol=1e-12)


def test_apot_integer_levels():
    assert WeightQuantizer("apot:4").positive_levels().tolist() == [0, 1, 4, 8, 9, 12, 16, 24]


@pytest.mark.parametrize("spec", ["esb:4:1", "uniform:4", "pot:4", "apot:4", "esb:8:4"])
@pytest.mark.parametrize("method", ["dda", "mse", "max"])
def test_levels_lie_in_the_set_and_max_maps_to_the_top(spec, method):
    rng = np.random.default_rng(7)
    weight = rng.normal(size=(6, 3, 3, 3)) * rng.uniform(0.1, 3, (6, 1, 1, 1))
    quantizer = WeightQuantizer(spec)
    unit = quantizer.unit(weight, method)
    levels = quantizer.levels(weight, unit)
    allowed = set(quantizer.positive_levels().tolist())
    assert set(np.abs(levels).ravel().tolist()) <= allowed
    assert np.all(np.sign(levels) * np.sign(weight) >= 0)
    if method == "max":
        top = quantizer.positive_levels()[-1]
        assert np.all(np.abs(levels).reshape(6, -1).max(axis=1) == top)
    error = np.mean((quantizer.fake_quantize(weight, method) - weight) ** 2) / np.mean(weight ** 2)
    assert error < (0.2 if quantizer.bits <= 4 else 0.05)


def test_dda_unit_is_lambda_times_rms():
    rng = np.random.default_rng(8)
    weight = rng.normal(size=(4, 10)) * np.array([[0.5], [1], [2], [4]])
    fmt = ESBFormat(5, 2)
    rms = np.sqrt(np.mean(weight ** 2, axis=1))
    np.testing.assert_allclose(WeightQuantizer("esb:5:2").unit(weight, "dda"), lambda_for(fmt) * rms / 4, rtol=1e-12)


@pytest.fixture(scope="module")
def digits():
    return load_digits_model(), load_split()


def test_ptq_for_the_default_array_keeps_the_accuracy(digits):
    model, split = digits
    integer = quantize_model(model, QuantRecipe.for_config(DEFAULT), split.train_images)
    accuracy = np.mean(integer.predict(split.test_images) == split.test_labels)
    assert accuracy >= 0.97
    assert integer.logits(split.test_images).min() < 0  # the zero point keeps negative logits
    # with 8-bit weights and activations the real logits follow the float model's closely (4-bit weights: ~20 %)
    fine = quantize_model(model, QuantRecipe("esb:8:5", UINT8), split.train_images)
    logits, float_logits = fine.logits(split.test_images), model.forward(split.test_images)
    assert np.mean(np.abs(logits - float_logits)) < 0.03 * np.mean(np.abs(float_logits))
    again = quantize_model(model, QuantRecipe.for_config(DEFAULT), split.train_images)
    for a, b in zip(integer.layers, again.layers, strict=True):
        assert np.array_equal(a.weight_levels, b.weight_levels) and np.array_equal(a.params.multiplier,
                                                                                    b.params.multiplier)


def test_programs_equal_the_integer_model(digits):
    """The compiled program, run by the compiler's own NumPy engine twin, gives the integer model's codes."""
    model, split = digits
    integer = quantize_model(model, QuantRecipe.for_config(DEFAULT), split.train_images)
    (segment,) = compile_segments(integer, DEFAULT)
    assert (segment.first, segment.end) == (0, 3)
    images = split.test_images[:4]
    expected = integer.run(images)[-1]
    for index, codes in enumerate(integer.input_codes(images)):
        bundle = to_bundle(segment.program, "x", codes)
        memory = bytearray(bundle.image)
        run_in_numpy(segment.program, memory)
        address, size = segment.program.output_region()
        got = read_output(segment.program, bytes(memory[address:address + size]))
        assert np.array_equal(got, expected[index])


def test_ends_8bit_run_on_the_host(digits):
    model, split = digits
    integer = quantize_model(model, QuantRecipe.for_config(DEFAULT, ends_8bit=True), split.train_images)
    reasons = placement(integer, DEFAULT)
    assert reasons[1] is None
    assert reasons[0] == reasons[2] == "weights uniform 8b, the array has ESB(4,1)"
    segments = compile_segments(integer, DEFAULT)
    assert [(s.first, s.end, s.program is not None) for s in segments] == [(0, 1, False), (1, 2, True),
                                                                          (2, 3, False)]
    on_esb_activations = quantize_model(model, QuantRecipe("esb:4:1", ESBFormat(6, 3, signed=False)),
                                        split.train_images)
    assert placement(on_esb_activations, DEFAULT)[0] == ("input ESB(6,3,unsigned), the array has "
                                                          "ESB(8,8,unsigned)")


def test_a_layer_the_engine_cannot_run_goes_to_the_host():
    rng = np.random.default_rng(9)
    model = FloatModel([FloatLayer("big", "conv2d", rng.normal(size=(4, 1, 9, 9)), None, relu=True),
                        FloatLayer("fc", "linear", rng.normal(size=(3, 4)), None)], (1, 9, 9))
    images = rng.uniform(0, 1, (8, 1, 9, 9))
    integer = quantize_model(model, QuantRecipe.for_config(DEFAULT), images)
    reasons = placement(integer, DEFAULT)
    assert reasons[0] == "kernel 9x9 is not supported (1x1 to 7x7)" and reasons[1] is None


def test_a_final_relu_keeps_plain_unsigned_outputs():
    """A last layer with ReLU has non-negative outputs: no zero point (which would move ReLU's zero)."""
    rng = np.random.default_rng(11)
    layers = [FloatLayer("c", "conv2d", rng.normal(size=(3, 1, 3, 3)), None, relu=True),
              FloatLayer("fc", "linear", rng.normal(size=(4, 12)), rng.normal(size=4), relu=True)]
    images = rng.uniform(0, 1, (16, 1, 4, 4))
    integer = quantize_model(FloatModel(layers, (1, 4, 4)), QuantRecipe.for_config(DEFAULT), images)
    assert integer.layers[-1].zero_point == 0 and integer.logits(images).min() >= 0
    without = FloatModel([layers[0], dataclasses.replace(layers[1], relu=False)], (1, 4, 4))
    assert quantize_model(without, QuantRecipe.for_config(DEFAULT), images).layers[-1].zero_point == 128


def test_logits_out_of_the_scale_range_are_named():
    rng = np.random.default_rng(12)
    model = FloatModel([FloatLayer("huge", "linear", rng.normal(size=(3, 4)) * 1e13, None)], (1, 2, 2))
    with pytest.raises(InputError, match="layer 'huge': logits of magnitude .* need a scale of 2\\*\\*"):
        quantize_model(model, QuantRecipe.for_config(DEFAULT), rng.uniform(0, 1, (4, 1, 2, 2)))


def test_one_bit_logits_and_non_finite_logits_are_named():
    rng = np.random.default_rng(13)
    model = FloatModel([FloatLayer("fc", "linear", rng.normal(size=(3, 4)), None)], (1, 2, 2))
    images = rng.uniform(0, 1, (4, 1, 2, 2))
    with pytest.raises(InputError, match="layer 'fc': ESB\\(1,1,unsigned\\) outputs cannot hold signed logits"):
        quantize_model(model, QuantRecipe("esb:4:1", ESBFormat(1, 1, signed=False)), images)
    broken = FloatModel([FloatLayer("fc", "linear", np.full((3, 4), 1e308), None)], (1, 2, 2))
    with pytest.raises(InputError, match="layer 'fc': the float model's outputs are not finite"):
        quantize_model(broken, QuantRecipe.for_config(DEFAULT), images)


def test_hidden_layer_without_relu_is_refused():
    rng = np.random.default_rng(10)
    model = FloatModel([FloatLayer("c", "conv2d", rng.normal(size=(2, 1, 3, 3)), None),
                        FloatLayer("fc", "linear", rng.normal(size=(3, 8)), None)], (1, 4, 4))
    with pytest.raises(InputError, match="layer 'c' has no ReLU"):
        quantize_model(model, QuantRecipe.for_config(DEFAULT), rng.uniform(0, 1, (4, 1, 4, 4)))
