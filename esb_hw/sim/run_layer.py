"""Run one linear layer (a GEMM of codes) from files on the PE array in RTL simulation.

Usage: esb-hw gemm --weights W.npy --activations X.npy [--out Y.npy] [--config FILE]
                               [--simulator verilator|icarus]

W.npy holds weight codes (R x K, any R: rows beyond the array run as further row blocks), X.npy activation codes
(K x N), as integer .npy arrays in the formats of the config. The array's sums are compared bit for bit with
the golden model (esb_hw.quant.golden.linear) and written, as int64 R x N, to --out. Exit codes: 0 every sum
matches, 1 a mismatch or a simulator failure, 2 bad input. ESB_VCD=1 writes waveforms into sim_build/.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from esb_hw.compiler.gemm import gemm_stimulus
from esb_hw.data import load_config
from esb_hw.errors import CheckFailed, InputError, check_output_file, entry_point, run_command
from esb_hw.hw.core.array import PEArray, pipeline_latency
from esb_hw.sim.runner import TestsFailed, run_cocotb


def load_codes(path: Path, name: str) -> np.ndarray:
    """A 2-d integer array from an .npy file, or an InputError naming the file and the problem."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns before it refuses a pickle; the refusal says enough
            codes = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"cannot read {name} codes: no such file ({path})") from None
    except (OSError, ValueError, EOFError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "pickle" in reason or "magic" in reason.lower() or isinstance(error, EOFError):
            reason = "not a NumPy .npy array file"
        raise InputError(f"cannot read {name} codes: {reason} ({path})") from None
    if not isinstance(codes, np.ndarray):
        raise InputError(f"cannot read {name} codes: an .npz archive, not one .npy array ({path})")
    if codes.dtype == np.bool_ or not np.issubdtype(codes.dtype, np.integer):
        raise InputError(f"{name} codes must be an integer array, got dtype {codes.dtype} ({path})")
    if codes.ndim != 2:
        raise InputError(f"{name} codes must be a 2-d array, got shape {codes.shape} ({path})")
    if codes.size == 0:
        raise InputError(f"{name} codes must not be empty, got shape {codes.shape} ({path})")
    return codes


def check_out(path: Path | None, force: bool) -> None:
    if path is not None:
        check_output_file(path, force, option="--out", suffix=".npy")


def run(args) -> int:
    config = load_config(args.config)
    check_out(args.out, args.force)
    weights = load_codes(args.weights, "weight")
    activations = load_codes(args.activations, "activation")
    stimulus = gemm_stimulus(config, weights, activations)
    toplevel = f"array_{config.name.replace('-', '_').replace('.', '_')}"
    print(f"{weights.shape[0]}x{weights.shape[1]} weights times {activations.shape[0]}x{activations.shape[1]} "
          f"activations: {stimulus.tiles} tiles, {len(stimulus.beats)} beats on the {config.rows}x{config.cols} "
          f"array ({args.simulator}; a first Verilator build takes 15-25 s)", flush=True)
    failure = None
    try:
        result = run_cocotb(PEArray(config), "esb_hw.sim.testbenches.cocotb_array", simulator=args.simulator,
                            toplevel=toplevel,
                            params={"beats": stimulus.beats, "expected": stimulus.expected_payloads,
                                    "latency": pipeline_latency(config), "seed": 1, "idle": 0.2, "stall": 0.2,
                                    "results": "results.json", "max_cycles": 4 * len(stimulus.beats) + 1000},
                            run_name="run_layer")
        run_dir = result.run_dir
    except TestsFailed as error:  # the hardware's sums differ; what it computed is in the run directory
        failure, run_dir = error, error.run_dir
    results = run_dir / "results.json"
    if args.out is not None and results.exists():
        payloads = json.loads(results.read_text())
        if len(payloads) == stimulus.tiles:
            np.save(args.out, stimulus.assemble(stimulus.tile_sums(payloads)))
            print(f"wrote {args.out} ({weights.shape[0]} x {activations.shape[1]} sums, int64)")
    if failure is not None:
        raise CheckFailed(f"mismatch: {str(failure).splitlines()[0]}")
    print(f"{stimulus.tiles} tiles: all {weights.shape[0] * activations.shape[1]} sums equal the golden model "
          f"({args.simulator}, log {run_dir / 'sim.log'})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="esb-hw gemm", description=__doc__.splitlines()[0],
                                     epilog="The array and its beats: docs/architecture.md.")
    parser.add_argument("--weights", type=Path, required=True, help="weight codes, R x K (.npy)")
    parser.add_argument("--activations", type=Path, required=True, help="activation codes, K x N (.npy)")
    parser.add_argument("--out", type=Path, help="write the R x N sums here (.npy, int64)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.add_argument("--config", default="default", help="a TOML file or a shipped config name")
    parser.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return run_command(run, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(entry_point(main))
