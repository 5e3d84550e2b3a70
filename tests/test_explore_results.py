"""Pareto fronts, explore.json, the table and the plot (esb_hw/explore/results.py)."""

import itertools
import json
import random

import pytest

from esb_hw.explore.results import build_document, document_text, markdown, pareto_flags, plot_fronts
from esb_hw.explore.sweep import load_sweep, parse_constraint, parse_objective


def brute_force_front(values):
    """Independent reference: a point is on the front when no point weakly dominates it with a strict gain."""
    front = []
    for i, mine in enumerate(values):
        if mine is None:
            front.append(False)
            continue
        beaten = False
        for j, other in enumerate(values):
            if j == i or other is None:
                continue
            if all(other[d] >= mine[d] for d in range(len(mine))) and any(other[d] > mine[d] for d in range(len(mine))):
                beaten = True
        front.append(not beaten)
    return front


def test_pareto_flags_match_a_brute_force_reference_with_ties_and_gaps():
    rng = random.Random(7)
    for _ in range(300):
        count, dims = rng.randint(1, 9), rng.randint(1, 3)
        values = [None if rng.random() < 0.15 else tuple(rng.randint(0, 3) for _ in range(dims))
                  for _ in range(count)]
        assert pareto_flags(values) == brute_force_front(values), values


def test_two_objectives_take_the_sort_and_scan_and_agree_with_the_reference():
    rng = random.Random(11)
    for _ in range(2000):
        values = [None if rng.random() < 0.1 else (rng.randint(0, 4), rng.choice([0.5, 1.0, 1.5, 2.0]))
                  for _ in range(rng.randint(1, 15))]
        assert pareto_flags(values) == brute_force_front(values), values


def test_pareto_flags_on_known_answers():
    # (accuracy, -lut_per_mac): the dominated middle point is off; equal points are both on
    assert pareto_flags([(0.9, -10), (0.8, -12), (0.95, -20), (0.95, -20), None]) == [True, False, True, True, False]
    # a checker that called the dominated point "on the front" would fail here
    assert pareto_flags([(1, 1), (0, 0)]) == [True, False]


def sweep_for(tmp_path, measures='["resources", "throughput", "accuracy"]'):
    path = tmp_path / "s.toml"
    options = '[resources]\ndesign = "model"\n' if "resources" in measures else ""
    path.write_text(f'network = "digits"\nmeasures = {measures}\n{options}[axes]\narray = ["2x2", "4x4", "8x8"]\n',
                    encoding="utf-8")
    return load_sweep(path)


def record(index, choice, status="ok", **values):
    """A point of a sweep whose axes are a table (weights before activations, as a sweep file writes them) and
    an array."""
    measures = {"resources": {"status": "ok", "values": {k: v for k, v in values.items()
                                                         if k in ("lut_per_mac", "system_lut_model")}},
                "throughput": {"status": "ok", "values": {"images_per_second": values.get("images_per_second")}},
                "accuracy": {"status": status, **({"values": {"accuracy": values.get("accuracy")}} if status == "ok"
                                                  else {"error": "did not finish within 5 s"})}}
    return {"point": index, "choices": {"format": {"weights": "esb:4:1", "activations": 4}, "array": choice},
            "settings": {}, "config": None, "measures": measures}


