"""The tasks of a sweep on a local Ray instance (esb_hw/explore/runner.py)."""

import io

import pytest

from esb_hw.explore.cache import ResultCache
from esb_hw.explore.measures import evaluate, task_for
from esb_hw.explore.runner import Explorer, Progress
from esb_hw.explore.sweep import load_sweep

pytest.importorskip("ray", reason="the explore extra (make build installs it)")


def test_points_run_once_each_on_ray_and_a_rerun_comes_from_the_cache(tmp_path):
    path = tmp_path / "s.toml"
    # rows 3 with 2 requantization lanes is an invalid config; the two names make equal tasks (a name is not an input)
    path.write_text('network = "digits"\nmeasures = ["throughput"]\ntimeout = 300\n[axes]\n'
                    'array = ["4x4", "3x3"]\n"engine.requant_lanes" = [1, 2]\nname = ["a", "b"]\n', encoding="utf-8")
    sweep = load_sweep(path)
    points = sweep.points()
    cache = ResultCache(tmp_path / "cache")
    seen = []
    explorer = Explorer(sweep, cache, tmp_path / "work", workers=1)
    stream = io.StringIO()
    try:
        results = explorer.run(points, Progress(len(points), stream=stream),
                               on_result=lambda point, measure, result: seen.append((point.index, result["status"])))
        assert explorer.cpus() == 1
    finally:
        explorer.close()
    statuses = {index: measures["throughput"]["status"] for index, measures in results.items()}
    assert statuses == {0: "ok", 1: "ok", 2: "ok", 3: "ok", 4: "ok", 5: "ok", 6: "refused", 7: "refused"}
    assert results[6]["throughput"]["error"] == "engine.requant_lanes must divide rows (3) or be 0 (automatic), " \
                                                "got 2 (point 6)"
    # equal tasks ran once: three distinct tasks, three files, one Ray node
    assert sorted(seen) == sorted((index, status) for index, status in statuses.items())
    assert sum(explorer.nodes.values()) == explorer.ran == 3 and len(list((tmp_path / "cache").rglob("*.json"))) == 3
    assert results[0]["throughput"]["values"] == results[1]["throughput"]["values"]
    assert results[2]["throughput"]["values"] == evaluate(task_for(sweep, points[2], "throughput"))
    assert stream.getvalue().splitlines()[-1].startswith("explore: 8/8 points done, 2 failed, 0 cached, 0 tasks")
    # a rerun starts no Ray at all: every result is in the cache
    again = Explorer(sweep, cache, tmp_path / "work", workers=1)
    rerun = again.run(points, Progress(len(points), stream=io.StringIO()))
    assert again._ray is None
    assert all(result["cached"] for index in range(6) for result in rerun[index].values())
    assert {index: measures["throughput"].get("values") for index, measures in rerun.items()} == \
        {index: measures["throughput"].get("values") for index, measures in results.items()}


def test_progress_lines_on_a_pipe():
    stream = io.StringIO()
    progress = Progress(5, stream=stream, label="explore x")
    progress.done, progress.failed, progress.cached, progress.running = 3, 1, 2, 2
    progress.show()  # not a terminal and not yet 30 s: nothing
    assert stream.getvalue() == ""
    progress.show(final=True)
    assert stream.getvalue().startswith("explore x: 3/5 points done, 1 failed, 2 cached, 2 tasks running, 0:00")
