"""Run program bundles on the whole system's Verilog (``esb_system``) through the host driver, in cocotb
(``esb_hw/sim/testbenches/cocotb_system.py``), and return what each run left.

Used by ``tests/test_system.py``, ``esb-hw sim``, ``esb-hw infer`` and ``bench/digits_rtl.py``.
"""

from __future__ import annotations

import json
import tempfile
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
                   progress: Callable[[int, int], None] | None = None, progress_by_run: bool = False,
                   watchdog_cycles: int = 100_000) -> SystemRun:
    """Run ``runs`` (dicts: ``bundle`` index, ``timeout`` in simulated seconds, ``interrupt``, ``poison``,
    ``stall``, ``abort_timeout``: esb_hw/sim/testbenches/cocotb_system.py) one after the other on one simulated
    system. Each run's outcome is in the result, a failed run included; a failure of the simulation itself, or a
    hang (``watchdog_cycles`` with the engine busy and no beat on ``m_axi``), raises
    :class:`~esb_hw.sim.runner.TestsFailed`. ``progress(done, total)`` counts the current
    run's tiles, or with ``progress_by_run`` the runs finished."""
    from esb_hw.sim.runner import run_cocotb_watching

    runs = [{"timeout": 0.05, "interrupt": True, "poison": None, **run} for run in runs]
    with tempfile.TemporaryDirectory(prefix="esb-system-") as folder:
        paths = []
        for index, bundle in enumerate(bundles):
            path = Path(folder) / f"bundle{index}.npz"
            bundle.save(path)
            paths.append(str(path))
        progress_file = Path(folder) / "progress"
        params = {"bundles": paths, "runs": runs, "pause": pause, "seed": seed, "memory_bytes": memory_bytes,
                  "progress_file": str(progress_file) if progress else "", "watchdog_cycles": watchdog_cycles}

        def report(text):
            parts = text.split()
            if len(parts) == 4 and all(part.isdigit() for part in parts):
                done, total = (parts[2], parts[3]) if progress_by_run else (parts[0], parts[1])
                progress(int(done), int(total))

        result = run_cocotb_watching(progress_file, report if progress else None, system_source(config),
                                     "esb_hw.sim.testbenches.cocotb_system", simulator=simulator, toplevel=SYSTEM_NAME,
                                     params=params, waves=waves, run_name=run_name)
    summary = json.loads((result.run_dir / "results.json").read_text())
    return SystemRun(summary["runs"], summary["bursts"], summary["cycles"], result.run_dir)
