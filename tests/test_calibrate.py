"""Calibration of the resource model (esb_hw/estimate/calibrate.py and calibration.json): the stored
coefficients are the fit of the stored measurements, and those were made on the hardware built today."""

import json
import re

import pytest

from esb_hw.estimate import calibrate, model, synth
from esb_hw.estimate.model import MODEL_TOLERANCE, CalibrationError
from esb_hw.hw.arith.tree import tree_structure
from esb_hw.hw.core.row import TREE_ARITY


@pytest.fixture(scope="module")
def calibration():
    return model.load_calibration()


def test_calibration_file_has_what_the_model_needs(calibration):
    assert model.CALIBRATION_PATH.parent == model.Path(model.__file__).parent
    assert calibration["yosys"]["version"].startswith("Yosys ")
    assert synth.ARRAY_FLOW in calibration["yosys"]["flows"]
    coefficients = calibration["coefficients"]
    for variant, terms in model.PRODUCT_TERMS.items():
        assert sorted(coefficients["product"][variant]) == sorted(terms)
    for variant, terms in model.LANE_TERMS.items():
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
            assert point[key]["flow"] == synth.ARRAY_FLOW
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
    refit = flat(calibrate.fit_coefficients(calibration["measurements"]))
    assert refit == pytest.approx(flat(calibration["coefficients"]), abs=2e-3)


def test_flip_flops_are_exact_on_every_calibration_run(calibration):
    for row in calibrate.calibration_residuals(calibration["measurements"], calibration["coefficients"]):
        assert row["model_ff"] == row["ff"], row


def test_lone_trees_match_their_structure(calibration):
    for tree in calibration["measurements"]["trees"]:
        structure = tree_structure(tree["count"], tree["term_bits"], TREE_ARITY)
        assert (tree["ff"], tree["lut"]) == (structure["register_bits"],
                                             structure["adder_bits"] + structure["shift_registers"])


def test_model_fits_the_preset_formats_in_calibration(calibration):
    presets = {((4, 1), (8, 8)), ((3, 0), (8, 8)), ((4, 2), (8, 8)), ((5, 2), (6, 3))}
    rows = [row for row in calibrate.calibration_residuals(calibration["measurements"], calibration["coefficients"])
            if row["variant"] == "esb" and (tuple(row["weights"]), tuple(row["activations"])) in presets]
    assert len(rows) == 2 * len(presets)
    assert not [row for row in rows if abs(row["lut_error"]) > MODEL_TOLERANCE]


def test_missing_calibration(tmp_path):
    with pytest.raises(CalibrationError, match=r"^calibration file not found; run bench/calibrate.py --write \("):
        model.load_calibration(tmp_path / "calibration.json")


def test_incomplete_calibration(tmp_path, calibration):
    broken = json.loads(json.dumps(calibration))
    del broken["coefficients"]["product"]["esb"]["mux_inputs"]
    broken["coefficients"]["control"] = "eight"
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(CalibrationError, match=re.escape(
            f"calibration file lacks the coefficients product.esb.mux_inputs, control ({path})")):
        model.load_calibration(path)
    path.write_text("[1, 2")
    with pytest.raises(CalibrationError, match=r"^cannot read calibration file: "):
        model.load_calibration(path)


