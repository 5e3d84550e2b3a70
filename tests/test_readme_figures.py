"""bench/readme_figures.py: the README's measured figures equal the JSON their benches wrote (make figures), the
check sees a wrong figure, and (slow) the digits bench gives its JSON's figures again."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "bench" / "readme_figures.py")
figures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figures)
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_generated_figure_equals_its_json():
    assert figures.stale(README) == []
    for name in figures.BLOCKS:  # the blocks hold figures, not placeholders
        assert figures.block(README, name).count("\n") >= (0 if name == "system-timing" else 3), name


@pytest.mark.parametrize(("name", "figure"), [("digits-rtl", "MAC utilization"), ("system-timing", "MHz nominal"),
                                              ("chip", "MHz"), ("model-error", " % |"), ("array-timing", " MHz |"),
                                              ("compare", "MHz |"), ("compare-configs", "x |"),
                                              ("plans", "GMAC |"), ("batch", "256 -> 256 |")])
def test_the_check_sees_a_wrong_figure(name, figure):
    found = figures.block(README, name)
    line = next(line for line in found.splitlines() if figure in line)
    digit = next(index for index, char in enumerate(line) if char.isdigit())
    wrong = line[:digit] + str((int(line[digit]) + 1) % 10) + line[digit + 1:]
    problems = figures.stale(README.replace(line, wrong, 1))
    source = figures.BLOCKS[name][0].relative_to(ROOT)
    assert problems == [f"{name}: the README's block differs from {source} (run make figures)"]
    begin, _ = figures.markers(name)
    assert figures.stale(README.replace(begin, "<!-- gone -->")) == [f"{name}: the README has no '{begin}' block"]


def test_update_writes_what_the_check_wants(tmp_path):
    emptied = README
    for name in figures.BLOCKS:
        emptied = emptied.replace(figures.block(README, name), "old figures")
    assert len(figures.stale(emptied)) == len(figures.BLOCKS)
    assert figures.update(emptied) == README


@pytest.mark.slow  # about a minute: the digits through the system's RTL (Verilator)
def test_the_digits_bench_gives_its_json_again():
    recorded = json.loads((ROOT / "bench" / "results" / "digits_rtl.json").read_text())
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "digits_rtl.py"), "--images",
                             str(recorded["images"]), "--json"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr
    fresh = json.loads(result.stdout)
    for key in ("accuracy", "bit_exact_images", "same_class_images", "cycles_per_image", "images_per_second",
                "layers", "predictions"):
        assert fresh[key] == recorded[key], key
