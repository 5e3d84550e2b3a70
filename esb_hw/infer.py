"""Run a quantized CNN on held-out images: the golden model, and the simulated system through the host driver.

``esb-hw infer --model digits|mnist5k|FILE.onnx|FILE.npz [--data digits|mnist5k] [--config FILE]
[--images N] [--sim verilator|icarus] [--golden-only]``

The data is the model's own for a shipped model, else ``--data`` (default digits).

1. Reads the float model (ONNX: BatchNorm folded; an unsupported operator, a wrong input shape or a corrupted file
   is one line and exit code 2) and quantizes it for the config's formats (post-training, DDA weight scales,
   activations calibrated on training images; ``--ends-8bit`` keeps the first and last layers at 8 bits).
2. Says where each layer runs: on the array, or on the host (through the golden model) when the array cannot run
   its formats or shape.
3. Runs ``N`` held-out images through the integer golden model and, unless ``--golden-only``, through the RTL of
   the whole AXI system (``esb_system``, cocotb, the host driver, one simulation per run of array layers; host
   layers take the hardware's outputs).
4. Prints accuracy (float, golden, RTL), agreement with the golden model (every logit and every predicted class),
   per-layer compute cycles and MAC utilization, and images per second at the config's clock; with
   ``--golden-only`` the cycles are the compiler's MODEL.

Exit codes: 0 success, 1 a result that differs from the golden model (or a failed simulation), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import AcceleratorConfig
from .data import load_config
from .errors import CheckFailed, EsbError, InputError
from .frontend.datasets import DATASETS, load_split
from .frontend.quantize import SCALE_METHODS, IntegerModel, QuantRecipe, Segment, compile_segments, quantize_model

__all__ = ["InferenceReport", "load_model", "main", "progress_bar", "run_inference"]

DEFAULT_SIM_IMAGES = 10
CLASSES = 10


def load_model(name: str, dataset: str = "digits"):
    """A shipped model (``digits``, ``mnist5k``), an ``.onnx`` file or an ``.npz`` float model, checked against
    the input shape of ``dataset`` and its 10 classes."""
    from .frontend.model import load_npz
    from .frontend.onnx_import import load_onnx

    shape = DATASETS[dataset].shape
    if name in DATASETS:
        from .frontend.accuracy import load_shipped_model

        model = load_shipped_model(name)
    else:
        path = Path(name)
        if path.suffix.lower() == ".onnx":
            model = load_onnx(path, shape)
        elif path.suffix.lower() == ".npz":
            model = load_npz(path)
        else:
            raise InputError(f"--model takes {', '.join(repr(d) for d in DATASETS)}, a .onnx or a .npz file, got "
                             f"{name!r}")
    if model.input_shape != shape:
        raise InputError(f"{name}: the model's input is {'x'.join(map(str, model.input_shape))} (CxHxW), the "
                         f"{dataset} images are {'x'.join(map(str, shape))}")
    if model.classes != CLASSES:
        raise InputError(f"{name}: the model has {model.classes} outputs, the {dataset} data has {CLASSES} classes")
    return model


def _needed_pixels(layer, shape) -> int:
    """Output pixels the layer computes: with pooling, a trailing odd row or column is dropped unseen."""
    _, height, width = shape
    kh, kw = layer.weight_levels.shape[2:]
    out_h = (height + 2 * layer.padding - kh) // layer.stride + 1
    out_w = (width + 2 * layer.padding - kw) // layer.stride + 1
    return (out_h // 2) * (out_w // 2) * 4 if layer.pool else out_h * out_w


@dataclass
class InferenceReport:
    """Everything :func:`run_inference` measured (``as_dict`` for ``--json``)."""

    model: str
    config: AcceleratorConfig
    integer: IntegerModel
    segments: list[Segment]
    images: int
    labels: np.ndarray
    float_predictions: np.ndarray
    golden_logits: np.ndarray
    rtl_logits: np.ndarray | None = None
    simulator: str | None = None
    layer_cycles: list[float] | None = None  # per layer on the array, mean per image (None: on the host)
    cycles_per_image: float = 0.0
    cycles_source: str = "model"
    seconds: float = 0.0
    dataset: str = "digits"

    @property
    def golden_predictions(self) -> np.ndarray:
        return np.argmax(self.golden_logits, axis=1)

    def accuracy(self, predictions) -> float:
        return float(np.mean(np.asarray(predictions) == self.labels))

    @property
    def exact_images(self) -> int:
        return int(np.sum(np.all(self.rtl_logits == self.golden_logits, axis=1)))

    @property
    def same_classes(self) -> int:
        return int(np.sum(np.argmax(self.rtl_logits, axis=1) == self.golden_predictions))

    def layer_rows(self) -> list[dict]:
        rows = []
        shapes = self.integer.shapes
        for index, layer in enumerate(self.integer.layers):
            segment = next(s for s in self.segments if s.first <= index < s.end)
            macs = layer.macs * _needed_pixels(layer, shapes[index])
            cycles = None if self.layer_cycles is None else self.layer_cycles[index]
            rows.append({"name": layer.name, "kind": "linear" if layer.linear else "conv2d",
                         "input": "x".join(map(str, shapes[index])), "output": "x".join(map(str, shapes[index + 1])),
                         "macs": macs, "weights": layer.weights.label, "where": "array" if segment.program else "host",
                         "reason": segment.reason, "cycles": cycles,
                         "utilization": None if not cycles else macs / (cycles * self.config.macs)})
        return rows

    @property
    def images_per_second(self) -> float:
        return self.config.clock_mhz * 1e6 / self.cycles_per_image if self.cycles_per_image else 0.0

    def as_dict(self) -> dict:
        result = {"model": self.model, "dataset": self.dataset, "config": self.config.name, "images": self.images,
                  "accuracy": {"float": self.accuracy(self.float_predictions),
                               "golden": self.accuracy(self.golden_predictions)},
                  "layers": self.layer_rows(), "cycles_per_image": self.cycles_per_image,
                  "cycles_source": self.cycles_source, "clock_mhz": self.config.clock_mhz,
                  "images_per_second": self.images_per_second, "seconds": round(self.seconds, 1)}
        if self.rtl_logits is not None:
            result["accuracy"]["rtl"] = self.accuracy(np.argmax(self.rtl_logits, axis=1))
            result.update(simulator=self.simulator, bit_exact_images=self.exact_images,
                          same_class_images=self.same_classes)
        return result


def progress_bar():
    """A ``progress(done, total)`` callback that draws an image count on stderr when it changes."""
    shown = []

    def draw(done: int, total: int) -> None:
        if shown[-1:] == [(done, total)]:
            return
        shown.append((done, total))
        width = 30
        filled = width * done // max(total, 1)
        print(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} images",
              end="" if done < total else "\n", file=sys.stderr, flush=True)

    return draw


def _model_cycles(segments: list[Segment], layers: int) -> tuple[list[float | None], float]:
    """Per-layer compute cycles and the cycles per image, from the compiler's model."""
    from .compiler.program import predicted_cycles
    from .compiler.timeline import AXI_SYSTEM

    per_layer: list[float | None] = [None] * layers
    total = 0.0
    for segment in segments:
        if segment.program is None:
            continue
        model = predicted_cycles(segment.program, AXI_SYSTEM)
        total += model["cycles"]
        for tile, times in zip(segment.program.tiles, model["tiles"], strict=True):
            index = segment.first + tile.layer
            per_layer[index] = (per_layer[index] or 0) + times.compute[1] - times.compute[0]
    return per_layer, total


