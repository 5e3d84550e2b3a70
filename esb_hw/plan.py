"""``esb-hw plan``: a network users bring (an ONNX graph: ResNets, MobileNets) quantized, placed node by node on
the built array or the host, and timed by the cycle model.

MODEL is an ``.onnx`` file or a reference network written here with seeded random weights (``resnet18``,
``resnet34``, ``resnet50``, ``mobilenetv2``: torchvision's layer shapes, :mod:`esb_hw.frontend.reference_networks`).
The report gives, per node: its operation and output shape, its multiply-accumulates, where it runs and why, and
for the array its cycles (the compiler's cycle MODEL with the ZCU102's DDR bandwidth at the config's clock), the
bytes it reads and writes in DDR, array utilization and whether compute or memory bounds it. The host's nodes are
not timed. The integer graph (the golden model) is compared with the float graph on the test images: top-1
agreement and the logits' relative error.

Exit codes: 0 success, 2 bad input (an unreadable or unsupported model names the node).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .contract.limits import MAX_BATCH
from .data import load_config
from .errors import EsbError, InputError, entry_point

__all__ = ["main", "plan_network"]

#: Synthetic images (uniform in [0, 1), seeded) when no --calibration is given.
SYNTHETIC_SEED = 2109
DEFAULT_IMAGES = 4
#: Limits of --size and --images (the golden model holds every tensor of the test images in memory).
MAX_SIZE = 1024
MAX_IMAGES = 64


def _load_graph(model: str, size: int | None, notes: list[str]):
    from .frontend.onnx_graph import load_onnx_graph
    from .frontend.reference_networks import REFERENCE_NETWORKS, reference_network

    if model in REFERENCE_NETWORKS:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{model}.onnx"
            reference_network(model, path, size=size or 224)
            graph = load_onnx_graph(path, notes=notes)
        return graph, f"{model} (reference network, seeded random weights, {size or 224}x{size or 224})"
    path = Path(model)
    if path.suffix.lower() != ".onnx":
        raise InputError(f"MODEL must be an .onnx file or one of {', '.join(REFERENCE_NETWORKS)}, got {model!r}")
    if size is not None:
        raise InputError("--size applies to the reference networks only; an ONNX file declares its input size")
    return load_onnx_graph(path, notes=notes), str(path)


def _images(graph, calibration: str | None, count: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(calibration images, test images, where they come from)."""
    rng = np.random.default_rng(SYNTHETIC_SEED)
    shape = graph.input_shape
    if calibration is None:
        images = rng.uniform(0, 1, (16 + count, *shape))
        return images[:16], images[16:], (f"{16 + count} synthetic images (uniform in [0, 1), seed {SYNTHETIC_SEED}): "
                                           f"16 to calibrate, {count} to test")
    from .frontend.datasets import load_images

    data = load_images(calibration, what="--calibration").images
    if data.shape[1:] != shape:
        raise InputError(f"--calibration {calibration}: images of shape {'x'.join(map(str, data.shape[1:]))}, the "
                         f"model takes {'x'.join(map(str, shape))}")
    test = data[-count:] if len(data) > count else data
    return data, test, f"{len(data)} images from {calibration} to calibrate, the last {len(test)} to test"


