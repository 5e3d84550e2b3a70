"""esb_hw/infer.py: the digits CNN through the golden model and, 10 images, through the whole AXI system's RTL via
the host driver, every logit bit-exact; the report's checks fail on a wrong answer; bad input exits 2."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from esb_hw import infer
from esb_hw.data import shipped_config
from esb_hw.sim.pytest_helpers import require_simulator

DEFAULT = shipped_config("default")
ROOT = Path(__file__).resolve().parents[1]


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "esb_hw.infer", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_golden_only_reports_placement_accuracy_and_model_cycles():
    result = cli("--golden-only")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("runs on the array") == 3
    assert "accuracy on 359 held-out digits images: float 98.9%, golden" in out
    assert "(compiler MODEL)" in out and "images/s at 200 MHz" in out


def test_the_second_model_on_its_own_data():
    result = cli("--golden-only", "--model", "mnist5k", "--images", "200", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dataset"] == "mnist5k" and report["images"] == 200
    assert [layer["where"] for layer in report["layers"]] == ["array"] * 4
    assert report["accuracy"]["golden"] >= 0.95
    assert all(0 < layer["utilization"] <= 1 for layer in report["layers"])  # pooled odd sizes counted right
    result = cli("--golden-only", "--model", "mnist5k", "--data", "digits")
    assert result.returncode == 2 and "the model's input is 1x28x28 (CxHxW), the digits images are 1x8x8" in \
        result.stderr


def test_json_and_host_fallback():
    result = cli("--golden-only", "--ends-8bit", "--images", "40", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [layer["where"] for layer in report["layers"]] == ["host", "array", "host"]
    assert report["layers"][0]["reason"] == "weights uniform 8b, the array has ESB(4,1)"
    assert report["images"] == 40 and report["cycles_source"] == "model" and 0.9 <= report["accuracy"]["golden"] <= 1
    assert "runs on the host (weights uniform 8b" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--images", "0"], "--images must be in 1..359"),
    (["--images", "360"], "--images must be in 1..359"),
    (["--model", "model.pt"], "--model takes 'digits', 'mnist5k', 'resnet_mnist', a .onnx or a .npz file"),
    (["--model", "missing.onnx"], "missing.onnx: no such file"),
    (["--config", "missing.toml"], "config file not found"),
    (["--data", "cifar"], "--data takes 'digits', 'mnist5k', an .npz file or a folder of PNGs, got 'cifar'"),
    (["--save-outputs", "out.txt"], "--save-outputs must name a .npz file, got 'out.txt'"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    result = cli("--golden-only", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_a_model_with_the_wrong_classes_or_shape(tmp_path):
    from esb_hw.frontend.model import FloatLayer, FloatModel, save_npz

    rng = np.random.default_rng(0)
    save_npz(FloatModel([FloatLayer("fc", "linear", rng.normal(size=(7, 64)), None)], (1, 8, 8)), tmp_path / "a.npz")
    save_npz(FloatModel([FloatLayer("fc", "linear", rng.normal(size=(10, 16)), None)], (1, 4, 4)), tmp_path / "b.npz")
    for name, message in (("a.npz", "the model has 7 outputs, the digits data has 10 classes"),
                          ("b.npz", "the model's input is 1x4x4 (CxHxW), the digits images are 1x8x8")):
        result = cli("--golden-only", "--model", str(tmp_path / name))
        assert result.returncode == 2 and message in result.stderr, result.stderr


def _digits_files(tmp_path, count=30, labels=True):
    from esb_hw.frontend.datasets import load_split

    split = load_split()
    arrays = {"x": split.test_images[:count].astype(np.float32)}
    if labels:
        arrays["y"] = split.test_labels[:count]
    np.savez(tmp_path / "mine.npz", **arrays)
    np.savez(tmp_path / "calibration.npz", x=split.train_images)
    return tmp_path / "mine.npz", tmp_path / "calibration.npz"


def test_your_own_images_give_what_the_bundled_ones_give(tmp_path):
    """The same images and calibration images from the user's files: the same per-image results."""
    mine, calibration = _digits_files(tmp_path)
    ours = cli("--golden-only", "--data", str(mine), "--calibration", str(calibration), "--json")
    bundled = cli("--golden-only", "--images", "30", "--json")
    assert ours.returncode == 0 and bundled.returncode == 0, ours.stderr + bundled.stderr
    ours, bundled = json.loads(ours.stdout), json.loads(bundled.stdout)
    assert ours["dataset"] == str(mine) and ours["images"] == 30 and bundled["dataset"] == "digits"
    assert [r["image"] for r in ours["predictions"]] == [str(i) for i in range(30)]
    assert [r["image"] for r in bundled["predictions"]][:2] == ["digits:0", "digits:1"]
    for key in ("label", "float", "golden", "golden_logits"):
        assert [r[key] for r in ours["predictions"]] == [r[key] for r in bundled["predictions"]], key
    assert ours["accuracy"] == bundled["accuracy"]
    # the records are the model's own answers: the golden class is the argmax of the golden logits
    assert all(r["golden"] == int(np.argmax(r["golden_logits"])) for r in ours["predictions"])


