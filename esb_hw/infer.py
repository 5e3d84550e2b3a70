"""Run a quantized CNN on images: the golden model, and the simulated system through the host driver.

``esb-hw infer --model digits|mnist5k|resnet_mnist|FILE.onnx|FILE.npz [--data digits|mnist5k|FILE.npz|FOLDER]
[--calibration ...] [--config FILE] [--images N] [--sim verilator|icarus] [--golden-only] [--json]
[--save-outputs FILE.npz]``

The images are a bundled dataset's held-out split (the shipped model's own, else digits) or the user's own
(``--data``: an ``.npz`` or a folder of PNGs, :func:`esb_hw.frontend.datasets.load_images`).

1. Reads the float model (ONNX: BatchNorm folded, a final Softmax dropped with a note; an unsupported operator, a
   wrong input shape or a corrupted file is one line and exit code 2) and quantizes it for the config's formats
   (post-training, DDA weight scales, activations calibrated on the dataset's training images, on
   ``--calibration``, or on the user's images themselves; ``--ends-8bit`` keeps the first and last layers at 8
   bits).
2. Says where each layer runs: on the array, or on the host (through the golden model) when the array cannot run
   its formats or shape.
3. Runs ``N`` images through the integer golden model and, unless ``--golden-only``, through the RTL of the whole
   AXI system (``esb_system``, cocotb, the host driver, one simulation per run of array layers; host layers take
   the hardware's outputs).
4. Prints accuracy (float, golden, RTL; none for unlabelled images), each image's classes, agreement with the
   golden model (every logit and every predicted class), per-layer compute cycles and MAC utilization, and images
   per second at the config's clock; with ``--golden-only`` the cycles are the compiler's MODEL.

A model with branches (residual adds, pools, depthwise convolutions: an ONNX file the chain importer refuses and
:func:`esb_hw.frontend.onnx_graph.load_onnx_graph` reads, or the shipped ``resnet_mnist``) runs node by node: each
node the array runs is its own program and its own simulation for all images, checked against the golden node;
the host runs the rest (max pools, flattens, and any node the array cannot run, with the reason) on the
hardware's outputs (:class:`GraphInferenceReport`). ``--batch N`` runs ``N`` images per engine run.

Exit codes: 0 success, 1 a result that differs from the golden model (or a failed simulation), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import AcceleratorConfig
from .contract.limits import MAX_BATCH
from .data import load_config
from .errors import CheckFailed, EsbError, InputError, check_output_file, entry_point
from .frontend.datasets import DATASETS, ImageSet, load_images, load_split
from .frontend.quantize import SCALE_METHODS, IntegerModel, QuantRecipe, Segment, compile_segments, quantize_model
from .npzfile import write_npz

__all__ = ["GraphInferenceReport", "InferenceReport", "load_model", "main", "progress_bar", "run_graph_rtl",
           "run_inference"]

DEFAULT_SIM_IMAGES = 10
CLASSES = 10
#: Shipped graph models (``esb_hw/data/<name>/<name>.onnx``) and the bundled data each was trained on.
SHIPPED_GRAPHS = {"resnet_mnist": "mnist5k"}


def load_model(name: str, shape: tuple[int, int, int], data: str = "digits", notes: list[str] | None = None):
    """A shipped model (``digits``, ``mnist5k``), an ``.onnx`` file or an ``.npz`` float model, checked against
    the images' ``shape`` (CxHxW; ``data`` names them in errors). The ONNX importer's notes (a dropped final
    Softmax) are appended to ``notes``."""
    from .frontend.model import load_npz

    if name in DATASETS:
        from .frontend.accuracy import load_shipped_model

        model = load_shipped_model(name)
    elif name in SHIPPED_GRAPHS:
        from .data import example_folder
        from .frontend.onnx_graph import load_onnx_graph

        model = load_onnx_graph(example_folder(name) / f"{name}.onnx", notes=notes)
    else:
        path = Path(name)
        if path.suffix.lower() == ".onnx":
            model = _load_onnx_model(path, shape, notes)
        elif path.suffix.lower() == ".npz":
            model = load_npz(path)
        else:
            raise InputError(f"--model takes {', '.join(repr(d) for d in (*DATASETS, *SHIPPED_GRAPHS))}, a .onnx or "
                             f"a .npz file, got {name!r}")
    if model.input_shape != tuple(shape):
        hint = ""
        if model.input_shape[1:] == tuple(shape[1:]) and {model.input_shape[0], shape[0]} == {1, 3}:
            hint = f"; save the images as {'greyscale' if model.input_shape[0] == 1 else 'RGB'} PNGs or arrays"
        raise InputError(f"{name}: the model's input is {'x'.join(map(str, model.input_shape))} (CxHxW), the "
                         f"{data} images are {'x'.join(map(str, shape))}{hint}")
    return model


def _load_onnx_model(path: Path, shape, notes: list[str] | None):
    """A chain (:class:`~.frontend.model.FloatModel`) where the chain importer reads the file, else a graph
    (:class:`~.frontend.graph.FloatGraph`: residual adds, pools, depthwise convolutions); a file neither reads gives
    the graph importer's refusal, which covers more."""
    from .frontend.onnx_graph import load_onnx_graph
    from .frontend.onnx_import import load_onnx

    try:
        return load_onnx(path, shape, notes=notes)
    except InputError as chain_error:
        try:
            return load_onnx_graph(path, shape, notes=notes)
        except InputError as graph_error:
            if "not a valid ONNX model" in str(chain_error) or "no such file" in str(chain_error):
                raise chain_error from None
            raise graph_error from None


