"""Budgeted searches with Optuna over a sweep's grid (esb_hw/explore/search.py), against a synthetic landscape whose
best feasible points are known by brute force."""

import pytest

from esb_hw.explore.search import run_search
from esb_hw.explore.sweep import ExploreError, load_sweep, parse_constraint, parse_objective

pytest.importorskip("optuna", reason="the explore extra (make build installs it)")


@pytest.fixture
def sweep(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('network = "digits"\nmeasures = ["resources", "throughput"]\n[resources]\ndesign = "model"\n'
                    '[axes]\n"array.rows" = [2, 4, 8, 16, 32, 64]\n"array.cols" = [2, 4, 8, 16, 32, 64]\n'
                    '"engine.entries" = [16, 32]\n', encoding="utf-8")
    return load_sweep(path)


def landscape(point):
    """Throughput grows with the array, LUTs too; entries=32 is a little faster."""
    rows, cols = point.settings["array.rows"], point.settings["array.cols"]
    macs = rows * cols
    return {"system_lut_model": 5000 + 30 * macs,
            "images_per_second": macs * (1.1 if point.settings["engine.entries"] == 32 else 1.0) - abs(rows - cols)}


def evaluator(calls):
    def evaluate(points):
        calls.append([point.index for point in points])
        return {point.index: landscape(point) for point in points}
    return evaluate


def terms(sweep, objective, constraint):
    return ((parse_objective(objective, "", "", sweep.measures),),
            (parse_constraint(constraint, "", "", sweep.measures),) if constraint else ())


@pytest.mark.parametrize("kind", ["random", "pareto"])
def test_a_search_finds_the_best_point_under_a_lut_budget(sweep, kind):
    objectives, constraints = terms(sweep, "max images_per_second", "system_lut_model <= 40000")
    feasible = [point for point in sweep.points() if landscape(point)["system_lut_model"] <= 40000]
    best = max(landscape(point)["images_per_second"] for point in feasible)
    calls = []
    points, summary = run_search(sweep, kind, objectives, constraints, trials=40, seed=1,
                                 evaluate=evaluator(calls), batch=2)
    found = max(landscape(point)["images_per_second"] for point in points
                if landscape(point)["system_lut_model"] <= 40000)
    # the optimum is 32x32 with 32 entries (1126.4 images/s at 35,720 LUTs); a search of 40 trials gets within 5 %
    assert best == 1126.4 and 0.95 * best <= found <= best
    assert summary["distinct_points"] == len(points) < sweep.size == 72
    assert summary == {"kind": kind, "seed": 1, "trials": 40, "distinct_points": len(points), "grid_points": 72,
                       "objectives": ["max images_per_second"], "constraints": ["system_lut_model <= 40000"]}
    # every point is evaluated once, in batches no wider than the workers
    flat = [index for call in calls for index in call]
    assert len(flat) == len(set(flat)) == len(points) and all(1 <= len(call) <= 2 for call in calls)


def test_the_same_seed_draws_the_same_points(sweep):
    objectives, constraints = terms(sweep, "max images_per_second", None)
    runs = [run_search(sweep, "random", objectives, constraints, trials=10, seed=5, evaluate=evaluator([]),
                       batch=3)[0] for _ in range(2)]
    assert [p.index for p in runs[0]] == [p.index for p in runs[1]]
    other = run_search(sweep, "random", objectives, constraints, trials=10, seed=6, evaluate=evaluator([]),
                       batch=3)[0]
    assert [p.index for p in other] != [p.index for p in runs[0]]


def test_failed_points_do_not_stop_a_search(sweep):
    objectives, constraints = terms(sweep, "max images_per_second", "system_lut_model <= 40000")

    asked = []

    def evaluate(points):  # odd points failed: no values
        asked.extend(point.index for point in points)
        return {point.index: landscape(point) if point.index % 2 == 0 else {} for point in points}

    points, summary = run_search(sweep, "pareto", objectives, constraints, trials=30, seed=0, evaluate=evaluate,
                                 batch=4)
    assert asked == [point.index for point in points] and summary["distinct_points"] == len(points)
    assert any(index % 2 for index in asked), "a failed point should have been drawn and survived"
    assert any(index % 2 == 0 and landscape(sweep.points()[index])["system_lut_model"] <= 40000 for index in asked)


def test_a_search_needs_an_objective_and_a_known_kind(sweep):
    with pytest.raises(ExploreError, match=r"^--search needs at least one objective"):
        run_search(sweep, "random", (), (), trials=3, seed=0, evaluate=evaluator([]), batch=1)
    objectives, _ = terms(sweep, "max images_per_second", None)
    with pytest.raises(ExploreError, match=r"^--search takes random or pareto, got 'grid'"):
        run_search(sweep, "grid", objectives, (), trials=3, seed=0, evaluate=evaluator([]), batch=1)
