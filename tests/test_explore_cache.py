"""The result cache: keys from everything a result depends on, atomic files, what is kept (esb_hw/explore/cache.py)."""

import json

import pytest

from esb_hw.explore import cache as cache_module
from esb_hw.explore.cache import ResultCache, source_digest, task_key
from esb_hw.explore.measures import task_for
from esb_hw.explore.sweep import load_sweep


@pytest.fixture
def sweep(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('network = "digits"\nmeasures = ["resources", "throughput", "accuracy"]\n'
                    '[axes]\narray = ["8x8", "4x4"]\nends_8bit = [false, true]\n', encoding="utf-8")
    return load_sweep(path)


def test_a_key_changes_with_each_input_and_only_with_them(sweep, tmp_path):
    points = sweep.points()
    keys = {(point.index, measure): task_key(task_for(sweep, point, measure)) for point in points
            for measure in sweep.measures}
    assert all(len(key) == 64 for key in keys.values())
    # the recipe does not touch the hardware's resources, but it does touch throughput and accuracy
    assert keys[(0, "resources")] == keys[(1, "resources")] != keys[(2, "resources")]
    assert keys[(0, "throughput")] != keys[(1, "throughput")]
    assert keys[(0, "accuracy")] != keys[(1, "accuracy")]
    # accuracy depends on the formats and the recipe, not on the array: 8x8 and 4x4 share a result
    assert keys[(0, "accuracy")] == keys[(2, "accuracy")] and keys[(0, "throughput")] != keys[(2, "throughput")]
    assert len({keys[(0, measure)] for measure in sweep.measures}) == 3
    # the same point under another sweep name and index has the same key (equal points share a result)
    renamed = sweep.__class__(**{**sweep.__dict__, "name": "other"})
    assert task_key(task_for(renamed, points[3], "accuracy")) == keys[(3, "accuracy")]
    # a change of the measure's options, of the network file or of the source makes a new key
    task = task_for(sweep, points[0], "resources")
    assert task_key({**task, "options": {"design": "engine"}}) != keys[(0, "resources")]
    copy = tmp_path / "digits.onnx"
    original = sweep.network_file().read_bytes()
    copy.write_bytes(original)
    onnx_task = {**task_for(sweep, points[0], "accuracy"), "network": str(copy)}
    first = task_key(onnx_task)
    copy.write_bytes(original + b"\0")
    cache_module._file_digest.cache_clear()
    assert task_key(onnx_task) != first
    cache_module.source_digest.cache_clear()
    before = task_key(task)
    real = cache_module.source_digest
    try:
        cache_module.source_digest = lambda measure: "edited"
        assert task_key(task) != before
    finally:
        cache_module.source_digest = real


def test_the_source_digest_covers_the_measure_s_folders_only(monkeypatch, tmp_path):
    package = tmp_path / "esb_hw"
    for name in ("hw/core/a.py", "frontend/b.py", "config.py", "explore/measures.py", "data/digits/digits.onnx",
                 "data/digits/formats_explore.json"):
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text("x = 1\n")
    monkeypatch.setattr(cache_module, "PACKAGE", package)
    source_digest.cache_clear()
    resources, accuracy = source_digest("resources"), source_digest("accuracy")
    (package / "frontend" / "b.py").write_text("x = 2\n")
    source_digest.cache_clear()
    assert source_digest("resources") == resources and source_digest("accuracy") != accuracy
    (package / "hw" / "core" / "a.py").write_text("x = 2\n")
    source_digest.cache_clear()
    assert source_digest("resources") != resources
    # a shipped model keys accuracy; a results file beside it does not (a sweep's own output must not key it)
    accuracy = source_digest("accuracy")
    (package / "data" / "digits" / "formats_explore.json").write_text("{}")
    source_digest.cache_clear()
    assert source_digest("accuracy") == accuracy
    (package / "data" / "digits" / "digits.onnx").write_text("y")
    source_digest.cache_clear()
    assert source_digest("accuracy") != accuracy
    source_digest.cache_clear()


def test_stored_results_and_what_is_not_stored(tmp_path):
    store = ResultCache(tmp_path / "cache")
    ok = {"status": "ok", "values": {"lut": 5}, "attempts": 1, "seconds": 0.5}
    store.put("ab" * 32, ok)
    assert store.get("ab" * 32, timeout=10) == ok
    assert json.loads((tmp_path / "cache" / "ab" / f"{'ab' * 32}.json").read_text()) == ok
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    store.put("cd" * 32, {"status": "failed", "error": "crash"})
    assert store.get("cd" * 32, timeout=10) is None and not (tmp_path / "cache" / "cd").exists()
    store.put("ef" * 32, {"status": "refused", "error": "does not fit"})
    assert store.get("ef" * 32, timeout=10)["status"] == "refused"
    # a time-out counts only for a limit no longer than the one it had
    store.put("12" * 32, {"status": "timeout", "timeout": 60.0, "error": "did not finish within 60 s"})
    assert store.get("12" * 32, timeout=60)["status"] == "timeout"
    assert store.get("12" * 32, timeout=30) is not None and store.get("12" * 32, timeout=61) is None
    # a damaged file is missing, not an error
    (tmp_path / "cache" / "ab" / f"{'ab' * 32}.json").write_text("{not json")
    assert store.get("ab" * 32, timeout=10) is None
    (tmp_path / "cache" / "ab" / f"{'ab' * 32}.json").write_text('{"status": "running"}')
    assert store.get("ab" * 32, timeout=10) is None
    assert store.get("99" * 32, timeout=10) is None


def test_a_cache_folder_that_cannot_be_made(tmp_path):
    (tmp_path / "file").write_text("")
    from esb_hw.explore.sweep import ExploreError

    with pytest.raises(ExploreError, match="cannot make the cache folder"):
        ResultCache(tmp_path / "file" / "cache")
