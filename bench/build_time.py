#!/usr/bin/env python3
"""Wall time of build.py: the plain build and, unless --skip-estimate, the --estimate build.

Usage: python bench/build_time.py [--board zcu102] [--config FILE] [--repeats N] [--skip-estimate] [--json]
Each run is a fresh process (python build.py ... --out <temp folder>), as a user runs it. Target: the plain
build under 10 s on the project's 2-core machines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 10.0


def timed_build(arguments: list[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="esb-build-") as directory:
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(ROOT / "build.py"), *arguments, "--out", directory],
                                capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
    if result.returncode != 0:
        print(f"error: build.py {' '.join(arguments)} failed: {result.stderr.strip()}", file=sys.stderr)
        raise SystemExit(result.returncode)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="zcu102")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-estimate", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    if args.repeats < 1:
        print("error: --repeats must be >= 1", file=sys.stderr)
        return 2
    base = ["--board", args.board] + (["--config", str(args.config)] if args.config else [])
    plain = [timed_build(base) for _ in range(args.repeats)]
    rows = {"build_s": {"median": statistics.median(plain), "min": min(plain), "max": max(plain)}}
    if not args.skip_estimate:
        estimate = timed_build([*base, "--estimate"])
        rows["build_estimate_s"] = {"median": estimate, "min": estimate, "max": estimate}
    if args.json:
        print(json.dumps({"board": args.board, "config": str(args.config or "default"),
                          "repeats": args.repeats, "target_build_s": TARGET_SECONDS, **rows}))
        return 0
    print(f"build.py --board {args.board}: {args.repeats} runs; target for the plain build: {TARGET_SECONDS:g} s")
    print("| run | median s | min s | max s |")
    print("|---|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name.removesuffix('_s')} | {row['median']:.2f} | {row['min']:.2f} | {row['max']:.2f} |")
    verdict = "meets" if rows["build_s"]["median"] <= TARGET_SECONDS else "MISSES"
    print(f"plain build median {rows['build_s']['median']:.2f} s: {verdict} the {TARGET_SECONDS:g} s target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
