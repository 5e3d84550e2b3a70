#!/usr/bin/env python3
"""A budgeted search against the whole grid it searches: ``examples/sweeps/arrays.toml`` (which array, formats and
engine depth give ``resnet_mnist`` the most images/s and accuracy within a LUT budget) with ``--search pareto``, then
the whole grid through the same cache, so the grid costs only the points the search did not evaluate.

Prints each run's points and time, the fastest config within the budget each found, and the grid's front against the
search's. ``--json`` prints ``{"search": explore.json, "grid": explore.json, "seconds": {...}}``, the file the
README's ``explore-search`` block is made from (``bench/results/explore_arrays.json``, ``make figures``).

Usage: python bench/explore_search.py [--sweep FILE] [--trials 24] [--json]
About 4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from readme_figures import explore_search  # noqa: E402


def explore(sweep: Path, out: Path, cache: Path, *options: str) -> float:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "esb_hw.cli", "explore", str(sweep), "--out", str(out), "--cache",
                           str(cache), *options], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: explore {' '.join(options)} failed: "
                         f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return round(time.monotonic() - started, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=ROOT / "examples" / "sweeps" / "arrays.toml")
    parser.add_argument("--trials", type=int, default=24, help="the search's trials (default 24)")
    parser.add_argument("--json", action="store_true", help="print both results as one JSON object")
    args = parser.parse_args()
    if not args.sweep.is_file():
        print(f"error: {args.sweep}: no such sweep file", file=sys.stderr)
        return 2
    if args.trials < 1:
        print(f"error: --trials must be at least 1, got {args.trials}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="esb-explore-search-") as folder:
        folder = Path(folder)
        print("search ...", file=sys.stderr, flush=True)
        search_seconds = explore(args.sweep, folder / "search", folder / "cache", "--search", "pareto", "--trials",
                                 str(args.trials))
        print("the whole grid (the search's points cached) ...", file=sys.stderr, flush=True)
        grid_seconds = explore(args.sweep, folder / "grid", folder / "cache")
        result = {"search": json.loads((folder / "search" / "explore.json").read_text()),
                  "grid": json.loads((folder / "grid" / "explore.json").read_text()),
                  "seconds": {"search": search_seconds, "rest_of_grid": grid_seconds}}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(explore_search(result))
    print(f"\nsearch: {search_seconds} s; the rest of the grid: {grid_seconds} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
