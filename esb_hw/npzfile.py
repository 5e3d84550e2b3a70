"""Deterministic ``.npz`` files: the same arrays give the same bytes on every machine and at every time (fixed zip
timestamps, sorted members). Pure Python and NumPy: ``deploy/`` carries it to the board."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["write_npz"]


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an ``.npz`` that ``numpy.load`` reads, its bytes a function of the arrays alone. The file
    appears whole or not at all (written beside it, then renamed), so an interrupted write leaves nothing behind."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for key in sorted(arrays):
                with archive.open(zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as member:
                    np.lib.format.write_array(member, np.asarray(arrays[key]), allow_pickle=False)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
