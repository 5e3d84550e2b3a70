"""esb-hw sim (esb_hw/sim/run.py): a layer and a program from files through the whole AXI system and the driver
(and the bare engine with --core), checked against the golden model; a wrong result exits 1; every bad file exits
2 with one line."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from esb_hw.config import AcceleratorConfig
from esb_hw.sim import run as run_module
from esb_hw.sim.layer_core import random_layer
from esb_hw.sim.pytest_helpers import require_simulator

ROOT = Path(__file__).resolve().parents[1]
CONFIG = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=8, activation_k=8, rows=4, cols=4,
                           name="run4", activation_words=256, weight_words=256, param_words=16, output_words=64,
                           entries=8)
CONFIG_TOML = """\
name = "run4"
[weights]
bits = 4
k = 1
[activations]
bits = 8
k = 8
[array]
rows = 4
cols = 4
[engine]
activation_words = 256
weight_words = 256
param_words = 16
output_words = 64
entries = 8
"""


def layer_file(path, layer_kind="conv2d", out_channels=6, in_channels=5, kernel=3, stride=1, padding=1, pool=0,
               shape=(1, 5, 7, 6), seed=0, **overrides):
    rng = np.random.default_rng(seed)
    layer = random_layer(CONFIG, rng, layer_kind, out_channels, in_channels, kernel, stride, padding, bool(pool))
    content = {"kind": layer_kind, "x": rng.integers(0, 256, shape), "w_codes": layer.weight_codes,
               "bias": layer.params.bias, "M": layer.params.multiplier, "S": layer.params.shift, "stride": stride,
               "padding": padding, "relu": 1, "pool": pool, "w_bits": 4, "w_k": 1, "a_bits": 8, "a_k": 8}
    content.update(overrides)
    np.savez(path, **{key: value for key, value in content.items() if value is not None})
    return path


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "esb_hw.cli", "sim", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=900)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "run4.toml"
    path.write_text(CONFIG_TOML)
    return path


def test_a_layer_and_a_program_run_and_check(tmp_path, config_file):
    require_simulator("icarus")
    layer = layer_file(tmp_path / "conv.npz", pool=1, stride=2, shape=(1, 5, 9, 8))
    result = run_cli("--layer", layer, "--out", tmp_path / "out.npy", "--config", config_file, "--sim", "icarus",
                     "--check")
    assert result.returncode == 0, result.stderr
    assert "check: all" in result.stdout and "MAC utilization" in result.stdout and "bytes moved" in result.stdout
    assert "the AXI system, through the host driver" in result.stdout
    system_output = np.load(tmp_path / "out.npy")
    assert system_output.shape == (1, 6, 2, 2) and system_output.dtype == np.int64  # NCHW in, NCHW out
    chw = layer_file(tmp_path / "chw.npz", pool=1, stride=2, shape=(5, 9, 8))  # the same codes, without N
    assert np.array_equal(np.load(chw)["x"], np.load(layer)["x"][0])
    result = run_cli("--layer", chw, "--out", tmp_path / "core.npy", "--config", config_file, "--sim", "icarus",
                     "--check", "--core")
    assert result.returncode == 0, result.stderr
    assert "the bare layer engine" in result.stdout
    assert np.array_equal(np.load(tmp_path / "core.npy"), system_output[0])  # CHW in, CHW out
    second = layer_file(tmp_path / "second.npz", out_channels=3, in_channels=6, kernel=1, padding=0, x=None, seed=1,
                        relu=0)  # ReLU off: the clamp of the unsigned codes gives the same result
    result = run_cli("--program", layer, second, "--out", tmp_path / "chain.npy", "--config", config_file,
                     "--sim", "icarus", "--check")
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "chain.npy").shape == (1, 3, 2, 2)
    head = layer_file(tmp_path / "head.npz", layer_kind="linear", out_channels=4, in_channels=24, x=None, seed=2)
    result = run_cli("--program", layer, head, "--out", tmp_path / "head.npy", "--config", config_file,
                     "--sim", "icarus", "--check")  # conv2d, then linear on its NCHW flatten (6x2x2 = 24 inputs)
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "head.npy").shape == (1, 4)  # NC
    result = run_cli("--layer", layer, "--out", tmp_path / "out.npy", "--config", config_file, "--sim", "icarus")
    assert result.returncode == 2 and "exists; pass --force" in result.stderr  # never overwritten silently


def test_a_mismatch_exits_1(tmp_path, config_file, monkeypatch, capsys):
    require_simulator("icarus")
    layer = layer_file(tmp_path / "linear.npz", layer_kind="linear", out_channels=3, in_channels=6, kernel=1, padding=0,
                       shape=(2, 6))
    monkeypatch.setattr(run_module, "golden_output", lambda config, files, x: np.zeros((2, 3), dtype=np.int64) + 1)
    code = run_module.main(["--layer", str(layer), "--out", str(tmp_path / "out.npy"), "--config", str(config_file),
                            "--sim", "icarus", "--check"])
    assert code == 1
    assert "codes differ from the golden model" in capsys.readouterr().err


BAD_FILES = {
    "missing": ({"bias": None}, "the layer file lacks bias"),
    "kind": ({"kind": "pool"}, "kind must be one of conv2d, linear, got 'pool'"),
    "float weights": ({"w_codes": np.zeros((6, 5, 3, 3))}, "w_codes must be an integer array, got dtype float64"),
    "weight codes": ({"w_codes": np.full((6, 5, 3, 3), 16)}, "w_codes must hold codes 0..15 of ESB\\(4,1\\)"),
    "activation codes": ({"x": np.full((1, 5, 7, 6), 256)}, "x must hold codes 0..255"),
    "batch": ({"x": np.zeros((2, 5, 7, 6), dtype=int)}, "x must hold one image \\(N = 1\\)"),
    "stride": ({"stride": 3}, "stride must be in 1..2, got 3"),
    "format": ({"w_bits": 40}, "the file's formats: weight_bits must be in 2..8, got 40"),
    "channels": ({"M": np.ones(5, dtype=int)}, "M has 5 values for 6 output channels"),
    "short bias": ({"bias": np.zeros(5, dtype=int)}, "bias has 5 values for 6 output channels"),
    "HWIO weights": ({"w_codes": np.zeros((3, 3, 5, 6), dtype=int)},
                     "w_codes must be OIHW \\(outputs, inputs, kernel rows, kernel columns\\) with 6 outputs \\(one "
                     "per bias value\\), got shape \\(3, 3, 5, 6\\); it looks like HWIO \\(TensorFlow/Keras\\): pass "
                     "w.transpose\\(3, 2, 0, 1\\)"),
    "IO weights": ({"kind": "linear", "w_codes": np.zeros((5, 6), dtype=int), "x": np.zeros((2, 5), dtype=int)},
                   "w_codes must be OI \\(outputs, inputs\\) with 6 outputs .*; it looks like IO \\(y = x @ w\\): "
                   "pass w.T"),
    "shape": ({"x": np.zeros((1, 4, 7, 6), dtype=int)}, "layer 0: the input has 4 channels but the weights expect 5"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_layer_files_exit_2_with_one_line(tmp_path, config_file, name):
    overrides, message = BAD_FILES[name]
    path = layer_file(tmp_path / "bad.npz", **overrides)
    code = run_module.main(["--layer", str(path), "--out", str(tmp_path / "out.npy"), "--config", str(config_file)])
    assert code == 2


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_layer_file_messages(tmp_path, config_file, name, capsys):
    overrides, message = BAD_FILES[name]
    path = layer_file(tmp_path / "bad.npz", **overrides)
    run_module.main(["--layer", str(path), "--out", str(tmp_path / "out.npy"), "--config", str(config_file)])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert __import__("re").search(message, err), err


def test_files_that_are_not_layers_exit_2(tmp_path, config_file):
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    single = tmp_path / "single.npz"
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "single.npy").rename(single)
    for path, message in ((text, "not a NumPy .npz archive"), (single, "a single .npy array"),
                          (tmp_path / "absent.npz", "no such file")):
        result = run_cli("--layer", path, "--out", tmp_path / "out.npy", "--config", config_file)
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
