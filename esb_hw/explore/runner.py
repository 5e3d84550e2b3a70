"""The tasks of a sweep on Ray: one Ray task per (point, measure) not in the cache.

:class:`Explorer` starts Ray once (``ray.init`` with ``workers`` CPUs on this machine, or joins the cluster at
``address``), then :meth:`Explorer.run` takes a list of points: it builds each (point, measure) task
(:func:`~esb_hw.explore.measures.task_for`), answers those the cache holds, runs the rest as Ray tasks of one CPU
each (:func:`~esb_hw.explore.worker.run_task`: a process with a time limit and retries, in its own working folder
``OUT/work/<key>``), stores each result as it arrives, and reports progress: points done, failed and cached.

A point whose config is invalid gets ``refused`` for every measure, with the config's message, and no task. Equal
tasks of different points run once. Ray's own ``max_retries`` restarts a task whose worker process died (a node
lost); the worker's retries cover a crash of the measurement itself.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError, ToolError
from .cache import ResultCache, task_key
from .measures import task_for
from .sweep import Point, Sweep

__all__ = ["Explorer", "Progress"]

#: Seconds between progress lines when stderr is not a terminal.
LOG_INTERVAL = 30.0


class Progress:
    """One line of progress: points done (of the total), failed and cached, tasks running, time spent. On a
    terminal it rewrites itself; otherwise it prints a line every :data:`LOG_INTERVAL` seconds and at the end. A
``total`` of None (a search: how many distinct points it draws is not known ahead) shows the count alone."""

    def __init__(self, total: int | None, stream=None, label: str = "explore"):
        self.total, self.label = total, label
        self.stream = sys.stderr if stream is None else stream
        self.done = self.failed = self.cached = self.running = 0
        self.started = self._last = time.monotonic()
        self.terminal = getattr(self.stream, "isatty", lambda: False)()

    def line(self) -> str:
        seconds = int(time.monotonic() - self.started)
        done = f"{self.done}" if self.total is None else f"{self.done}/{self.total}"
        return (f"{self.label}: {done} points done, {self.failed} failed, {self.cached} cached, "
                f"{self.running} tasks running, {seconds // 60}:{seconds % 60:02d} elapsed")

    def show(self, final: bool = False) -> None:
        now = time.monotonic()
        if self.terminal:
            print("\r" + self.line(), end="\n" if final else "", file=self.stream, flush=True)
        elif final or now - self._last >= LOG_INTERVAL:
            print(self.line(), file=self.stream, flush=True)
            self._last = now


def _remote_function(ray):
    from .worker import run_task

    def run(task: dict, workdir: str, timeout: float, retries: int) -> dict:
        result = run_task(task, workdir, timeout, retries)
        result["node"] = ray.get_runtime_context().get_node_id()
        return result

    return ray.remote(num_cpus=1, max_retries=2)(run)


class Explorer:
    """Runs points of ``sweep`` on Ray, with results in ``cache`` and working folders under ``workdir``."""

    def __init__(self, sweep: Sweep, cache: ResultCache, workdir: Path, *, workers: int | None = None,
                 address: str | None = None):
        self.sweep, self.cache, self.workdir = sweep, cache, Path(workdir).resolve()  # absolute: other nodes too
        self.workers, self.address = workers, address
        self.nodes: dict[str, int] = {}  # Ray node id -> tasks it ran
        self.ran = 0  # tasks run (equal tasks of several points count once)
        self.task_seconds = 0.0  # their own times, summed
        self.failed_logs: list[str] = []
        self._ray = None
        self._remote = None
        self.startup_seconds = 0.0  # ray.init's time

    def _start(self):
        if self._ray is not None:
            return self._ray
        try:
            import ray
        except ImportError:
            raise InputError("esb-hw explore needs Ray: pip install 'esb-hw[explore]'") from None
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING,
                   "configure_logging": True}
        started = time.monotonic()
        try:
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(num_cpus=self.workers, **options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = f"join the Ray cluster at {self.address}" if self.address else "start a local Ray instance"
            hint = ""
            if self.address and os.environ.get("RAY_AUTH_MODE") != "token":
                hint = " (a cluster with token authentication needs RAY_AUTH_MODE=token and its token: docs/explore.md)"
            raise ToolError(f"cannot {where}: {str(error).splitlines()[0]}{hint}") from None
        self.startup_seconds = round(time.monotonic() - started, 2)
        self._ray = ray
        self._remote = _remote_function(ray)
        return ray

    def cpus(self) -> int:
        ray = self._start()
        return int(ray.cluster_resources().get("CPU", 0))

    def close(self) -> None:
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None

    def run(self, points: list[Point], progress: Progress | None = None,
            on_result: Callable[[Point, str, dict], None] | None = None,
            final: bool = True) -> dict[int, dict[str, dict]]:
        """Every measure of every point: ``{point index: {measure: result}}``; each result has ``status``
        and, where it ran now or before, ``values``; ``cached`` says whether it came from the cache. ``final``:
        end with the progress's last line (a search ends it itself, after its last batch)."""
        from ..config import ConfigError

        sweep = self.sweep
        results: dict[int, dict[str, dict]] = {point.index: {} for point in points}
        waiting: dict[str, list[tuple[Point, str]]] = {}  # key -> the (point, measure) pairs it answers
        tasks: dict[str, dict] = {}
        for point in points:
            for measure in sweep.measures:
                try:
                    task = task_for(sweep, point, measure)
                except ConfigError as error:
                    results[point.index][measure] = {"status": "refused", "error": str(error), "cached": False}
                    continue
                key = task_key(task)
                stored = self.cache.get(key, sweep.timeout)
                if stored is not None:
                    results[point.index][measure] = {**stored, "cached": True}
                    continue
                waiting.setdefault(key, []).append((point, measure))
                tasks[key] = task
        progress = progress or Progress(len(points))

        def point_finished(point: Point) -> bool:
            return len(results[point.index]) == len(sweep.measures)

        def count(point: Point) -> None:
            outcome = results[point.index].values()
            progress.done += 1
            progress.failed += any(result["status"] != "ok" for result in outcome)
            progress.cached += all(result.get("cached") for result in outcome)

        for point in points:
            if point_finished(point):
                count(point)
                if on_result:
                    for measure, result in results[point.index].items():
                        on_result(point, measure, result)
        progress.show()
        if tasks:
            ray = self._start()
            running = {self._remote.remote(task, str(self.workdir / key), sweep.timeout, sweep.retries): key
                       for key, task in tasks.items()}
            slots = max(1, self.cpus())
            progress.running = min(len(running), slots)
            while running:
                finished, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for reference in finished:
                    key = running.pop(reference)
                    try:
                        result = ray.get(reference)
                    except Exception as error:  # the Ray task itself failed (a node lost, retries spent)
                        result = {"status": "failed", "error": f"Ray task failed: {str(error).splitlines()[0]}"}
                    node = result.pop("node", None)
                    if node:
                        self.nodes[node] = self.nodes.get(node, 0) + 1
                    self.ran += 1
                    self.task_seconds += result.get("seconds", 0)
                    if result.get("log"):
                        self.failed_logs.append(result["log"])
                    self.cache.put(key, result)
                    for point, measure in waiting[key]:
                        results[point.index][measure] = {**result, "cached": False}
                        if on_result:
                            on_result(point, measure, result)
                        if point_finished(point):
                            count(point)
                progress.running = min(len(running), slots)
                progress.show()
        progress.running = 0
        if final:
            progress.show(final=True)
        return results
