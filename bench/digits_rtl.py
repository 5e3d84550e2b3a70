#!/usr/bin/env python3
"""The digits CNN through the full RTL of the AXI system, via the host driver: accuracy, bit-exactness, speed.

Quantizes the shipped digits model for the config (PTQ, DDA), then runs ``--images`` held-out digits through the
``esb_system`` Verilog in cocotb (Verilator by default), each image a run of the driver on the same simulated
system, and compares every logit with the integer golden model. Prints accuracy (float, golden, RTL), the images
whose logits are all bit-exact and whose class is the golden one, per-layer compute cycles and MAC utilization
(measured), cycles and images per second at the config clock, and the wall-clock time of the simulation.

``--model mnist5k`` runs the second shipped model (28x28 MNIST images) instead.

Usage: python bench/digits_rtl.py [--model digits|mnist5k] [--images 50] [--config FILE] [--sim verilator|icarus]
       [--ends-8bit] [--json]
Exit code 1 if any logit differs from the golden model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from esb_hw.config import AcceleratorConfig
from esb_hw.data import CONFIGS
from esb_hw.errors import EsbError
from esb_hw.infer import progress_bar, run_inference


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("digits", "mnist5k"), default="digits")
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--config", type=Path, default=CONFIGS / "default.toml")
    parser.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    parser.add_argument("--ends-8bit", action="store_true", help="first and last layers at 8 bits (on the host)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    try:
        config = AcceleratorConfig.from_toml(args.config)
        report = run_inference(args.model, config, images=args.images, simulator=args.sim, ends_8bit=args.ends_8bit,
                               progress=progress_bar(), log=lambda *a: print(*a, file=sys.stderr))
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if report.rtl_logits is None:
        print(f"error: no layer of the {args.model} network runs on this array ({args.config})", file=sys.stderr)
        return 2
    result = report.as_dict()
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(result, indent=1, sort_keys=True))
    else:
        accuracy = result["accuracy"]
        print(f"{args.model} on {config.name} ({config.rows}x{config.cols}, {config.weight_format} x "
              f"{config.activation_format}), {args.sim}, {report.images} images through the AXI system and the driver")
        print("| measure | value |\n|---|---:|")
        print(f"| accuracy: float / golden / RTL | {accuracy['float']:.1%} / {accuracy['golden']:.1%} / "
              f"{accuracy['rtl']:.1%} |")
        print(f"| images with every logit bit-exact | {report.exact_images}/{report.images} |")
        print(f"| images with the golden class | {report.same_classes}/{report.images} |")
        for row in report.layer_rows():
            value = "host" if row["cycles"] is None else (f"{row['cycles']:,.0f} cycles, "
                                                          f"{row['utilization']:.1%} utilization")
            print(f"| {row['name']} ({row['input']} -> {row['output']}, {row['macs']:,} MACs) | {value} |")
        print(f"| cycles per image, start to done (mean) | {report.cycles_per_image:,.0f} |")
        print(f"| images/s at {config.clock_mhz:g} MHz | {report.images_per_second:,.0f} |")
        print(f"| wall-clock time (build, simulation, checks) | {result['wall_seconds']} s |")
    return 0 if report.exact_images == report.images else 1


if __name__ == "__main__":
    sys.exit(main())
