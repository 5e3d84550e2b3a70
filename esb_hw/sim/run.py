"""Run a conv2d or linear layer (or a chain of them) from files on the accelerator in RTL simulation.

Usage::

    esb-hw sim --layer LAYER.npz --out OUT.npy [--config FILE] [--sim verilator|icarus] [--check]
                      [--vcd FILE] [--force] [--core]
    esb-hw sim --program L1.npz L2.npz ... --out OUT.npy [...]

A layer file (``numpy.savez``) holds ``kind`` (``"conv2d"`` or ``"linear"``), ``x`` (activation codes, CHW, NCHW
with N = 1, or NC; only the first layer of a program needs it), ``w_codes`` (signed ESB weight codes, OIHW or OI),
``bias``, ``M``, ``S`` (one per output channel), ``stride``, ``padding``, ``relu``, ``pool`` (integers; 0/1 for
the flags) and ``w_bits``, ``w_k``, ``a_bits``, ``a_k`` (the formats). The formats come from the file; the array,
the buffers and the clock from ``--config``. The layer is compiled into a program and memory image
(esb_hw.compiler.program) and run on the whole system's Verilog (``esb_system``: AXI4-Lite registers, the AXI4
master, the engine) by the host driver (esb_hw.driver) over cocotbext-axi, with an ``AxiRam`` as DDR; ``--core``
runs the bare layer engine against the memory model instead (20-100 cycles of latency per request). The output
codes are written to ``OUT.npy`` as int64 in the input's layout: CHW for a CHW ``x``, NCHW (N = 1) for an
NCHW ``x``, NC (N images) for a linear layer's NC ``x``. Exit codes: 0 done (and, with ``--check``, equal to the
golden model), 1 a mismatch or a failed simulation, 2 bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np

from esb_hw.compiler.lowering import KINDS, Layer
from esb_hw.compiler.program import compile_program, predicted_cycles
from esb_hw.compiler.timeline import AXI_SYSTEM, MEMORY_MODEL
from esb_hw.config import AcceleratorConfig, ConfigError
from esb_hw.data import load_config, shipped_config
from esb_hw.errors import CheckFailed, InputError, entry_point, run_command
from esb_hw.quant import golden
from esb_hw.sim.run_layer import check_out

REQUIRED = ("kind", "w_codes", "bias", "M", "S", "stride", "padding", "relu", "pool", "w_bits", "w_k", "a_bits",
            "a_k")


@dataclasses.dataclass(frozen=True)
class LayerFile:
    """One layer file, checked: the layer, its input codes (or None; CHW or NC), its ReLU flag and formats;
    ``batched`` if ``x`` came as NCHW (N = 1), so the output is written as NCHW too."""

    layer: Layer
    x: np.ndarray | None
    relu: bool
    formats: tuple[int, int, int, int]
    batched: bool = False


def _integer(archive, key: str, path: Path, *, low: int | None = None, high: int | None = None) -> int:
    value = archive[key]
    if value.ndim != 0 or value.dtype.kind not in "iu":
        raise InputError(f"{key} must be an integer scalar, got {value.dtype} of shape {value.shape} ({path})")
    number = int(value)
    if (low is not None and number < low) or (high is not None and number > high):
        raise InputError(f"{key} must be in {low}..{high}, got {number} ({path})")
    return number


def _array(archive, key: str, path: Path, ndims: tuple[int, ...]) -> np.ndarray:
    value = archive[key]
    if value.dtype.kind not in "iu":
        raise InputError(f"{key} must be an integer array, got dtype {value.dtype} ({path})")
    if value.ndim not in ndims:
        raise InputError(f"{key} must have {' or '.join(map(str, ndims))} dimensions, got shape {value.shape} ({path})")
    if value.size == 0:
        raise InputError(f"{key} must not be empty ({path})")
    return value.astype(np.int64)


def _check_weight_layout(kind: str, shape: tuple[int, ...], outputs: int, path: Path) -> None:
    """``w_codes`` must have the output channels first (one per ``bias`` value): say which order was expected and,
    for the usual other orders, how to transpose."""
    if shape[0] == outputs:
        return
    expected = "OIHW (outputs, inputs, kernel rows, kernel columns)" if kind == "conv2d" else "OI (outputs, inputs)"
    hint = ""
    if kind == "conv2d" and shape[3] == outputs:
        hint = "; it looks like HWIO (TensorFlow/Keras): pass w.transpose(3, 2, 0, 1)"
    elif kind == "linear" and shape[1] == outputs:
        hint = "; it looks like IO (y = x @ w): pass w.T"
    raise InputError(f"w_codes must be {expected} with {outputs} outputs (one per bias value), got shape "
                     f"{tuple(shape)}{hint} ({path})")


def load_layer(path: Path, config: AcceleratorConfig | None, *, needs_x: bool) -> tuple[LayerFile, AcceleratorConfig]:
    """Read and check one layer file; returns it and ``config`` with the file's formats."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"cannot read layer: no such file ({path})") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "pickle" in reason or "magic" in reason.lower() or isinstance(error, EOFError | zipfile.BadZipFile):
            reason = "not a NumPy .npz archive"
        raise InputError(f"cannot read layer: {reason} ({path})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError(f"cannot read layer: a single .npy array, not an .npz archive ({path})")
    with archive:
        missing = [key for key in REQUIRED + (("x",) if needs_x else ()) if key not in archive.files]
        if missing:
            raise InputError(f"the layer file lacks {', '.join(missing)} ({path})")
        kind_value = archive["kind"]
        if kind_value.dtype.kind not in "US" or kind_value.ndim != 0:
            raise InputError(f"kind must be a string, got {kind_value.dtype} of shape {kind_value.shape} ({path})")
        kind = str(kind_value)
        if kind not in KINDS:
            raise InputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r} ({path})")
        formats = tuple(_integer(archive, key, path, low=0, high=64) for key in ("w_bits", "w_k", "a_bits", "a_k"))
        base = config or shipped_config("default")
        try:
            config = dataclasses.replace(base, weight_bits=formats[0], weight_k=formats[1],
                                         activation_bits=formats[2], activation_k=formats[3])
        except ConfigError as error:
            raise InputError(f"the file's formats: {error} ({path})") from None
        weights = _array(archive, "w_codes", path, (4,) if kind == "conv2d" else (2,))
        if weights.min() < 0 or weights.max() >= config.weight_format.code_count:
            raise InputError(f"w_codes must hold codes 0..{config.weight_format.code_count - 1} of "
                             f"{config.weight_format} ({path})")
        params = {key: _array(archive, key, path, (1,)) for key in ("bias", "M", "S")}
        if len({len(values) for values in params.values()}) == 1:  # else the per-key lengths are reported below
            _check_weight_layout(kind, weights.shape, len(params["bias"]), path)
        for key, values in params.items():
            if len(values) != weights.shape[0]:
                raise InputError(f"{key} has {len(values)} values for {weights.shape[0]} output channels ({path})")
        stride = _integer(archive, "stride", path, low=1, high=2)
        padding = _integer(archive, "padding", path, low=0, high=7)
        relu = bool(_integer(archive, "relu", path, low=0, high=1))
        pool = bool(_integer(archive, "pool", path, low=0, high=1))
        try:
            requant = golden.RequantParams(bias=params["bias"], multiplier=params["M"], shift=params["S"])
            layer = Layer(kind, weights, requant, config.activation_format, stride=stride, padding=padding, pool=pool)
        except (ValueError, TypeError) as error:
            raise InputError(f"{error} ({path})") from None
        x = None
        batched = False
        if "x" in archive.files and needs_x:
            x = _array(archive, "x", path, (4, 3) if kind == "conv2d" else (2,))
            if x.ndim == 4:
                if x.shape[0] != 1:
                    raise InputError(f"x must hold one image (N = 1), got shape {x.shape} ({path})")
                x, batched = x[0], True
            if x.min() < 0 or x.max() >= config.activation_format.code_count:
                raise InputError(f"x must hold codes 0..{config.activation_format.code_count - 1} of "
                                 f"{config.activation_format} ({path})")
    return LayerFile(layer, x, relu, formats, batched), config


