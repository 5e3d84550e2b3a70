"""esb_hw/estimate/recorded.py: the delay model's Fmax recorded per system RTL, and that every shipped record is for
the RTL the build writes today (re-record with bench/timing.py --design system --record after changing it)."""

import json
from pathlib import Path

import pytest

from esb_hw.data import shipped_config
from esb_hw.errors import InputError
from esb_hw.estimate.recorded import RECORD_PATH, load_records, record_timing, recorded_timing, verilog_digest

MEASURED = {"fmax_mhz_model": 207.3, "fmax_mhz_pessimistic": 146.5, "lut": 8311, "ff": 7000, "flow": "synth_xilinx",
            "delay_model": "v3", "pessimistic_model": "v3 pessimistic"}


def test_every_shipped_record_is_for_todays_rtl():
    """Fails when the hardware changed after its Fmax was recorded: the build would report a stale figure."""
    from esb_hw.hw.system import System, system_verilog

    records = load_records()
    assert [record["config"] for record in records] == ["default"], "the default system's Fmax is recorded"
    for record in records:
        digest = verilog_digest(system_verilog(System(shipped_config(record["config"]), primitives=True)))
        assert digest == record["verilog_sha256"], (
            f"the {record['config']} system's RTL changed since its Fmax was recorded: run "
            f".venv/bin/python bench/timing.py --design system --config {record['config']} --paths 10 --record")
        assert 50 < record["fmax_mhz_pessimistic"] < record["fmax_mhz_model"] < 800 and record["worst_path"]


def test_records_round_trip_replace_and_are_deterministic(tmp_path):
    path = tmp_path / "timing.json"
    assert load_records(path) == [] and recorded_timing("ab", path) is None
    record_timing("zeta", "ab", MEASURED, "4.8 ns: a to b", "Yosys 0.70", path)
    record_timing("alpha", "cd", {**MEASURED, "fmax_mhz_model": 300.0}, "3.3 ns: c to d", "Yosys 0.70", path)
    first = path.read_bytes()
    assert [record["config"] for record in load_records(path)] == ["alpha", "zeta"]  # sorted
    assert recorded_timing("ab", path)["fmax_mhz_model"] == 207.3 and recorded_timing("cd", path)["worst_path"] == \
        "3.3 ns: c to d"
    assert recorded_timing("ef", path) is None  # another RTL has no figure
    record_timing("zeta", "ef", {**MEASURED, "fmax_mhz_model": 250.0}, "4.0 ns", "Yosys 0.70", path)
    assert recorded_timing("ab", path) is None and recorded_timing("ef", path)["fmax_mhz_model"] == 250.0
    record_timing("zeta", "ab", MEASURED, "4.8 ns: a to b", "Yosys 0.70", path)
    assert path.read_bytes() == first
    assert verilog_digest("module m;") != verilog_digest("module m; ")


def test_a_malformed_record_file_is_one_line(tmp_path):
    path = tmp_path / "timing.json"
    path.write_text(json.dumps({"entries": []}))
    with pytest.raises(InputError, match="timing.json: not a timing record file"):
        load_records(path)
    assert RECORD_PATH.name == "timing.json" and RECORD_PATH.parent.name == "data"


RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def _stale_rows(name: str, design: str, configs: tuple[str, ...]) -> list[str]:
    from esb_hw.estimate.recorded import design_digest

    rows = json.loads((RESULTS / name).read_text())["configs"]
    found = [row for row in rows if row["config"] in configs]
    assert [row["config"] for row in found] == list(configs), f"{name} lacks a row"
    return [f"{row['config']} {design}" for row in found
            if row["rtl_sha256"] != design_digest(design, shipped_config(row["config"]))]


def test_the_engine_and_8x8_array_figures_are_for_todays_rtl():
    """The README's engine Fmax and chip table (timing_engine.json) and the 8x8 array row: measured on today's RTL,
    else rerun the benches that bench/readme_figures.py names, then make figures."""
    stale = _stale_rows("timing_engine.json", "engine", ("default",)) + \
        _stale_rows("timing_arrays.json", "array", ("default",))
    assert not stale, f"the RTL changed since these figures were measured: {stale}"


@pytest.mark.slow  # about a minute of Verilog for the 32x32 array
def test_the_larger_array_figures_are_for_todays_rtl():
    stale = _stale_rows("timing_arrays.json", "array", ("array16x16", "array32x32"))
    assert not stale, f"the RTL changed since these figures were measured: {stale}"


def test_a_changed_design_is_seen(monkeypatch):
    """The check names a row whose RTL is no longer today's (a planted digest: the design as if it had changed), and
    the digest follows the design (the 8x8 array with other weights is another RTL)."""
    from esb_hw.estimate import recorded

    rows = json.loads((RESULTS / "timing_arrays.json").read_text())["configs"]
    (default,) = [row for row in rows if row["config"] == "default"]
    assert default["rtl_sha256"] != recorded.design_digest("array", shipped_config("pot3"))
    monkeypatch.setattr(recorded, "design_digest", lambda design, config: "0" * 64)
    assert _stale_rows("timing_engine.json", "engine", ("default",)) == ["default engine"]
