"""esb-hw plan: a graph's per-node placement and cycles, and its refusals (one line, exit code 2)."""

from __future__ import annotations

import json

import onnx
import pytest
from onnx import TensorProto, helper

from esb_hw.cli import main as cli
from esb_hw.data import shipped_config
from esb_hw.frontend.reference_networks import reference_network
from esb_hw.plan import plan_network

DEFAULT = shipped_config("default")


@pytest.fixture(scope="module")
def resnet_plan(tmp_path_factory):
    """A narrow ResNet-18 (8 channels in the first stage) at 32x32, the default 8x8 config."""
    path = tmp_path_factory.mktemp("plan") / "resnet18.onnx"
    reference_network("resnet18", path, size=32, width=8, classes=10)
    return plan_network(str(path), DEFAULT, images=2, log=lambda *args: None)


def test_resnet18_plan_places_every_node(resnet_plan):
    rows = {row["name"]: row for row in resnet_plan["nodes"]}
    assert len(rows) == 32 and resnet_plan["macs"] == sum(row["macs"] for row in rows.values())
    assert rows["conv1"]["where"] == "array" and rows["conv1"]["cycles"] > 0
    assert rows["layer1.0.add"]["where"] == "array" and rows["layer1.0.add"]["utilization"] is None  # no MACs
    assert rows["maxpool"]["reason"].startswith("3x3 stride-2 max pool")
    assert [row["name"] for row in rows.values() if row["where"] == "array" and row["op"] == "linear"] == ["fc"]
    engine = [row for row in rows.values() if row["where"] == "array"]
    assert resnet_plan["engine_cycles"] == sum(row["cycles"] for row in engine)
    for row in engine:  # utilization is the node's MACs over its cycles on the array
        assert row["utilization"] == (round(row["macs"] / (row["cycles"] * DEFAULT.macs), 4) if row["macs"] else None)
        assert row["utilization"] is None or row["utilization"] <= 1
        assert row["bound"] in ("compute", "memory")
        outputs = 1
        for size in row["output_shape"]:
            outputs *= size
        assert row["bytes"] >= outputs  # it writes its 8-bit outputs at least
    assert resnet_plan["engine_bytes"] == sum(row["bytes"] for row in engine)
    assert resnet_plan["logit_relative_error"] < 0.5


def test_a_batch_plan_counts_per_image(resnet_plan, tmp_path):
    """With batches of 4, every array node's cycles and bytes are per image; the fc's weights serve 4 images, so
    it takes fewer cycles per image than alone, and no node takes more than it did alone (MODEL)."""
    path = tmp_path / "resnet18.onnx"
    reference_network("resnet18", path, size=32, width=8, classes=10)
    plan = plan_network(str(path), DEFAULT, images=2, batch=4, log=lambda *args: None)
    assert plan["batch"] == 4 and resnet_plan["batch"] == 1
    single = {row["name"]: row for row in resnet_plan["nodes"]}
    rows = {row["name"]: row for row in plan["nodes"]}
    assert [name for name, row in rows.items() if row["where"] == "array"] == [
        name for name, row in single.items() if row["where"] == "array"]
    assert rows["fc"]["cycles"] < single["fc"]["cycles"] / 2
    assert all(rows[name]["cycles"] <= single[name]["cycles"] for name in rows if rows[name]["cycles"])
    assert plan["engine_cycles"] < resnet_plan["engine_cycles"]


@pytest.mark.slow
def test_full_width_resnet18_exceeds_the_default_reduction():
    plan = plan_network("resnet18", DEFAULT, size=32, images=1, log=lambda *args: None)
    rows = {row["name"]: row for row in plan["nodes"]}
    # layer4's 3x3 convs reduce over 4,608 inputs: more than the default config's max_reduction
    assert rows["layer4.1.conv2"]["reason"] == "a reduction of 4608 exceeds max_reduction 4096"
    assert rows["layer3.0.conv1"]["where"] == "array"


def test_cli_prints_the_table_and_json(capsys, tmp_path):
    path = tmp_path / "mobilenetv2.onnx"
    reference_network("mobilenetv2", path, size=32, width=0.25, classes=10)
    assert cli(["plan", str(path), "--images", "1", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in plan["nodes"]}
    assert rows["features.2.depthwise"]["op"] == "conv2d (groups 48)"
    depthwise = rows["features.2.depthwise"]
    assert depthwise["where"] == "array" and 0.05 < depthwise["utilization"] <= 1 / 8  # one column in 8 per chunk
    assert plan["notes"] == [] and plan["config"] == "default"
    assert cli(["plan", str(path), "--images", "1"]) == 0
    table = capsys.readouterr().out
    assert "| features.2.depthwise | conv2d (groups 48) | 48x8x8 |" in table and "top-1 agreement" in table


def _unsupported(path):
    node = helper.make_node("Sigmoid", ["x"], ["y"], name="gate")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize(("arguments", "message"), [
    (["resnet7"], "MODEL must be an .onnx file or one of resnet18, resnet34, resnet50, mobilenetv2, got 'resnet7'"),
    (["resnet18", "--size", "16"], "--size must be in 32..1024 (five stride-2 stages), got 16"),
    (["resnet18", "--size", "100000"], "--size must be in 32..1024 (five stride-2 stages), got 100000"),
    (["resnet18", "--size", "32", "--images", "100000"], "--images must be in 1..64, got 100000"),
    (["missing.onnx"], "missing.onnx: no such file"),
    (["resnet18", "--size", "32", "--images", "0"], "--images must be in 1..64, got 0"),
    (["resnet18", "--config", "nope"], "nope"),
    (["resnet18", "--size", "32", "--batch", "0"], "--batch must be in 1..256, got 0"),
])
def test_bad_input_is_one_line_and_exit_code_2(capsys, arguments, message):
    assert cli(["plan", *arguments]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: ") and message in error


def test_an_unsupported_operator_names_the_node(capsys, tmp_path):
    path = _unsupported(tmp_path / "gate.onnx")
    assert cli(["plan", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "node 'gate' (Sigmoid): operator Sigmoid is not supported" in error
    assert cli(["plan", str(path), "--size", "64"]) == 2
    assert "--size applies to the reference networks only" in capsys.readouterr().err


def test_calibration_images_from_a_file(tmp_path, capsys):
    """--calibration FILE.npz calibrates on the file's images and tests on its last --images ones; a file of the
    wrong shape is one line."""
    import numpy as np

    path = tmp_path / "resnet.onnx"
    reference_network("resnet18", path, size=32, width=8, classes=10)
    images = np.random.default_rng(5).uniform(0, 1, (6, 3, 32, 32))
    np.savez(tmp_path / "images.npz", x=images)
    plan = plan_network(str(path), DEFAULT, calibration=str(tmp_path / "images.npz"), images=2, log=lambda *a: None)
    assert plan["images"] == f"6 images from {tmp_path / 'images.npz'} to calibrate, the last 2 to test"
    np.savez(tmp_path / "small.npz", x=images[:, :, :16, :16])
    assert cli(["plan", str(path), "--calibration", str(tmp_path / "small.npz")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "images of shape 3x16x16, the model takes 3x32x32" in error
