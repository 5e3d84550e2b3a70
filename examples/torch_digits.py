#!/usr/bin/env python3
"""Your own PyTorch model and data, end to end: train a small CNN on the bundled digits with PyTorch, export it with
``torch.onnx.export`` (torch's default exporter: a ``Reshape`` flatten and a final ``Softmax``), and write the data
as ``.npz`` files for ``esb-hw infer``.

    .venv/bin/pip install -e '.[train]'          # torch (CPU) and onnxscript
    .venv/bin/python examples/torch_digits.py mine
    .venv/bin/esb-hw infer --model mine/model.onnx --data mine/test.npz --calibration mine/calibration.npz --images 5

It writes into the folder (refusing files that exist, unless ``--force``):

- ``model.onnx``: the classifier of examples/export_torch_classifier.py (two 3x3 convolutions with ReLU and 2x2
  max-pooling, ``x.view(x.size(0), -1)``, a linear layer, Softmax), trained for ``--epochs`` on the digits'
  training split (Adam, seeded; a few seconds on a CPU);
- ``test.npz``: ``x`` (the held-out images, float32 N x 1 x 8 x 8 in [0, 1]) and ``y`` (their labels);
- ``calibration.npz``: ``x``, 256 training images for the activation scales.

tests/fixtures/torch_digits/ holds one run's output (tests/test_infer.py runs it through the RTL).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_torch_classifier import _strip_metadata, build_model  # noqa: E402  (this folder's sibling)

from esb_hw.frontend.datasets import load_split  # noqa: E402

CALIBRATION_IMAGES = 256


def train(epochs: int, seed: int = 0):
    """The classifier, trained on the digits' training split (full-batch-free minibatches of 64, Adam)."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # the same sums in the same order on every run
    model = build_model("view").train()
    split = load_split("digits")
    images = torch.tensor(split.train_images, dtype=torch.float32)
    labels = torch.tensor(split.train_labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(images), generator=generator).split(64):
            optimizer.zero_grad()
            scores = model(images[batch])  # the model ends in Softmax: train on its log
            loss = torch.nn.functional.nll_loss(torch.log(scores + 1e-9), labels[batch])
            loss.backward()
            optimizer.step()
    return model.eval(), split


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to write model.onnx, test.npz and calibration.npz")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--force", action="store_true", help="replace files that exist")
    args = parser.parse_args(argv)
    outputs = [args.folder / name for name in ("model.onnx", "test.npz", "calibration.npz")]
    existing = [str(path) for path in outputs if path.exists()]
    if existing and not args.force:
        print(f"error: {', '.join(existing)} exist; pass --force to replace them", file=sys.stderr)
        return 2
    try:
        import onnx
        import torch
    except ImportError as error:
        print(f"error: this example needs the train extra ({error.name} is missing): pip install -e '.[train]'",
              file=sys.stderr)
        return 2
    model, split = train(args.epochs)
    with torch.no_grad():
        accuracy = float((model(torch.tensor(split.test_images, dtype=torch.float32)).argmax(1).numpy()
                          == split.test_labels).mean())
    args.folder.mkdir(parents=True, exist_ok=True)
    logging.getLogger("torch").setLevel(logging.ERROR)  # its exporter logs that torchvision is absent
    with warnings.catch_warnings():  # torch 2.13 warns about its own internals while exporting
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(outputs[0]), dynamo=True, external_data=False,
                          verbose=False)
    proto = onnx.load(str(outputs[0]))
    _strip_metadata(proto)  # stack traces with this machine's paths
    onnx.save(proto, str(outputs[0]))
    np.savez(outputs[1], x=split.test_images.astype(np.float32), y=split.test_labels)
    step = len(split.train_images) // CALIBRATION_IMAGES
    np.savez(outputs[2], x=split.train_images[::step][:CALIBRATION_IMAGES].astype(np.float32))
    print(f"trained for {args.epochs} epochs: {accuracy:.1%} float accuracy on the {len(split.test_labels)} held-out "
          f"digits; wrote {', '.join(map(str, outputs))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
