"""Fitting the resource model's coefficients (:mod:`esb_hw.estimate.model`) to yosys measurements.

The measurements are yosys runs of arrays of one and of two rows for a set of formats and variants
(:func:`split_rows` separates what each row adds from what is built once), plus lone adder trees and lone
accumulators: the blocks the array builds. ``bench/calibrate.py`` takes them and writes ``calibration.json``.
"""

from __future__ import annotations

import numpy as np

from ..config import AcceleratorConfig
from ..hw.arith.tree import tree_structure
from ..hw.core.array import array_structure
from ..hw.core.row import TREE_ARITY
from .model import LANE_TERMS, PRODUCT_TERMS, RESOURCES, _required_coefficients, flip_flops, lut_terms, relative_error

__all__ = ["calibration_residuals", "config_of_point", "fit_coefficients", "split_rows"]


def config_of_point(point: dict, rows: int) -> AcceleratorConfig:
    """The array config of a calibration point (``weights``/``activations`` as ``[bits, k]``, ``variant``,
    ``cols``, ``max_reduction``) with ``rows`` rows."""
    (weight_bits, weight_k), (activation_bits, activation_k) = point["weights"], point["activations"]
    return AcceleratorConfig(weight_bits=weight_bits, weight_k=weight_k, activation_bits=activation_bits,
                             activation_k=activation_k, rows=rows, cols=point["cols"],
                             max_reduction=point["max_reduction"], pe_variant=point["variant"])


def split_rows(one_row: dict, two_rows: dict) -> tuple[dict, dict]:
    """``(per_row, shared)`` from a one-row and a two-row run: ``per_row = two - one`` (a row's products,
    tree and accumulator), ``shared = one - per_row`` (lanes and control, built once for any row count)."""
    per_row = {key: two_rows[key] - one_row[key] for key in RESOURCES}
    shared = {key: one_row[key] - per_row[key] for key in RESOURCES}
    return per_row, shared


def fit_coefficients(measurements: dict) -> dict:
    """Fit the LUT coefficients to calibration measurements (the ``measurements`` table of the json).

    - ``tree_adder_bit``: the lone trees' LUTs over their adder input bits;
    - ``accumulator_bit``: the slope of the lone accumulators' LUTs against their width (the intercept is
      clock-enable logic that an array shares between its rows, part of ``control``);
    - every product and lane coefficient and ``control`` together, by least squares relative to the measured
      values, from two equations per row point: ``per_row - trees - accumulators = cols * product`` and
      ``shared = cols * lane + control`` (:func:`split_rows`).
    """
    trees = measurements["trees"]
    structures = [tree_structure(t["count"], t["term_bits"], TREE_ARITY) for t in trees]
    adder_luts = sum(t["lut"] - structure["shift_registers"] for t, structure in zip(trees, structures, strict=True))
    tree_adder_bit = adder_luts / sum(structure["adder_bits"] for structure in structures)
    accumulators = measurements["accumulators"]
    widths = np.array([a["bits"] for a in accumulators], float)
    accumulator_bit = float(np.polyfit(widths, np.array([a["lut"] for a in accumulators], float), 1)[0])
    unknowns = [name for name in _required_coefficients() if name.startswith(("product.", "lane."))] + ["control"]
    column = {name: index for index, name in enumerate(unknowns)}
    matrix, targets = [], []
    for point in measurements["rows"]:
        config = config_of_point(point, rows=1)
        structure, variant = array_structure(config), config.pe_variant
        per_row, shared = split_rows(point["one_row"], point["two_rows"])
        product_target = (per_row["lut"] - tree_adder_bit * structure["trees"]["adder_bits"]
                          - structure["trees"]["shift_registers"]
                          - accumulator_bit * structure["accumulators"]["adder_bits"])
        product, lane = np.zeros(len(unknowns)), np.zeros(len(unknowns))
        features = structure["products"]["features"]
        if "mapped_luts" in features:  # exact: the product equation has no unknown, it only moves the target
            product_target -= config.cols * features["mapped_luts"]
        else:
            for term, count in features.items():
                product[column[f"product.{variant}.{term}"]] = config.cols * count
        for term, count in structure["lanes"]["features"].items():
            lane[column[f"lane.{variant}.{term}"]] = config.cols * count
        lane[column["control"]] = 1.0
        equations = [(lane, shared["lut"])] + ([(product, product_target)] if product.any() else [])
        for equation, target in equations:
            scale = max(abs(target), 1.0)
            matrix.append(equation / scale)
            targets.append(target / scale)
    # Least squares with non-negative costs: a term that fits negative is dropped (fixed at 0) and the rest
    # refitted, so that no LUT term can subtract.
    matrix_array, target_array = np.array(matrix), np.array(targets)
    active = list(range(len(unknowns)))
    while True:
        solution = np.zeros(len(unknowns))
        solution[active] = np.linalg.lstsq(matrix_array[:, active], target_array, rcond=None)[0]
        negative = [index for index in active if solution[index] < 0]
        if not negative:
            break
        active.remove(min(negative, key=lambda index: solution[index]))
    coefficients: dict = {"product": {variant: {} for variant in PRODUCT_TERMS},
                          "lane": {variant: {} for variant in LANE_TERMS}}
    for name, value in zip(unknowns, solution, strict=True):
        if name == "control":
            coefficients["control"] = round(float(value), 3)
        else:
            group, variant, term = name.split(".")
            coefficients[group][variant][term] = round(float(value), 4)
    coefficients["tree_adder_bit"] = round(tree_adder_bit, 4)
    coefficients["accumulator_bit"] = round(accumulator_bit, 4)
    return coefficients


def calibration_residuals(measurements: dict, coefficients: dict) -> list[dict]:
    """The model against each measured row point (one row and two rows): LUTs and FFs with relative errors."""
    results = []
    for point in measurements["rows"]:
        for rows, key in ((1, "one_row"), (2, "two_rows")):
            config = config_of_point(point, rows=rows)
            lut = sum(lut_terms(config, coefficients).values())
            ff = sum(flip_flops(config).values())
            measured = point[key]
            results.append({"weights": point["weights"], "activations": point["activations"],
                            "variant": point["variant"], "rows": rows, "cols": point["cols"],
                            "lut": measured["lut"], "model_lut": round(lut),
                            "lut_error": relative_error(lut, measured["lut"]),
                            "ff": measured["ff"], "model_ff": ff, "ff_error": relative_error(ff, measured["ff"])})
    return results
