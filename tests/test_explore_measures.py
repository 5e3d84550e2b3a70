"""The four measures of a point (esb_hw/explore/measures.py), each checked against the tool it wraps, called
directly with the formats the point names."""

import dataclasses

import numpy as np
import pytest

from esb_hw.config import ConfigError
from esb_hw.data import shipped_config
from esb_hw.explore.measures import evaluate, point_config, task_for
from esb_hw.explore.sweep import load_sweep


def sweep_of(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    return load_sweep(path)


def test_a_point_changes_the_base_config_by_its_settings_only(tmp_path):
    sweep = sweep_of(tmp_path, 'config = "uniform4"\nnetwork = "digits"\nmeasures = ["throughput"]\n[axes]\n'
                               'format = [{weights = "pot:3", activations = "esb:4:2"}]\narray = ["16x4"]\n'
                               '"engine.entries" = [16]\nbatch = [3]\n')
    (point,) = sweep.points()
    config = point_config(sweep, point)
    base = shipped_config("uniform4")
    assert config == dataclasses.replace(base, name="s-0", weight_bits=3, weight_k=0, activation_bits=4,
                                         activation_k=2, rows=16, cols=4, entries=16)
    task = task_for(sweep, point, "throughput")
    assert task["recipe"] == {"batch": 3, "ends_8bit": False, "scale_method": "dda"}
    assert "name" not in task["config"] and task["network"] == "digits"


def test_an_invalid_point_is_a_config_error(tmp_path):
    sweep = sweep_of(tmp_path, 'network = "digits"\nmeasures = ["throughput"]\n[axes]\n"engine.requant_lanes" = [3]\n')
    with pytest.raises(ConfigError, match=r"engine\.requant_lanes must divide rows \(8\)"):
        task_for(sweep, sweep.points()[0], "throughput")


def test_accuracy_is_the_golden_model_s_with_the_point_s_formats(tmp_path):
    from esb_hw.frontend.accuracy import load_shipped_model
    from esb_hw.frontend.datasets import load_split
    from esb_hw.frontend.quantize import QuantRecipe, quantize_model
    from esb_hw.quant import ESBFormat

    sweep = sweep_of(tmp_path, 'network = "digits"\nmeasures = ["accuracy"]\n[accuracy]\nqat = true\n[axes]\n'
                               'format = [{weights = "uniform:4", activations = 4, ends_8bit = true}, '
                               '{weights = "esb:3:0", activations = 3, scale_method = "max"}]\n')
    tuned, plain = (evaluate(task_for(sweep, point, "accuracy")) for point in sweep.points())
    split = load_split("digits")
    model = load_shipped_model("digits")
    for result, recipe in ((tuned, QuantRecipe("esb:4:2", ESBFormat(4, 4, signed=False), "dda", True)),
                           (plain, QuantRecipe("esb:3:0", ESBFormat(3, 3, signed=False), "max", False))):
        integer = quantize_model(model, recipe, split.train_images)
        assert result["accuracy"] == float(np.mean(integer.predict(split.test_images) == split.test_labels))
        assert result["test_images"] == len(split.test_labels) == 359
    assert (tuned["weights"], tuned["activations"]) == ("ESB(4,2)", "ESB(4,4,unsigned)")
    # uniform:4 with 8-bit ends is a shipped QAT recipe (digits_qat_uniform4_a4.npz); ESB(3,0) x 3 with max is not
    from esb_hw.data import example_folder
    from esb_hw.frontend.model import load_npz

    qat_model = load_npz(example_folder("digits") / "digits_qat_uniform4_a4.npz")
    integer = quantize_model(qat_model, QuantRecipe("uniform:4", ESBFormat(4, 4, signed=False), "dda", True),
                             split.train_images)
    assert tuned["qat_accuracy"] == float(np.mean(integer.predict(split.test_images) == split.test_labels))
    assert plain["qat_accuracy"] is None and plain["qat_note"] == "no fine-tuned weights ship for this recipe"


def test_throughput_is_the_plan_s(tmp_path):
    from esb_hw.plan import plan_network

    sweep = sweep_of(tmp_path, 'network = "digits"\nmeasures = ["throughput"]\n[axes]\narray = ["4x4"]\n'
                               'batch = [2]\n')
    (point,) = sweep.points()
    result = evaluate(task_for(sweep, point, "throughput"))
    plan = plan_network(str(sweep.network_file()), point_config(sweep, point), batch=2, log=lambda line: None)
    assert result["images_per_second"] == plan["engine_images_per_second"] > 0
    assert result["cycles_per_image"] == plan["engine_cycles"]
    assert result["utilization"] == plan["engine_utilization"]
    assert result["host_nodes"] == sum(node["where"] == "host" for node in plan["nodes"])
    assert result["batch"] == 2 and result["clock_mhz"] == 200.0


def test_resources_from_the_model(tmp_path):
    from esb_hw.estimate.model import estimate_array, estimate_system

    sweep = sweep_of(tmp_path, 'network = "digits"\nmeasures = ["resources"]\n[resources]\ndesign = "model"\n'
                               '[axes]\narray = ["2x2"]\n')
    (point,) = sweep.points()
    config = point_config(sweep, point)
    model = evaluate(task_for(sweep, point, "resources"))
    assert model["lut"] == model["system_lut_model"] == round(estimate_system(config).lut)
    assert model["lut_per_mac"] == round(estimate_array(config).lut / 4, 2)
    assert model["mapping"] == "select-and-shift" and model["competent"]


@pytest.mark.parametrize("design", ["array", "engine", "system"])
def test_resources_and_timing_synthesize_the_named_design(tmp_path, monkeypatch, design):
    from esb_hw.estimate import measure, synth
    from esb_hw.estimate.synth import YosysResult

    built, calls = [], []

    class Design:  # stands for the component: nothing is elaborated, nothing left unused
        pass

    def component(name, config, *, primitives):
        built.append((name, config.rows, config.cols, primitives))
        return Design()

    def fake(component, name, **options):
        calls.append((type(component), name, options))
        return YosysResult(lut=1000, ff=900, carry4=0, carry8=3, lutram=0, bram36=1.5, dsp=0,
                           timing={"fmax_mhz_model": 301.0, "fmax_mhz_pessimistic": 250.5, "worst_path": {"x": 1},
                                   "model": "m"}, flow="f", seconds=1.0)

    monkeypatch.setattr(measure, "design_component", component)
    monkeypatch.setattr(synth, "synthesize", fake)
    sweep = sweep_of(tmp_path, f'network = "digits"\nmeasures = ["resources", "timing"]\n[resources]\n'
                               f'design = "{design}"\n[timing]\ndesign = "{design}"\n[axes]\narray = ["2x2"]\n')
    (point,) = sweep.points()
    resources = evaluate(task_for(sweep, point, "resources"))
    timing = evaluate(task_for(sweep, point, "timing"))
    assert built == [(design, 2, 2, True)] * 2
    assert calls == [(Design, design, {"dff": True, "timing": False}), (Design, design, {"dff": True, "timing": True})]
    assert (resources["lut"], resources["ff"], resources["bram36"], resources["lut_per_mac"]) == (1000, 900, 1.5, 250)
    assert resources["gops_per_klut"] == round(2 * 4 * 200 / 1000, 2)  # 2 ops per MAC at 200 MHz, per kLUT
    assert timing == {"design": design, "fmax_mhz_model": 301.0, "fmax_mhz_pessimistic": 250.5,
                      "worst_path": {"x": 1}, "delay_model": "m"}


@pytest.mark.slow
def test_resources_from_yosys_are_a_direct_synthesis(tmp_path):
    from esb_hw.estimate.synth import synthesize
    from esb_hw.hw.core.array import PEArray

    sweep = sweep_of(tmp_path, 'network = "digits"\nmeasures = ["resources"]\n[axes]\narray = ["2x2"]\n')
    (point,) = sweep.points()
    measured = evaluate(task_for(sweep, point, "resources"))
    direct = synthesize(PEArray(point_config(sweep, point), primitives=True), "array", dff=True)
    assert (measured["lut"], measured["ff"], measured["dsp"]) == (direct.lut, direct.ff, 0)
    assert measured["lut_per_mac"] == round(direct.lut / 4, 2)


def test_every_module_a_measure_imports_is_in_its_sources():
    """The cache key hashes SOURCES[measure]: a module a measure imports but SOURCES misses could change a result
    without changing its key. Each measure runs (or, for yosys, builds its designs) in a fresh interpreter, and every
    esb_hw module it loaded must be covered."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from esb_hw.explore.measures import SOURCES

    script = """
import json, sys
from esb_hw.explore.measures import evaluate
task = json.loads(sys.argv[1])
if task["measure"] in ("resources", "timing"):
    from esb_hw.estimate import synth
    from esb_hw.estimate.measure import design_component
    from esb_hw.config import AcceleratorConfig
    config = AcceleratorConfig.from_dict({**task["config"], "name": "x"})
    for design in ("array", "engine", "system"):
        design_component(design, config, primitives=True)._MustUse__silence = True
    synth.synthesize = lambda *args, **kwargs: (_ for _ in ()).throw(SystemExit(0))
try:
    evaluate(task)
except SystemExit:
    pass
print(json.dumps(sorted(m.__file__ for name, m in sys.modules.items()
                        if name.startswith("esb_hw") and getattr(m, "__file__", None))))
"""
    config = {"clock_mhz": 200.0, "max_reduction": 4096, "weights": {"bits": 4, "k": 1},
              "activations": {"bits": 8, "k": 8}, "array": {"rows": 4, "cols": 4, "pe_variant": "esb"}}
    recipe = {"batch": 1, "ends_8bit": False, "scale_method": "dda"}
    tasks = [{"measure": "resources", "options": {"design": "array"}, "config": config},
             {"measure": "timing", "options": {"design": "array"}, "config": config},
             {"measure": "throughput", "options": {}, "config": config, "network": "resnet_mnist", "recipe": recipe},
             {"measure": "accuracy", "options": {"qat": True}, "network": "digits", "dataset": "digits",
              "config": {"weights": config["weights"], "activations": config["activations"]},
              "recipe": {"ends_8bit": False, "scale_method": "dda"}}]
    package = Path(__file__).resolve().parents[1] / "esb_hw"
    # the package's roots and the explore command itself: they decide no result
    free = {"__init__.py", "data/__init__.py", "explore/__init__.py", "explore/sweep.py", "explore/measures.py"}
    for task in tasks:
        loaded = json.loads(subprocess.run([sys.executable, "-c", script, json.dumps(task)], capture_output=True,
                                           text=True, check=True).stdout)
        parts = SOURCES[task["measure"]]
        for file in loaded:
            relative = Path(file).resolve().relative_to(package).as_posix()
            covered = relative in free or any(relative == part or (part.endswith("/") and relative.startswith(part))
                                              for part in parts)
            assert covered, (task["measure"], relative)
