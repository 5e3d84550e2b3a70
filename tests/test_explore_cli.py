"""``esb-hw explore``: bad input is one line and exit code 2; a sweep killed mid-way resumes from its cache
(esb_hw/explore/cli.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from esb_hw.cli import main as esb_hw
from esb_hw.explore.cli import main

SWEEP = 'network = "digits"\nmeasures = ["throughput"]\ntimeout = 300\n' \
        '[axes]\narray = ["2x2", "3x3", "4x4", "5x5", "6x6"]\n' \
        '[search]\nobjectives = ["max images_per_second"]\n'


@pytest.fixture
def sweep(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SWEEP, encoding="utf-8")
    return path


@pytest.mark.parametrize(("options", "message"), [
    (["--limit", "0"], "--limit must be in 1..5 (the grid's points), got 0"),
    (["--workers", "0"], "--workers must be in 1..1024, got 0"),
    (["--workers", "2", "--address", "127.0.0.1:1"], "--workers applies to a local Ray instance; a cluster's CPUs "
                                                      "are its own (drop one)"),
    (["--timeout", "-1"], "--timeout must be in (0, 604800] seconds, got -1"),
    (["--trials", "3"], "--trials apply with --search only"),
    (["--search", "random", "--limit", "2"], "--limit applies to the grid; a search's budget is --trials"),
    (["--search", "random", "--trials", "0"], "--trials must be in 1..100000, got 0"),
    (["--search", "random", "--seed", "-5"], "--seed must be in 0..4294967295, got -5"),
    (["--search", "random", "--dry-run"], "--dry-run lists the grid's points; a search draws its points as it runs "
                                          "(drop one)"),
    (["--plot", "fronts.png"], "--plot: this sweep has no front to draw (it needs resources with accuracy or "
                               "throughput)"),
    (["--search", "random", "--objective", "max accuracy"], "--objective needs the 'accuracy' measure for "
                                                              "'accuracy'; add it to measures (command line)"),
])
def test_bad_options_are_one_line_and_exit_2(sweep, tmp_path, capsys, options, message):
    assert main([str(sweep), "--out", str(tmp_path / "out"), *options]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: {message}"


def test_bad_files_are_one_line_and_exit_2(sweep, tmp_path, capsys):
    assert esb_hw(["explore", str(tmp_path / "none.toml")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'none.toml'}: no such sweep file\n"
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    assert main([str(sweep), "--update-readme", str(readme)]) == 2
    assert capsys.readouterr().err == f"error: --update-readme {readme} has no '<!-- explore:s:begin -->' ... " \
                                      "'<!-- explore:s:end -->' markers\n"
    other = tmp_path / "other"
    other.mkdir()
    (other / "explore.json").write_text(json.dumps({"sweep": "formats"}))
    assert main([str(sweep), "--out", str(other)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: --out {other} holds the results of another sweep " \
                                                       "('formats'); pass --force to replace them or choose another " \
                                                       "folder"
    assert (other / "explore.json").read_text() == json.dumps({"sweep": "formats"})  # untouched
    mine = tmp_path / "docs"
    mine.mkdir()
    (mine / "explore.md").write_text("my notes")
    (mine / "notes.txt").write_text("mine")
    assert main([str(sweep), "--out", str(mine)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: --out {mine} holds files explore did not write " \
                                                       "(notes.txt); pass --force to write beside them or choose " \
                                                       "another folder"
    assert (mine / "explore.md").read_text() == "my notes"
    readme.write_text("<!-- explore:s:end -->\n<!-- explore:s:begin -->\n")
    assert main([str(sweep), "--update-readme", str(readme)]) == 2
    assert "markers" in capsys.readouterr().err


def test_a_dry_run_lists_the_points_and_runs_nothing(sweep, tmp_path, capsys):
    assert main([str(sweep), "--out", str(tmp_path / "out"), "--dry-run", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert out == "#0 array=2x2: throughput: to run\n#1 array=3x3: throughput: to run\n"
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def cached(folder: Path) -> int:
    return len(list(folder.rglob("*.json"))) if folder.is_dir() else 0


def explore(sweep: Path, out: Path, *options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "esb_hw.cli", "explore", str(sweep), "--out", str(out),
                             "--workers", "1", *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_a_killed_sweep_resumes_and_computes_only_what_is_missing(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    child = explore(sweep, out)
    deadline = time.monotonic() + 240
    while cached(out / "cache") < 2 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGKILL)
    child.communicate()
    kept = cached(out / "cache")
    assert 2 <= kept < 5, "the sweep should be killed with tasks still to run"
    assert not (out / "explore.json").exists()
    rerun = explore(sweep, out)
    output, errors = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, errors
    run = json.loads((out / "run.json").read_text())
    assert run["tasks"]["cached"] == kept and run["tasks"]["ran"] == 5 - kept
    assert f"5/5 points done, 0 failed, {kept} cached" in errors
    document = json.loads((out / "explore.json").read_text())
    assert [record["measures"]["throughput"]["status"] for record in document["records"]] == ["ok"] * 5
    # the same results from the cache alone, in another folder: the same bytes
    again = tmp_path / "again"
    assert main([str(sweep), "--out", str(again), "--cache", str(out / "cache")]) == 0
    assert (again / "explore.json").read_bytes() == (out / "explore.json").read_bytes()
    assert json.loads((again / "run.json").read_text())["tasks"] == {"cached": 5, "ran": 0, "task_seconds": 0}
    text = (again / "explore.md").read_text()
    assert text.startswith("| # | array | images/s (cycle MODEL) | utilization | notes |")
    # the README's markers, from the cache alone
    readme = tmp_path / "README.md"
    readme.write_text("top\n<!-- explore:s:begin -->\nold\n<!-- explore:s:end -->\nbottom\n")
    assert main([str(sweep), "--out", str(again), "--cache", str(out / "cache"), "--update-readme", str(readme)]) == 0
    assert readme.read_text() == "top\n<!-- explore:s:begin -->\n" + text + "<!-- explore:s:end -->\nbottom\n"
    assert "Front" not in text  # a throughput-only sweep has no front
    # a search over the same grid: every trial's point is in the cache already
    capsys.readouterr()
    assert main([str(sweep), "--out", str(again), "--cache", str(out / "cache"), "--search", "random", "--trials", "8",
                 "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    assert "random search: 8 trials evaluated " in printed and " distinct points of the 5-point grid" in printed
    document = json.loads((again / "explore.json").read_text())
    best = max(document["records"], key=lambda r: r["measures"]["throughput"]["values"]["images_per_second"])
    assert [r["point"] for r in document["records"] if r["pareto"]["search"]] == [best["point"]]
    assert document["search"]["kind"] == "random" and document["search"]["trials"] == 8


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_a_sweep_on_a_two_node_cluster_uses_both_nodes(sweep, tmp_path):
    """docs/explore.md's cluster recipe on one machine: a head node and a second node of one CPU each."""
    import shutil
    import tempfile

    ray = Path(sys.executable).with_name("ray")
    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="esbray", dir="/tmp"))  # short: Ray's socket paths live under it
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    try:
        subprocess.run([str(ray), "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                        "--include-dashboard", "false", "--temp-dir", str(temp), *common], env=env, check=True,
                       capture_output=True, timeout=120)
        subprocess.run([str(ray), "start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1",
                        *common], env=env, check=True, capture_output=True, timeout=120)
        out = tmp_path / "out"
        done = subprocess.run([sys.executable, "-m", "esb_hw.cli", "explore", str(sweep), "--out", str(out),
                               "--address", f"127.0.0.1:{port}"], env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr
        run = json.loads((out / "run.json").read_text())
        assert len(run["nodes"]) == 2 and sum(run["nodes"].values()) == 5, run
        assert all(count >= 1 for count in run["nodes"].values())
        records = json.loads((out / "explore.json").read_text())["records"]
        assert [record["measures"]["throughput"]["status"] for record in records] == ["ok"] * 5
    finally:
        subprocess.run(["pkill", "-9", "-f", str(temp)], check=False)  # this cluster's processes only
        subprocess.run(["pkill", "-9", "-f", f"127.0.0.1:{port}"], check=False)
        shutil.rmtree(temp, ignore_errors=True)
