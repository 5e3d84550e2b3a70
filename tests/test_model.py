"""The analytical resource model of esb_hw/estimate.py: structure, calibration data, fit checks, throughput.

Only one test runs yosys (two small array runs in parallel, a few seconds); the rest use the stored
calibration measurements.
"""

import dataclasses
import json
import re

import pytest

from esb_hw import estimate
from esb_hw.config import AcceleratorConfig
from esb_hw.estimate import (
    MODEL_TOLERANCE,
    CalibrationError,
    DoesNotFitError,
    ResourceEstimate,
    check_fits,
    estimate_array,
    estimate_extra,
    exceeds_tolerance,
    gops_per_klut,
    model_error,
    peak_gops,
    relative_error,
)

ZCU102 = {"lut": 274_080, "ff": 548_160, "bram36": 912, "dsp": 2_520}
COMPONENTS = ["lanes", "products", "trees", "accumulators", "control"]


def config(**changes) -> AcceleratorConfig:
    fields = dict(weight_bits=4, weight_k=1, activation_bits=8, activation_k=8, rows=8, cols=8)
    return AcceleratorConfig(**{**fields, **changes})


# ---- structure and monotonicity ----------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["esb", "esb_naive", "baseline"])
def test_breakdown_adds_up(variant):
    result = estimate_array(config(pe_variant=variant))
    assert sorted(result.breakdown) == sorted(COMPONENTS)
    for resource in estimate.RESOURCES:
        assert sum(part[resource] for part in result.breakdown.values()) == getattr(result, resource)
    assert result.bram36 == 0 and result.dsp == 0


@pytest.mark.parametrize("variant", ["esb", "esb_naive", "baseline"])
@pytest.mark.parametrize("field, values", [
    ("rows", [1, 2, 3, 8, 16, 64]),
    ("cols", [1, 2, 3, 5, 8, 16, 64]),
    ("activation_bits", [2, 4, 6, 8]),  # plain integers: k = bits
    ("max_reduction", [8, 64, 4096, 1 << 20]),  # accumulator bits (at least cols)
])
def test_model_grows_with_size(variant, field, values):
    estimates = []
    for value in values:
        changes = {field: value, "pe_variant": variant}
        if field == "activation_bits":
            changes["activation_k"] = value
        estimates.append(estimate_array(config(**changes)))
    for smaller, larger in zip(estimates, estimates[1:], strict=False):
        assert larger.lut >= smaller.lut and larger.ff > smaller.ff


@pytest.mark.parametrize("weights", [[(3, 0), (4, 0), (5, 0)], [(3, 1), (4, 2), (5, 3)], [(4, 1), (5, 1)]])
def test_model_grows_with_weight_bits(weights):
    estimates = [estimate_array(config(weight_bits=bits, weight_k=k)) for bits, k in weights]
    for smaller, larger in zip(estimates, estimates[1:], strict=False):
        assert larger.lut > smaller.lut and larger.ff > smaller.ff


def test_flip_flops_of_the_default_array():
    # Counted by hand from array.py: 64 activation bits; 64 PEs x (4 weight bits + 13-bit term);
    # 8 ternary trees x (15 + 15 + 14 + 3 signs + 17 + 1 sign); 8 x (25-bit accumulator + 25-bit output);
    # 4 stages x (valid, first, last) + starts_tile + o.valid.
    assert estimate.flip_flops(config()) == {"lanes": 64, "products": 1088, "trees": 520, "accumulators": 400,
                                             "control": 14}


def test_tree_structure():
    assert estimate.tree_structure(1, 13) == (0, 0)
    # 8 terms of 13 bits: ternary (15), ternary (15), binary (14) and 3 signs; then ternary (17) and 1 sign.
    # A ternary adder is one LUT6_2 per output bit, a binary adder one LUT per input bit.
    assert estimate.tree_structure(8, 13) == (15 + 15 + 14 + 3 + 17 + 1, 15 + 15 + 13 + 17)
    # 5 terms of 9 bits: ternary (11), binary (10) and 2 signs; then binary (12) and 1 sign.
    assert estimate.tree_structure(5, 9) == (11 + 10 + 2 + 12 + 1, 11 + 9 + 11)


# ---- calibration data -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def calibration():
    return estimate.load_calibration()


