#!/usr/bin/env python3
"""Train the small residual network shipped as ``resnet_mnist`` (PyTorch, CPU, seeded) and export it to ONNX.

The network, for the bundled 5,000 MNIST images (28x28, ``esb_hw.frontend.datasets.load_split("mnist5k")``):

- stem: conv 3x3 1->16, BatchNorm, ReLU;
- block 1: conv 3x3 16->16, BN, ReLU, conv 3x3 16->16, BN, plus the block's input, ReLU;
- block 2: conv 3x3 16->32 stride 2, BN, ReLU, conv 3x3 32->32, BN, plus a 1x1 stride-2 downsample (conv, BN),
  ReLU (14x14);
- block 3: the same, 32->32, to 7x7;
- global average pooling, linear 32->10.

Nine convolutions, three residual adds. The export (``torch.onnx.export``, the legacy exporter, opset 17) keeps
each BatchNorm as its own node; ``esb_hw.frontend.onnx_graph`` folds them on import.

Usage: python examples/train_resnet_mnist.py [--epochs 12] [--out esb_hw/data/resnet_mnist] [--force]
Needs the ``train`` extra (``pip install -e '.[train]'``) and the ``mnist`` extra for the data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SEED = 0


def build(torch):
    nn = torch.nn

    def conv_bn(cin, cout, kernel=3, stride=1):
        return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.branch = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(), *conv_bn(cout, cout))
            self.skip = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()

        def forward(self, x):
            return torch.relu(self.branch(x) + self.skip(x))

    return nn.Sequential(*conv_bn(1, 16), nn.ReLU(), Block(16, 16, 1), Block(16, 32, 2), Block(32, 32, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path("esb_hw/data/resnet_mnist"))
    parser.add_argument("--force", action="store_true", help="replace an existing model file")
    args = parser.parse_args(argv)
    import torch

    from esb_hw.frontend.datasets import load_split

    target = args.out / "resnet_mnist.onnx"
    if target.exists() and not args.force:
        print(f"error: {target} exists; pass --force to replace it", file=sys.stderr)
        return 2
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    split = load_split("mnist5k")
    images = torch.tensor(split.train_images, dtype=torch.float32)
    labels = torch.tensor(split.train_labels, dtype=torch.int64)
    network = build(torch)
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs)
    order = np.random.default_rng(SEED)
    for epoch in range(args.epochs):
        network.train()
        permutation = torch.tensor(order.permutation(len(images)))
        for start in range(0, len(images), 64):
            batch = permutation[start:start + 64]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(network(images[batch]), labels[batch])
            loss.backward()
            optimizer.step()
        schedule.step()
        network.eval()
        with torch.no_grad():
            test = network(torch.tensor(split.test_images, dtype=torch.float32)).argmax(1).numpy()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f}, held-out accuracy "
              f"{np.mean(test == split.test_labels):.1%}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    network.eval()
    torch.onnx.export(network, torch.zeros(1, 1, 28, 28), str(target), input_names=["x"], output_names=["logits"],
                      opset_version=17, dynamo=False)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
