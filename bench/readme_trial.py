#!/usr/bin/env python3
"""The newcomer's trial: run every shell command of the README, in order, as a reader who activated the venv would,
and print each one's time, exit code and whether it printed a traceback.

Run it in a fresh clone after ``make build`` (the quick start's first command; ``make test`` is the second and is
timed on its own): ``git clone . /tmp/x && cd /tmp/x && make build && .venv/bin/python bench/readme_trial.py``.
Commands run from the checkout with ``.venv/bin`` first on ``PATH``, one ``bash -c`` each (a ``\\`` continues a
line; ``make build``, ``make test`` and ``source .venv/bin/activate`` are left out). A command whose README comment
says it ``needs Vivado`` is expected to exit 2 with one line on a machine without Vivado. Exit code: 1 if any command
printed a traceback or failed unexpectedly.

Usage: python bench/readme_trial.py [--readme README.md] [--skip TEXT ...] [--timeout S] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED = ("make build", "make test", "source .venv/bin/activate")
_SHELL_BLOCK = re.compile(r"^```(?:sh|bash)[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def commands(markdown: str) -> list[tuple[str, str]]:
    """``(command, comment)`` for every command line of the shell blocks, continuations joined."""
    found = []
    for block in _SHELL_BLOCK.finditer(markdown):
        pending = ""
        for line in block.group(1).splitlines():
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            line = pending + line
            pending = ""
            command, _, comment = line.partition(" #")
            command = " ".join(command.split())
            if command and not command.startswith("#") and not any(command.startswith(s) for s in SKIPPED):
                found.append((command, comment.strip()))
    return found


def run(command: str, comment: str, timeout: float) -> dict:
    env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}", VIRTUAL_ENV=str(ROOT / ".venv"))
    started = time.perf_counter()
    try:
        result = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=timeout, check=False)
        code, output = result.returncode, result.stdout + result.stderr
    except subprocess.TimeoutExpired:
        code, output = None, ""
    seconds = time.perf_counter() - started
    expected = 2 if "needs Vivado" in comment else 0
    last = output.strip().splitlines()[-1] if output.strip() else ""
    return {"command": command, "seconds": round(seconds, 1), "exit_code": code, "expected_exit_code": expected,
            "traceback": "Traceback (most recent call last)" in output, "last_line": last[:160],
            "ok": code == expected and "Traceback (most recent call last)" not in output}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--skip", action="append", default=[], help="leave out commands containing TEXT")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per command (default 1800)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for command, comment in commands(args.readme.read_text(encoding="utf-8")):
        if any(text in command for text in args.skip):
            continue
        print(f"running: {command}", file=sys.stderr, flush=True)
        rows.append(run(command, comment, args.timeout))
    if args.json:
        print(json.dumps({"commands": rows}, indent=1))
    else:
        print("| command | time | exit code (expected) | traceback | outcome |\n|---|---:|---:|---|---|")
        for row in rows:
            print(f"| `{row['command']}` | {row['seconds']:.1f} s | {row['exit_code']} ({row['expected_exit_code']}) "
                  f"| {'yes' if row['traceback'] else 'no'} | {'ok' if row['ok'] else 'FAILED'}: "
                  f"{row['last_line'].replace('|', '/')} |")
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
