"""esb_hw/frontend/graph_qat.py: the fine-tuned weights' file (deterministic, exact, refusals), the shipped QAT
weights measured by the golden model, the command's refusals, and (with PyTorch, slow) the fake-quantized forward
pass against the integer graph."""

import numpy as np
import pytest

from esb_hw.data import example_folder
from esb_hw.errors import InputError
from esb_hw.frontend.datasets import load_split
from esb_hw.frontend.graph_qat import (
    fine_tune_graph,
    graph_qat_recipe,
    load_graph_weights,
    main,
    qat_file,
    save_graph_weights,
)
from esb_hw.frontend.graph_quant import quantize_graph
from esb_hw.frontend.onnx_graph import load_onnx_graph

FOLDER = example_folder("resnet_mnist")


def test_qat_weights_round_trip_and_refuse_another_graph(tmp_path):
    """The fine-tuned weights' file: written deterministically, read back into the graph exactly (float32), and
    refused with one line for another graph or a file that is not one."""
    graph = load_onnx_graph(FOLDER / "resnet_mnist.onnx")
    save_graph_weights(graph, tmp_path / "a.npz")
    save_graph_weights(graph, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = load_graph_weights(graph, tmp_path / "a.npz")
    for node, back in zip(graph.nodes, loaded.nodes, strict=True):
        if node.weight is not None:
            assert np.array_equal(back.weight, node.weight.astype(np.float32).astype(np.float64))
    other = type(graph)(graph.nodes[:-1], graph.input_shape)
    with pytest.raises(InputError, match="its nodes are not the graph's weighted nodes"):
        load_graph_weights(other, tmp_path / "a.npz")
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(InputError, match="bad.npz: not a readable .npz file"):
        load_graph_weights(graph, tmp_path / "bad.npz")


def test_the_shipped_qat_weights_beat_ptq_at_four_bits():
    """The shipped fine-tuned ESB(4,1) W4A4 weights, measured by the integer golden model as the table measures
    them: QAT well above PTQ (80.4 %)."""
    graph = load_onnx_graph(FOLDER / "resnet_mnist.onnx")
    split = load_split("mnist5k")
    recipe = graph_qat_recipe("esb4_a4")
    images, labels = split.test_images[:200], split.test_labels[:200]
    calibration = split.train_images[:256]  # fewer than the table's, for speed
    before = np.mean(quantize_graph(graph, recipe, calibration).predict(images) == labels)
    tuned = load_graph_weights(graph, qat_file(FOLDER, "resnet_mnist", "esb4_a4"))
    after = np.mean(quantize_graph(tuned, recipe, calibration).predict(images) == labels)
    assert after >= 0.95 and after > before + 0.1


@pytest.mark.parametrize(("arguments", "message"), [
    (["--model", "digits"], "--model must be one of resnet_mnist, got 'digits'"),
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--tags", "esb4_a9"], "--tags: unknown esb4_a9; known: esb4_a4, esb4_a4_ends8"),
])
def test_the_command_refuses_bad_input_with_one_line(capsys, tmp_path, arguments, message):
    assert main([*arguments, "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: ") and message in error


def test_the_command_never_replaces_a_file_silently(capsys, tmp_path):
    target = qat_file(tmp_path, "resnet_mnist", "pot4_a4")
    target.write_bytes(b"mine")
    assert main(["--tags", "pot4_a4", "--out", str(tmp_path)]) == 2
    assert f"{target} exists; pass --force to replace it" in capsys.readouterr().err
    assert target.read_bytes() == b"mine"


@pytest.mark.slow
def test_the_fake_quantized_forward_tracks_the_integer_graph_and_training_moves_the_weights():
    """At the start of fine-tuning, the fake-quantized forward pass gives the integer graph's logits (up to the
    requantization's rounding of biases and sums); one epoch on 256 images changes the weights."""
    torch = pytest.importorskip("torch")
    from esb_hw.frontend.graph_qat import _FakeQuantizedGraph

    graph = load_onnx_graph(FOLDER / "resnet_mnist.onnx")
    split = load_split("mnist5k")
    recipe = graph_qat_recipe("esb4_a4")
    network = _FakeQuantizedGraph(torch, graph, recipe, split.train_images)
    images = split.test_images[:64]
    with torch.no_grad():
        fake = network.forward(torch.tensor(images, dtype=torch.float64)).numpy()
    real = network.integer.logits(images)
    assert np.mean(fake.argmax(1) == real.argmax(1)) >= 0.9
    assert np.abs(fake - real).mean() < 0.1 * np.abs(real).mean()

    class Few:
        train_images, train_labels = split.train_images[:256], split.train_labels[:256]

    tuned = fine_tune_graph(torch, graph, recipe, Few, 1, log=lambda line: None)
    changed = [not np.array_equal(a.weight, b.weight) for a, b in zip(graph.nodes, tuned.nodes, strict=True)
               if a.weight is not None]
    assert all(changed)