@dataclass(frozen=True, eq=False)
class _Data:
    """The images to run (a bundled dataset's held-out split, or the user's), the calibration images, and a bundled
    dataset's class count (``None`` for the user's: the model's)."""

    run: ImageSet
    calibration: np.ndarray
    classes: int | None


def _resolve_data(data: str, calibration: str | None, log) -> _Data:
    """``--data`` and ``--calibration``: a shipped dataset's held-out images (calibrated on its training images),
    or the user's file or folder (calibrated on ``--calibration``, else on the images themselves, with a note)."""
    for option, value in (("--data", data), ("--calibration", calibration)):
        if value in DATASETS and Path(value).exists():
            raise InputError(f"{option} {value}: both a bundled dataset and a file or folder here; write ./{value} "
                             "for yours, or rename it")
    if data in DATASETS:
        split = load_split(data)
        run = ImageSet(data, split.test_images, split.test_labels,
                       tuple(f"{data}:{index}" for index in range(len(split.test_labels))))
        own_calibration, classes = split.train_images, CLASSES
    else:
        run, own_calibration, classes = load_images(data), None, None
    if calibration is None:
        if own_calibration is None:
            log(f"note: calibrating the activations on the {len(run.images)} images of {data} themselves; pass "
                "--calibration FILE for separate calibration images")
            own_calibration = run.images
        chosen = own_calibration
    elif calibration in DATASETS:
        chosen = load_split(calibration).train_images
    else:
        chosen = load_images(calibration, what="--calibration").images
    if chosen.shape[1:] != run.images.shape[1:]:
        raise InputError(f"--calibration: its images are {'x'.join(map(str, chosen.shape[1:]))} (CxHxW), the images "
                         f"to run are {'x'.join(map(str, run.images.shape[1:]))}")
    return _Data(run, chosen, classes)


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
    labels: np.ndarray | None  # None: unlabelled images (no accuracy)
    float_predictions: np.ndarray
    golden_logits: np.ndarray
    rtl_logits: np.ndarray | None = None
    simulator: str | None = None
    layer_cycles: list[float] | None = None  # per layer on the array, mean per image (None: on the host)
    cycles_per_image: float = 0.0
    cycles_source: str = "model"
    seconds: float = 0.0
    dataset: str = "digits"  # a shipped dataset's name, or the --data file or folder
    names: tuple[str, ...] = ()  # per image: "digits:17", an index in the user's .npz, or a PNG's file name
    float_logits: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    batch: int = 1  # images per engine run

    @property
    def golden_predictions(self) -> np.ndarray:
        return np.argmax(self.golden_logits, axis=1)

    @property
    def rtl_predictions(self) -> np.ndarray | None:
        return None if self.rtl_logits is None else np.argmax(self.rtl_logits, axis=1)

    def accuracy(self, predictions) -> float | None:
        return None if self.labels is None else float(np.mean(np.asarray(predictions) == self.labels))

    @property
    def exact_images(self) -> int:
        return int(np.sum(np.all(self.rtl_logits == self.golden_logits, axis=1)))

    @property
    def same_classes(self) -> int:
        return int(np.sum(np.argmax(self.rtl_logits, axis=1) == self.golden_predictions))

    @property
    def logit_scale(self) -> tuple[float, int]:
        """``(scale, zero_point)``: a real logit is ``(level - zero_point) * scale``."""
        last = self.integer.layers[-1]
        return float(last.output_scale), int(last.zero_point)

    def predictions(self) -> list[dict]:
        """One record per image: its name and label, the float, golden and RTL classes, and the golden and RTL
        logits (integer levels, see :attr:`logit_scale`)."""
        records = []
        for index in range(self.images):
            record = {"image": self.names[index] if self.names else str(index),
                      "label": None if self.labels is None else int(self.labels[index]),
                      "float": int(self.float_predictions[index]), "golden": int(self.golden_predictions[index]),
                      "golden_logits": [int(v) for v in self.golden_logits[index]]}
            if self.rtl_logits is not None:
                record.update(rtl=int(self.rtl_predictions[index]),
                              rtl_logits=[int(v) for v in self.rtl_logits[index]])
            records.append(record)
        return records

    def save_outputs(self, path: Path) -> None:
        """Write the outputs as a deterministic ``.npz`` (``--save-outputs``; its keys in the CLI's help)."""
        scale, zero_point = self.logit_scale
        arrays = {"golden_logits": np.asarray(self.golden_logits, dtype=np.int64),
                  "golden_predictions": self.golden_predictions.astype(np.int64),
                  "float_predictions": np.asarray(self.float_predictions, dtype=np.int64),
                  "logit_scale": np.float64(scale), "logit_zero_point": np.int64(zero_point),
                  "names": np.array(self.names or [str(i) for i in range(self.images)])}
        if self.float_logits is not None:
            arrays["float_logits"] = np.asarray(self.float_logits, dtype=np.float64)
        if self.labels is not None:
            arrays["labels"] = np.asarray(self.labels, dtype=np.int64)
        if self.rtl_logits is not None:
            arrays.update(rtl_logits=np.asarray(self.rtl_logits, dtype=np.int64),
                          rtl_predictions=self.rtl_predictions.astype(np.int64))
        write_npz(path, arrays)

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
        scale, zero_point = self.logit_scale if self.integer is not None else (None, None)
        result = {"model": self.model, "dataset": self.dataset, "config": self.config.name, "images": self.images,
                  "batch": self.batch,
                  "accuracy": {"float": self.accuracy(self.float_predictions),
                               "golden": self.accuracy(self.golden_predictions)},
                  "predictions": self.predictions(), "logit_scale": scale, "logit_zero_point": zero_point,
                  "notes": list(self.notes),
                  "layers": self.layer_rows(), "cycles_per_image": self.cycles_per_image,
                  "cycles_source": self.cycles_source, "clock_mhz": self.config.clock_mhz,
                  "images_per_second": self.images_per_second, "seconds": round(self.seconds, 1)}
        if self.rtl_logits is not None:
            result["accuracy"]["rtl"] = self.accuracy(self.rtl_predictions)
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


