"""Export a small seeded PyTorch classifier to ONNX with ``torch.onnx.export``, as a user's model would arrive.

The model reads 1x8x8 images and scores 10 classes: Conv2d(1, 4, 3, padding 1) -> ReLU -> MaxPool2d(2) ->
Conv2d(4, 4, 3, padding 1) -> ReLU -> flatten -> Linear(64, 10) -> Softmax. Its weights come from
``torch.manual_seed(SEED)``. The flatten is written as ``--flatten``:

- ``view``: ``x.view(x.size(0), -1)``;
- ``reshape``: ``x.reshape(x.shape[0], -1)``;
- ``flatten``: ``torch.flatten(x, 1)``;
- ``module``: ``nn.Flatten()``.

``--dynamo`` (torch's default) or ``--legacy`` picks the exporter; ``--dynamic-batch`` exports the batch axis as
symbolic. The file is self-contained (no external data). The exporters' provenance annotations (``metadata_props``:
stack traces naming this machine's paths, the FX nodes) are removed, so the bytes depend only on the options and
the versions of torch and onnx. tests/fixtures/torch_classifier_*.onnx were written with it (tests/test_onnx_import.py
lists the options of each), e.g.::

    python examples/export_torch_classifier.py tests/fixtures/torch_classifier_legacy.onnx --legacy --flatten view

Needs the ``train`` extra (``pip install -e .[train]``): torch, and onnxscript for the dynamo exporter.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

SEED = 0
FLATTEN_STYLES = ("view", "reshape", "flatten", "module")


def build_model(flatten: str = "view"):
    """The seeded classifier in eval mode, flattening as ``flatten`` (one of :data:`FLATTEN_STYLES`)."""
    import torch
    from torch import nn

    if flatten not in FLATTEN_STYLES:
        raise ValueError(f"flatten must be one of {', '.join(FLATTEN_STYLES)}, got {flatten!r}")

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(4 * 4 * 4, 10)
            self.softmax = nn.Softmax(dim=1)

        def forward(self, x):
            x = self.pool(torch.relu(self.conv1(x)))
            x = torch.relu(self.conv2(x))
            if flatten == "view":
                x = x.view(x.size(0), -1)
            elif flatten == "reshape":
                x = x.reshape(x.shape[0], -1)
            elif flatten == "flatten":
                x = torch.flatten(x, 1)
            else:
                x = self.flatten(x)
            return self.softmax(self.fc(x))

    torch.manual_seed(SEED)
    return Classifier().eval()


def export(path: str | Path, dynamo: bool = True, flatten: str = "view", dynamic_batch: bool = False) -> Path:
    """Write the classifier to ``path`` as ``torch.onnx.export`` emits it (minus ``metadata_props``)."""
    import onnx
    import torch

    path = Path(path)
    model = build_model(flatten)
    example = (torch.zeros(1, 1, 8, 8),)
    if dynamo:
        options = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)} if dynamic_batch else {}
        options |= {"external_data": False}
    else:
        options = {"input_names": ["x"], "output_names": ["y"]}
        if dynamic_batch:
            options["dynamic_axes"] = {"x": {0: "batch"}, "y": {0: "batch"}}
    with warnings.catch_warnings():
        # torch 2.13 warns about itself: the legacy exporter is deprecated (exporting with it is the point here), and
        # both exporters trip deprecations inside torch (typing_extensions, pytree's LeafSpec). Nothing here can act.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(model, example, str(path), dynamo=dynamo, **options)
    proto = onnx.load(str(path))
    _strip_metadata(proto)
    onnx.save(proto, str(path))
    return path


def _strip_metadata(proto) -> None:
    """Remove ``metadata_props`` from the model, its graph, nodes, inputs, outputs, value_info and initializers."""
    proto.ClearField("metadata_props")
    graph = proto.graph
    graph.ClearField("metadata_props")
    for item in [*graph.node, *graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        item.ClearField("metadata_props")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the .onnx file to write")
    exporter = parser.add_mutually_exclusive_group()
    exporter.add_argument("--dynamo", dest="dynamo", action="store_true", default=True,
                          help="torch.onnx.export(dynamo=True), torch's default (the default here too)")
    exporter.add_argument("--legacy", dest="dynamo", action="store_false",
                          help="torch.onnx.export(dynamo=False), the TorchScript exporter")
    parser.add_argument("--flatten", choices=FLATTEN_STYLES, default="view", help="how forward() flattens")
    parser.add_argument("--dynamic-batch", action="store_true", help="export the batch axis as symbolic")
    args = parser.parse_args(argv)
    path = export(args.output, dynamo=args.dynamo, flatten=args.flatten, dynamic_batch=args.dynamic_batch)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
