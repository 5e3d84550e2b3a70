#!/usr/bin/env python3
"""Batches: what running N images per engine run buys, from the cycle MODEL and, with ``--rtl``, from the whole
system's RTL (bit-exact with the golden model).

A weight-stationary array holds a ``rows x cols`` weight chunk while pixels stream through it. A linear layer of one
image has one pixel, so every chunk serves one beat and the array waits for the next chunk's weights (``rows + 4``
cycles a hand-off). A batch of ``N`` gives every chunk ``N`` pixels (``compile_program(..., batch=N)``; a linear layer
after the convs runs the batch as pixels, its window stepping a whole image).

- ``linear``: classifier layers alone (the digits CNN's fc, the classifiers of ResNet-18, ResNet-50 and MobileNetV2,
  and a square 256x256), per batch: the cycle MODEL's utilization over the whole run (start to done, loads
  included) and over the tiles' compute spans (summed per tile: overlapping spans count twice).
- ``digits``: the bundled digits CNN per batch: cycles per image and the fc layer's utilization (MODEL).
- ``--rtl``: the 256x256 linear layer at batch 8 and the digits CNN at batch 8 on 16 images, through the whole
  system's RTL and the driver: output bytes equal to the compiler's NumPy twin, codes equal to the golden model,
  measured cycles beside the MODEL's (:func:`esb_hw.infer.run_program_rtl`, the runner ``esb-hw infer`` uses).

The MODEL is ``predicted_cycles`` with the AXI system's memory timing (``AXI_SYSTEM``).

Usage: python bench/batch.py [--config default] [--batches 1,8,32] [--rtl] [--sim verilator] [--json]
About 4 minutes on the default 8x8 config, mostly the compiler's tile search on the 1000-class layers; ``--rtl``
adds about a minute (with a Verilator build of the system).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from esb_hw.compiler.lowering import Layer, reference  # noqa: E402
from esb_hw.compiler.program import compile_program, predicted_cycles  # noqa: E402
from esb_hw.compiler.timeline import AXI_SYSTEM  # noqa: E402
from esb_hw.contract.limits import MAX_BATCH  # noqa: E402
from esb_hw.data import load_config  # noqa: E402
from esb_hw.errors import EsbError, InputError  # noqa: E402
from esb_hw.infer import run_program_rtl  # noqa: E402
from esb_hw.quant import golden  # noqa: E402

#: (name, inputs, outputs): classifier layers as the networks have them.
LINEAR_LAYERS = (("digits fc (32x2x2 -> 10)", 128, 10), ("square 256 -> 256", 256, 256),
                 ("ResNet-18 fc (512 -> 1000)", 512, 1000), ("MobileNetV2 classifier (1280 -> 1000)", 1280, 1000),
                 ("ResNet-50 fc (2048 -> 1000)", 2048, 1000))


def linear_layer(config, inputs: int, outputs: int, seed: int = 0) -> Layer:
    """Seeded random weights, with requantization that spreads the outputs over the codes (not clamped)."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(0, config.weight_format.code_count, (outputs, inputs))
    scale = 1 / max(1, inputs * config.weight_format.max_level * config.activation_format.max_level // 8)
    return Layer("linear", weights, golden.requant_params(np.full(outputs, scale * 255)), config.activation_format)


def utilization(program, config) -> dict:
    model = predicted_cycles(program, AXI_SYSTEM)
    return {"cycles": model["cycles"], "compute_cycles": model["compute_cycles"],
            "compute_utilization": round(program.macs / (model["compute_cycles"] * config.macs), 4),
            "utilization": round(program.macs / (model["cycles"] * config.macs), 4)}


def linear_table(config, batches: list[int]) -> list[dict]:
    rows = []
    for name, inputs, outputs in LINEAR_LAYERS:
        layer = linear_layer(config, inputs, outputs)
        for batch in batches:
            row = {"layer": name, "inputs": inputs, "outputs": outputs, "batch": batch}
            try:
                program = compile_program(config, [layer], (batch, inputs))
            except InputError as error:  # a layer this config cannot run: say why
                rows.append({**row, "error": str(error)})
                continue
            rows.append({**row, "tiles": len(program.tiles), **utilization(program, config)})
    return rows


def digits_layers(config):
    from esb_hw.frontend.datasets import load_split
    from esb_hw.frontend.quantize import QuantRecipe, quantize_model
    from esb_hw.infer import load_model

    model = load_model("digits", (1, 8, 8))
    integer = quantize_model(model, QuantRecipe.for_config(config), load_split("digits").train_images)
    return integer, [layer.engine_layer() for layer in integer.layers]


def digits_table(config, batches: list[int]) -> list[dict]:
    integer, layers = digits_layers(config)
    rows = []
    for batch in batches:
        program = compile_program(config, layers, integer.shapes[0], batch=batch)
        model = predicted_cycles(program, AXI_SYSTEM)
        compute = [0] * len(layers)
        for tile, times in zip(program.tiles, model["tiles"], strict=True):
            compute[tile.layer] += times.compute[1] - times.compute[0]
        fc = len(layers) - 1
        rows.append({"batch": batch, "cycles_per_image": round(model["cycles"] / batch, 1),
                     "fc_compute_cycles_per_image": round(compute[fc] / batch, 1),
                     "fc_utilization": round(program.schedules[fc].macs * program.layer_images[fc]
                                             / (compute[fc] * config.macs), 4)})
    return rows


def rtl_checks(config, simulator: str, log) -> list[dict]:
    rng = np.random.default_rng(1)
    results = []
    log("the 256x256 linear layer, batch 8, through the system's RTL")
    layer = linear_layer(config, 256, 256)
    program = compile_program(config, [layer], (8, 256))
    codes = rng.integers(0, config.activation_format.code_count, (8, 256))
    (output,), runs = run_program_rtl(config, program, codes[None], simulator)  # one run of the (8, 256) input
    if not np.array_equal(output, reference(config, layer, codes)):
        raise SystemExit("error: the linear layer's codes differ from the golden model")
    model = predicted_cycles(program, AXI_SYSTEM)
    results.append({"run": "linear 256 -> 256, batch 8", "images": 8, "rtl_cycles": runs[0]["cycles"],
                    "model_cycles": model["cycles"], "model_error": round(model["cycles"] / runs[0]["cycles"] - 1, 4),
                    "rtl_utilization": round(program.macs / (runs[0]["cycles"] * config.macs), 4),
                    "rtl_compute_cycles": runs[0]["layer_cycles"][0],
                    "rtl_compute_utilization": round(program.macs / (runs[0]["layer_cycles"][0] * config.macs), 4)})
    log("the digits CNN, batch 8, 16 images, through the system's RTL")
    from esb_hw.frontend.datasets import load_split

    integer, layers = digits_layers(config)
    program = compile_program(config, layers, integer.shapes[0], batch=8)
    images = load_split("digits").test_images[:16]
    codes = integer.input_codes(images)
    outputs, runs = run_program_rtl(config, program, codes, simulator)  # two runs of 8
    expected = integer.run(images)[-1].reshape(16, -1)
    if not np.array_equal(outputs.reshape(16, -1), expected):
        raise SystemExit("error: the digits CNN's logits differ from the golden model")
    cycles = float(np.mean([entry["cycles"] for entry in runs]))
    model = predicted_cycles(program, AXI_SYSTEM)["cycles"]
    fc = float(np.mean([entry["layer_cycles"][len(layers) - 1] for entry in runs]))
    results.append({"run": "digits CNN, batch 8", "images": 16, "rtl_cycles": cycles, "model_cycles": model,
                    "model_error": round(model / cycles - 1, 4), "rtl_cycles_per_image": cycles / 8,
                    "rtl_fc_utilization": round(program.schedules[-1].macs / (fc * config.macs), 4)})
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--batches", default="1,8,32", help="comma-separated batch sizes (default 1,8,32)")
    parser.add_argument("--rtl", action="store_true", help="also run two batches through the system's RTL")
    parser.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        try:
            batches = [int(part) for part in args.batches.split(",") if part]
        except ValueError:
            raise InputError(f"--batches must be comma-separated integers, got {args.batches!r}") from None
        if not batches or not all(1 <= batch <= MAX_BATCH for batch in batches):
            raise InputError(f"--batches must be in 1..{MAX_BATCH}, got {args.batches!r}")
        config = load_config(args.config)
        result = {"config": config.name, "array": [config.rows, config.cols], "clock_mhz": config.clock_mhz,
                  "linear": linear_table(config, batches), "digits": digits_table(config, batches)}
        if args.rtl:
            result["rtl"] = rtl_checks(config, args.sim, lambda line: print(f"  {line}", file=sys.stderr))
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    result["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(result, indent=1, sort_keys=True))
        return 0
    print(f"Linear layers on {config.name} ({config.rows}x{config.cols}), cycle MODEL with the AXI system's memory:")
    print("| layer | batch | tiles | cycles | compute utilization | whole-run utilization |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in result["linear"]:
        if "error" in row:
            print(f"| {row['layer']} | {row['batch']} | | | does not compile: {row['error']} | |")
            continue
        print(f"| {row['layer']} | {row['batch']} | {row['tiles']} | {row['cycles']:,} | "
              f"{100 * row['compute_utilization']:.1f} % | {100 * row['utilization']:.1f} % |")
    print()
    print("The digits CNN (cycle MODEL):")
    print("| batch | cycles per image | fc compute cycles per image | fc utilization |")
    print("|---:|---:|---:|---:|")
    for row in result["digits"]:
        print(f"| {row['batch']} | {row['cycles_per_image']:,.0f} | {row['fc_compute_cycles_per_image']:,.1f} | "
              f"{100 * row['fc_utilization']:.1f} % |")
    for row in result.get("rtl", []):
        print(f"RTL ({args.sim}): {row['run']}, {row['images']} images, bit-exact: {row['rtl_cycles']:,.0f} cycles a "
              f"run measured, {row['model_cycles']:,} MODEL ({100 * row['model_error']:+.2f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
