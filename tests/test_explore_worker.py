"""One task in its own process with a time limit and retries (esb_hw/explore/worker.py)."""

import os
from pathlib import Path

from esb_hw.explore.measures import evaluate
from esb_hw.explore.worker import run_task

CONFIG = {"clock_mhz": 200.0, "max_reduction": 4096, "weights": {"bits": 4, "k": 1},
          "activations": {"bits": 8, "k": 8}, "array": {"rows": 4, "cols": 4, "pe_variant": "esb"}}
THROUGHPUT = {"measure": "throughput", "options": {}, "config": CONFIG, "network": "digits",
              "recipe": {"batch": 1, "ends_8bit": False, "scale_method": "dda"}}


def processes_in(folder: Path) -> list[int]:
    """The processes working in ``folder`` or below it (yosys works in a temporary folder inside)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_task_gives_the_measure_s_values_and_cleans_its_folder(tmp_path):
    result = run_task(THROUGHPUT, tmp_path / "work", timeout=300, retries=1)
    assert result["status"] == "ok" and result["attempts"] == 1 and result["seconds"] > 0
    assert result["values"] == evaluate(THROUGHPUT)
    assert not (tmp_path / "work").exists()


SLOW_SYNTHESIS = {"measure": "resources", "options": {"design": "array"},
                  "config": {**CONFIG, "array": {"rows": 2, "cols": 2, "pe_variant": "esb"},
                             "weights": {"bits": 8, "k": 6}}}  # elaborated in seconds; yosys takes minutes


def yosys_pids(folder: Path) -> list[int]:
    found = []
    for pid in processes_in(folder):
        try:
            if "esb_hw.estimate.yowasp" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                found.append(pid)
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_task_over_its_time_is_killed_with_its_children(tmp_path):
    import threading
    import time

    work = tmp_path / "work"
    results = []
    runner = threading.Thread(target=lambda: results.append(run_task(SLOW_SYNTHESIS, work, timeout=8, retries=3)))
    runner.start()
    seen: set[int] = set()
    while runner.is_alive():
        seen |= set(processes_in(work))
        if yosys_pids(work):
            seen |= set(yosys_pids(work))
        time.sleep(0.1)
    (result,) = results
    assert result == {"status": "timeout", "error": "did not finish within 8 s", "timeout": 8, "attempts": 1,
                      "seconds": result["seconds"]}
    assert len(seen) >= 2, "the worker and its yosys should have been seen"
    deadline = time.monotonic() + 10  # a killed grandchild may take a moment to exit
    while [pid for pid in seen if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in seen if alive(pid)]  # the whole group, yosys included, is gone


def test_a_refused_point_is_not_retried(tmp_path):
    digits = Path(__file__).resolve().parents[1] / "esb_hw" / "data" / "digits" / "digits.onnx"
    task = {"measure": "accuracy", "options": {"qat": False}, "config": CONFIG, "network": str(digits),
            "dataset": "mnist5k", "recipe": {"ends_8bit": False, "scale_method": "dda"}}
    result = run_task(task, tmp_path / "work", timeout=300, retries=2)
    assert result["status"] == "refused" and result["attempts"] == 1
    assert result["error"] == "the network's input (1, 8, 8) is not the shape of the mnist5k images, (1, 28, 28)"


def test_a_crash_is_retried_then_failed_with_its_log(tmp_path):
    work = tmp_path / "work"
    broken = {key: value for key, value in THROUGHPUT.items() if key != "config"}
    result = run_task(broken, work, timeout=300, retries=2)
    assert result["status"] == "failed" and result["attempts"] == 3
    assert result["error"] == "KeyError: 'config'" and result["log"] == str(work / "log.txt")
    assert "Traceback" in (work / "log.txt").read_text()


def test_a_worker_dies_with_the_process_that_started_it(tmp_path):
    """A sweep killed with kill -9 leaves no synthesis running: the worker kills its process group (yosys in it)
    when its parent is gone."""
    import json
    import signal
    import subprocess
    import sys
    import time

    work = tmp_path / "work"
    script = ("import json, sys\nfrom esb_hw.explore.worker import run_task\n"
              f"run_task(json.loads({json.dumps(json.dumps(SLOW_SYNTHESIS))}), {str(work)!r}, timeout=600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while not yosys_pids(work) and time.monotonic() < deadline:
        time.sleep(0.2)
    running = set(processes_in(work))
    assert yosys_pids(work) and len(running) >= 2, "the worker and its yosys should be running"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while [pid for pid in running if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in running if alive(pid)]
