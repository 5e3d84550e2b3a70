"""Test parameters handed from pytest to a cocotb test module through a JSON file.

The runner (:func:`esb_hw.sim.runner.run_cocotb`) writes ``params`` to ``params.json`` in the run directory and
points the environment variable ``ESB_SIM_PARAMS`` at it. The cocotb side calls :func:`load_params`.
Standard library only, so the simulator process imports nothing heavy for it.
"""

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PARAMS_ENV = "ESB_SIM_PARAMS"


def _to_json(value: object) -> object:
    # NumPy scalars and arrays (golden-model outputs) have .tolist(); anything else is a caller error.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"test parameter of type {type(value).__name__} is not JSON serialisable")


def write_params(path: Path, params: Mapping[str, Any]) -> Path:
    """Write ``params`` as JSON to ``path`` (NumPy values become lists / ints) and return the path."""
    path.write_text(json.dumps(dict(params), default=_to_json, indent=1, sort_keys=True))
    return path


def load_params() -> dict[str, Any]:
    """Return the parameters the runner passed to this cocotb run (an empty dict if there are none)."""
    path = os.environ.get(PARAMS_ENV)
    if not path:
        return {}
    return json.loads(Path(path).read_text())