def _run_segment_rtl(config, segment: Segment, codes: np.ndarray, simulator: str, progress) -> tuple[np.ndarray,
                                                                                                    dict]:
    """One array segment for every image, in one simulation; its output codes and counters."""
    from .compiler.program import predicted_cycles, read_output, to_bundle

    try:
        from esb_hw.sim.system import run_system_rtl
    except ImportError:
        raise InputError("--sim needs the esb-hw checkout's sim/ package (run from the repository root), or use "
                         "--golden-only") from None
    program = segment.program
    bundles = [to_bundle(program, f"image{index}", image_codes) for index, image_codes in enumerate(codes)]
    timeout = (4 * predicted_cycles(program)["cycles"] + 100_000) * 10e-9  # simulated seconds at 100 MHz
    runs = [{"bundle": index, "timeout": timeout} for index in range(len(bundles))]
    result = run_system_rtl(config, bundles, runs, simulator=simulator, run_name=f"infer_{simulator}",
                            progress=progress, progress_by_run=True)
    outputs, cycles, layer_cycles = [], [], []
    for index, entry in enumerate(result.runs):
        if entry["outcome"] != "ok":
            raise CheckFailed(f"image {index}: the driver reported {entry['outcome']}: {entry['message']}")
        blob = result.output(index)
        if blob != bundles[index].expected:
            raise CheckFailed(f"image {index}: the output bytes differ from the compiler's NumPy run of the program")
        outputs.append(read_output(program, blob))
        cycles.append(entry["cycles"])
        layer_cycles.append(entry["layer_cycles"][: segment.end - segment.first])
    return np.stack(outputs), {"cycles": float(np.mean(cycles)), "layer_cycles": np.mean(layer_cycles, axis=0)}


