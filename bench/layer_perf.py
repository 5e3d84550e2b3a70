#!/usr/bin/env python3
"""Layer performance of the layer engine (esb_hw/hw/core/engine.py) on realistic conv layers, 8x8 and 16x16 arrays.

ResNet-18's conv layers at half its channels and half its resolution (so they simulate in minutes and fit the default
buffers' reduction). Each layer is compiled into a
program (esb_hw/compiler/program.py) and run by the whole engine from ``start`` to ``done`` against the memory
model (esb_hw/sim/memory.py: 20-100 cycles of latency per request, 20 % stalls, at most one 128-bit beat per cycle each
way): descriptor fetches, loads, computation and stores all count. For each layer and array: tiles, cycles, MAC
utilization (``MACs / (cycles x array MACs)``), the compiler's predicted cycles (a MODEL), bytes moved (beats x 16,
measured) and on-chip bits read per MAC (activation words, weight loads and parameters that the array and the
requantization read from the buffers). Every output code is compared with the golden model; a mismatch exits 1.

Usage: python bench/layer_perf.py [--arrays 8,16] [--quick] [--sim verilator|icarus|amaranth] [--lanes N] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import numpy as np

from esb_hw.compiler.lowering import beat_sequence, reference
from esb_hw.compiler.program import compile_program, predicted_cycles
from esb_hw.compiler.timeline import MEMORY_MODEL
from esb_hw.data import shipped_config
from esb_hw.errors import EsbError
from esb_hw.layouts import requant_params_layout
from esb_hw.sim.engine import memory_for, run_engine, run_engine_rtl
from esb_hw.sim.layer_core import random_layer

#: (name, in channels, out channels, kernel, stride, padding, input size): ResNet-18's layers (224x224 input) at
#: half the channels and half the resolution: conv2_x 32 channels at 28x28, conv3_1 (stride 2) and conv3_x at
#: 14x14, conv4_1 and conv4_x at 7x7, and the 1x1 stride-2 downsampling of stage 4.
LAYERS = [
    ("conv2_x 3x3 32->32", 32, 32, 3, 1, 1, 28),
    ("conv3_1 3x3 32->64 s2", 32, 64, 3, 2, 1, 28),
    ("conv3_x 3x3 64->64", 64, 64, 3, 1, 1, 14),
    ("conv4_1 3x3 64->128 s2", 64, 128, 3, 2, 1, 14),
    ("conv4_x 3x3 128->128", 128, 128, 3, 1, 1, 7),
    ("conv4 down 1x1 64->128 s2", 64, 128, 1, 2, 0, 14),
]
QUICK = [("conv3x3 32->32", 32, 32, 3, 1, 1, 8)]


def on_chip_bits(config, program) -> int:
    """Bits the array and the requantization read from the buffers: activation words (padding reads nothing),
    weight loads and one parameter word per channel and pixel."""
    a_word = config.cols * config.activation_format.bits
    w_word = config.cols * config.weight_format.bits
    param_bits = requant_params_layout(config).size
    total = 0
    for tile in program.tiles:
        schedule = tile.schedule
        read_words = sum(1 for word, *_ in beat_sequence(schedule) if word >= 0)
        loads = schedule.row_blocks * len(schedule.pixel_blocks) * len(schedule.chunks) * config.rows
        pixels = schedule.row_blocks * len(schedule.pixels)
        total += read_words * a_word + loads * w_word + pixels * config.rows * param_bits
    return total


def measure(config, spec, seed, simulator):
    name, in_channels, out_channels, kernel, stride, padding, size = spec
    rng = np.random.default_rng(seed)
    layer = random_layer(config, rng, "conv2d", out_channels, in_channels, kernel, stride, padding)
    x = rng.integers(0, config.activation_format.code_count, (in_channels, size, size))
    program = compile_program(config, [layer], x.shape, x)
    started = time.perf_counter()
    if simulator == "amaranth":
        run = run_engine(program, memory_for(program, seed=seed))
    else:
        run = run_engine_rtl(program, simulator=simulator, seed=seed, run_name=f"layer_perf_{seed}")
    if run.error or not np.array_equal(run.output(program), reference(config, layer, x)):
        raise SystemExit(f"error: {name} on {config.rows}x{config.cols}: the outputs differ from the golden model "
                         f"({run.error_text})")
    macs = program.macs
    return {"name": name, "array": f"{config.rows}x{config.cols}", "requant_lanes": config.lanes, "kernel": kernel,
            "stride": stride, "in_channels": in_channels, "out_channels": out_channels, "image": size,
            "tiles": len(program.tiles), "macs": macs, "cycles": run.cycles,
            "predicted_cycles": predicted_cycles(program, MEMORY_MODEL)["cycles"],
            "model_error": round(predicted_cycles(program, MEMORY_MODEL)["cycles"] / run.cycles - 1, 4),
            "utilization": round(macs / (run.cycles * config.macs), 4),
            "bytes_moved": 16 * (run.beats_read + run.beats_written),
            "on_chip_bits_per_mac": round(on_chip_bits(config, program) / macs, 3),
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrays", default="8,16", help="square array sides, comma-separated (default 8,16)")
    parser.add_argument("--quick", action="store_true", help="one small layer only")
    parser.add_argument("--lanes", type=int, default=0, help="requantization lanes (default: about rows / 8)")
    parser.add_argument("--sim", choices=("verilator", "icarus", "amaranth"), default="verilator",
                        help="the simulator (default verilator; amaranth is about 100 times slower)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    try:
        sides = [int(side) for side in args.arrays.split(",")]
        if not sides or any(not 2 <= side <= 64 for side in sides):
            raise ValueError
    except ValueError:
        print(f"error: --arrays takes comma-separated sides in 2..64, got {args.arrays!r}", file=sys.stderr)
        return 2
    base = shipped_config("default")
    rows = []
    try:
        for side in sides:
            config = dataclasses.replace(base, rows=side, cols=side, name=f"default{side}x{side}",
                                         requant_lanes=args.lanes)
            for index, spec in enumerate(QUICK if args.quick else LAYERS):
                rows.append(measure(config, spec, seed=index, simulator=args.sim))
                if not args.json:
                    print(f"{rows[-1]['name']} on {side}x{side}: {rows[-1]['seconds']} s", file=sys.stderr)
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if args.json:
        print(json.dumps({"config": base.name, "layers": rows}, indent=1))
        return 0
    print(f"whole engine from start to done, memory model with 20-100 cycles of latency ({args.sim} simulation); "
          "predicted cycles are a MODEL")
    print("| layer                     | array | lanes | tiles | MACs      | cycles | predicted | error  | util   "
          "| bytes moved | on-chip bits/MAC |")
    print("|---------------------------|-------|-------|-------|-----------|--------|-----------|--------|--------"
          "|-------------|------------------|")
    for row in rows:
        print(f"| {row['name']:<25} | {row['array']:<5} | {row['requant_lanes']:>5} | {row['tiles']:>5} | "
              f"{row['macs']:>9,} | {row['cycles']:>6} | {row['predicted_cycles']:>9} | "
              f"{100 * row['model_error']:>+5.1f}% | {100 * row['utilization']:>5.1f}% | {row['bytes_moved']:>11,} | "
              f"{row['on_chip_bits_per_mac']:>16.3f} |")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
