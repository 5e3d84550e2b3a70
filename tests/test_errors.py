"""The exception hierarchy (esb_hw/errors.py): every project error is an EsbError with the right exit code."""

import re

import pytest

from esb_hw.boards import BoardError
from esb_hw.config import ConfigError
from esb_hw.errors import CheckFailed, EsbError, InputError, ParameterError, ToolError
from esb_hw.estimate import CalibrationError, DoesNotFitError, SynthesisError
from esb_hw.hw.clocking import ClockError
from esb_hw.quant.report import ReportError
from esb_hw.sim.runner import SimulatorNotFound


@pytest.mark.parametrize("error, code", [
    (ConfigError, 2), (BoardError, 2), (ClockError, 2), (DoesNotFitError, 2), (ReportError, 2), (ParameterError, 2),
    (InputError, 2), (SynthesisError, 1), (SimulatorNotFound, 1), (ToolError, 1), (CheckFailed, 1),
    (CalibrationError, 1),
])
def test_every_project_error_derives_from_the_base(error, code):
    assert issubclass(error, EsbError) and error.exit_code == code


def test_builtin_bases_kept_for_library_callers():
    assert issubclass(InputError, ValueError) and issubclass(ToolError, RuntimeError)
    assert not issubclass(CheckFailed, ValueError)


def test_run_command_gives_one_line_and_the_exit_code(capsys):
    import types

    from esb_hw.errors import CheckFailed, InputError, run_command

    def failing(error):
        def run(args):
            raise error
        return run

    quiet = types.SimpleNamespace(debug=False)
    assert run_command(lambda args: 0, quiet) == 0
    assert run_command(failing(InputError("bad width")), quiet) == 2
    assert capsys.readouterr().err == "error: bad width\n"
    assert run_command(failing(CheckFailed("differs")), quiet) == 1
    with pytest.raises(InputError):  # --debug shows the traceback
        run_command(failing(InputError("bad")), types.SimpleNamespace(debug=True))
    with pytest.raises(KeyError):  # a bug is not an input error: it is never turned into an exit code
        run_command(failing(KeyError("bug")), quiet)


# ---- entry_point: Ctrl-C and missing packages are one line --------------------------------------------------
def test_entry_point_turns_ctrl_c_and_missing_packages_into_one_line(capsys, monkeypatch):
    import importlib.util

    from esb_hw.errors import INTERRUPTED, entry_point

    installed = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("cocotb", "amaranth") else
                        installed(name, *a))  # as in a Python without them

    def interrupted(argv):
        raise KeyboardInterrupt

    def needs(name):
        def main(argv):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return main

    assert entry_point(interrupted) == INTERRUPTED == 130
    assert capsys.readouterr().err == "\ninterrupted\n"
    assert entry_point(needs("cocotb.runner")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the Python package 'cocotb' is not installed for ") and \
        err.rstrip().endswith("pip install 'esb-hw[sim]' (make build installs the sim, test, estimate, plot, mnist, "
                              "images and explore extras into .venv)") and err.count("\n") == 1
    assert entry_point(needs("amaranth")) == 2
    assert "run `make build` in the esb-hw checkout, then use .venv/bin/esb-hw" in capsys.readouterr().err
    with pytest.raises(ModuleNotFoundError):  # not one of ours: a real bug, shown in full
        entry_point(needs("somethingelse"))
    with pytest.raises(ModuleNotFoundError):  # a part of an installed package missing: a real bug too
        entry_point(needs("numpy._no_such_part"))
    assert entry_point(lambda argv: 7, ["x"]) == 7


def test_ctrl_c_on_a_running_command_exits_130_without_a_traceback():
    import os
    import signal
    import subprocess
    import sys

    # SIGINT back to its default in the child: a test run started in the background inherits it ignored.
    process = subprocess.Popen([sys.executable, "-m", "esb_hw.cli", "infer", "--golden-only", "--model", "mnist5k"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = process.stdout.readline()  # the model is loaded; the quantization and 1,000 images follow (seconds)
    assert first.startswith("model mnist5k:"), first
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (first + out, err)
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err


def test_check_output_file_refuses_each_bad_output(tmp_path):
    from esb_hw.errors import check_output_file

    (tmp_path / "old.npy").write_bytes(b"mine")
    (tmp_path / "dir.npy").mkdir()
    for path, message in ((tmp_path / "out.txt", "--out must name a .npy file, got "),
                          (tmp_path / "dir.npy", "dir.npy: is a folder"),
                          (tmp_path / "old.npy", "old.npy: the file exists; pass --force to replace it"),
                          (tmp_path / "no" / "out.npy", f"out.npy: no folder {tmp_path / 'no'}")):
        with pytest.raises(InputError, match=re.escape(message)):
            check_output_file(path, False, option="--out", suffix=".npy")
    check_output_file(tmp_path / "old.npy", True, option="--out", suffix=".npy")  # --force
    check_output_file(tmp_path / "new.npy", False, option="--out", suffix=".npy")
    assert (tmp_path / "old.npy").read_bytes() == b"mine"  # checking writes nothing
