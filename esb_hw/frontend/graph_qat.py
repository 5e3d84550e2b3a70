"""Quantization-aware fine-tuning of a graph (PyTorch, CPU, seeded), and the fine-tuned weights' file.

:func:`fine_tune_graph` trains a :class:`~esb_hw.frontend.graph.FloatGraph`'s weights and biases through the
fake quantization of the integer graph that :func:`~esb_hw.frontend.graph_quant.quantize_graph` makes of it:

- each conv and linear node's weights through its recipe's quantizer (per-channel scale, the recipe's method);
- the input and every node's output through its tensor's code: the levels of its format at its power-of-two scale,
  with its zero point (a max pool and a flatten keep their input's);
- the straight-through estimator: the gradient passes the rounding unchanged inside the levels' range, and is 0
  outside it.

The scales stay those of the PTQ graph while training. The tuned graph is then measured as any graph is: by
post-training quantization with the same recipe (``esb-hw accuracy --model resnet_mnist``'s QAT column), so that the
accuracy comes from the integer golden model, not from the fake quantization.

:func:`save_graph_weights` writes the tuned weights as a deterministic ``.npz`` (``names``, and per weighted node in
order ``weight_<i>`` and ``bias_<i>`` as float32); :func:`load_graph_weights` puts them back into the graph, refusing a
file whose names or shapes differ.

Usage: python -m esb_hw.frontend.graph_qat [--model resnet_mnist] [--epochs 2] [--tags T1,T2] [--out DIR] [--force]
Needs the ``train`` extra. About 45 s an epoch for each of the six recipes of
:data:`GRAPH_QAT_RECIPES`. ``--out`` defaults to the model's own folder (the shipped files are there).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from ..data import example_folder
from ..errors import EsbError, InputError, entry_point
from ..npzfile import write_npz
from ..quant import ESBFormat
from .graph import FloatGraph
from .quantize import QuantRecipe

__all__ = ["GRAPH_QAT_RECIPES", "fine_tune_graph", "graph_qat_recipe", "load_graph_weights", "main",
           "save_graph_weights"]

SEED = 0
#: Tag -> (weight spec, 8-bit first and last layers): the graph accuracy table's 4-bit rows, with 4-bit activations.
GRAPH_QAT_RECIPES = {"esb4_a4": ("esb:4:1", False), "esb4_a4_ends8": ("esb:4:1", True),
                     "uniform4_a4": ("uniform:4", False), "uniform4_a4_ends8": ("uniform:4", True),
                     "pot4_a4": ("pot:4", False), "pot4_a4_ends8": ("pot:4", True)}


def graph_qat_recipe(tag: str) -> QuantRecipe:
    """The recipe a tag was fine-tuned with, and is measured with (DDA weight scales, 4-bit activations)."""
    spec, ends = GRAPH_QAT_RECIPES[tag]
    return QuantRecipe(spec, ESBFormat(4, 4, signed=False), "dda", ends_8bit=ends)


def qat_file(folder: Path, model: str, tag: str) -> Path:
    return Path(folder) / f"{model}_qat_{tag}.npz"


def save_graph_weights(graph: FloatGraph, path: Path) -> None:
    """``graph``'s weighted nodes' weights and biases as float32, with their names (deterministic bytes)."""
    weighted = [node for node in graph.nodes if node.weight is not None]
    arrays = {"names": np.array([node.name for node in weighted])}
    for index, node in enumerate(weighted):
        arrays[f"weight_{index}"] = node.weight.astype(np.float32)
        arrays[f"bias_{index}"] = node.bias.astype(np.float32)
    write_npz(path, arrays)


def load_graph_weights(graph: FloatGraph, path: Path) -> FloatGraph:
    """``graph`` with the weights and biases of ``path`` (:func:`save_graph_weights`). Raises :class:`InputError`
    for a file that is not such a file, or whose node names or shapes differ from ``graph``'s."""
    path = Path(path)
    weighted = [node for node in graph.nodes if node.weight is not None]
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable .npz file ({error})") from None
    names = arrays.get("names")
    if names is None or names.tolist() != [node.name for node in weighted]:
        raise InputError(f"{path}: its nodes are not the graph's weighted nodes")
    tuned = {}
    for index, node in enumerate(weighted):
        weight, bias = arrays.get(f"weight_{index}"), arrays.get(f"bias_{index}")
        if weight is None or bias is None or weight.shape != node.weight.shape or bias.shape != node.bias.shape:
            raise InputError(f"{path}: node {node.name!r}: weights or bias missing or of another shape")
        tuned[node.name] = dataclasses.replace(node, weight=weight.astype(np.float64), bias=bias.astype(np.float64))
    return FloatGraph([tuned.get(node.name, node) for node in graph.nodes], graph.input_shape)


