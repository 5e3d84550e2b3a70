"""esb_hw/cli.py (the esb-hw command): its subcommands, its errors, and the wheel installed alone in a fresh venv
running esb-hw infer and esb-hw sim from outside the checkout."""

import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

from esb_hw import cli

ROOT = Path(__file__).resolve().parents[1]


def test_every_subcommand_has_help(capsys):
    for name in cli.SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([name, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: esb-hw {name}" in capsys.readouterr().out


def test_the_list_and_its_errors(capsys):
    assert cli.main(["--help"]) == 0
    listing = capsys.readouterr().out
    assert all(f"  {name} " in listing for name in cli.SUBCOMMANDS)
    assert cli.main([]) == 2  # no subcommand: the list, and a usage error
    assert cli.main(["frobnicate"]) == 2
    assert capsys.readouterr().err == ("error: unknown subcommand 'frobnicate' (subcommands: build, sim, infer, "
                                       "plan, accuracy, explore, report, gemm, train)\n")
    assert cli.main(["--version"]) == 0 and capsys.readouterr().out.startswith("esb-hw ")


def test_a_subcommand_gets_its_arguments_and_its_exit_code(capsys):
    assert cli.main(["infer", "--golden-only", "--images", "0"]) == 2
    assert "error:" in capsys.readouterr().err


def test_a_shipped_config_by_name(tmp_path, capsys):
    assert cli.main(["infer", "--golden-only", "--images", "3", "--config", "pot3"]) == 0
    assert "golden" in capsys.readouterr().out
    assert cli.main(["infer", "--golden-only", "--config", "nonesuch"]) == 2
    assert "config file not found (nonesuch)" in capsys.readouterr().err


def _layer_file(path: Path) -> Path:
    from esb_hw.data import shipped_config
    from esb_hw.sim.layer_core import random_layer

    config = shipped_config("default")
    rng = np.random.default_rng(7)
    layer = random_layer(config, rng, "conv2d", 8, 8, 3, 1, 1, False)
    np.savez(path, kind="conv2d", x=rng.integers(0, 256, (1, 8, 6, 5)), w_codes=layer.weight_codes,
             bias=layer.params.bias, M=layer.params.multiplier, S=layer.params.shift, stride=1, padding=1, relu=1,
             pool=0, w_bits=config.weight_bits, w_k=config.weight_k, a_bits=config.activation_bits,
             a_k=config.activation_k)
    return path


@pytest.mark.slow  # a wheel, a fresh venv with its dependencies, a Verilator build: about three minutes
def test_the_wheel_runs_alone_outside_the_checkout(tmp_path):
    """``pip wheel .``, installed with its ``sim`` extra into a fresh venv, runs ``esb-hw infer --golden-only`` and
    ``esb-hw sim --layer ... --check`` from ``/``: no checkout file is needed at run time."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
                   check=True)
    (wheel,) = wheels.glob("esb_hw-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{wheel}[sim]"],
                   check=True)
    layer = _layer_file(tmp_path / "layer.npz")
    clean_env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "ESB_SIM_BUILD")}
    clean_env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # the simulator builds go to the user's cache
    command = env_dir / "bin" / "esb-hw"
    infer = subprocess.run([command, "infer", "--golden-only", "--images", "5"], cwd="/", env=clean_env,
                           capture_output=True, text=True, check=False)
    assert infer.returncode == 0, infer.stderr
    assert "accuracy on 5 held-out digits images" in infer.stdout, infer.stdout
    out = tmp_path / "out.npy"
    sim = subprocess.run([command, "sim", "--layer", str(layer), "--out", str(out), "--check", "--sim", "verilator"],
                         cwd="/", env=clean_env, capture_output=True, text=True, check=False)
    assert sim.returncode == 0, sim.stdout + sim.stderr
    assert "check: all" in sim.stdout and np.load(out).shape == (1, 8, 6, 5)
    assert (tmp_path / "cache" / "esb-hw" / "sim_build").is_dir()
    assert not (Path("/") / "sim_build").exists()
