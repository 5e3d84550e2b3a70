#!/usr/bin/env python3
"""Blocks of the networks users bring, at their real shapes, through the whole system's RTL: bit-exact with the
golden model, and the measured cycles against the compiler's cycle MODEL.

- ``basic``: a ResNet-18 basic block at layer1's 64x56x56 (two 3x3 convs and the residual add, all on the array);
- ``inverted``: a MobileNetV2 inverted-residual block at features.3's 24x56x56, expansion 6 (the 1x1 expand, the
  depthwise 3x3 as group-sparse tiles, the 1x1 project and the add, all on the array).

Each block (``esb_hw.frontend.reference_networks``, seeded weights) is quantized for the config on synthetic
non-negative images and run on ``--images`` more through :func:`esb_hw.infer.run_graph_rtl`: every array node is
checked byte for byte against the NumPy twin and code for code against the golden model. The cycle MODEL is
``predicted_cycles`` with the AXI system's memory timing (``AXI_SYSTEM``), as ``esb-hw infer --golden-only`` reports.

Usage: python bench/real_shapes.py [--blocks basic,inverted] [--config default] [--images 1] [--sim verilator]
       [--json]
About 8 minutes for both blocks, one image each, on the default 8x8 config with Verilator.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from esb_hw.compiler.program import predicted_cycles  # noqa: E402
from esb_hw.compiler.timeline import AXI_SYSTEM  # noqa: E402
from esb_hw.data import load_config  # noqa: E402
from esb_hw.errors import EsbError, InputError  # noqa: E402
from esb_hw.frontend.graph_quant import place_graph, quantize_graph  # noqa: E402
from esb_hw.frontend.onnx_graph import load_onnx_graph  # noqa: E402
from esb_hw.frontend.quantize import QuantRecipe  # noqa: E402
from esb_hw.frontend.reference_networks import basic_block, inverted_residual  # noqa: E402
from esb_hw.infer import run_graph_rtl  # noqa: E402

BLOCKS = {"basic": ("ResNet-18 basic block, 64x56x56", basic_block),
          "inverted": ("MobileNetV2 inverted residual, 24x56x56, expansion 6", inverted_residual)}


def run_block(name: str, config, images: int, simulator: str, log) -> dict:
    title, build = BLOCKS[name]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.onnx"
        import onnx

        onnx.save(build(), str(path))
        graph = load_onnx_graph(path)
    rng = np.random.default_rng(0)
    data = rng.uniform(0, 1, (8 + images, *graph.input_shape))
    integer = quantize_graph(graph, QuantRecipe.for_config(config), data[:8])
    placements = place_graph(integer, config)
    started = time.monotonic()
    measured = run_graph_rtl(config, integer, placements, integer.input_codes(data[8:]), simulator, log=log)
    golden = integer.run(data[8:])[integer.output.name]
    if not np.array_equal(measured["output"], golden):
        raise SystemExit(f"error: {name}: the block's output differs from the golden model")
    nodes = []
    for node, placement, cycles in zip(integer.nodes, placements, measured["node_cycles"], strict=True):
        row = {"name": node.name, "op": node.op + (f"/{node.groups}" if node.groups > 1 else ""),
               "where": placement.where, "reason": placement.reason,
               "macs": int(node.weight_levels[0].size) * int(np.prod(integer.shapes[node.name])) if node.weighted
               else 0}
        if placement.program is not None:
            model = predicted_cycles(placement.program, AXI_SYSTEM)["cycles"]
            rtl = float(np.mean([entry["cycles"] for entry in measured["runs"][node.name]]))
            row.update(rtl_cycles=rtl, model_cycles=model, model_error=round(model / rtl - 1, 4),
                       utilization=round(row["macs"] / (rtl * config.macs), 4), layer_cycles=cycles)
        nodes.append(row)
    return {"block": name, "title": title, "config": config.name, "images": images, "simulator": simulator,
            "bit_exact": True, "nodes": nodes, "seconds": round(time.monotonic() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", default="basic,inverted")
    parser.add_argument("--config", default="default")
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    try:
        names = [name for name in args.blocks.split(",") if name]
        for name in names:
            if name not in BLOCKS:
                raise InputError(f"unknown block {name!r}; known: {', '.join(BLOCKS)}")
        if args.images < 1:
            raise InputError(f"--images must be >= 1, got {args.images}")
        config = load_config(args.config)
        results = [run_block(name, config, args.images, args.sim,
                             lambda line: print(f"  {line}", file=sys.stderr)) for name in names]
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if args.json:
        print(json.dumps({"runs": results}, indent=1, sort_keys=True))
        return 0
    for result in results:
        print(f"{result['title']} on {result['config']}, {result['images']} image(s), {result['simulator']}: "
              "bit-exact with the golden model")
        print("| node | op | runs on | MMAC | RTL cycles | MODEL cycles | MODEL error | utilization |")
        print("|---|---|---|---:|---:|---:|---:|---:|")
        for row in result["nodes"]:
            if row["where"] == "engine":
                print(f"| {row['name']} | {row['op']} | array | {row['macs'] / 1e6:.1f} | {row['rtl_cycles']:,.0f} | "
                      f"{row['model_cycles']:,} | {100 * row['model_error']:+.2f} % | "
                      f"{100 * row['utilization']:.1f} % |")
            else:
                print(f"| {row['name']} | {row['op']} | host | {row['macs'] / 1e6:.1f} | | | | {row['reason']} |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