class _FakeQuantizedGraph:
    """The graph's weighted nodes as PyTorch parameters, run with the integer graph's fake quantization."""

    def __init__(self, torch, graph: FloatGraph, recipe: QuantRecipe, calibration_images):
        from .graph_quant import quantize_graph

        self.torch, self.graph, self.recipe = torch, graph, recipe
        self.integer = quantize_graph(graph, recipe, calibration_images)
        self.parameters = {node.name: (torch.tensor(node.weight, requires_grad=True),
                                       torch.tensor(node.bias, requires_grad=True))
                           for node in graph.nodes if node.weight is not None}

    def _fake(self, x, fmt: ESBFormat, scale: float, zero_point: int = 0):
        """``x`` on the levels of ``fmt`` at ``scale`` and ``zero_point``; the gradient passes inside the range."""
        torch = self.torch
        alpha = scale * 2.0**fmt.k
        shifted = x + zero_point * scale
        quantized = torch.from_numpy(fmt.quantize(shifted.detach().numpy(), alpha)) - zero_point * scale
        inside = (shifted >= 0) & (shifted <= fmt.max_value * alpha)
        return torch.where(inside, x + (quantized - x).detach(), quantized)

    def forward(self, images):
        from .graph import INPUT

        torch = self.torch
        functional = torch.nn.functional
        source = self.integer.input_quantizer
        values = {INPUT: self._fake(images, source.fmt, source.scale)}
        for node, integer in zip(self.graph.nodes, self.integer.nodes, strict=True):
            x = values[node.inputs[0]]
            if node.op in ("conv2d", "linear"):
                weight, bias = self.parameters[node.name]
                fake = torch.from_numpy(integer.weights.fake_quantize(weight.detach().numpy(),
                                                                      self.recipe.scale_method))
                weight = weight + (fake - weight).detach()
                if node.op == "conv2d":
                    y = functional.conv2d(x, weight, bias, stride=node.stride, padding=node.padding,
                                          groups=node.groups)
                else:
                    y = x.reshape(len(x), -1) @ weight.T + bias
            elif node.op == "add":
                y = x + values[node.inputs[1]]
            elif node.op == "max_pool":
                values[node.name] = functional.max_pool2d(x, node.kernel, node.stride, node.padding)
                continue
            elif node.op == "flatten":
                values[node.name] = x.reshape(len(x), -1)
                continue
            elif node.op == "avg_pool":
                y = functional.avg_pool2d(x, node.kernel, node.stride)
            else:
                y = x.mean(axis=(2, 3), keepdim=True)
            if node.relu:
                y = functional.relu(y)
            if node.upper is not None:
                y = torch.clamp(y, max=node.upper)
            code = integer.output
            values[node.name] = self._fake(y, code.fmt, code.scale, code.zero_point)
        return values[self.graph.output.name].reshape(len(images), -1)

    def tuned_graph(self) -> FloatGraph:
        nodes = [dataclasses.replace(node, weight=self.parameters[node.name][0].detach().numpy().copy(),
                                     bias=self.parameters[node.name][1].detach().numpy().copy())
                 if node.name in self.parameters else node for node in self.graph.nodes]
        return FloatGraph(nodes, self.graph.input_shape)