def test_the_document_flags_each_front(tmp_path):
    sweep = sweep_for(tmp_path)
    records = [record(0, "2x2", lut_per_mac=10.0, system_lut_model=5000, images_per_second=100.0, accuracy=0.9),
               record(1, "4x4", lut_per_mac=12.0, system_lut_model=7000, images_per_second=300.0, accuracy=0.8),
               record(2, "8x8", "timeout", lut_per_mac=9.0, system_lut_model=9000, images_per_second=200.0)]
    document = build_document(sweep, records)
    assert list(document["fronts"]) == ["accuracy_vs_lut_per_mac", "images_per_second_vs_lut"]
    flags = [(r["pareto"]["accuracy_vs_lut_per_mac"], r["pareto"]["images_per_second_vs_lut"]) for r in records]
    # point 2 has no accuracy (timed out): off that front; it is slower and bigger than point 1: off the other
    assert flags == [(True, True), (False, True), (False, False)]
    assert document["grid_points"] == 3 and document["points"] == 3 and document["network"] == "digits"
    text = document_text(document)
    assert json.loads(text) == document and text == document_text(json.loads(text))  # stable bytes
    # the table from the written file is the table from the run: the sweep's order survives the file
    assert markdown(json.loads(text)) == markdown(document)
    table = markdown(document)
    assert "| 2 | weights=esb:4:1, activations=4 | 8x8 | 9.00 | 9,000 | 200.0 | — |  |  | accuracy: timeout (did " \
           "not finish within 5 s) |" in table
    assert "Front `accuracy_vs_lut_per_mac` (max accuracy, min lut_per_mac): #0 (weights=esb:4:1, activations=4, " \
           "2x2)." in table
    assert "3 of 3 grid points; 1 with a measure that did not give values" in table


def test_the_search_front_keeps_to_the_constraints(tmp_path):
    sweep = sweep_for(tmp_path)
    records = [record(0, "2x2", lut_per_mac=10.0, system_lut_model=5000, images_per_second=100.0, accuracy=0.9),
               record(1, "4x4", lut_per_mac=12.0, system_lut_model=7000, images_per_second=300.0, accuracy=0.8),
               record(2, "8x8", lut_per_mac=9.0, system_lut_model=9000, images_per_second=900.0, accuracy=0.95)]
    measures = sweep.measures
    objectives = (parse_objective("max images_per_second", "", "", measures),
                  parse_objective("max accuracy", "", "", measures))
    constraints = (parse_constraint("system_lut_model <= 8000", "", "", measures),)
    document = build_document(sweep, records, objectives=objectives, constraints=constraints,
                              search={"kind": "random"})
    # point 2 dominates both but breaks the LUT budget; of the rest, neither dominates the other
    assert [r["pareto"]["search"] for r in records] == [True, True, False]
    assert document["fronts"]["search"] == {"minimize": [], "maximize": ["images_per_second", "accuracy"],
                                            "constraints": ["system_lut_model <= 8000"]}
    assert "subject to system_lut_model <= 8000): #0 (weights=esb:4:1, activations=4, 2x2); #1 (weights=esb:4:1, " \
           "activations=4, 4x4)." in markdown(document)


def test_a_sweep_without_both_measures_of_a_front_has_no_such_front(tmp_path):
    document = build_document(sweep_for(tmp_path, '["throughput"]'), [])
    assert document["fronts"] == {}
    assert not plot_fronts(document, tmp_path / "fronts.png")


def test_the_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot extra (make build installs it)")
    sweep = sweep_for(tmp_path)
    records = [record(i, side, lut_per_mac=float(a), system_lut_model=1000 * b, images_per_second=float(c),
                      accuracy=d / 10) for i, (side, (a, b, c, d)) in
               enumerate(zip(["2x2", "4x4", "8x8"], itertools.permutations(range(1, 5), 4), strict=False))]
    assert plot_fronts(build_document(sweep, records), tmp_path / "fronts.png")
    assert (tmp_path / "fronts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_readme_frontier_is_the_committed_formats_sweep():
    """The README's frontier table is explore.md of the committed formats sweep (make frontier), byte for byte."""
    from pathlib import Path

    from esb_hw.frontend.accuracy import FORMAT_COSTS

    document = json.loads(FORMAT_COSTS.read_text(encoding="utf-8"))
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    begin, end = "<!-- explore:formats:begin -->\n", "<!-- explore:formats:end -->"
    block = readme[readme.index(begin) + len(begin):readme.index(end)]
    assert block == markdown(document)
    assert document_text(document) == FORMAT_COSTS.read_text(encoding="utf-8")  # as explore writes it
    # every format either has values or says why not
    for record in document["records"]:
        for measure, result in record["measures"].items():
            assert result["status"] == "ok" or result["error"], (record["point"], measure)
