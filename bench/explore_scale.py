#!/usr/bin/env python3
"""Scale evidence for ``esb-hw explore``: the same 40-point sweep (``examples/sweeps/scale.toml``) with 1 and with 2
Ray workers, each from an empty cache, and the speed-up.

Each run is ``esb-hw explore`` in its own process (a local Ray instance of ``--workers`` CPUs); the table gives its
whole wall time (Python's and Ray's start included), the sweep's time without them (``run.json``'s ``seconds``
less its ``ray_startup_seconds``), and the sum of the tasks' own times. Both runs must give the same
``explore.json`` bytes, or the bench fails. Run it on an idle machine: another job on the cores is time the workers
do not get.

Usage: python bench/explore_scale.py [--sweep FILE] [--workers 1,2] [--json]
About 7 minutes on 2 cores.
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


def run(sweep: Path, workers: int, folder: Path) -> dict:
    out = folder / f"workers{workers}"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "esb_hw.cli", "explore", str(sweep), "--out", str(out), "--workers",
                           str(workers)], capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"error: the {workers}-worker sweep failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    record = json.loads((out / "run.json").read_text())
    document = (out / "explore.json").read_bytes()
    statuses = [m["status"] for r in json.loads(document)["records"] for m in r["measures"].values()]
    return {"workers": workers, "points": len(json.loads(document)["records"]), "wall_seconds": round(seconds, 1),
            "run_seconds": round(record["seconds"] - record["ray_startup_seconds"], 1),
            "task_seconds": record["tasks"]["task_seconds"],
            "tasks_ran": record["tasks"]["ran"], "failed": sum(status != "ok" for status in statuses),
            "document": document}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=ROOT / "examples" / "sweeps" / "scale.toml")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated (default 1,2)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    try:
        counts = [int(value) for value in args.workers.split(",")]
        if not counts or any(count < 1 for count in counts):
            raise ValueError
    except ValueError:
        print(f"error: --workers takes positive counts, comma-separated, got {args.workers!r}", file=sys.stderr)
        return 2
    if not args.sweep.is_file():
        print(f"error: {args.sweep}: no such sweep file", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="esb-explore-scale-") as folder:
        rows = []
        for count in counts:
            print(f"sweep with {count} worker(s) ...", file=sys.stderr, flush=True)
            rows.append(run(args.sweep, count, Path(folder)))
    if len({row.pop("document") for row in rows}) != 1:
        print("error: the runs gave different explore.json bytes", file=sys.stderr)
        return 1
    base = rows[0]
    for row in rows:
        row["speedup_wall"] = round(base["wall_seconds"] / row["wall_seconds"], 2)
        row["speedup_run"] = round(base["run_seconds"] / row["run_seconds"], 2)
    if args.json:
        print(json.dumps({"sweep": str(args.sweep.relative_to(ROOT)) if args.sweep.is_relative_to(ROOT) else
                          str(args.sweep), "rows": rows}, indent=1))
        return 0
    print("| workers | points | tasks run | failed | wall s (Ray's start included) | sweep s (without it) | "
          "task s (sum) | speed-up (wall) | speed-up (sweep) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['workers']} | {row['points']} | {row['tasks_ran']} | {row['failed']} | {row['wall_seconds']} "
              f"| {row['run_seconds']} | {row['task_seconds']} | {row['speedup_wall']:.2f}x | "
              f"{row['speedup_run']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
