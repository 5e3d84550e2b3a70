"""sim/run_layer.py: the user's command to run a layer from files in RTL simulation."""

import numpy as np
import pytest
from amaranth.hdl import Fragment

from sim import run_layer


@pytest.fixture
def layer_files(tmp_path):
    rng = np.random.default_rng(4)
    np.save(tmp_path / "w.npy", rng.integers(0, 16, (5, 20)))
    np.save(tmp_path / "x.npy", rng.integers(0, 256, (20, 3)))
    return tmp_path


def test_layer_matches(layer_files, capsys):
    argv = ["--weights", str(layer_files / "w.npy"), "--activations", str(layer_files / "x.npy"),
            "--simulator", "icarus"]
    assert run_layer.main(argv) == 0
    assert "all sums equal the golden model" in capsys.readouterr().out


def test_bad_codes_exit_2(layer_files, capsys):
    np.save(layer_files / "bad.npy", np.full((5, 20), 16))
    argv = ["--weights", str(layer_files / "bad.npy"), "--activations", str(layer_files / "x.npy")]
    assert run_layer.main(argv) == 2
    assert "weight codes must be in 0..15" in capsys.readouterr().err


def test_missing_file_exit_2(layer_files, capsys):
    argv = ["--weights", str(layer_files / "none.npy"), "--activations", str(layer_files / "x.npy")]
    assert run_layer.main(argv) == 2
    assert "cannot read weight codes" in capsys.readouterr().err


def test_mismatch_exit_1(layer_files, capsys, monkeypatch):
    real = run_layer.gemm_stimulus

    def corrupted(*args):
        stimulus = real(*args)
        stimulus.expected[0][0] += 1
        return stimulus

    monkeypatch.setattr(run_layer, "gemm_stimulus", corrupted)
    argv = ["--weights", str(layer_files / "w.npy"), "--activations", str(layer_files / "x.npy"),
            "--simulator", "icarus"]
    assert run_layer.main(argv) == 1
    assert "mismatch: " in capsys.readouterr().err


def test_simulator_failure_exit_1(layer_files, capsys, monkeypatch):
    def broken(design, *args, **kwargs):
        Fragment.get(design, None)  # elaborated, as the real runner would, so no unused-elaboratable warning
        raise RuntimeError("verilator build of array_default failed (exit 2)")

    monkeypatch.setattr(run_layer, "run_cocotb", broken)
    argv = ["--weights", str(layer_files / "w.npy"), "--activations", str(layer_files / "x.npy")]
    assert run_layer.main(argv) == 1
    assert "error: simulation failed: verilator build of array_default failed" in capsys.readouterr().err