def test_unlabelled_images_calibrated_on_themselves(tmp_path):
    mine, _ = _digits_files(tmp_path, count=12, labels=False)
    result = cli("--golden-only", "--data", str(mine))
    assert result.returncode == 0, result.stderr
    assert "note: calibrating the activations on the 12 images of" in result.stdout
    assert f"12 unlabelled images of {mine}: no accuracy" in result.stdout
    assert result.stdout.count(", golden ") == 12 and "label" not in result.stdout.split("no accuracy")[1]


def test_save_outputs_writes_every_logit_and_never_overwrites_silently(tmp_path):
    from esb_hw.frontend.accuracy import load_shipped_model
    from esb_hw.frontend.datasets import load_split
    from esb_hw.frontend.quantize import QuantRecipe, quantize_model

    out = tmp_path / "out.npz"
    result = cli("--golden-only", "--images", "7", "--save-outputs", str(out))
    assert result.returncode == 0 and f"outputs written to {out}" in result.stdout, result.stderr
    saved = dict(np.load(out))
    split = load_split()
    integer = quantize_model(load_shipped_model("digits"), QuantRecipe.for_config(DEFAULT), split.train_images)
    assert np.array_equal(saved["golden_logits"], integer.logit_levels(split.test_images[:7]))
    assert np.array_equal(saved["labels"], split.test_labels[:7]) and saved["float_logits"].shape == (7, 10)
    real = (saved["golden_logits"] - saved["logit_zero_point"]) * saved["logit_scale"]
    assert np.allclose(real, integer.logits(split.test_images[:7]))
    assert "rtl_logits" not in saved and saved["names"].tolist()[:2] == ["digits:0", "digits:1"]
    before = out.read_bytes()
    again = cli("--golden-only", "--images", "3", "--save-outputs", str(out))
    assert again.returncode == 2 and again.stderr.strip() == (f"error: --save-outputs {out}: the file exists; pass "
                                                              "--force to replace it")
    assert out.read_bytes() == before
    forced = cli("--golden-only", "--images", "3", "--save-outputs", str(out), "--force")
    assert forced.returncode == 0 and len(np.load(out)["golden_logits"]) == 3


@pytest.mark.parametrize("arrays, extra, message", [
    ({"x": np.zeros((2, 1, 8, 8)), "y": np.array([0, 10])}, [], "label 10 is outside the model's 10 classes (0..9)"),
    ({"x": np.zeros((2, 1, 8, 8))}, ["--calibration", "digits"], None),
    ({"x": np.zeros((2, 1, 8, 8))}, ["--calibration", "mnist5k"],
     "--calibration: its images are 1x28x28 (CxHxW), the images to run are 1x8x8"),
    ({"x": np.zeros((2, 3, 8, 8))}, [], "the model's input is 1x8x8 (CxHxW), the "),
    ({"x": np.zeros((2, 1, 8, 8))}, ["--images", "3"], "--images must be in 1..2 (the "),
])
def test_your_own_data_refused_with_one_line(tmp_path, arrays, extra, message):
    np.savez(tmp_path / "d.npz", **arrays)
    result = cli("--golden-only", "--data", str(tmp_path / "d.npz"), *extra)
    if message is None:
        assert result.returncode == 0, result.stderr
        return
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], lines


def test_many_unlabelled_images_list_the_first_twenty(tmp_path):
    mine, _ = _digits_files(tmp_path, count=30, labels=False)
    result = cli("--golden-only", "--data", str(mine), "--calibration", "digits")
    assert result.returncode == 0, result.stderr
    assert "per image (class by the float model, the golden model; the first 20 of 30, every image in --json" in \
        result.stdout
    assert result.stdout.count(", golden ") == 20 and "\n  19 " in result.stdout and "\n  20 " not in result.stdout


