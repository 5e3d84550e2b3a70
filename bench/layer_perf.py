#!/usr/bin/env python3
"""Layer performance of the layer core (esb_hw/hw/core/layer.py) on realistic conv layers, 8x8 and 16x16 arrays.

ResNet-18's 3x3 layers, scaled (channels and image size) to simulate in minutes in Amaranth's simulator. For each
layer and array: cycles from start to done with the buffers loaded (memory transfers are not part of this core
yet, and are not counted), MAC utilization (``MACs / (cycles x array MACs)``), the compiler's predicted cycles
(a MODEL), the bytes the buffers hold (activations, weights, parameters, outputs: what the memory interface will
move), and on-chip bits read per MAC (activation words, weight loads, parameters). Every output word is compared
with the golden model; a mismatch exits 1.

Usage: python bench/layer_perf.py [--arrays 8,16] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from esb_hw.compiler.lowering import beat_sequence, predicted_cycles  # noqa: E402
from esb_hw.config import AcceleratorConfig  # noqa: E402
from esb_hw.errors import EsbError, InputError  # noqa: E402
from esb_hw.layouts import requant_params_layout  # noqa: E402
from sim.layer_core import random_layer, run_layer_core  # noqa: E402

#: (name, in channels, out channels, kernel, stride, padding, image size): ResNet-18's 3x3 stages, scaled.
LAYERS = [
    ("conv3x3 32->32", 32, 32, 3, 1, 1, 16),
    ("conv3x3 32->64 s2", 32, 64, 3, 2, 1, 16),
    ("conv3x3 64->64", 64, 64, 3, 1, 1, 8),
    ("conv1x1 64->64", 64, 64, 1, 1, 0, 8),
]
QUICK = [("conv3x3 32->32", 32, 32, 3, 1, 1, 8)]


def default_lanes(config) -> int:
    """Requantization lanes: one per 8 array rows (a pixel's sums then take 9 cycles at any size)."""
    return max(1, config.rows // 8)


def measure(config, spec, seed, lanes):
    name, in_channels, out_channels, kernel, stride, padding, size = spec
    rng = np.random.default_rng(seed)
    layer = random_layer(config, rng, "conv2d", out_channels, in_channels, kernel, stride, padding)
    x = rng.integers(0, config.activation_format.code_count, (in_channels, size, size))
    started = time.perf_counter()
    run = run_layer_core(config, layer, x, requant_lanes=lanes)
    schedule, images = run.schedule, run.images
    if run.words != images.outputs:
        raise SystemExit(f"error: {name} on {config.rows}x{config.cols}: output words differ from the golden model")
    a_word = config.cols * config.activation_format.bits
    w_word = config.cols * config.weight_format.bits
    param_bits = requant_params_layout(config).size
    read_words = sum(1 for word, *_ in beat_sequence(schedule) if word >= 0)
    loads = schedule.row_blocks * len(schedule.pixel_blocks) * len(schedule.chunks) * config.rows
    pixels = schedule.row_blocks * len(schedule.pixels)
    on_chip_bits = read_words * a_word + loads * w_word + pixels * config.rows * param_bits
    moved = (len(images.activations) * a_word + len(images.weights) * w_word + len(images.params) * param_bits
             + len(images.outputs) * config.rows * config.activation_format.bits) // 8
    return {"name": name, "array": f"{config.rows}x{config.cols}", "requant_lanes": lanes, "kernel": kernel,
            "stride": stride,
            "in_channels": in_channels, "out_channels": out_channels, "image": size, "macs": schedule.macs,
            "cycles": run.cycles, "predicted_cycles": predicted_cycles(schedule, requant_lanes=lanes),
            "utilization": round(schedule.macs / (run.cycles * config.macs), 4),
            "bytes_moved": moved, "on_chip_bits_per_mac": round(on_chip_bits / schedule.macs, 3),
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrays", default="8,16", help="square array sides, comma-separated (default 8,16)")
    parser.add_argument("--quick", action="store_true", help="one small layer only")
    parser.add_argument("--lanes", type=int, help="requantization lanes (default: one per 8 array rows)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    try:
        sides = [int(side) for side in args.arrays.split(",")]
        if not sides or any(not 2 <= side <= 64 for side in sides):
            raise ValueError
    except ValueError:
        print(f"error: --arrays takes comma-separated sides in 2..64, got {args.arrays!r}", file=sys.stderr)
        return 2
    base = AcceleratorConfig.from_toml(ROOT / "configs" / "default.toml")
    rows = []
    try:
        for side in sides:
            config = dataclasses.replace(base, rows=side, cols=side, name=f"default{side}x{side}")
            lanes = args.lanes or default_lanes(config)
            if lanes < 1 or side % lanes:
                raise InputError(f"--lanes must divide the array side {side}, got {lanes}")
            for index, spec in enumerate(QUICK if args.quick else LAYERS):
                rows.append(measure(config, spec, seed=index, lanes=lanes))
                if not args.json:
                    print(f"{rows[-1]['name']} on {side}x{side}: {rows[-1]['seconds']} s", file=sys.stderr)
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if args.json:
        print(json.dumps({"config": base.name, "layers": rows}, indent=1))
        return 0
    print("layer core, buffers loaded (transfers not counted); Amaranth simulation; predicted cycles are a MODEL")
    print("| layer              | array | lanes | MACs      | cycles | predicted | util   | bytes moved "
          "| on-chip bits/MAC |")
    print("|--------------------|-------|-------|-----------|--------|-----------|--------|-------------"
          "|------------------|")
    for row in rows:
        print(f"| {row['name']:<18} | {row['array']:<5} | {row['requant_lanes']:>5} | {row['macs']:>9,} | "
              f"{row['cycles']:>6} | "
              f"{row['predicted_cycles']:>9} | {100 * row['utilization']:>5.1f}% | {row['bytes_moved']:>11,} | "
              f"{row['on_chip_bits_per_mac']:>16.3f} |")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