def plan_network(model: str, config, *, size: int | None = None, calibration: str | None = None,
                 images: int = DEFAULT_IMAGES, scale_method: str = "dda", ends_8bit: bool = False,
                 batch: int = 1, log=print) -> dict:
    """The plan of ``model`` on ``config`` as a dict (see :func:`main`'s ``--json``). With ``batch`` images per
    engine run, each node's cycles and bytes are per image: its program's over the batch."""
    from .boards import zcu102
    from .compiler.program import predicted_cycles
    from .compiler.timeline import MEMORY_MODEL
    from .frontend.graph_quant import place_graph, quantize_graph
    from .frontend.quantize import QuantRecipe

    if not 1 <= images <= MAX_IMAGES:
        raise InputError(f"--images must be in 1..{MAX_IMAGES}, got {images}")
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise InputError(f"--batch must be in 1..{MAX_BATCH}, got {batch}")
    notes: list[str] = []
    started = time.monotonic()
    graph, source = _load_graph(model, size, notes)
    log(f"{source}: {len(graph.nodes)} nodes, {graph.macs() / 1e9:.3f} GMAC per image")
    calibration_images, test_images, image_source = _images(graph, calibration, images)
    recipe = QuantRecipe.for_config(config, scale_method=scale_method, ends_8bit=ends_8bit)
    integer = quantize_graph(graph, recipe, calibration_images)
    float_logits = graph.forward(test_images)
    integer_logits = integer.logits(test_images)
    agreement = float(np.mean(float_logits.argmax(1) == integer_logits.argmax(1)))
    scale = float(np.abs(float_logits).mean())
    error = float(np.abs(float_logits - integer_logits).mean() / scale) if scale > 0 else None
    log(f"quantized ({recipe.weights} weights, {config.activation_format} activations); compiling the array's "
        "nodes")
    placements = place_graph(integer, config, progress=lambda line: log(f"  {line}"), batch=batch)
    clock = config.clock_mhz
    memory = MEMORY_MODEL.with_bandwidth(zcu102.MEMORY.bytes_per_cycle(clock))
    rows = []
    for node, placement in zip(graph.nodes, placements, strict=True):
        shape = graph.shapes[node.name]
        macs = node.macs_per_output * int(np.prod(shape))
        row = {"name": node.name, "op": node.op + (f" (groups {node.groups})" if node.groups > 1 else ""),
               "output_shape": list(shape), "macs": macs,
               "where": "array" if placement.where == "engine" else "host", "reason": placement.reason,
               "cycles": None, "utilization": None, "bound": None, "bytes": None}
        if placement.where == "engine":
            predicted = predicted_cycles(placement.program, memory)
            (bounds,) = predicted["layers"]
            cycles = predicted["cycles"] / batch
            row.update(cycles=round(cycles, 1) if batch > 1 else predicted["cycles"], bound=bounds["bound"],
                       bytes=round(bounds["bytes"] / batch),
                       utilization=round(macs / (cycles * config.macs), 4) if macs else None)
        rows.append(row)
    engine_cycles = sum(row["cycles"] or 0 for row in rows)
    engine_macs = sum(row["macs"] for row in rows if row["where"] == "array")
    return {
        "model": source, "config": config.name, "array": f"{config.rows}x{config.cols}", "clock_mhz": clock,
        "batch": batch,
        "weights": recipe.weights, "activations": str(config.activation_format),
        "memory_bytes_per_cycle": round(memory.bandwidth, 2), "images": image_source,
        "macs": graph.macs(), "engine_macs": engine_macs, "host_macs": graph.macs() - engine_macs,
        "engine_cycles": engine_cycles, "engine_bytes": sum(row["bytes"] or 0 for row in rows),
        "engine_images_per_second": round(clock * 1e6 / engine_cycles, 2) if engine_cycles else None,
        "engine_utilization": round(engine_macs / (engine_cycles * config.macs), 4) if engine_cycles else None,
        "top1_agreement": agreement,
        "logit_relative_error": None if error is None else round(error, 4), "notes": notes, "nodes": rows,
        "seconds": round(time.monotonic() - started, 1),
    }


def _table(plan: dict) -> str:
    lines = ["| node | op | output | MMAC | runs on | cycles (MODEL) | DDR MB | utilization | bound / reason |",
             "|---|---|---|---:|---|---:|---:|---:|---|"]
    for row in plan["nodes"]:
        cycles = f"{row['cycles']:,}" if row["cycles"] is not None else ""
        utilization = f"{100 * row['utilization']:.1f} %" if row["utilization"] is not None else ""
        moved = f"{row['bytes'] / 1e6:.2f}" if row["bytes"] is not None else ""
        lines.append(f"| {row['name']} | {row['op']} | {'x'.join(map(str, row['output_shape']))} | "
                     f"{row['macs'] / 1e6:.1f} | {row['where']} | {cycles} | {moved} | {utilization} | "
                     f"{row['bound'] or row['reason']} |")
    return "\n".join(lines)