def _log_placement(rows: list[dict], log) -> None:
    """One line per layer (or graph node): shapes, MACs, weights and where it runs, in aligned columns."""
    columns = {key: max(len(f"{row[key]:,}" if key == "macs" else str(row[key])) for row in rows)
               for key in ("name", "kind", "input", "output", "macs", "weights")}
    for row in rows:
        where = "array" if row["where"] == "array" else f"host ({row['reason']})"
        log(f"  {row['name']:<{max(8, columns['name'])}} {row['kind']:<{columns['kind']}} "
            f"{row['input']:>{columns['input']}} -> {row['output']:<{columns['output']}} "
            f"{row['macs']:>{columns['macs']},} MACs  {row['weights']:<{columns['weights']}} runs on the {where}")


def _model_cycles(segments: list[Segment], layers: int) -> tuple[list[float | None], float]:
    """Per-layer compute cycles and the cycles per image (a program's over its batch), from the compiler's
    model."""
    from .compiler.program import predicted_cycles
    from .compiler.timeline import AXI_SYSTEM

    per_layer: list[float | None] = [None] * layers
    total = 0.0
    for segment in segments:
        if segment.program is None:
            continue
        model = predicted_cycles(segment.program, AXI_SYSTEM)
        batch = segment.program.batch
        total += model["cycles"] / batch
        for tile, times in zip(segment.program.tiles, model["tiles"], strict=True):
            index = segment.first + tile.layer
            per_layer[index] = (per_layer[index] or 0) + (times.compute[1] - times.compute[0]) / batch
    return per_layer, total


