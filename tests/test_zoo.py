"""Network shapes and the network cycle model (esb_hw/compiler/zoo.py)."""

import pytest

from esb_hw.compiler.timeline import MEMORY_MODEL
from esb_hw.compiler.zoo import LayerShape, model_network, network_shapes
from esb_hw.data import shipped_config
from esb_hw.errors import InputError


def test_the_multiply_accumulates_match_torchvisions_published_figures():
    """torchvision's model table gives 1.81 and 4.09 GFLOPS (multiply-accumulates, conv and linear layers) for
    ResNet-18 and ResNet-50 at 224x224: counted here from the shapes, not copied."""
    assert sum(shape.macs for shape in network_shapes("resnet18")) / 1e9 == pytest.approx(1.81, abs=0.005)
    assert sum(shape.macs for shape in network_shapes("resnet50")) / 1e9 == pytest.approx(4.09, abs=0.005)
    resnet50 = network_shapes("resnet50")
    assert len(resnet50) == 54 and sum(shape.kind == "linear" for shape in resnet50) == 1
    assert [shape.output_size for shape in network_shapes("resnet18")[:2]] == [112, 56]


def test_an_unknown_network_is_refused():
    with pytest.raises(InputError, match="unknown network 'vgg'; known: resnet18, resnet50"):
        network_shapes("vgg")


def test_the_network_model_reports_every_layer():
    config = shipped_config("default")
    shapes = [LayerShape("a", "conv2d", 8, 16, 3, 1, 1, 10), LayerShape("b", "conv2d", 16, 8, 1, 2, 0, 10),
              LayerShape("fc", "linear", 8, 10, 1, 1, 0, 1)]
    lines = []
    layers = model_network(config, shapes, MEMORY_MODEL, progress=lines.append)
    assert [layer["name"] for layer in layers] == ["a", "b", "fc"] and len(lines) == 3
    for layer, shape in zip(layers, shapes, strict=True):
        assert layer["macs"] == shape.macs
        assert 0 < layer["utilization"] <= 1
        assert layer["utilization"] == round(shape.macs / (layer["cycles"] * config.macs), 4)
        assert layer["bound"] in ("compute", "memory")
    starved = model_network(config, shapes, MEMORY_MODEL.with_bandwidth(0.25))
    assert all(layer["bound"] == "memory" for layer in starved)
    assert all(slow["cycles"] > fast["cycles"] for slow, fast in zip(starved, layers, strict=True))


def test_a_layer_the_config_cannot_run_is_named():
    config = shipped_config("default")
    with pytest.raises(InputError, match="^big: "):
        model_network(config, [LayerShape("big", "conv2d", 8, 8, 9, 1, 0, 12)], MEMORY_MODEL)


def test_the_chip_bench_refuses_a_bad_timing_file_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "bench" / "chip.py"
    bad = tmp_path / "timing.json"
    bad.write_text('{"configs": [{"config": "default"}]}')
    run = subprocess.run([sys.executable, str(bench), "--timing", str(bad), "--networks", "resnet18"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "not a bench/timing.py --json output" in run.stderr
