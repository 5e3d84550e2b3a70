"""Board support: one module per board, found by module name (docs/architecture.md).

Adding a board means dropping one module ``boards/<name>.py`` next to this file; :func:`available_boards`
finds it by its module name (modules whose name starts with ``_`` are private and are not boards). A board
module exposes this interface:

``PLATFORM``
    The Amaranth platform *class*, a subclass of :class:`amaranth.vendor.XilinxPlatform` (or another
    Amaranth vendor platform). Instantiate it to build: ``PLATFORM().build(top, do_build=False)``.
``PART``
    The full Vivado part name, e.g. ``"xczu9eg-ffvb1156-2-e"``; it matches ``PLATFORM``'s device, package
    and speed.
``CAPACITY``
    The programmable-logic resources of the part as a ``dict`` with the keys ``lut``, ``ff``, ``bram36``
    and ``dsp`` (CLB LUTs, CLB flip-flops, 36 Kb block RAMs, DSP slices), all ``int``. The module docstring
    cites the data sheet the numbers come from.
``DEFAULT_CLOCK``
    A :class:`BoardClock` ``(resource, number, frequency_hz)``: the platform clock resource that clocks the
    accelerator by default, and its frequency in Hz, e.g. ``BoardClock("clk300", 0, 300e6)``.
    ``DEFAULT_CLOCK[:2]`` is the ``(name, number)`` pair for ``platform.request``.
``DESCRIPTION``
    A one-line ``str`` for listings and reports, e.g. ``"Xilinx ZCU102 (Zynq UltraScale+ ZU9EG)"``.

Every pin and I/O standard in a board module must come from the vendor's board definition, cited in the
module docstring, and ``tests/test_boards.py`` must hold an expected pin table written from that source.

:func:`load_board` imports a board module by name and checks the interface; an unknown name raises
:class:`UnknownBoardError`, whose message lists the boards that exist, and a module that lacks part of the
interface raises :class:`BoardInterfaceError`.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import NamedTuple

from esb_hw.errors import InputError

__all__ = [
    "BoardClock",
    "BoardError",
    "BoardInterfaceError",
    "CAPACITY_KEYS",
    "REQUIRED_ATTRIBUTES",
    "UnknownBoardError",
    "available_boards",
    "check_interface",
    "load_board",
]

#: The names every board module defines (see the package docstring).
REQUIRED_ATTRIBUTES = ("PLATFORM", "PART", "CAPACITY", "DEFAULT_CLOCK", "DESCRIPTION")
#: The keys of a board's ``CAPACITY`` dict.
CAPACITY_KEYS = ("lut", "ff", "bram36", "dsp")


class BoardClock(NamedTuple):
    """A clock resource of a board platform: its resource name and number, and its frequency in Hz."""

    resource: str
    number: int
    frequency_hz: float


class BoardError(InputError):
    """A problem with the board selection or a board module."""


class UnknownBoardError(BoardError):
    """The requested board has no module in ``boards/``; the message lists the boards that exist.

    Parameters
    ----------
    name : str
        The board name that was asked for.
    available : list of str
        The boards that exist, as returned by :func:`available_boards`.
    """

    def __init__(self, name: str, available: list[str]):
        self.name = name
        self.available = list(available)
        listing = ", ".join(self.available) if self.available else "(none)"
        super().__init__(f"unknown board {name!r}; available: {listing}")


class BoardInterfaceError(BoardError):
    """A board module does not provide the interface described in the package docstring."""


def available_boards() -> list[str]:
    """The names of the board modules in this folder, sorted; private (``_``-prefixed) modules are skipped."""
    return sorted(
        info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_") and not info.ispkg
    )


def load_board(name: str) -> ModuleType:
    """Import and return the board module ``boards.<name>`` after checking its interface.

    Raises
    ------
    UnknownBoardError
        If ``name`` is not one of :func:`available_boards` (names are matched exactly, so ``"../x"`` or
        ``"zcu102.py"`` are unknown, never imported).
    BoardInterfaceError
        If the module lacks one of :data:`REQUIRED_ATTRIBUTES` or one has the wrong shape.
    """
    boards = available_boards()
    if name not in boards:
        raise UnknownBoardError(name, boards)
    module = importlib.import_module(f"{__name__}.{name}")
    check_interface(name, module)
    return module


def check_interface(name: str, module: ModuleType) -> None:
    """Raise :class:`BoardInterfaceError` unless ``module`` provides the board interface (package docstring)."""
    missing = [attr for attr in REQUIRED_ATTRIBUTES if not hasattr(module, attr)]
    if missing:
        raise BoardInterfaceError(f"board module {name!r} does not define {', '.join(missing)}")
    if not isinstance(module.PLATFORM, type):
        raise BoardInterfaceError(f"board {name!r}: PLATFORM must be a platform class, got {module.PLATFORM!r}")
    capacity = module.CAPACITY
    if not isinstance(capacity, dict) or sorted(capacity) != sorted(CAPACITY_KEYS):
        raise BoardInterfaceError(f"board {name!r}: CAPACITY must have exactly the keys {', '.join(CAPACITY_KEYS)}")
    bad = [key for key, value in capacity.items() if not isinstance(value, int) or value <= 0]
    if bad:
        raise BoardInterfaceError(f"board {name!r}: CAPACITY[{bad[0]!r}] must be a positive int")
    if not isinstance(module.DEFAULT_CLOCK, BoardClock):
        raise BoardInterfaceError(f"board {name!r}: DEFAULT_CLOCK must be a BoardClock")
    for attr in ("PART", "DESCRIPTION"):
        if not isinstance(getattr(module, attr), str) or not getattr(module, attr):
            raise BoardInterfaceError(f"board {name!r}: {attr} must be a non-empty str")
