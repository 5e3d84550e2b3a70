"""The delay MODEL's Fmax of a system, recorded per RTL, so that a build without ``--estimate`` can report it.

``bench/timing.py --design system --record`` writes :data:`RECORD_PATH` (``esb_hw/data/timing.json``): for each
config it synthesized, the SHA-256 of the system's Verilog (exactly what the build writes to ``esb_system.v``), the
model's nominal and pessimistic Fmax, the worst path with its source lines, and the yosys LUT and FF counts.
``esb-hw build`` looks the Verilog it writes up there: a figure applies only to exactly that RTL, and for any other
the report says to run ``--estimate``. ``tests/test_recorded.py`` fails when a shipped config's record no longer
matches its RTL, so the hardware cannot change without the figure being measured again (about 3 minutes).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import InputError

__all__ = ["RECORD_PATH", "RECORD_COMMAND", "load_records", "record_timing", "recorded_timing", "verilog_digest"]

RECORD_PATH = Path(__file__).resolve().parents[1] / "data" / "timing.json"
RECORD_COMMAND = ".venv/bin/python bench/timing.py --design system --config NAME --paths 10 --record"


def verilog_digest(verilog: str) -> str:
    """The SHA-256 of a system's Verilog text (hex)."""
    return hashlib.sha256(verilog.encode()).hexdigest()


def load_records(path: Path = RECORD_PATH) -> list[dict]:
    """Every record of ``path`` (none if the file does not exist)."""
    if not path.is_file():
        return []
    try:
        records = json.loads(path.read_text())["records"]
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a timing record file ({type(error).__name__}: {error})") from None
    return list(records)


def recorded_timing(digest: str, path: Path = RECORD_PATH) -> dict | None:
    """The record measured on the Verilog whose digest is ``digest``, or ``None``."""
    return next((record for record in load_records(path) if record["verilog_sha256"] == digest), None)


def record_timing(config_name: str, digest: str, measured: dict, worst_path: str, yosys: str,
                  path: Path = RECORD_PATH) -> dict:
    """Store (or replace) ``config_name``'s record; ``measured`` is a ``bench/timing.py`` row. Returns the record.
    The file lists the records sorted by config, so that the same measurements give the same bytes."""
    record = {"config": config_name, "verilog_sha256": digest,
              "fmax_mhz_model": measured["fmax_mhz_model"], "fmax_mhz_pessimistic": measured["fmax_mhz_pessimistic"],
              "worst_path": worst_path, "lut": measured["lut"], "ff": measured["ff"], "yosys": yosys,
              "flow": measured["flow"], "delay_model": measured["delay_model"],
              "pessimistic_model": measured["pessimistic_model"]}
    records = [other for other in load_records(path) if other["config"] != config_name] + [record]
    text = {"about": "The delay MODEL's Fmax of each system RTL, by " + RECORD_COMMAND + " (esb_hw/estimate/"
                     "recorded.py). MODELS of UltraScale+ -2 delays, not Vivado results.",
            "records": sorted(records, key=lambda item: item["config"])}
    path.write_text(json.dumps(text, indent=1, sort_keys=True) + "\n")
    return record
