"""Pin-accurate depth, the delay model and fan-out (esb_hw/estimate/timing.py), on small hand-made netlists."""

import pytest

from esb_hw.estimate.timing import DELAY_MODEL, PESSIMISTIC_MODEL, DelayModel, analyze, lut_dependencies

LUT6_2_ADDER = 0  # filled below: O6 = I0 ^ I1 ^ I2 ^ I3, O5 = majority(I0, I1, I2)
for index in range(64):
    i0, i1, i2, i3, _, i5 = ((index >> bit) & 1 for bit in range(6))
    LUT6_2_ADDER |= ((i0 ^ i1 ^ i2 ^ i3) if i5 else ((i0 & i1) | (i0 & i2) | (i1 & i2))) << index


def flop(d, q, ce=None, r=None):
    return {"type": "FDRE", "port_directions": {"C": "input", "D": "input", "CE": "input", "R": "input",
                                                 "Q": "output"},
            "connections": {"C": [2], "D": [d], "CE": [ce if ce is not None else "1"], "R": [r if r is not None
                                                                                            else "0"], "Q": [q]}}


def lut6_2(inputs, o6, o5):
    return {"type": "LUT6_2", "parameters": {"INIT": format(LUT6_2_ADDER, "064b")},
            "port_directions": {**{f"I{i}": "input" for i in range(6)}, "O6": "output", "O5": "output"},
            "connections": {**{f"I{i}": [bit] for i, bit in enumerate(inputs)}, "O6": [o6], "O5": [o5]}}


def netlist(cells, ports):
    nets = {f"n{bit}": {"bits": [bit], "hide_name": 0} for bit in range(2, 200)}
    return {"modules": {"top": {"ports": ports, "cells": cells, "netnames": nets}}}


def chain_of_adders(length):
    """``length`` LUT6_2 cells, each O5 into the next one's I3 (the ternary adders' carry-save link), all inputs
    from flip-flops, every O6 into a flip-flop: the real depth is one LUT, whatever the length."""
    cells = {}
    for index in range(length):
        base = 10 + 10 * index
        cells[f"x{index}"] = flop(3, base)
        cells[f"y{index}"] = flop(3, base + 1)
        cells[f"z{index}"] = flop(3, base + 2)
        carry = base - 5 if index else "0"
        cells[f"lut{index}"] = lut6_2([base, base + 1, base + 2, carry, "0", "1"], base + 4, base + 5)
        cells[f"out{index}"] = flop(base + 4, base + 6)
    ports = {"d": {"direction": "input", "bits": [3]}, "clk": {"direction": "input", "bits": [2]}}
    return netlist(cells, ports)


def test_lut_dependencies_from_init():
    assert lut_dependencies(0b1000, 2) == {0, 1}  # AND
    assert lut_dependencies(0b1010, 2) == {0}  # I0 only
    assert lut_dependencies(LUT6_2_ADDER & 0xFFFF_FFFF, 5) == {0, 1, 2}  # O5 ignores I3


def test_o5_to_i3_links_add_no_depth():
    result = analyze(chain_of_adders(6), "top")
    assert result["deepest"]["lut_levels"] == 2  # flop -> LUT O5 -> next LUT I3 -> O6 -> flop
    assert result["worst_path"]["lut_levels"] == 2


def test_a_real_chain_adds_depth():
    """The check above must notice a real dependency: feed each O6 (which uses I3) into the next I3."""
    design = chain_of_adders(6)
    cells = design["modules"]["top"]["cells"]
    for index in range(1, 6):
        cells[f"lut{index}"]["connections"]["I3"] = [10 + 10 * (index - 1) + 4]
    assert analyze(design, "top")["deepest"]["lut_levels"] == 6


def test_carry_bits_and_fanout():
    cells = {"s": flop(3, 20), "c": {"type": "CARRY8", "port_directions": {"CI": "input", "CI_TOP": "input",
                                                                            "S": "input", "DI": "input",
                                                                            "O": "output", "CO": "output"},
                                     "connections": {"CI": ["0"], "CI_TOP": ["0"], "S": [20] + ["0"] * 7,
                                                     "DI": ["0"] * 8, "O": list(range(30, 38)),
                                                     "CO": list(range(40, 48))}}}
    for index in range(5):
        cells[f"q{index}"] = flop(37, 50 + index, ce=4, r=5)
    ports = {"d": {"direction": "input", "bits": [3]}, "ce": {"direction": "input", "bits": [4]},
             "rst": {"direction": "input", "bits": [5]}, "clk": {"direction": "input", "bits": [2]}}
    result = analyze(netlist(cells, ports), "top", from_port="ce")
    assert result["deepest"] == {"lut_levels": 0, "carry_bits": 8, "end": "n37"}
    assert result["largest_enable_fanout"] == {"pins": 5, "net": "n4"}
    assert result["largest_reset_fanout"] == {"pins": 5, "net": "n5"}
    assert result["from_port"]["largest_fanout_pins"] == 5
    expected = (DELAY_MODEL.clock_to_out + DELAY_MODEL.net + DELAY_MODEL.carry_entry + 8 * DELAY_MODEL.carry_bit
                + DELAY_MODEL.net + DELAY_MODEL.net_per_doubling * 2.321928 + DELAY_MODEL.setup)
    assert result["worst_path_ns"] == pytest.approx(expected, abs=2e-3)