def test_calibration_file_has_what_the_model_needs(calibration):
    assert estimate.CALIBRATION_PATH.parent == estimate.Path(estimate.__file__).parent
    assert calibration["yosys"]["version"].startswith("Yosys ")
    assert estimate.ARRAY_FLOW in calibration["yosys"]["flows"]
    coefficients = calibration["coefficients"]
    for variant, terms in estimate.PRODUCT_TERMS.items():
        assert sorted(coefficients["product"][variant]) == sorted(terms)
    for variant, terms in estimate.LANE_TERMS.items():
        assert sorted(coefficients["lane"][variant]) == sorted(terms)
    values = [value for group in ("product", "lane") for table in coefficients[group].values()
              for value in table.values()]
    values += [coefficients[name] for name in ("tree_adder_bit", "accumulator_bit", "control")]
    assert all(value >= 0 for value in values)  # a negative cost would be an overfit
    measurements = calibration["measurements"]
    assert {point["variant"] for point in measurements["rows"]} == {"esb", "esb_naive", "baseline"}
    assert measurements["trees"] and measurements["accumulators"]
    for point in measurements["rows"]:
        for key in ("one_row", "two_rows"):
            assert point[key]["flow"] == estimate.ARRAY_FLOW
            assert {"lut", "ff", "bram36", "dsp"} <= set(point[key])


def flat(table: dict, prefix: str = "") -> dict:
    result = {}
    for key, value in table.items():
        if isinstance(value, dict):
            result.update(flat(value, f"{prefix}{key}."))
        else:
            result[f"{prefix}{key}"] = value
    return result


def test_stored_coefficients_are_the_fit_of_the_stored_measurements(calibration):
    refit = flat(estimate.fit_coefficients(calibration["measurements"]))
    assert refit == pytest.approx(flat(calibration["coefficients"]), abs=2e-3)


def test_flip_flops_are_exact_on_every_calibration_run(calibration):
    for row in estimate.calibration_residuals(calibration["measurements"], calibration["coefficients"]):
        assert row["model_ff"] == row["ff"], row


def test_lone_trees_match_their_structure(calibration):
    for tree in calibration["measurements"]["trees"]:
        assert (tree["ff"], tree["lut"]) == estimate.tree_structure(tree["count"], tree["term_bits"])


def test_model_fits_the_preset_formats_in_calibration(calibration):
    presets = {((4, 1), (8, 8)), ((3, 0), (8, 8)), ((4, 2), (8, 8)), ((5, 2), (6, 3))}
    rows = [row for row in estimate.calibration_residuals(calibration["measurements"], calibration["coefficients"])
            if row["variant"] == "esb" and (tuple(row["weights"]), tuple(row["activations"])) in presets]
    assert len(rows) == 2 * len(presets)
    assert not [row for row in rows if abs(row["lut_error"]) > MODEL_TOLERANCE]


def test_missing_calibration(tmp_path):
    with pytest.raises(CalibrationError, match=r"^calibration file not found; run bench/calibrate.py --write \("):
        estimate.load_calibration(tmp_path / "calibration.json")


def test_incomplete_calibration(tmp_path, calibration):
    broken = json.loads(json.dumps(calibration))
    del broken["coefficients"]["product"]["esb"]["mux_inputs"]
    broken["coefficients"]["control"] = "eight"
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(CalibrationError, match=re.escape(
            f"calibration file lacks the coefficients product.esb.mux_inputs, control ({path})")):
        estimate.load_calibration(path)
    path.write_text("[1, 2")
    with pytest.raises(CalibrationError, match=r"^cannot read calibration file: "):
        estimate.load_calibration(path)


# ---- model error ---------------------------------------------------------------------------------------------
def test_relative_error():
    assert relative_error(115, 100) == pytest.approx(0.15)
    assert relative_error(80, 100) == pytest.approx(-0.2)
    assert relative_error(0, 0) == 0.0
    assert relative_error(3, 0) == float("inf")


def test_a_doubled_model_is_flagged():
    measured = {"lut": 2698, "ff": 2441, "bram36": 0, "dsp": 0}
    good = ResourceEstimate(lut=2582, ff=2441)
    doubled = ResourceEstimate(lut=2 * 2582, ff=2 * 2441)
    assert exceeds_tolerance(model_error(good, measured)) == []
    errors = model_error(doubled, measured)
    assert errors["lut"] > MODEL_TOLERANCE
    assert exceeds_tolerance(errors) == ["lut"]
    assert exceeds_tolerance(errors, resources=("lut", "ff")) == ["lut", "ff"]


# ---- estimates add -------------------------------------------------------------------------------------------
def test_extra_overhead_adds_to_the_array():
    array = estimate_array(config())
    wrapper = estimate_extra("wrapper", lut=400, ff=300, bram36=2.5, dsp=1)
    total = array + wrapper + estimate_extra("wrapper", lut=100)
    assert (total.lut, total.ff, total.bram36, total.dsp) == (array.lut + 500, array.ff + 300, 2.5, 1)
    assert total.breakdown["wrapper"] == {"lut": 500, "ff": 300, "bram36": 2.5, "dsp": 1}
    assert total.breakdown["products"] == array.breakdown["products"]
    assert "wrapper" not in array.breakdown  # the operands are untouched