def run_inference(model_name: str, config: AcceleratorConfig, *, images: int | None = None,
                  simulator: str | None = "verilator", scale_method: str = "dda", ends_8bit: bool = False,
                  dataset: str | None = None, progress=None, log=print) -> InferenceReport:
    """The whole flow of the module docstring; ``simulator=None`` is ``--golden-only``. ``dataset``: the shipped
    model's own data, else digits."""
    started = time.perf_counter()
    dataset = dataset or (model_name if model_name in DATASETS else "digits")
    if dataset not in DATASETS:
        raise InputError(f"--data takes one of {', '.join(DATASETS)}, got {dataset!r}")
    model = load_model(model_name, dataset)
    split = load_split(dataset)
    available = len(split.test_labels)
    count = (DEFAULT_SIM_IMAGES if simulator else available) if images is None else images
    if not 1 <= count <= available:
        raise InputError(f"--images must be in 1..{available} (the held-out {dataset} images), got {count}")
    recipe = QuantRecipe.for_config(config, scale_method=scale_method, ends_8bit=ends_8bit)
    integer = quantize_model(model, recipe, split.train_images)
    segments = compile_segments(integer, config)
    test_images, labels = split.test_images[:count], split.test_labels[:count]
    report = InferenceReport(model_name, config, integer, segments, count, labels, model.predict(test_images),
                             integer.logit_levels(test_images), dataset=dataset)
    log(f"model {model_name}: {len(model.layers)} layers, {model.parameter_count():,} parameters; config "
        f"{config.name}: {config.rows}x{config.cols} array, weights {config.weight_format}, activations "
        f"{config.activation_format}, {config.clock_mhz:g} MHz")
    for row in report.layer_rows():
        where = "array" if row["where"] == "array" else f"host ({row['reason']})"
        log(f"  {row['name']:<8} {row['kind']:<7} {row['input']:>8} -> {row['output']:<8} {row['macs']:>8,} MACs  "
            f"{row['weights']:<14} runs on the {where}")
    per_layer, total = _model_cycles(segments, len(integer.layers))
    report.layer_cycles, report.cycles_per_image = per_layer, total
    if simulator is not None and any(segment.program for segment in segments):
        report.simulator, report.cycles_source = simulator, "rtl"
        current = integer.input_codes(test_images)
        per_layer, total = [None] * len(integer.layers), 0.0
        for segment in segments:
            if segment.program is None:
                current = integer.run(None, start=segment.first, stop=segment.end, codes=current)[-1]
                continue
            log(f"simulating layers {segment.first}..{segment.end - 1} of {count} images on the whole system "
                f"({simulator}; a first build takes about a minute)")
            current, measured = _run_segment_rtl(config, segment, current, simulator, progress)
            total += measured["cycles"]
            for offset, cycles in enumerate(measured["layer_cycles"]):
                per_layer[segment.first + offset] = float(cycles)
        report.layer_cycles, report.cycles_per_image = per_layer, total
        report.rtl_logits = integer.logit_levels(codes=current)
    report.seconds = time.perf_counter() - started
    return report


