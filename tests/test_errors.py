"""The exception hierarchy (esb_hw/errors.py): every project error is an EsbError with the right exit code."""

import pytest

from esb_hw.boards import BoardError
from esb_hw.config import ConfigError
from esb_hw.errors import CheckFailed, EsbError, InputError, ParameterError, ToolError
from esb_hw.estimate import CalibrationError, DoesNotFitError, SynthesisError
from esb_hw.hw.clocking import ClockError
from esb_hw.quant.report import ReportError
from esb_hw.sim.runner import SimulatorNotFound


@pytest.mark.parametrize("error, code", [
    (ConfigError, 2), (BoardError, 2), (ClockError, 2), (DoesNotFitError, 2), (ReportError, 2), (ParameterError, 2),
    (InputError, 2), (SynthesisError, 1), (SimulatorNotFound, 1), (ToolError, 1), (CheckFailed, 1),
    (CalibrationError, 1),
])
def test_every_project_error_derives_from_the_base(error, code):
    assert issubclass(error, EsbError) and error.exit_code == code


def test_builtin_bases_kept_for_library_callers():
    assert issubclass(InputError, ValueError) and issubclass(ToolError, RuntimeError)
    assert not issubclass(CheckFailed, ValueError)


def test_run_command_gives_one_line_and_the_exit_code(capsys):
    import types

    from esb_hw.errors import CheckFailed, InputError, run_command

    def failing(error):
        def run(args):
            raise error
        return run

    quiet = types.SimpleNamespace(debug=False)
    assert run_command(lambda args: 0, quiet) == 0
    assert run_command(failing(InputError("bad width")), quiet) == 2
    assert capsys.readouterr().err == "error: bad width\n"
    assert run_command(failing(CheckFailed("differs")), quiet) == 1
    with pytest.raises(InputError):  # --debug shows the traceback
        run_command(failing(InputError("bad")), types.SimpleNamespace(debug=True))
    with pytest.raises(KeyError):  # a bug is not an input error: it is never turned into an exit code
        run_command(failing(KeyError("bug")), quiet)
