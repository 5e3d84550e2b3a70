"""Run one linear layer (a GEMM of codes) from files on the PE array in RTL simulation.

Usage: python -m sim.run_layer --weights W.npy --activations X.npy [--config FILE] [--simulator verilator]

W.npy holds weight codes (R x K, R <= rows), X.npy activation codes (K x N), as integer arrays in the formats
of the config. The array's sums are compared bit for bit with the golden model (esb_hw.quant.golden.linear).
Exit codes: 0 every sum matches, 1 a mismatch, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from esb_hw.hw.core.array import PEArray, pipeline_latency  # noqa: E402

from esb_hw.compiler.gemm import gemm_stimulus  # noqa: E402
from esb_hw.config import AcceleratorConfig, ConfigError  # noqa: E402
from sim.runner import run_cocotb  # noqa: E402


def load_codes(path: Path, name: str, fmt) -> np.ndarray:
    try:
        codes = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {name} codes from {path}: {error}") from None
    if codes.ndim != 2:
        raise ValueError(f"{name} codes must be a 2-d array, got shape {codes.shape} ({path})")
    fmt.check_codes(codes, f"{name} codes")
    return codes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.run_layer", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True, help="weight codes, R x K (.npy)")
    parser.add_argument("--activations", type=Path, required=True, help="activation codes, K x N (.npy)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default.toml")
    parser.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    args = parser.parse_args(argv)
    try:
        config = AcceleratorConfig.from_toml(args.config)
        weights = load_codes(args.weights, "weight", config.weight_format)
        activations = load_codes(args.activations, "activation", config.activation_format)
        stimulus = gemm_stimulus(config, weights, activations)
    except (ConfigError, ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    params = {"beats": stimulus.beats, "expected": stimulus.expected, "rows": config.rows,
              "accumulator_bits": config.accumulator_bits, "latency": pipeline_latency(config), "seed": 1,
              "idle": 0.2, "stall": 0.2}
    try:
        result = run_cocotb(PEArray(config), "sim.tests.cocotb_array", simulator=args.simulator,
                            toplevel=f"array_{config.name.replace('-', '_').replace('.', '_')}", params=params,
                            run_name="run_layer")
    except AssertionError as error:
        print(f"mismatch: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    except RuntimeError as error:  # a simulator missing, a build failure, a run without results
        print(f"error: simulation failed: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"{stimulus.tiles} output columns x {weights.shape[0]} rows: all sums equal the golden model "
          f"({args.simulator}, log {result.run_dir / 'sim.log'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