def print_report(report: InferenceReport) -> None:
    accuracy = report.as_dict()["accuracy"]
    line = (f"accuracy on {report.images} held-out {report.dataset} images: float {accuracy['float']:.1%}, golden "
            f"{accuracy['golden']:.1%}")
    if report.rtl_logits is not None:
        line += f", RTL ({report.simulator}) {accuracy['rtl']:.1%}"
    print(line)
    if report.rtl_logits is not None:
        print(f"agreement with the golden model: {report.exact_images}/{report.images} images with every logit "
              f"bit-exact, {report.same_classes}/{report.images} with the same predicted class")
    source = "measured in RTL, mean per image" if report.cycles_source == "rtl" else "compiler MODEL"
    for row in report.layer_rows():
        if row["cycles"] is None:
            print(f"  {row['name']:<8} host")
        else:
            print(f"  {row['name']:<8} {row['cycles']:>10,.0f} compute cycles, MAC utilization "
                  f"{row['utilization']:.1%} ({source})")
    if report.cycles_per_image:
        host = sum(1 for row in report.layer_rows() if row["where"] == "host")
        print(f"{report.cycles_per_image:,.0f} cycles per image from start to done ({source}): "
              f"{report.images_per_second:,.0f} images/s at {report.config.clock_mhz:g} MHz"
              + (f" (the array's part; {host} layer{'s' if host > 1 else ''} ran on the host)" if host else ""))
    print(f"took {report.seconds:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="esb-hw infer", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits", help="'digits' (default), 'mnist5k', FILE.onnx or FILE.npz")
    parser.add_argument("--data", choices=("digits", "mnist5k"),
                        help="the held-out images (default: the shipped model's own, else digits)")
    parser.add_argument("--config", default="default",
                        help="accelerator config: a TOML file or a shipped config name (default: default)")
    parser.add_argument("--images", type=int, help=f"held-out images to run (default {DEFAULT_SIM_IMAGES} in "
                                                   "simulation, all with --golden-only)")
    parser.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    parser.add_argument("--golden-only", action="store_true", help="no simulation: the golden model and the "
                                                                   "compiler's cycle model")
    parser.add_argument("--scale", choices=SCALE_METHODS, default="dda", help="weight scale method (default dda)")
    parser.add_argument("--ends-8bit", action="store_true", help="keep the first and last layers at 8 bits")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--progress", action="store_true", help="a progress bar even when stderr is not a terminal")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    show_progress = args.progress or sys.stderr.isatty()
    try:
        config = load_config(args.config)
        report = run_inference(args.model, config, images=args.images, simulator=None if args.golden_only
                               else args.sim, scale_method=args.scale, ends_8bit=args.ends_8bit, dataset=args.data,
                               progress=progress_bar() if show_progress else None,
                               log=(lambda *a: print(*a, file=sys.stderr)) if args.json else print)
        if args.json:
            print(json.dumps(report.as_dict(), indent=1, sort_keys=True))
        else:
            print_report(report)
        if report.rtl_logits is not None and report.exact_images != report.images:
            raise CheckFailed(f"{report.images - report.exact_images} of {report.images} images differ from the "
                              "golden model")
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        if args.debug:
            raise
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
