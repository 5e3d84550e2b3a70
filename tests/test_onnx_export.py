"""esb_hw/frontend/onnx_export.py: a FloatModel written as ONNX reads back the same, with BatchNorm nodes kept."""

import numpy as np
import onnx

from esb_hw.frontend.model import FloatLayer, FloatModel
from esb_hw.frontend.onnx_export import save_onnx, to_onnx
from esb_hw.frontend.onnx_import import load_onnx


def model_and_batch_norm():
    rng = np.random.default_rng(3)
    model = FloatModel([FloatLayer("c", "conv2d", rng.normal(size=(4, 1, 3, 3)), rng.normal(size=4), padding=1,
                                   relu=True, pool=True),
                        FloatLayer("fc", "linear", rng.normal(size=(3, 16)), rng.normal(size=3))], (1, 4, 4))
    batch_norm = {"c": (rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.5, 2, 4), 1e-5)}
    return model, batch_norm


def test_round_trip_with_and_without_batch_norm(tmp_path):
    model, batch_norm = model_and_batch_norm()
    save_onnx(model, tmp_path / "plain.onnx")
    save_onnx(model, tmp_path / "bn.onnx", batch_norm)
    x = np.random.default_rng(4).normal(size=(3, 1, 4, 4))
    np.testing.assert_allclose(load_onnx(tmp_path / "plain.onnx").forward(x), model.forward(x), rtol=1e-5, atol=1e-5)
    scale, offset, mean, variance, eps = batch_norm["c"]
    factor = scale / np.sqrt(variance + eps)
    folded = FloatModel([FloatLayer("c", "conv2d", model.layers[0].weight * factor[:, None, None, None],
                                    (model.layers[0].bias - mean) * factor + offset, padding=1, relu=True, pool=True),
                         model.layers[1]], (1, 4, 4))
    np.testing.assert_allclose(load_onnx(tmp_path / "bn.onnx").forward(x), folded.forward(x), rtol=1e-5, atol=1e-5)
    ops = [node.op_type for node in onnx.load(str(tmp_path / "bn.onnx")).graph.node]
    assert ops == ["Conv", "BatchNormalization", "Relu", "MaxPool", "Flatten", "Gemm"]


def test_bytes_depend_only_on_the_model():
    model, batch_norm = model_and_batch_norm()
    assert to_onnx(model, batch_norm).SerializeToString() == to_onnx(model, batch_norm).SerializeToString()
    other = FloatModel([model.layers[0], FloatLayer("fc", "linear", model.layers[1].weight * 2, model.layers[1].bias)],
                       (1, 4, 4))
    assert to_onnx(other, batch_norm).SerializeToString() != to_onnx(model, batch_norm).SerializeToString()
