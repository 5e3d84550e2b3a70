"""The data the package ships: accelerator configs and the example models.

- ``configs/<name>.toml``: the shipped accelerator configs (``default``, ``pot3``, ``uniform4``, ...);
- ``digits/`` and ``mnist5k/``: the example float models (``<name>.onnx`` with BatchNorm as nodes, ``<name>.npz``
  folded), the digits QAT weights (``digits_qat_*.npz``) and the formats sweep's results (``formats_explore.json``,
  written by ``make frontier``).

Every command that takes ``--config`` accepts a path to a TOML file or the name of a shipped config
(:func:`config_path`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError

__all__ = ["CONFIGS", "DATA", "config_path", "example_folder", "load_config", "shipped_config", "shipped_config_names"]

DATA = Path(__file__).resolve().parent
CONFIGS = DATA / "configs"


def shipped_config_names() -> list[str]:
    """The names of the shipped configs, sorted."""
    return sorted(path.stem for path in CONFIGS.glob("*.toml"))


def config_path(value: str | os.PathLike) -> Path:
    """A ``--config`` value as a file: an existing path, or else the name of a shipped config (``pot3`` or
    ``pot3.toml``); anything else comes back unchanged (loading it then says the file is not found)."""
    path = Path(value)
    stem = path.name.removesuffix(".toml")
    if not path.exists() and path.parent == Path(".") and (CONFIGS / f"{stem}.toml").is_file():
        return CONFIGS / f"{stem}.toml"
    return path


def load_config(value: str | os.PathLike):
    """:func:`config_path`, loaded (:meth:`~esb_hw.config.AcceleratorConfig.from_toml`)."""
    from ..config import AcceleratorConfig

    return AcceleratorConfig.from_toml(config_path(value))


def shipped_config(name: str):
    """The shipped config ``name`` (``default``, ``pot3``, ...) as an :class:`~esb_hw.config.AcceleratorConfig`."""
    from ..config import AcceleratorConfig

    if name not in shipped_config_names():
        raise InputError(f"no shipped config {name!r} (shipped: {', '.join(shipped_config_names())})")
    return AcceleratorConfig.from_toml(CONFIGS / f"{name}.toml")


def example_folder(name: str) -> Path:
    """The folder of the shipped example model ``name`` (``digits``, ``mnist5k`` or ``resnet_mnist``)."""
    return DATA / name
