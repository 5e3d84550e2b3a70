#!/usr/bin/env python3
"""Throughput of quantize and encode on 10 million float32 values (one core; NumPy runs these serially).

Usage: python bench/quant_speed.py [--values N] [--repeats R] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from esb_hw.quant import ESBFormat, quantize

TARGET_QUANTIZE = 20e6  # values per second, from the foundation issue


def best_rate(function, count: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return count / min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    if args.values < 1 or args.repeats < 1:
        print("error: --values and --repeats must be >= 1", file=sys.stderr)
        return 2
    values = np.random.default_rng(0).standard_normal(args.values).astype(np.float32)
    rows = []
    for fmt in (ESBFormat(4, 1), ESBFormat(5, 2), ESBFormat(8, 5), ESBFormat(8, 8, signed=False)):
        rows.append({
            "format": str(fmt),
            "quantize_per_s": best_rate(lambda f=fmt: quantize(values, f, 0.5), args.values, args.repeats),
            "encode_per_s": best_rate(lambda f=fmt: f.encode(values, 0.5), args.values, args.repeats),
        })
    if args.json:
        print(json.dumps({"values": args.values, "target_quantize_per_s": TARGET_QUANTIZE, "rows": rows}))
        return 0
    print(f"{args.values:,} float32 values, best of {args.repeats}; target for quantize: "
          f"{TARGET_QUANTIZE / 1e6:.0f} M/s")
    print(f"| {'format':<22} | {'quantize (M/s)':>14} | {'encode (M/s)':>12} |")
    print(f"|{'-' * 24}|{'-' * 16}|{'-' * 14}|")
    for row in rows:
        print(f"| {row['format']:<22} | {row['quantize_per_s'] / 1e6:>14.1f} | {row['encode_per_s'] / 1e6:>12.1f} |")
    slowest = min(row["quantize_per_s"] for row in rows)
    verdict = "meets" if slowest >= TARGET_QUANTIZE else "MISSES"
    print(f"slowest quantize {slowest / 1e6:.1f} M/s: {verdict} the {TARGET_QUANTIZE / 1e6:.0f} M/s target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