def golden_output(config: AcceleratorConfig, files: list[LayerFile], x: np.ndarray) -> np.ndarray:
    """The golden model's codes for the chain (docs/arithmetic.md, with each file's ReLU flag)."""
    for file in files:
        layer = file.layer
        levels = config.activation_format.level(x)
        weights = config.weight_format.level(layer.weight_codes)
        if layer.kind == "linear":
            levels = levels.reshape(1, -1) if levels.ndim == 3 else levels  # after a conv2d: the NCHW flatten
            x = golden.requantize(golden.linear(levels, weights), layer.params, layer.output_format,
                                  relu=file.relu, channel_axis=1)
            continue
        acc = golden.conv2d(levels[None], weights, stride=layer.stride, padding=layer.padding)
        codes = golden.requantize(acc, layer.params, layer.output_format, relu=file.relu, channel_axis=1)
        x = (golden.max_pool2x2(codes) if layer.pool else codes)[0]
    return x


def _progress_bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} tiles", end="", file=sys.stderr, flush=True)


def run_system(config, program, args, progress, predicted: int):
    """The program through the whole AXI system and the host driver (esb_hw/sim/system.py); an :class:`EngineRun`."""
    from esb_hw.compiler.program import to_bundle
    from esb_hw.sim.engine import EngineRun
    from esb_hw.sim.memory import MemoryModel
    from esb_hw.sim.system import run_system_rtl

    bundle = to_bundle(program, "sim_run")
    timeout = (4 * predicted + 100_000) * 10e-9  # simulated seconds at the testbench's 100 MHz
    result = run_system_rtl(config, [bundle], [{"bundle": 0, "timeout": timeout}], simulator=args.sim,
                            waves=args.vcd is not None or None, run_name="sim_run", progress=progress)
    entry = result.runs[0]
    if progress and "tiles_done" in entry:
        progress(entry["tiles_done"], bundle.descriptors)
    if entry["outcome"] not in ("ok", "RunFailed"):
        raise CheckFailed(f"the driver reported {entry['outcome']}: {entry['message']}")
    memory = MemoryModel(len(bundle.image))
    memory.write_bytes(0, bundle.image)
    memory.write_bytes(bundle.output_address, result.output(0))
    waves = next(iter(sorted(result.run_dir.glob("*.fst")) + sorted(result.run_dir.glob("*.vcd"))), None)
    return EngineRun(memory, entry["cycles"], entry["error"], entry["failed_descriptor"], entry["tiles_done"],
                     entry["beats_read"], entry["beats_written"], entry["layer_cycles"], entry.get("error_detail", 0),
                     waves)


