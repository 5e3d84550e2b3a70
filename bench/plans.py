#!/usr/bin/env python3
"""The reference networks on a config, node by node (``esb-hw plan`` for each): how much runs on the array, its
cycles per image (the compiler's cycle MODEL, with the ZCU102's DDR bandwidth at the config's clock), images/s and
utilization if the host's share were free.

Usage: python bench/plans.py [--config zcu102_64x64] [--networks resnet18,resnet50,mobilenetv2] [--json]

``--json`` prints ``{"runs": [...]}``, one ``esb-hw plan --json`` record per network: the source of the README's
``plans`` block (``bench/results/plans.json``, ``make figures``). About five minutes for the three networks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from esb_hw.data import load_config  # noqa: E402
from esb_hw.errors import EsbError  # noqa: E402
from esb_hw.plan import plan_network  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="zcu102_64x64", help="a shipped config name or TOML file")
    parser.add_argument("--networks", default="resnet18,resnet50,mobilenetv2")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    try:
        config = load_config(args.config)
        runs = []
        for name in (item for item in args.networks.split(",") if item):
            print(f"{name} on {config.name}", file=sys.stderr)
            runs.append(plan_network(name, config, log=lambda line: print(f"  {line}", file=sys.stderr)))
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if args.json:
        print(json.dumps({"runs": runs}, indent=1, sort_keys=True))
        return 0
    print("| network | on the array | cycles per image (MODEL) | images/s | utilization |")
    print("|---|---:|---:|---:|---:|")
    for run in runs:
        print(f"| {run['model'].split()[0]} | {run['engine_macs'] / run['macs']:.1%} of {run['macs'] / 1e9:.3f} GMAC | "
              f"{run['engine_cycles']:,} | {run['engine_images_per_second']:.1f} | {run['engine_utilization']:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