def test_unknown_port():
    with pytest.raises(ValueError, match="no port 'o__ready'"):
        analyze(chain_of_adders(1), "top", from_port="o__ready")


def lut2(a, b, out):
    return {"type": "LUT2", "parameters": {"INIT": "0110"}, "port_directions": {"I0": "input", "I1": "input",
                                                                                  "O": "output"},
            "connections": {"I0": [a], "I1": [b], "O": [out]}}


def carry8(ci, s0, co7):
    outputs = list(range(co7 - 7, co7 + 1))
    return {"type": "CARRY8", "port_directions": {"CI": "input", "CI_TOP": "input", "S": "input", "DI": "input",
                                                  "O": "output", "CO": "output"},
            "connections": {"CI": [ci], "CI_TOP": ["0"], "S": [s0] + ["1"] * 7, "DI": ["0"] * 8,
                            "O": [o + 100 for o in outputs], "CO": outputs}}


def test_the_deepest_path_is_not_the_slowest_one():
    """A 4-LUT chain and a 48-bit carry chain meet at one LUT: the carry path is slower, the LUT path deeper."""
    cells = {"src": flop(3, 10), "l1": lut2(10, 10, 11), "l2": lut2(11, 11, 12), "l3": lut2(12, 12, 13),
             "c1": carry8("0", 10, 27), **{f"c{index}": carry8(10 * index + 7, "0", 10 * index + 17)
                                          for index in range(2, 7)},
             "meet": lut2(13, 77, 80), "dst": flop(80, 81)}
    ports = {"d": {"direction": "input", "bits": [3]}, "clk": {"direction": "input", "bits": [2]}}
    result = analyze(netlist(cells, ports), "top")
    assert result["deepest"]["lut_levels"] == 4
    assert result["worst_path"]["lut_levels"] == 1 and result["worst_path"]["carry_bits"] == 6 * 8


def three_slice_carry():
    """A flip-flop into a 24-bit carry chain of three CARRY8 cells (CO[7] into the next CI), into a flip-flop."""
    cells = {"src": flop(3, 10), "c1": carry8("0", 10, 27), "c2": carry8(27, "0", 37), "c3": carry8(37, "0", 47),
             "dst": flop(47, 51)}
    return netlist(cells, {"d": {"direction": "input", "bits": [3]}, "clk": {"direction": "input", "bits": [2]}})


def test_the_carry_cascade_is_dedicated_routing():
    """UG574: CO into the next slice's CI takes no routed net and no carry entry, only the bits it travels."""
    model = DELAY_MODEL
    one_entry = (model.clock_to_out + model.net + model.carry_entry + 24 * model.carry_bit + model.net
                 + model.setup)
    result = analyze(three_slice_carry(), "top")
    assert result["worst_path_ns"] == pytest.approx(one_entry, abs=2e-3)
    assert result["worst_path"]["carry_bits"] == 24
    # The v2 pricing (each hop a routed net and a new entry) is what the flag turns off: the test can fail.
    routed = analyze(three_slice_carry(), "top", model=DelayModel(dedicated_cascade=False), pessimistic=None)
    assert routed["worst_path_ns"] == pytest.approx(one_entry + 2 * (model.net + model.carry_entry), abs=2e-3)
    assert "fmax_mhz_pessimistic" not in routed


def test_the_pessimistic_variant_charges_half_a_nanosecond_per_routed_net():
    result = analyze(three_slice_carry(), "top")
    slow = PESSIMISTIC_MODEL
    assert slow.net == 0.50 and "pessimistic" in slow.name and "pessimistic" in result["pessimistic_model"]
    expected = slow.clock_to_out + slow.net + slow.carry_entry + 24 * slow.carry_bit + slow.net + slow.setup
    assert result["worst_path_ns_pessimistic"] == pytest.approx(expected, abs=2e-3)
    assert result["fmax_mhz_pessimistic"] == pytest.approx(1000 / expected, abs=0.06)
    assert result["fmax_mhz_pessimistic"] < result["fmax_mhz_model"]