def run(args) -> int:
    from esb_hw.sim.engine import run_engine_rtl

    config = load_config(args.config) if args.config else None
    check_out(args.out, args.force)
    if args.vcd is not None and args.vcd.exists() and not args.force:
        raise InputError(f"--vcd {args.vcd} exists; pass --force to overwrite it")
    paths = args.program or [args.layer]
    files = []
    for index, path in enumerate(paths):
        file, layer_config = load_layer(path, config, needs_x=index == 0)
        if index == 0:
            if file.x is None:
                raise InputError(f"the first layer file must hold x ({path})")
            config = layer_config
        elif file.formats != files[0].formats:
            raise InputError(f"all layers of a program need the formats of the first, {path} has {file.formats}")
        files.append(file)
    x = files[0].x
    program = compile_program(config, [file.layer for file in files], x.shape, x)
    model = predicted_cycles(program, MEMORY_MODEL if args.core else AXI_SYSTEM)
    tiles = len(program.tiles)
    where = "the bare layer engine" if args.core else "the AXI system, through the host driver"
    print(f"{len(files)} layer{'s' if len(files) > 1 else ''}, {program.macs:,} MACs, {tiles} tiles on the "
          f"{config.rows}x{config.cols} array, {where} ({args.sim}; predicted {model['cycles']:,} cycles; a first "
          f"build takes about a minute)", flush=True)
    show_progress = sys.stderr.isatty() or args.progress
    if args.core:
        run = run_engine_rtl(program, simulator=args.sim, waves=args.vcd is not None or None,
                             progress=_progress_bar if show_progress else None, run_name="sim_run")
    else:
        run = run_system(config, program, args, _progress_bar if show_progress else None, model["cycles"])
    if show_progress:
        print(file=sys.stderr)
    if run.error:
        raise CheckFailed(f"the engine stopped with error {run.error_text} at descriptor {run.failed_descriptor}")
    output = np.asarray(run.output(program), dtype=np.int64)  # documented: int64 codes
    expected = golden_output(config, files, x) if args.check else None
    if files[-1].layer.kind == "linear" and output.ndim == 3:  # a linear layer after a conv2d: NC, N = 1
        output = output.reshape(1, -1)
    elif files[0].batched and output.ndim == 3:  # NCHW in, NCHW out
        output = output[None]
        expected = None if expected is None else expected[None]
    np.save(args.out, output)
    utilization = program.macs / (run.cycles * config.macs)
    moved = (run.beats_read + run.beats_written) * 16
    print(f"cycles {run.cycles:,} (predicted {model['cycles']:,}), MAC utilization {utilization:.1%}, "
          f"{moved:,} bytes moved ({run.beats_read * 16:,} read, {run.beats_written * 16:,} written)")
    for index, cycles in enumerate(run.layer_cycles):
        print(f"  layer {index}: {cycles:,} compute cycles")
    print(f"wrote {args.out} (shape {output.shape})")
    if args.vcd is not None and run.waves is not None:
        shutil.copyfile(run.waves, args.vcd)
        print(f"wrote {args.vcd} ({'FST' if run.waves.suffix == '.fst' else 'VCD'})")
    if args.check:
        if not np.array_equal(output, expected):
            mismatches = np.argwhere(output != expected)
            first = tuple(int(i) for i in mismatches[0])
            raise CheckFailed(f"{len(mismatches)} of {output.size} codes differ from the golden model, first at "
                              f"{first}: {int(output[first])} != {int(expected[first])}")
        print(f"check: all {output.size} codes equal the golden model")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="esb-hw sim", description=__doc__.splitlines()[0],
                                     epilog="OUT.npy: int64 output codes, CHW for a CHW x, NCHW for an NCHW x "
                                            "(N = 1), NC for a linear layer's NC x. Layouts and descriptors: "
                                            "docs/memory.md.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--layer", type=Path, help="one layer file (.npz)")
    source.add_argument("--program", type=Path, nargs="+", help="layer files run in a chain (.npz each)")
    parser.add_argument("--out", type=Path, required=True, help="write the output codes here (.npy)")
    parser.add_argument("--config", type=Path, help="array, buffers and clock: a TOML file or a shipped config name "
                                                   "(default: default)")
    parser.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    parser.add_argument("--core", action="store_true",
                        help="run the bare layer engine against the memory model instead of the AXI system")
    parser.add_argument("--check", action="store_true", help="compare with the golden model; exit 1 on a mismatch")
    parser.add_argument("--vcd", type=Path, help="write the waveforms here")
    parser.add_argument("--force", action="store_true", help="overwrite --out and --vcd if they exist")
    parser.add_argument("--progress", action="store_true", help="a progress bar even when stderr is not a terminal")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return run_command(run, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(entry_point(main))