def print_plan(plan: dict) -> None:
    """The text report: the table and the totals."""
    print()
    print(_table(plan))
    print()
    share = plan["engine_macs"] / plan["macs"] if plan["macs"] else 0
    batch = plan.get("batch", 1)
    print(f"{plan['model']} on {plan['config']} ({plan['array']}, {plan['weights']} x {plan['activations']}, "
          f"{plan['clock_mhz']:g} MHz, {plan['memory_bytes_per_cycle']} bytes/cycle of DDR"
          + (f"; batches of {batch} images, figures per image" if batch > 1 else "") + "):")
    print(f"  the array runs {100 * share:.1f} % of the {plan['macs'] / 1e9:.3f} GMAC; the host runs "
          f"{sum(row['where'] == 'host' for row in plan['nodes'])} nodes ({plan['host_macs'] / 1e6:.1f} MMAC), "
          "not timed")
    if plan["engine_cycles"]:
        print(f"  array time: {plan['engine_cycles']:,.0f} cycles per image (cycle MODEL), "
              f"{plan['engine_images_per_second']:g} images/s if the host's work were free, "
              f"{100 * plan['engine_utilization']:.1f} % utilization, {plan['engine_bytes'] / 1e6:.1f} MB of DDR "
              "traffic")
    skipped = [row["name"] for row in plan["nodes"] if row["where"] == "host" and row["macs"]]
    if skipped:
        print(f"  {len(skipped)} conv/linear node(s) run on the host and are not in the array time: "
              f"{', '.join(skipped[:6])}{', ...' if len(skipped) > 6 else ''}")
    error = plan["logit_relative_error"]
    print(f"  integer (golden model) against float on {plan['images']}: top-1 agreement "
          f"{100 * plan['top1_agreement']:.0f} %, logits' mean relative error "
          + ("n/a (the float logits are all 0)" if error is None else f"{100 * error:.1f} %"))
    for note in plan["notes"]:
        print(f"  note: {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="esb-hw plan", description=__doc__.splitlines()[0],
                                     epilog="Docs: docs/network.md (graphs: residual adds, pooling, depthwise).")
    parser.add_argument("model", help="FILE.onnx, or a reference network: resnet18, resnet34, resnet50, mobilenetv2")
    parser.add_argument("--config", default="default",
                        help="accelerator config: a TOML file or a shipped config name (default: default)")
    parser.add_argument("--size", type=int, help="a reference network's input side (default 224)")
    parser.add_argument("--calibration", help="images to calibrate on and test with: FILE.npz (x: N x C x H x W) "
                                              "or a folder of PNGs (default: synthetic images)")
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES,
                        help=f"test images for the integer-against-float check (default {DEFAULT_IMAGES})")
    parser.add_argument("--ends-8bit", action="store_true", help="keep the first and last layers at 8 bits")
    parser.add_argument("--batch", type=int, default=1, metavar="N",
                        help=f"images per engine run, 1..{MAX_BATCH} (default 1): cycles and bytes per image")
    parser.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    try:
        if args.size is not None and not 32 <= args.size <= MAX_SIZE:
            raise InputError(f"--size must be in 32..{MAX_SIZE} (five stride-2 stages), got {args.size}")
        config = load_config(args.config)
        plan = plan_network(args.model, config, size=args.size, calibration=args.calibration, images=args.images,
                            ends_8bit=args.ends_8bit, batch=args.batch,
                            log=(lambda *a: print(*a, file=sys.stderr)) if args.json else print)
        if args.json:
            print(json.dumps(plan, indent=1, sort_keys=True))
        else:
            print_plan(plan)
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        if args.debug:
            raise
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(entry_point(main))
