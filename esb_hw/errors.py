"""The project's exception hierarchy: every error esb-hw raises on purpose derives from :class:`EsbError`.

A command-line entry point catches :class:`EsbError` once, prints ``error: <message>`` on one line and exits
with :attr:`EsbError.exit_code` (2 for bad input or usage, 1 for a failed check or tool run).

``InputError`` and ``ParameterError`` are also ``ValueError`` and ``ToolError`` is also ``RuntimeError``, so
library callers that catch the built-in types keep working.
"""

from __future__ import annotations

__all__ = ["CheckFailed", "EsbError", "InputError", "ParameterError", "ToolError", "run_command"]


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