def lutram(address, write_data, read_data):
    return {"type": "RAM32M16",
            "port_directions": {"ADDRA": "input", "ADDRH": "input", "DIA": "input", "WE": "input", "WCLK": "input",
                                "DOA": "output"},
            "connections": {"ADDRA": [address], "ADDRH": [address], "DIA": [write_data, "0"], "WE": ["1"],
                            "WCLK": [2], "DOA": [read_data, 60]}}


def test_a_distributed_ram_accumulator_is_no_loop():
    """An entry read, added to and written back in one cycle: the read data feeds the write data, which is a
    synchronous input, so the path ends there (with a RAM's setup) instead of looping."""
    cells = {"entry": flop(3, 10), "sums": lutram(10, 12, 11), "add": lut2(11, 11, 12)}
    ports = {"d": {"direction": "input", "bits": [3]}, "clk": {"direction": "input", "bits": [2]}}
    result = analyze(netlist(cells, ports), "top")
    assert result["worst_path"]["lut_levels"] == 2  # the RAM's read LUT, then the adder's LUT
    assert result["worst_path"]["end"].startswith("RAM32M16 DIA")


def test_named_paths_walk_back_to_the_start_and_keep_one_path_per_register_pair():
    """x -> two LUTs -> out[0]; x -> one LUT -> out[1] (the same register, a shorter path); y -> one LUT -> z;
    the input port d into every LUT. Each end point keeps its slowest path only (as a timing report does)."""
    cells = {"x": flop(3, 10), "y": flop(3, 11), "l1": lut2(10, 3, 20), "l2": lut2(20, 3, 21),
             "o0": flop(21, 30), "l3": lut2(10, 3, 22), "o1": flop(22, 31), "l4": lut2(11, 3, 23),
             "z": flop(23, 32)}
    design = netlist(cells, {"clk": {"direction": "input", "bits": [2]}, "d": {"direction": "input", "bits": [3]}})
    nets = design["modules"]["top"]["netnames"]
    for bit in (30, 31):
        del nets[f"n{bit}"]
    nets["out"] = {"bits": [30, 31], "hide_name": 0, "attributes": {"src": "/x/esb_hw/hw/core/engine.py:7.1-7.9"}}
    nets["n20"]["attributes"] = {"src": "/x/esb_hw/hw/core/engine.py:5.3-5.20|/share/xilinx/lut_map.v:43.1-44.2"}
    result = analyze(design, "top", paths=10)
    paths = result["worst_paths"]
    assert paths[0]["delay_ns"] == result["worst_path_ns"]
    assert paths[0]["start"] == "n10" and paths[0]["end"] == "FDRE D of out"
    assert [(step["net"], step["through"]) for step in paths[0]["steps"]] == [("n10", None), ("n20", "LUT2"),
                                                                               ("n21", "LUT2")]
    assert [step["src"] for step in paths[0]["steps"]] == ["near esb_hw/hw/core/engine.py:5",
                                                          "esb_hw/hw/core/engine.py:5",
                                                          "near esb_hw/hw/core/engine.py:5"]
    ends = [(path["start"], path["end"]) for path in paths]
    assert ends.count(("n10", "FDRE D of out")) == 1  # out[1]'s shorter path from x is not listed again
    assert ("n3", "FDRE D of n32") in ends  # z's slowest input is the port d (fan-out 6), not y (fan-out 1)
    assert len(set(ends)) == len(ends) and not any(start == "n11" for start, _ in ends)
    assert [path["delay_ns"] for path in paths] == sorted((path["delay_ns"] for path in paths), reverse=True)
    assert all(abs(path["fmax_mhz_model"] * path["delay_ns"] / 1000 - 1) < 2e-3 for path in paths)
    assert "worst_paths" not in analyze(design, "top")


def test_source_lines_name_the_design_only():
    from esb_hw.estimate.timing import source_line

    assert source_line("/usr/lib/python3.11/contextlib.py:144|esb_hw/hw/core/crc.py:63.1-63.9") == \
        "esb_hw/hw/core/crc.py:63"
    assert source_line("/home/u/x/esb_hw/hw/core/engine.py:7.1-7.9") == "esb_hw/hw/core/engine.py:7"
    assert source_line("tests/test_synth.py:81.3-81.40") == "test_synth.py:81"
    assert source_line("/v/lib/amaranth/hdl/_ir.py:283|/share/xilinx/lut_map.v:43.26-44.30") == ""
    assert source_line("") == ""
