"""Formal equivalence of a primitive netlist and its plain-RTL twin, with yosys's own Xilinx cell models."""

import subprocess
from pathlib import Path

from amaranth.back import verilog

from esb_hw.estimate import yosys_command


def prove_equal(workdir: Path, behavioral, primitive, *, steps: int = 0) -> subprocess.CompletedProcess:
    """SAT-prove ``behavioral`` and ``primitive`` (Amaranth components with the same ports) equal.

    ``hierarchy`` runs before ``flatten`` so that the primitives' INIT parameters reach the cell models.
    A failed proof gives a non-zero return code and "proof did fail" in the output. ``steps``: for two pipelines
    with the same registers, unroll that many cycles from all-zero registers with free inputs at every cycle
    (at least the latency plus one, so that every output is a function of free inputs alone).
    """
    (workdir / "behavioral.v").write_text(verilog.convert(behavioral, name="behavioral", emit_src=False))
    (workdir / "primitive.v").write_text(verilog.convert(primitive, name="primitive", emit_src=False))
    script = ("read_verilog primitive.v; read_verilog +/xilinx/cells_sim.v; hierarchy -top primitive; proc; "
              "flatten; read_verilog behavioral.v; proc; "
              "miter -equiv -flatten -make_assert behavioral primitive miter; hierarchy -top miter; "
              f"sat -verify -prove-asserts {f'-seq {steps} -set-init-zero ' if steps else ''}miter")
    return subprocess.run([*yosys_command(), "-q", "-p", script], cwd=workdir, capture_output=True, text=True,
                          check=False)
