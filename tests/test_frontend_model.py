"""esb_hw/frontend/model.py: the float chain, its NumPy forward pass and the .npz format."""

import json
import zipfile

import numpy as np
import pytest

from esb_hw.errors import InputError
from esb_hw.frontend.model import FloatLayer, FloatModel, load_npz, save_npz


def small_model(seed=0):
    rng = np.random.default_rng(seed)
    return FloatModel([
        FloatLayer("c1", "conv2d", rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4), padding=1, relu=True, pool=True),
        FloatLayer("c2", "conv2d", rng.normal(size=(5, 4, 3, 3)), rng.normal(size=5), stride=2, padding=1, relu=True),
        FloatLayer("fc", "linear", rng.normal(size=(3, 20)), rng.normal(size=3)),
    ], (2, 6, 6))


def test_shapes_follow_the_layers():
    assert small_model().shapes == [(2, 6, 6), (4, 3, 3), (5, 2, 2), (3,)]
    assert small_model().classes == 3


def test_forward_matches_a_direct_loop():
    model = small_model()
    x = np.random.default_rng(1).normal(size=(2, 2, 6, 6))
    layer = model.layers[0]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    direct = np.zeros((2, 4, 6, 6))
    for n in range(2):
        for o in range(4):
            for y in range(6):
                for xx in range(6):
                    direct[n, o, y, xx] = np.sum(padded[n, :, y:y + 3, xx:xx + 3] * layer.weight[o]) + layer.bias[o]
    direct = np.maximum(direct, 0).reshape(2, 4, 3, 2, 3, 2).max(axis=(3, 5))
    np.testing.assert_allclose(model.forward(x, upto=1), direct, rtol=1e-12, atol=1e-12)
    assert model.forward(x).shape == (2, 3)
    assert [a.shape for a in model.activations(x)] == [(2, 4, 3, 3), (2, 5, 2, 2), (2, 3)]


@pytest.mark.parametrize("build, message", [
    (lambda: FloatLayer("a", "pool", np.ones((1, 1)), None), "kind must be conv2d or linear"),
    (lambda: FloatLayer("a", "conv2d", np.ones((2, 2)), None), "conv2d weights must be OIHW"),
    (lambda: FloatLayer("a", "linear", np.ones((2, 3)), np.ones(3)), r"bias has shape \(3,\), expected \(2,\)"),
    (lambda: FloatLayer("a", "linear", np.full((2, 3), np.nan), None), "must be finite"),
    (lambda: FloatLayer("a", "linear", np.ones((2, 3)), None, pool=True), "follows a conv2d layer only"),
    (lambda: FloatModel([FloatLayer("a", "linear", np.ones((2, 3)), None)], (1, 2, 2)),
     "a linear layer of 3 inputs gets 4"),
    (lambda: FloatModel([FloatLayer("a", "conv2d", np.ones((2, 3, 3, 3)), None)], (1, 4, 4)),
     "expect 3 input channels, got 1"),
    (lambda: FloatModel([FloatLayer("a", "conv2d", np.ones((2, 1, 5, 5)), None)], (1, 4, 4)), "larger than"),
    (lambda: FloatModel([], (1, 4, 4)), "at least one layer"),
])
def test_bad_layers_are_named(build, message):
    with pytest.raises(InputError, match=message):
        build()


def test_wrong_input_shape():
    with pytest.raises(InputError, match="inputs of shape Nx2x6x6, got 1x1x6x6"):
        small_model().forward(np.zeros((1, 1, 6, 6)))


def test_npz_round_trip_is_byte_identical(tmp_path):
    model = small_model()
    save_npz(model, tmp_path / "a.npz")
    loaded = load_npz(tmp_path / "a.npz")
    x = np.random.default_rng(2).normal(size=(3, 2, 6, 6))
    np.testing.assert_allclose(loaded.forward(x), model.forward(x), rtol=1e-5, atol=1e-5)
    save_npz(loaded, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_npz_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_npz(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable float model"):
        load_npz(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(InputError, match="no 'graph' entry"):
        load_npz(tmp_path / "plain.npz")
    save_npz(small_model(), tmp_path / "model.npz")
    with zipfile.ZipFile(tmp_path / "model.npz") as archive, zipfile.ZipFile(tmp_path / "cut.npz", "w") as out:
        for item in archive.infolist():
            if item.filename != "fc.bias.npy":
                out.writestr(item, archive.read(item))
    with pytest.raises(InputError, match="layer 'fc' has no array 'fc.bias'"):
        load_npz(tmp_path / "cut.npz")
    graph = {"format": "esb-hw float model", "version": 99, "input_shape": [1, 2, 2], "layers": []}
    np.savez(tmp_path / "future.npz", graph=np.asarray(json.dumps(graph)))
    with pytest.raises(InputError, match="version 99 is not supported"):
        load_npz(tmp_path / "future.npz")
