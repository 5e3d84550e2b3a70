"""Run program bundles on the whole system's Verilog (``esb_system``) through the host driver, in cocotb
(``sim/tests/cocotb_system.py``), and return what each run left.

Used by ``tests/test_system.py``, ``python -m sim.run`` and ``bench/system_perf.py``.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from esb_hw.config import AcceleratorConfig
from esb_hw.driver import ProgramBundle
from esb_hw.hw.system import SYSTEM_NAME, System, system_verilog

__all__ = ["SystemRun", "run_system_rtl"]


@dataclass
class SystemRun:
    """The runs' results (``results.json`` of the cocotb module) and the bursts seen on the master."""

    runs: list[dict]
    bursts: dict
    cycles: int
    run_dir: Path

    def output(self, index: int) -> bytes:
        return bytes.fromhex(self.runs[index]["output"])


_VERILOG: dict[str, str] = {}


def system_source(config: AcceleratorConfig) -> str:
    """The system's Verilog (memoized per config within a process)."""
    key = json.dumps(config.to_dict(), sort_keys=True)
    if key not in _VERILOG:
        _VERILOG[key] = system_verilog(System(config))
    return _VERILOG[key]


def run_system_rtl(config: AcceleratorConfig, bundles: Sequence[ProgramBundle], runs: Sequence[dict], *,
                   simulator: str = "verilator", pause: float = 0.0, seed: int = 1, memory_bytes: int = 1 << 30,
                   run_name: str | None = None, waves: bool | None = None,
                   progress: Callable[[int, int], None] | None = None) -> SystemRun:
    """Run ``runs`` (dicts: ``bundle`` index, ``timeout`` in simulated seconds, ``interrupt``, ``poison``) one after
    the other on one simulated system. Each run's outcome is in the result, a failed run included; a failure of
    the simulation itself raises :class:`~sim.runner.TestsFailed`."""
    from sim.runner import run_cocotb

    runs = [{"timeout": 0.05, "interrupt": True, "poison": None, **run} for run in runs]
    with tempfile.TemporaryDirectory(prefix="esb-system-") as folder:
        paths = []
        for index, bundle in enumerate(bundles):
            path = Path(folder) / f"bundle{index}.npz"
            bundle.save(path)
            paths.append(str(path))
        progress_file = Path(folder) / "progress"
        params = {"bundles": paths, "runs": runs, "pause": pause, "seed": seed, "memory_bytes": memory_bytes,
                  "progress_file": str(progress_file) if progress else ""}
        outcome = {}

        def simulate():
            try:
                outcome["result"] = run_cocotb(system_source(config), "sim.tests.cocotb_system", simulator=simulator,
                                               toplevel=SYSTEM_NAME, params=params, waves=waves, run_name=run_name)
            except BaseException as error:  # handed to the caller's thread below
                outcome["error"] = error

        worker = threading.Thread(target=simulate, daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.5)
            if progress and progress_file.exists():
                text = progress_file.read_text().split()
                if len(text) == 2 and all(part.isdigit() for part in text):
                    progress(int(text[0]), int(text[1]))
        if "error" in outcome:
            raise outcome["error"]
        result = outcome["result"]
    summary = json.loads((result.run_dir / "results.json").read_text())
    return SystemRun(summary["runs"], summary["bursts"], summary["cycles"], result.run_dir)