def test_a_folder_named_like_a_dataset_is_ambiguous(tmp_path):
    (tmp_path / "digits").mkdir()
    result = subprocess.run([sys.executable, "-m", "esb_hw.infer", "--golden-only", "--data", "digits"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 2 and result.stderr.strip() == ("error: --data digits: both a bundled dataset and a "
                                                               "file or folder here; write ./digits for yours, or "
                                                               "rename it")


def test_save_outputs_is_byte_identical_and_refuses_a_missing_folder(tmp_path):
    for name in ("one.npz", "two.npz"):
        assert cli("--golden-only", "--images", "5", "--save-outputs", str(tmp_path / name)).returncode == 0
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    assert not list(tmp_path.glob(".*partial"))
    missing = cli("--golden-only", "--save-outputs", str(tmp_path / "nowhere" / "o.npz"))
    assert missing.returncode == 2 and f"no folder {tmp_path / 'nowhere'}" in missing.stderr
    folder = cli("--golden-only", "--save-outputs", str(tmp_path))
    assert folder.returncode == 2 and "must name a .npz file" in folder.stderr


def test_five_images_through_the_system_rtl_are_bit_exact():
    """The normal suite's end-to-end run: 5 held-out digits, Verilator, the AXI system and the driver (the slow
    suite's runs take 20 images of the residual network and the digits batches)."""
    require_simulator("verilator")
    seen = []
    report = infer.run_inference("digits", DEFAULT, images=5, simulator="verilator", log=lambda *a: None,
                                 progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (5, 5) and all(total == 5 for _, total in seen)  # progress counts the runs
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert report.rtl_logits.shape == (5, 10)
    assert np.array_equal(report.rtl_logits, report.golden_logits)
    assert report.exact_images == 5 and report.same_classes == 5
    assert report.cycles_source == "rtl" and all(cycles > 0 for cycles in report.layer_cycles)
    # the checks see a wrong logit and a wrong class
    wrong = dataclasses.replace(report, rtl_logits=report.rtl_logits.copy())
    wrong.rtl_logits[3, 2] += 1
    assert wrong.exact_images == 4 and wrong.same_classes == 5
    wrong.rtl_logits[4] = 0
    wrong.rtl_logits[4, (report.golden_predictions[4] + 1) % 10] = 255
    assert wrong.exact_images == 3 and wrong.same_classes == 4


def test_a_batch_through_the_system_rtl_is_bit_exact_and_faster_per_image():
    """Batches of 4 on 6 images: two runs, the second filled with two blank images whose outputs are dropped; every
    logit bit-exact; the flatten's weights serve the batch, so the fc layer's cycles per image fall, as the cycle
    model says (within 5 %)."""
    require_simulator("verilator")
    seen = []
    report = infer.run_inference("digits", DEFAULT, images=6, simulator="verilator", batch=4, log=lambda *a: None,
                                 progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (6, 6)
    assert report.rtl_logits.shape == (6, 10) and np.array_equal(report.rtl_logits, report.golden_logits)
    model = infer.run_inference("digits", DEFAULT, images=6, simulator=None, batch=4, log=lambda *a: None)
    single = infer.run_inference("digits", DEFAULT, images=6, simulator=None, log=lambda *a: None)
    assert abs(report.cycles_per_image - model.cycles_per_image) <= 0.05 * model.cycles_per_image
    assert report.layer_cycles[2] * 3 < single.layer_cycles[2]
    assert report.as_dict()["batch"] == 4


def test_cli_batch_golden_only_and_its_bad_values():
    result = cli("--golden-only", "--batch", "8", "--images", "40")
    assert result.returncode == 0, result.stderr
    assert "batches of 8 images per engine run" in result.stdout
    assert "cycles per image (runs of 8 images, over 8)" in result.stdout
    for bad in ("0", "257"):
        result = cli("--golden-only", "--batch", bad)
        assert result.returncode == 2 and result.stderr == f"error: --batch must be in 1..256, got {bad}\n"


def test_cli_exits_1_on_a_mismatch(monkeypatch, capsys):
    split_logits = np.arange(20).reshape(2, 10)
    report = infer.InferenceReport("digits", DEFAULT, None, [], 2, np.array([9, 9]), np.array([9, 9]), split_logits,
                                   rtl_logits=split_logits + np.array([[0] * 10, [1] + [0] * 9]), simulator="verilator")
    monkeypatch.setattr(infer, "run_inference", lambda *args, **kwargs: report)
    monkeypatch.setattr(infer, "print_report", lambda report: None)
    assert infer.main(["--images", "2"]) == 1
    assert "1 of 2 images differ from the golden model" in capsys.readouterr().err


@pytest.mark.slow
def test_esb_activations_and_host_layers_on_icarus():
    """ESB(6,3) activations on the array, the 8-bit first and last layers on the host, Icarus."""
    require_simulator("icarus")
    config = shipped_config("esb5_act_esb")
    report = infer.run_inference("digits", config, images=3, simulator="icarus", ends_8bit=True,
                                 log=lambda *a: None)
    assert [row["where"] for row in report.layer_rows()] == ["host", "array", "host"]
    assert report.exact_images == 3


def test_a_torch_exported_model_with_its_own_data_through_the_rtl():
    """What torch.onnx.export writes (a Reshape flatten, a final Softmax; tests/fixtures/torch_digits/, made by
    examples/torch_digits.py) with the user's .npz images and calibration: 5 images through the system's RTL,
    every logit bit-exact, per-image predictions, the Softmax dropped with a note."""
    require_simulator("verilator")
    fixture = ROOT / "tests" / "fixtures" / "torch_digits"
    result = cli("--model", str(fixture / "model.onnx"), "--data", str(fixture / "test.npz"), "--calibration",
                 str(fixture / "calibration.npz"), "--images", "5", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["bit_exact_images"] == 5 and report["same_class_images"] == 5
    assert [layer["where"] for layer in report["layers"]] == ["array"] * 3
    assert len(report["predictions"]) == 5 and all(r["rtl_logits"] == r["golden_logits"] for r in report["predictions"])
    assert [r["label"] for r in report["predictions"]] == [1, 1, 9, 4, 6] and report["accuracy"]["rtl"] >= 0.8
    assert len(report["notes"]) == 1 and "(Softmax): dropped, a final Softmax does not change" in report["notes"][0]
    assert "note: " in result.stderr


def test_a_residual_graph_golden_only():
    """The shipped residual network (esb_hw/data/resnet_mnist, examples/train_resnet_mnist.py): its convolutions,
    adds, global average pool and classifier on the array, its flatten on the host, with the reason."""
    result = cli("--golden-only", "--model", "resnet_mnist", "--images", "100", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dataset"] == "mnist5k" and report["images"] == 100
    where = {layer["name"]: (layer["kind"], layer["where"]) for layer in report["layers"]}
    assert sorted(set(where.values())) == [("add", "array"), ("conv2d", "array"), ("flatten", "host"),
                                           ("global_avg_pool", "array"), ("linear", "array")]
    assert sum(kind == "conv2d" for kind, _ in where.values()) == 9
    assert report["accuracy"]["golden"] >= 0.9 and report["cycles_source"] == "model"
    assert all(0 < layer["utilization"] <= 1 for layer in report["layers"]
               if layer["where"] == "array" and layer["kind"] not in ("add", "global_avg_pool"))
    assert all(layer["utilization"] is None and layer["cycles"] > 0 for layer in report["layers"]
               if layer["kind"] in ("add", "global_avg_pool"))  # no MACs


def _tiny_residual(path):
    """conv 1->8 + ReLU, conv 8->8, + the first conv's output, ReLU, global average pool, linear 8->10: digits-sized."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    weights = {"w1": rng.normal(0, 0.5, (8, 1, 3, 3)), "w2": rng.normal(0, 0.3, (8, 8, 3, 3)),
               "fc": rng.normal(0, 0.5, (10, 8)), "fb": np.zeros(10)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1", pads=[1] * 4),
             helper.make_node("Relu", ["a"], ["r"], name="relu1"),
             helper.make_node("Conv", ["r", "w2"], ["b"], name="conv2", pads=[1] * 4),
             helper.make_node("Add", ["b", "r"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["t"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["t"], ["g"], name="pool"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc", "fb"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              [numpy_helper.from_array(value.astype(np.float32), name)
                               for name, value in weights.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_a_graph_through_the_system_rtl_node_by_node(tmp_path):
    """A residual graph on the RTL: each array node its own simulation (the add's reads both inputs), the host's
    8x8 global pool and flatten on the hardware's outputs, every logit bit-exact (the check itself is fed a wrong
    answer in the next test)."""
    require_simulator("verilator")
    path = tmp_path / "tiny.onnx"
    _tiny_residual(path)
    report = infer.run_inference(str(path), DEFAULT, images=2, simulator="verilator", log=lambda *a: None)
    assert isinstance(report, infer.GraphInferenceReport)
    assert [row["where"] for row in report.layer_rows()] == ["array", "array", "array", "host", "host", "array"]
    assert report.segments[3].reason == "kernel 8x8 is not supported (1x1 to 7x7)"  # the 8x8 map's global pool
    assert report.exact_images == 2 and report.cycles_source == "rtl"
    assert [cycles is None for cycles in report.layer_cycles] == [False, False, False, True, True, False]
    assert np.array_equal(report.rtl_logits, report.golden_logits)


@pytest.mark.slow
def test_a_graph_in_batches_through_the_system_rtl(tmp_path):
    """The residual graph with batches of 2 on 3 images: each array node runs two batches (the second filled with a
    blank image), the host's nodes run on the hardware's outputs, every logit bit-exact."""
    require_simulator("verilator")
    path = tmp_path / "tiny.onnx"
    _tiny_residual(path)
    report = infer.run_inference(str(path), DEFAULT, images=3, simulator="verilator", batch=2, log=lambda *a: None)
    assert report.batch == 2 and report.exact_images == 3
    assert np.array_equal(report.rtl_logits, report.golden_logits)


@pytest.mark.slow
def test_the_residual_network_on_twenty_images_through_the_rtl():
    """Issue 20's demonstration: resnet_mnist, 20 held-out images, the whole system's RTL, 20/20 bit-exact."""
    require_simulator("verilator")
    result = cli("--model", "resnet_mnist", "--images", "20", "--json", timeout=3600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["bit_exact_images"] == 20 and report["same_class_images"] == 20
    assert report["accuracy"]["rtl"] == report["accuracy"]["golden"] >= 0.85


@pytest.mark.slow
def test_real_shape_blocks_through_the_rtl():
    """Issue 20's RTL evidence at real shapes (bench/real_shapes.py): a ResNet-18 basic block at 64x56x56 and a
    MobileNetV2 inverted residual at 24x56x56, one image each, bit-exact, each array node's cycles within 5 % of the
    cycle model."""
    require_simulator("verilator")
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "real_shapes.py"), "--json"], capture_output=True,
                            text=True, timeout=3600)
    assert result.returncode == 0, result.stderr
    runs = {run["block"]: run for run in json.loads(result.stdout)["runs"]}
    assert set(runs) == {"basic", "inverted"} and all(run["bit_exact"] for run in runs.values())
    engine = {(block, row["name"]): row for block, run in runs.items() for row in run["nodes"]
              if row["where"] == "engine"}
    assert set(engine) == {("basic", "conv1"), ("basic", "conv2"), ("basic", "add"), ("inverted", "expand"),
                           ("inverted", "depthwise"), ("inverted", "project"), ("inverted", "add")}
    assert all(abs(row["model_error"]) <= 0.05 for row in engine.values()), engine


def test_run_graph_rtl_stops_at_a_node_whose_hardware_output_is_wrong(tmp_path, monkeypatch):
    """The graph runner's check, fed the programs' NumPy-twin outputs (what a correct engine writes) and then the
    same with one code wrong in the second array node: the first passes, the second names the node."""
    from esb_hw.compiler.program import read_output, run_in_numpy, to_bundle
    from esb_hw.errors import CheckFailed
    from esb_hw.frontend.graph_quant import place_graph, quantize_graph
    from esb_hw.frontend.onnx_graph import load_onnx_graph
    from esb_hw.frontend.quantize import QuantRecipe

    path = tmp_path / "tiny.onnx"
    _tiny_residual(path)
    graph = load_onnx_graph(path)
    images = np.random.default_rng(6).uniform(0, 1, (5, 1, 8, 8))
    integer = quantize_graph(graph, QuantRecipe.for_config(DEFAULT), images[:3])
    placements = place_graph(integer, DEFAULT)
    calls = []

    def twin(config, program, codes, simulator, progress, wrong_call=None):
        outputs = []
        for image in codes:
            memory = bytearray(to_bundle(program, "x", image.reshape(program.input_shape)).image)
            run_in_numpy(program, memory)
            address, size = program.output_region()
            outputs.append(read_output(program, bytes(memory[address:address + size])))
        calls.append(program)
        outputs = np.stack(outputs)
        if len(calls) == wrong_call:
            outputs[1].flat[3] ^= 1
        return outputs, [{"cycles": 10, "layer_cycles": [7]}] * len(codes)

    monkeypatch.setattr(infer, "run_program_rtl", twin)
    measured = infer.run_graph_rtl(DEFAULT, integer, placements, integer.input_codes(images[3:]), "verilator",
                                   log=lambda *a: None)
    assert np.array_equal(measured["output"], integer.run(images[3:])[integer.output.name])
    assert measured["node_cycles"] == [7.0, 7.0, 7.0, None, None, 7.0] and measured["cycles"] == 40.0
    calls.clear()
    monkeypatch.setattr(infer, "run_program_rtl", lambda *args: twin(*args, wrong_call=2))
    with pytest.raises(CheckFailed, match="node conv2: the RTL's output codes differ from the golden model's"):
        infer.run_graph_rtl(DEFAULT, integer, placements, integer.input_codes(images[3:]), "verilator",
                            log=lambda *a: None)
