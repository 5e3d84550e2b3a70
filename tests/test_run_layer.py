# amaranth: UnusedElaboratable=no
"""esb_hw/sim/run_layer.py: the user's command to run a layer from files in RTL simulation."""

import numpy as np
import pytest

from esb_hw.quant import golden
from esb_hw.quant.format import ESBFormat
from esb_hw.sim import run_layer
from esb_hw.sim.pytest_helpers import require_simulator
from esb_hw.sim.runner import SimulationFailed, emit_verilog


@pytest.fixture
def layer_files(tmp_path):
    rng = np.random.default_rng(4)
    np.save(tmp_path / "w.npy", rng.integers(0, 16, (11, 20)))  # 11 rows: two row blocks of the 8-row array
    np.save(tmp_path / "x.npy", rng.integers(0, 256, (20, 3)))
    return tmp_path


def argv(files, *extra, weights="w.npy", activations="x.npy"):
    return ["--weights", str(files / weights), "--activations", str(files / activations), *extra]


def test_layer_matches_and_writes_the_sums(layer_files, capsys):
    require_simulator("icarus")
    out = layer_files / "y.npy"
    assert run_layer.main(argv(layer_files, "--simulator", "icarus", "--out", str(out))) == 0
    assert "all 33 sums equal the golden model" in capsys.readouterr().out
    weights, activations = np.load(layer_files / "w.npy"), np.load(layer_files / "x.npy")
    expected = golden.linear(activations.T, ESBFormat(4, 1).level(weights)).T
    assert np.array_equal(np.load(out), expected)
    assert run_layer.main(argv(layer_files, "--out", str(out))) == 2  # never overwrite silently
    assert "exists; pass --force" in capsys.readouterr().err


def save_text(path, text):
    path.write_text(text)
    return path.name


@pytest.mark.parametrize("make_weights, message", [
    (lambda d: np.save(d / "bad.npy", np.full((5, 20), 16)) or "bad.npy", "weight codes must be in 0..15"),
    (lambda d: "none.npy", r"cannot read weight codes: no such file \("),
    (lambda d: np.save(d / "bad.npy", np.zeros((0, 20), int)) or "bad.npy",
     r"weight codes must not be empty, got shape \(0, 20\)"),
    (lambda d: np.save(d / "bad.npy", np.zeros((5, 20))) or "bad.npy", "weight codes must be an integer array, got "
                                                                       "dtype float64"),
    (lambda d: np.save(d / "bad.npy", np.zeros(20, int)) or "bad.npy", r"must be a 2-d array, got shape \(20,\)"),
    (lambda d: save_text(d / "bad.npy", "1 2 3\n"), "cannot read weight codes: not a NumPy .npy array file"),
    (lambda d: np.save(d / "bad.npy", np.array([{"a": 1}], dtype=object)) or "bad.npy",
     "cannot read weight codes: not a NumPy .npy array file"),
])
def test_bad_weight_files_exit_2_with_one_line(layer_files, capsys, make_weights, message):
    name = make_weights(layer_files)
    assert run_layer.main(argv(layer_files, weights=name)) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1
    assert pytest.importorskip("re").search(message, error), error


def test_empty_activation_columns_exit_2(layer_files, capsys):
    np.save(layer_files / "x0.npy", np.zeros((20, 0), int))
    assert run_layer.main(argv(layer_files, activations="x0.npy")) == 2
    assert "activation codes must not be empty, got shape (20, 0)" in capsys.readouterr().err


def test_mismatch_exit_1(layer_files, capsys, monkeypatch):
    require_simulator("icarus")
    real = run_layer.gemm_stimulus

    def corrupted(*args):
        stimulus = real(*args)
        stimulus.expected[0][0] += 1
        return stimulus

    monkeypatch.setattr(run_layer, "gemm_stimulus", corrupted)
    out = layer_files / "y.npy"
    assert run_layer.main(argv(layer_files, "--simulator", "icarus", "--out", str(out))) == 1
    assert "error: mismatch: " in capsys.readouterr().err
    assert out.exists()  # what the hardware computed is kept for debugging


def test_simulator_failure_exit_1(layer_files, capsys, monkeypatch):
    def broken(design, *args, toplevel, **kwargs):
        emit_verilog(design, toplevel)  # the real runner gets this far, then the build fails
        raise SimulationFailed("verilator build of array_default failed (exit 2)")

    monkeypatch.setattr(run_layer, "run_cocotb", broken)
    assert run_layer.main(argv(layer_files)) == 1
    assert capsys.readouterr().err == "error: verilator build of array_default failed (exit 2)\n"