@pytest.mark.parametrize("kwargs, message", [
    ({"lut": -1}, "lut must be a finite number >= 0, got -1"),
    ({"ff": True}, "ff must be a finite number >= 0, got True"),
    ({"dsp": float("nan")}, "dsp must be a finite number >= 0, got nan"),
])
def test_bad_amounts(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        estimate_extra("wrapper", **kwargs)


def test_bad_extra_name():
    with pytest.raises(ValueError, match="name must be a non-empty string, got ''"):
        estimate_extra("", lut=1)


# ---- throughput ------------------------------------------------------------------------------------------------
def test_peak_gops_and_gops_per_klut():
    default = config()  # 64 MACs at 200 MHz
    assert peak_gops(default) == pytest.approx(25.6)
    assert gops_per_klut(default, 2560) == pytest.approx(10.0)
    assert peak_gops(config(rows=16, cols=32, clock_mhz=250.0)) == pytest.approx(2 * 512 * 0.25)
    with pytest.raises(ValueError, match=r"luts must be a number > 0, got 0"):
        gops_per_klut(default, 0)


# ---- fitting the board ---------------------------------------------------------------------------------------
def test_check_fits_returns_utilization():
    utilization = check_fits(ResourceEstimate(lut=27_408, ff=0, bram36=456, dsp=0), ZCU102, "zcu102")
    assert utilization == {"lut": 0.1, "ff": 0.0, "bram36": 0.5, "dsp": 0.0}
    measured = {"lut": 27_408, "ff": 54_816, "bram36": 0.0, "dsp": 0, "source": "yosys"}
    assert check_fits(measured, ZCU102, "zcu102") == {"lut": 0.1, "ff": 0.1, "bram36": 0.0, "dsp": 0.0}


def test_check_fits_message():
    with pytest.raises(DoesNotFitError) as caught:
        check_fits(ResourceEstimate(lut=301_234, ff=1_000), ZCU102, "zcu102")
    assert str(caught.value) == "design does not fit zcu102: 301,234 LUTs > 274,080 available (110%)"
    assert caught.value.over == {"lut": (301_234, 274_080)}
    assert isinstance(caught.value, ValueError)


def test_check_fits_names_every_resource_over():
    with pytest.raises(DoesNotFitError, match=re.escape(
            "design does not fit kcu105: 300,000 LUTs > 242,400 available (124%); "
            "600.5 BRAM36 > 600 available (100%); 2,000 DSPs > 1,920 available (104%)")):
        check_fits(ResourceEstimate(lut=300_000, ff=0, bram36=600.5, dsp=2_000),
                   {"lut": 242_400, "ff": 484_800, "bram36": 600, "dsp": 1_920}, "kcu105")


def test_an_oversized_config_does_not_fit():
    big = estimate_array(config(weight_bits=6, weight_k=3, rows=64, cols=64))
    assert big.lut > ZCU102["lut"] and big.ff < ZCU102["ff"]
    expected = (f"design does not fit zcu102: {big.lut:,} LUTs > 274,080 available "
                f"({100 * big.lut / 274_080:.0f}%)")
    with pytest.raises(DoesNotFitError, match=f"^{re.escape(expected)}$"):
        check_fits(big, ZCU102, "zcu102")


def test_capacity_needs_every_resource():
    with pytest.raises(ValueError, match=r"capacity lacks dsp, got keys \['bram36', 'ff', 'lut'\]"):
        check_fits(ResourceEstimate(lut=1, ff=1), {"lut": 1, "ff": 1, "bram36": 1}, "zcu102")


# ---- against yosys -------------------------------------------------------------------------------------------
def test_measure_array_counts_flip_flops_exactly():
    """Two small yosys runs (1 and 2 rows of 3 columns, in parallel): the hierarchical measurement of a
    3x3 array and the model's exact flip-flop count agree."""
    small = dataclasses.replace(config(), rows=3, cols=3)
    result = estimate.measure_array(small)
    assert result["measured"]["ff"] == estimate_array(small).ff
    assert result["error"]["ff"] == 0.0
    assert result["measured"]["lut"] == result["shared"]["lut"] + 3 * result["per_row"]["lut"]
    assert result["flow"] == estimate.ARRAY_FLOW
    assert abs(result["error"]["lut"]) < 0.3  # a 3x3 array is far from the calibration points; just sane
