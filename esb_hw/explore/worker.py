"""One task in its own process, working folder and time limit.

:func:`run_task` starts ``python -m esb_hw.explore.worker`` in a new session with the task as JSON on its input,
``TMPDIR`` set to the task's working folder (yosys writes its files there) and one thread per math library, waits
at most ``timeout`` seconds, and kills the whole process group (yosys included) when the time is up. The worker
kills its own process group when the process that started it dies (a sweep killed with ``kill -9``, a Ray worker
lost), so that no synthesis outlives its sweep. A crash (a
signal, a tool's failure, an unexpected exception) is retried up to ``retries`` times; a refusal (an
:class:`~esb_hw.errors.InputError`: the point is invalid for this measure, say a layer that does not fit) and a
time-out are not, since they would come out the same.

The result is a dict: ``status`` (``ok``, ``timeout``, ``refused`` or ``failed``), ``values`` (for ``ok``),
``error`` (one line), ``timeout`` (the limit), ``attempts``, ``seconds``, and for a failure ``log``. The working
folder is removed after a success and kept after a failure (``log``, its ``log.txt``, holds the worker's stderr).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["main", "run_task"]

#: The environment variable that gives a worker the pid of the process that started it.
PARENT_VARIABLE = "ESB_EXPLORE_PARENT"
#: How often a worker checks that the process that started it is alive.
PARENT_POLL_SECONDS = 0.5
#: Threads per math library in a worker: one task per CPU is the scheduler's job.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _attempt(task: Mapping, workdir: Path, timeout: float) -> dict:
    env = {**os.environ, "TMPDIR": str(workdir), PARENT_VARIABLE: str(os.getpid()),
           **dict.fromkeys(THREAD_VARIABLES, "1")}
    log = workdir / "log.txt"
    with open(log, "w", encoding="utf-8") as errors, subprocess.Popen(
            [sys.executable, "-m", "esb_hw.explore.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=errors, text=True, cwd=workdir, env=env, start_new_session=True) as child:
        try:
            output, _ = child.communicate(json.dumps(dict(task)), timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return {"status": "timeout", "error": f"did not finish within {timeout:g} s", "timeout": timeout}
        except BaseException:
            os.killpg(child.pid, signal.SIGKILL)
            raise
    if child.returncode == 0:
        try:
            return json.loads(output)
        except ValueError:
            pass
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    last = lines[-1] if lines else f"exit code {child.returncode}"
    if child.returncode < 0:
        last = f"killed by signal {-child.returncode} ({last})"
    return {"status": "failed", "error": last, "log": str(log)}


def run_task(task: Mapping, workdir: str | Path, timeout: float, retries: int = 0) -> dict:
    """Run ``task`` as the module docstring says; never raises for the task's own failures."""
    workdir = Path(workdir)
    started = time.monotonic()
    result: dict = {}
    for attempt in range(1, retries + 2):
        workdir.mkdir(parents=True, exist_ok=True)
        result = _attempt(task, workdir, timeout)
        result["attempts"] = attempt
        if result["status"] != "failed":
            break
    result["seconds"] = round(time.monotonic() - started, 2)
    if result["status"] != "failed":
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _die_with_parent() -> None:
    """Kill this process group (the worker and any yosys it started) as soon as the process that started the
    worker is gone: a Ray worker killed with its sweep must not leave a synthesis running for hours."""
    parent = int(os.environ.get(PARENT_VARIABLE, os.getppid()))
    if os.getppid() != parent:  # gone before this interpreter started
        os.killpg(0, signal.SIGKILL)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != parent:
                os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def main() -> int:
    """Read one task from stdin, print its result as JSON on stdout (exit 0); crash otherwise."""
    from ..errors import InputError
    from .measures import evaluate

    _die_with_parent()
    task = json.loads(sys.stdin.read())
    # The result goes to a private copy of stdout; anything a measure prints (or a tool it runs) goes to stderr.
    sys.stdout.flush()
    result_stream = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    try:
        values = evaluate(task)
    except InputError as error:  # the point itself is wrong for this measure: the same every time
        result = {"status": "refused", "error": str(error).splitlines()[0] if str(error) else type(error).__name__}
    else:
        result = {"status": "ok", "values": values}
    sys.stdout.flush()
    result_stream.write(json.dumps(result, sort_keys=True))
    result_stream.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
