#!/usr/bin/env python3
"""The analytical resource model (esb_hw/estimate/model.py) against flat yosys synthesis of whole PE arrays.

For each config (every shipped config, esb_hw/data/configs/*.toml, by default) this synthesizes the whole
``PEArray`` in one flat run
(``synth_xilinx -family xcup -flatten -nodsp -dff``; no hierarchical scaling) and prints the yosys LUT and FF
counts beside ``estimate_array``'s, with the model's relative error. An 8x8 array takes 20-140 s of yosys.
Exit code 1 if a LUT error exceeds the tolerance (the issue's 15 %).

Usage: python bench/model_error.py [--config FILE ...] [--json] [--jobs N] [--tolerance 0.15]
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from esb_hw import estimate
from esb_hw.config import AcceleratorConfig
from esb_hw.data import CONFIGS
from esb_hw.errors import EsbError
from esb_hw.hw.core.array import PEArray


def measure(path: str) -> dict:
    """Flat yosys run of the config's whole array, and the model's figures for it."""
    config = AcceleratorConfig.from_toml(path)
    result = estimate.synthesize(PEArray(config, primitives=True), "array", dff=True)
    model = estimate.estimate_array(config)
    measured = {"lut": result.lut, "ff": result.ff, "bram36": result.bram36, "dsp": result.dsp}
    carries = {"carry4": result.carry4, "carry8": result.carry8}
    return {
        "config": config.name, "rows": config.rows, "cols": config.cols, "variant": config.pe_variant,
        "weights": str(config.weight_format), "activations": str(config.activation_format),
        "yosys": measured, "carries": carries, "model": model.as_dict(), "error": estimate.model_error(model, measured),
        "breakdown": model.breakdown, "flow": result.flow, "seconds": round(result.seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, action="append", help="a config file (repeatable; default: every "
                        "esb_hw/data/configs/*.toml)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--jobs", type=int, default=2, help="parallel yosys runs (default 2)")
    parser.add_argument("--tolerance", type=float, default=estimate.MODEL_TOLERANCE,
                        help=f"largest accepted relative LUT error (default {estimate.MODEL_TOLERANCE})")
    args = parser.parse_args()
    if not 0 < args.tolerance < 1:  # also rejects nan
        print(f"error: --tolerance must be in (0, 1), got {args.tolerance}", file=sys.stderr)
        return 2
    paths = [str(path) for path in (args.config or sorted(CONFIGS.glob("*.toml")))]
    try:
        for path in paths:  # fail on a bad file before minutes of synthesis
            AcceleratorConfig.from_toml(path)
        estimate.load_calibration()
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            rows = list(pool.map(measure, paths))
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    failed = [row["config"] for row in rows if estimate.exceeds_tolerance(row["error"], args.tolerance)]
    if args.json:
        print(json.dumps({"yosys": estimate.yosys_version(), "tolerance": args.tolerance, "configs": rows,
                          "failed": failed}, indent=1))
    else:
        print(f"{estimate.yosys_version()}; flat synthesis of the whole array; tolerance {args.tolerance:.0%} on LUTs")
        header = (f"| {'config':<13} | {'array':<5} | {'variant':<9} | {'yosys LUT':>9} | {'model LUT':>9} | "
                  f"{'LUT err':>7} | {'yosys FF':>8} | {'model FF':>8} | {'FF err':>6} | {'CARRY4':>6} | "
                  f"{'CARRY8':>6} | {'yosys s':>7} |")
        print(header)
        print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
        for row in rows:
            yosys, model, error = row["yosys"], row["model"], row["error"]
            print(f"| {row['config']:<13} | {row['rows']}x{row['cols']:<3} | {row['variant']:<9} | "
                  f"{yosys['lut']:>9} | {model['lut']:>9} | {100 * error['lut']:>+6.1f}% | {yosys['ff']:>8} | "
                  f"{model['ff']:>8} | {100 * error['ff']:>+5.1f}% | {row['carries']['carry4']:>6} | "
                  f"{row['carries']['carry8']:>6} | {row['seconds']:>7} |")
        flows = sorted({row["flow"] for row in rows})
        print(f"flows: {'; '.join(flows)}")
        print("all within tolerance" if not failed else f"outside tolerance: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
