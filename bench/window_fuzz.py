"""The memory window's fuzz on the whole system's RTL (Verilator, cocotb, cocotbext-axi's AxiRam): corrupted and
hostile programs (esb_hw/sim/fuzz.py), each run through the driver on one simulated system and followed by a good
program, with canaries around the window and every AR/AW burst checked against it.

Prints, per kind of change, the programs tried, the outcomes (exact, silently wrong, errors by name), the bursts
that left the window and the canaries changed, then the good programs' runs. Exit code 1 if any rule broke: a
corrupted program that was not refused, a burst outside the window, a changed canary, a good program not exact.

Usage: python bench/window_fuzz.py [--programs 250] [--good-every 1] [--seed 1] [--simulator verilator] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from esb_hw.compiler.program import compile_program
from esb_hw.errors import EsbError
from esb_hw.sim.fuzz import CORRUPTED, HOSTILE, run_fuzz
from esb_hw.sim.layer_core import SMALL_ENGINE_CONFIG, random_layer


def programs(config) -> list:
    """A tiled conv with pooling, a linear layer and a two-layer chain (several descriptors each)."""
    rng = np.random.default_rng(21)
    cases = {
        "conv_pool": ([random_layer(config, rng, "conv2d", 6, 5, 3, 2, 1, True)], (5, 9, 8)),
        "linear": ([random_layer(config, rng, "linear", 7, 9)], (5, 9)),
        "chain": ([random_layer(config, rng, "conv2d", 6, 3, 3, 1, 1, False),
                   random_layer(config, rng, "conv2d", 5, 6, 1, 1, 0, False)], (3, 8, 7)),
    }
    result = []
    for name, (layers, shape) in cases.items():
        x = rng.integers(0, config.activation_format.code_count, shape)
        result.append((name, compile_program(config, layers, shape, x)))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=250,
                        help="changed programs to run (default 250: 50 of each kind)")
    parser.add_argument("--good-every", type=int, default=1, help="a good program after every N changed ones")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    if args.programs < 1 or args.good_every < 1:
        print("error: --programs and --good-every must be at least 1", file=sys.stderr)
        return 2
    config = SMALL_ENGINE_CONFIG
    started = time.monotonic()

    def progress(done, total):
        if not args.json:
            print(f"\r{done} of {total} runs", end="", file=sys.stderr, flush=True)

    try:
        report = run_fuzz(config, programs(config), args.programs, seed=args.seed, good_every=args.good_every,
                          simulator=args.simulator, progress=progress)
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    report["seconds"] = round(time.monotonic() - started, 1)
    report["config"], report["simulator"] = config.name, args.simulator
    if args.json:
        print(json.dumps(report, indent=1, sort_keys=True))
        return 1 if report["failures"] else 0
    print(file=sys.stderr)
    outcomes = sorted({key for counts in report["kinds"].values() for key in counts}
                      - {"programs", "bursts outside", "canaries changed"})
    print(f"{args.programs} changed programs on the {config.name} system ({args.simulator}, "
          f"{report['seconds']:.0f} s); corrupted = bytes changed after the compiler (the CRC must refuse them), "
          "hostile = changed and re-signed (they may run, but never outside the window)")
    header = ["kind", "family", "programs", *outcomes, "bursts outside", "canaries changed"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for kind in CORRUPTED + HOSTILE:
        counts = report["kinds"].get(kind, {})
        family = "corrupted" if kind in CORRUPTED else "hostile"
        cells = [kind, family, counts.get("programs", 0), *(counts.get(outcome, 0) for outcome in outcomes),
                 counts.get("bursts outside", 0), counts.get("canaries changed", 0)]
        print("| " + " | ".join(str(cell) for cell in cells) + " |")
    good = report["good"]
    print(f"good programs after them: {good.get('exact', 0)} of {good.get('runs', 0)} exact")
    for failure in report["failures"]:
        print(f"FAILED: {failure}")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