def fine_tune_graph(torch, graph: FloatGraph, recipe: QuantRecipe, split, epochs: int, log=print) -> FloatGraph:
    """``graph`` fine-tuned for ``epochs`` through ``recipe``'s fake quantization (the module docstring), on
    ``split``'s training images (Adam, learning rate 5e-4, batches of 64, seeded)."""
    torch.manual_seed(SEED)
    network = _FakeQuantizedGraph(torch, graph, recipe, split.train_images)
    images = torch.tensor(split.train_images, dtype=torch.float64)
    labels = torch.tensor(split.train_labels)
    optimizer = torch.optim.Adam([p for pair in network.parameters.values() for p in pair], lr=5e-4)
    generator = torch.Generator().manual_seed(SEED)
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(images), 64):
            batch = order[start:start + 64]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(network.forward(images[batch]), labels[batch])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        log(f"  epoch {epoch + 1}/{epochs}: loss {total / len(images):.4f}")
    return network.tuned_graph()


def main(argv: list[str] | None = None) -> int:
    from .accuracy import GRAPH_MODELS
    from .datasets import load_split
    from .graph_quant import quantize_graph
    from .onnx_graph import load_onnx_graph

    parser = argparse.ArgumentParser(prog="python -m esb_hw.frontend.graph_qat", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet_mnist", help=f"a shipped graph: {', '.join(GRAPH_MODELS)}")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--tags", default=",".join(GRAPH_QAT_RECIPES),
                        help=f"the recipes to fine-tune (default all: {', '.join(GRAPH_QAT_RECIPES)})")
    parser.add_argument("--out", type=Path, help="the folder for <model>_qat_<tag>.npz (default: the model's own)")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    try:
        if args.model not in GRAPH_MODELS:
            raise InputError(f"--model must be one of {', '.join(GRAPH_MODELS)}, got {args.model!r}")
        if args.epochs < 1:
            raise InputError(f"--epochs must be >= 1, got {args.epochs}")
        tags = [tag for tag in args.tags.split(",") if tag]
        unknown = [tag for tag in tags if tag not in GRAPH_QAT_RECIPES]
        if unknown or not tags:
            raise InputError(f"--tags: unknown {unknown[0] if unknown else '(none)'}; known: "
                             f"{', '.join(GRAPH_QAT_RECIPES)}")
        folder = args.out or example_folder(args.model)
        if not Path(folder).is_dir():
            raise InputError(f"--out {folder}: no such folder")
        existing = [qat_file(folder, args.model, tag) for tag in tags if qat_file(folder, args.model, tag).exists()]
        if existing and not args.force:
            raise InputError(f"{existing[0]} exists; pass --force to replace it")
        try:
            import torch
        except ImportError:
            raise InputError("fine-tuning needs PyTorch: pip install -e '.[train]'") from None
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        graph = load_onnx_graph(example_folder(args.model) / f"{args.model}.onnx")
        split = load_split(GRAPH_MODELS[args.model])
        for tag in tags:
            started = time.monotonic()
            recipe = graph_qat_recipe(tag)
            print(f"{tag}: fine-tuning {args.epochs} epochs", flush=True)
            tuned = fine_tune_graph(torch, graph, recipe, split, args.epochs,
                                    log=lambda line: print(line, flush=True))
            path = qat_file(folder, args.model, tag)
            save_graph_weights(tuned, path)
            tuned = load_graph_weights(graph, path)  # measured as stored (float32)
            before, after = (float(np.mean(quantize_graph(g, recipe, split.train_images).predict(split.test_images)
                                           == split.test_labels)) for g in (graph, tuned))
            print(f"{tag}: integer accuracy {before:.4f} -> {after:.4f}, wrote {path} "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(entry_point(main))