def run_program_rtl(config, program, codes: np.ndarray, simulator: str, progress=None) -> tuple[np.ndarray, list[dict]]:
    """``program`` on every image's input ``codes`` in one simulation of the whole system, one run per image or per
    batch of ``program.batch`` (the last batch filled with blank images, whose outputs are dropped): the output
    codes per image (checked against the compiler's NumPy run, byte for byte) and the driver's record of each
    run."""
    from .compiler.program import predicted_cycles, read_output, to_bundle

    try:
        from esb_hw.sim.system import run_system_rtl
    except ImportError:
        raise InputError("simulating the RTL needs the 'sim' extra (pip install 'esb-hw[sim]'; make build installs "
                         "it), or use --golden-only") from None
    batch, count = program.batch, len(codes)
    image_shape = program.input_shape[1:] if batch > 1 else program.input_shape
    filled = np.zeros((-(-count // batch) * batch, *image_shape), dtype=np.asarray(codes).dtype)
    filled[:count] = np.asarray(codes).reshape(count, *image_shape)
    inputs = filled.reshape(-1, batch, *image_shape) if batch > 1 else filled
    what = "batch" if batch > 1 else "image"
    bundles = [to_bundle(program, f"{what}{index}", run_codes) for index, run_codes in enumerate(inputs)]
    timeout = (4 * predicted_cycles(program)["cycles"] + 100_000) * 10e-9  # simulated seconds at 100 MHz
    runs = [{"bundle": index, "timeout": timeout} for index in range(len(bundles))]
    result = run_system_rtl(config, bundles, runs, simulator=simulator, run_name=f"infer_{simulator}",
                            progress=None if progress is None else
                            (lambda done, total: progress(min(done * batch, count), count)),
                            progress_by_run=True)
    outputs = []
    for index, entry in enumerate(result.runs):
        if entry["outcome"] != "ok":
            raise CheckFailed(f"{what} {index}: the driver reported {entry['outcome']}: {entry['message']}")
        blob = result.output(index)
        if blob != bundles[index].expected:
            raise CheckFailed(f"{what} {index}: the output bytes differ from the compiler's NumPy run of the program")
        outputs.append(read_output(program, blob))
    outputs = np.stack(outputs)
    if batch > 1:
        outputs = outputs.reshape(-1, *outputs.shape[2:])[:count]
    return outputs, result.runs


def _run_segment_rtl(config, segment: Segment, codes: np.ndarray, simulator: str, progress) -> tuple[np.ndarray,
                                                                                                    dict]:
    """One array segment for every image, in one simulation; its output codes and counters."""
    outputs, runs = run_program_rtl(config, segment.program, codes, simulator, progress)
    batch = segment.program.batch
    layer_cycles = [entry["layer_cycles"][: segment.end - segment.first] for entry in runs]
    return outputs, {"cycles": float(np.mean([entry["cycles"] for entry in runs])) / batch,
                     "layer_cycles": np.mean(layer_cycles, axis=0) / batch}


def run_inference(model_name: str, config: AcceleratorConfig, *, images: int | None = None,
                  simulator: str | None = "verilator", scale_method: str = "dda", ends_8bit: bool = False,
                  data: str | None = None, calibration: str | None = None, batch: int = 1, progress=None,
                  log=print) -> InferenceReport:
    """The whole flow of the module docstring; ``simulator=None`` is ``--golden-only``. ``data``: ``digits``,
    ``mnist5k`` (their held-out images), an ``.npz`` or a PNG folder (:func:`~.frontend.datasets.load_images`;
    default: the shipped model's own data, else digits); ``calibration`` likewise (default: the dataset's training
    images, or the user's images themselves). ``batch``: images per engine run (a batched program: the weights
    load once per batch; cycles per image are a run's over its batch)."""
    started = time.perf_counter()
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise InputError(f"--batch must be in 1..{MAX_BATCH}, got {batch}")
    data = data or (model_name if model_name in DATASETS else SHIPPED_GRAPHS.get(model_name, "digits"))
    chosen = _resolve_data(data, calibration, log)
    run = chosen.run
    shape = tuple(run.images.shape[1:])
    notes: list[str] = []
    model = load_model(model_name, shape, data, notes)
    for note in notes:
        log(f"note: {note}")
    if chosen.classes is not None and model.classes != chosen.classes:
        raise InputError(f"{model_name}: the model has {model.classes} outputs, the {data} data has "
                         f"{chosen.classes} classes")
    if run.labels is not None and not np.all((run.labels >= 0) & (run.labels < model.classes)):
        bad = run.labels[(run.labels < 0) | (run.labels >= model.classes)][0]
        raise InputError(f"{data}: label {bad} is outside the model's {model.classes} classes (0..{model.classes - 1})")
    available = len(run.images)
    count = (min(DEFAULT_SIM_IMAGES, available) if simulator else available) if images is None else images
    if not 1 <= count <= available:
        raise InputError(f"--images must be in 1..{available} (the {_describe(run.source)} images), got {count}")
    recipe = QuantRecipe.for_config(config, scale_method=scale_method, ends_8bit=ends_8bit)
    if not hasattr(model, "layers"):
        report = _run_graph(model_name, model, config, recipe, chosen, run, count, notes, simulator, progress, log,
                            batch)
        report.seconds = time.perf_counter() - started
        return report
    integer = quantize_model(model, recipe, chosen.calibration)
    segments = compile_segments(integer, config, batch)
    test_images = run.images[:count]
    labels = None if run.labels is None else run.labels[:count]
    report = InferenceReport(model_name, config, integer, segments, count, labels, model.predict(test_images),
                             integer.logit_levels(test_images), dataset=run.source, names=run.names[:count],
                             float_logits=model.forward(test_images), notes=notes, batch=batch)
    log(f"model {model_name}: {len(model.layers)} layers, {model.parameter_count():,} parameters; config "
        f"{config.name}: {config.rows}x{config.cols} array, weights {config.weight_format}, activations "
        f"{config.activation_format}, {config.clock_mhz:g} MHz{_batch_note(batch)}")
    _log_placement(report.layer_rows(), log)
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
            speed = ("the first Verilator build of a design takes about a minute, then about 0.3 s per image"
                     if simulator == "verilator" else "about 12 s per image")
            log(f"simulating layers {segment.first}..{segment.end - 1} of {count} images on the whole system "
                f"({simulator}: {speed} on the default 8x8 system)")
            current, measured = _run_segment_rtl(config, segment, current, simulator, progress)
            current = current.reshape(len(current), *integer.shapes[segment.end])
            total += measured["cycles"]
            for offset, cycles in enumerate(measured["layer_cycles"]):
                per_layer[segment.first + offset] = float(cycles)
        report.layer_cycles, report.cycles_per_image = per_layer, total
        report.rtl_logits = integer.logit_levels(codes=current)
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class GraphInferenceReport(InferenceReport):
    """:class:`InferenceReport` for a graph: ``integer`` is an :class:`~.frontend.graph_quant.IntegerGraph` and
    ``segments`` its :class:`~.frontend.graph_quant.Placement` per node; ``layer_cycles`` is per node."""

    @property
    def logit_scale(self) -> tuple[float, int]:
        output = self.integer.output.output
        return float(output.scale), int(output.zero_point)

    def layer_rows(self) -> list[dict]:
        rows = []
        shapes = self.integer.shapes
        for index, (node, placement) in enumerate(zip(self.integer.nodes, self.segments, strict=True)):
            pixels = int(np.prod(shapes[node.name]))
            macs = int(node.weight_levels[0].size) * pixels if node.weighted else 0
            cycles = None if self.layer_cycles is None else self.layer_cycles[index]
            rows.append({"name": node.name, "kind": node.op if node.groups == 1 else f"{node.op}/{node.groups}",
                         "input": "x".join(map(str, shapes[node.inputs[0]])),
                         "output": "x".join(map(str, shapes[node.name])), "macs": macs,
                         "weights": node.weights.label if node.weights else "-",
                         "where": "array" if placement.where == "engine" else "host", "reason": placement.reason,
                         "cycles": cycles,
                         "utilization": None if not cycles or not macs else macs / (cycles * self.config.macs)})
        return rows


def _run_graph(model_name: str, graph, config: AcceleratorConfig, recipe: QuantRecipe, chosen: _Data, run: ImageSet,
               count: int, notes: list[str], simulator: str | None, progress, log,
               batch: int = 1) -> GraphInferenceReport:
    """:func:`run_inference` for a graph: each node the array can run is its own program (one simulation per node
    for all images); the host runs the rest through the golden model, on the hardware's outputs."""
    from .compiler.program import predicted_cycles
    from .compiler.timeline import AXI_SYSTEM
    from .frontend.graph_quant import place_graph, quantize_graph

    integer = quantize_graph(graph, recipe, chosen.calibration)
    placements = place_graph(integer, config, batch=batch)
    test_images = run.images[:count]
    labels = None if run.labels is None else run.labels[:count]
    report = GraphInferenceReport(model_name, config, integer, placements, count, labels, graph.predict(test_images),
                                  integer.logit_levels(test_images), dataset=run.source, names=run.names[:count],
                                  float_logits=graph.forward(test_images), notes=notes, batch=batch)
    weighted = sum(node.weighted for node in integer.nodes)
    log(f"model {model_name}: a graph of {len(integer.nodes)} nodes ({weighted} conv/linear); config {config.name}: "
        f"{config.rows}x{config.cols} array, weights {config.weight_format}, activations {config.activation_format}, "
        f"{config.clock_mhz:g} MHz{_batch_note(batch)}")
    _log_placement(report.layer_rows(), log)
    models = [predicted_cycles(p.program, AXI_SYSTEM) if p.program is not None else None for p in placements]
    report.layer_cycles = [None if m is None else float(m["compute_cycles"]) / batch for m in models]
    report.cycles_per_image = float(sum(m["cycles"] for m in models if m is not None)) / batch
    if simulator is None or not any(p.program is not None for p in placements):
        return report
    report.simulator, report.cycles_source = simulator, "rtl"
    measured = run_graph_rtl(config, integer, placements, integer.input_codes(test_images), simulator, progress, log)
    report.layer_cycles, report.cycles_per_image = measured["node_cycles"], measured["cycles"]
    last = measured["output"]
    report.rtl_logits = integer.output.output.fmt.level(last).reshape(len(last), -1)
    return report


def run_graph_rtl(config: AcceleratorConfig, integer, placements, codes: np.ndarray, simulator: str, progress=None,
                  log=print) -> dict:
    """An integer graph on input ``codes`` (``(N, C, H, W)``), each array node simulated on the whole system for the
    ``N`` images, the host's nodes run by the golden model on the hardware's outputs. Every array node's output is
    checked byte for byte against the compiler's NumPy twin and code for code against the golden node
    (:class:`CheckFailed` names the node). Returns ``output`` (the last node's codes), ``node_cycles`` (per node:
    the mean measured compute cycles of its layer, None on the host), ``cycles`` (the mean cycles per image of all
    array runs, start to done) and ``runs`` (per array node: the driver's records). A batched program's cycles are
    counted per image: a run's over its batch."""
    from .frontend.graph import INPUT

    values = {INPUT: np.asarray(codes)}
    count = len(values[INPUT])
    per_node, total, records = [None] * len(integer.nodes), 0.0, {}
    engine_nodes = sum(p.program is not None for p in placements)
    done = 0
    for index, (node, placement) in enumerate(zip(integer.nodes, placements, strict=True)):
        inputs = [values[name] for name in node.inputs]
        expected = node.run(inputs)
        if placement.program is None:
            values[node.name] = expected
            continue
        done += 1
        log(f"simulating node {node.name} ({done}/{engine_nodes} on the array) for {count} images on the whole "
            f"system ({simulator})")
        program = placement.program
        outputs, runs = run_program_rtl(config, program, placement.engine_input(inputs), simulator, progress)
        outputs = outputs.reshape(expected.shape)
        if not np.array_equal(outputs, expected):
            raise CheckFailed(f"node {node.name}: the RTL's output codes differ from the golden model's")
        values[node.name] = outputs
        records[node.name] = runs
        per_node[index] = float(np.mean([entry["layer_cycles"][0] for entry in runs])) / program.batch
        total += float(np.mean([entry["cycles"] for entry in runs])) / program.batch
    return {"output": values[integer.output.name], "node_cycles": per_node, "cycles": total, "runs": records}


#: Per-image lines in the text report up to this many images (all of them are in --json and --save-outputs).
SHOWN_PREDICTIONS = 20


def _batch_note(batch: int) -> str:
    return f", batches of {batch} images per engine run" if batch > 1 else ""


def _describe(data: str) -> str:
    return f"held-out {data}" if data in DATASETS else data


def print_report(report: InferenceReport) -> None:
    accuracy = report.as_dict()["accuracy"]
    if report.labels is None:
        line = f"{report.images} unlabelled images of {report.dataset}: no accuracy"
    else:
        line = (f"accuracy on {report.images} {_describe(report.dataset)} images: float {accuracy['float']:.1%}, "
                f"golden {accuracy['golden']:.1%}")
        if report.rtl_logits is not None:
            line += f", RTL ({report.simulator}) {accuracy['rtl']:.1%}"
    print(line)
    records = report.predictions()
    wrong = [record for record in records if record["label"] is not None and record["golden"] != record["label"]]
    if len(records) <= SHOWN_PREDICTIONS:
        shown, which = records, ""
    elif report.labels is None:
        shown, which = records[:SHOWN_PREDICTIONS], f"; the first {SHOWN_PREDICTIONS} of {len(records)}"
    else:
        shown = wrong[:SHOWN_PREDICTIONS]
        which = (f"; the {len(wrong)} misclassified" if len(wrong) <= SHOWN_PREDICTIONS else
                 f"; the first {SHOWN_PREDICTIONS} of {len(wrong)} misclassified")
        if not wrong:
            print("every image's golden class equals its label (each image in --json and --save-outputs)")
    if shown:
        rtl = ", the RTL" if report.rtl_logits is not None else ""
        more = ", every image in --json and --save-outputs" if which else ""
        print(f"per image (class by the float model, the golden model{rtl}{which}{more}):")
        for record in shown:
            label = "" if record["label"] is None else f"label {record['label']}, "
            rtl = f", RTL {record['rtl']}" if "rtl" in record else ""
            print(f"  {record['image']:<16} {label}float {record['float']}, golden {record['golden']}{rtl}")
    if report.rtl_logits is not None:
        print(f"agreement with the golden model: {report.exact_images}/{report.images} images with every logit "
              f"bit-exact, {report.same_classes}/{report.images} with the same predicted class")
    source = "measured in RTL, mean per image" if report.cycles_source == "rtl" else "compiler MODEL"
    rows = report.layer_rows()
    width = max(8, *(len(row["name"]) for row in rows))
    if report.cycles_source != "rtl" and report.cycles_per_image:
        print("cycles: the compiler's cycle MODEL (esb_hw/compiler/timeline.py), which tests/test_timeline.py holds "
              "within 5 % of the RTL's measured cycles; run without --golden-only to measure them")
    for row in rows:
        if row["cycles"] is None:
            print(f"  {row['name']:<{width}} host")
        else:
            use = ("no MACs" if row["utilization"] is None else
                   f"MAC utilization {row['utilization']:.1%}")
            print(f"  {row['name']:<{width}} {row['cycles']:>10,.0f} compute cycles, {use} ({source})")
    if report.cycles_per_image:
        host = sum(1 for row in report.layer_rows() if row["where"] == "host")
        per_image = ("per image" if report.batch == 1 else
                     f"per image (runs of {report.batch} images, over {report.batch})")
        print(f"{report.cycles_per_image:,.0f} cycles {per_image} from start to done ({source}): "
              f"{report.images_per_second:,.0f} images/s at {report.config.clock_mhz:g} MHz"
              + (f" (the array's part; {host} {'node' if isinstance(report, GraphInferenceReport) else 'layer'}"
                 f"{'s' if host > 1 else ''} ran on the host)" if host else ""))
    print(f"took {report.seconds:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="esb-hw infer", description=__doc__.splitlines()[0],
                                     epilog="Docs: docs/network.md (inference, your own data, model files).")
    parser.add_argument("--model", default="digits", help="'digits' (default), 'mnist5k', 'resnet_mnist' (a residual "
                                                          "network: a graph), FILE.onnx or FILE.npz")
    parser.add_argument("--data", help="'digits' or 'mnist5k' (their held-out images; default: the shipped model's "
                                       "own, else digits), FILE.npz (x: float N x C x H x W, y: N integer labels, "
                                       "optional) or a folder of PNGs (scaled to [0, 1]) with an optional "
                                       "labels.csv of 'file,label' lines")
    parser.add_argument("--calibration", help="images to calibrate the activation scales on, in the same forms as "
                                              "--data (default: the dataset's training images; for your own "
                                              "--data, the images themselves)")
    parser.add_argument("--config", default="default",
                        help="accelerator config: a TOML file or a shipped config name (default: default)")
    parser.add_argument("--images", type=int, help=f"held-out images to run (default {DEFAULT_SIM_IMAGES} in "
                                                   "simulation, all with --golden-only)")
    parser.add_argument("--batch", type=int, default=1, metavar="N",
                        help=f"images per engine run, 1..{MAX_BATCH} (default 1): each weight tile loads once per "
                             "batch, and a linear layer runs the batch as pixels")
    parser.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    parser.add_argument("--golden-only", action="store_true", help="no simulation: the golden model and the "
                                                                   "compiler's cycle model")
    parser.add_argument("--scale", choices=SCALE_METHODS, default="dda", help="weight scale method (default dda)")
    parser.add_argument("--ends-8bit", action="store_true", help="keep the first and last layers at 8 bits")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object, per-image "
                                                            "predictions and logits included")
    parser.add_argument("--save-outputs", metavar="FILE.npz", type=Path,
                        help="write golden_logits, golden_predictions, float_logits, float_predictions, names, "
                             "labels (when labelled), rtl_logits and rtl_predictions (when simulated), logit_scale "
                             "and logit_zero_point (a real logit is (level - zero_point) * scale)")
    parser.add_argument("--force", action="store_true", help="let --save-outputs replace an existing file")
    parser.add_argument("--progress", action="store_true", help="a progress bar even when stderr is not a terminal")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    show_progress = args.progress or sys.stderr.isatty()
    try:
        if args.save_outputs is not None:
            check_output_file(args.save_outputs, args.force, option="--save-outputs", suffix=".npz")
        config = load_config(args.config)
        report = run_inference(args.model, config, images=args.images, simulator=None if args.golden_only
                               else args.sim, scale_method=args.scale, ends_8bit=args.ends_8bit, data=args.data,
                               calibration=args.calibration, batch=args.batch,
                               progress=progress_bar() if show_progress else None,
                               log=(lambda *a: print(*a, file=sys.stderr)) if args.json else print)
        if args.save_outputs is not None:
            report.save_outputs(args.save_outputs)
        if args.json:
            print(json.dumps(report.as_dict(), indent=1, sort_keys=True))
        else:
            print_report(report)
            if args.save_outputs is not None:
                print(f"outputs written to {args.save_outputs}")
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
    sys.exit(entry_point(main))
