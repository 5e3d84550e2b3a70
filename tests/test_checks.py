"""Parameter checks shared by the hardware components (esb_hw/hw/checks.py)."""

import pytest

from esb_hw.errors import ParameterError
from esb_hw.hw.checks import require_bool, require_format, require_instance, require_int
from esb_hw.quant import ESBFormat


def test_accepts_good_values():
    assert require_int("n", 3, 1, 4) == 3 and require_bool("flag", False) is False
    assert require_format("w", ESBFormat(4, 1), signed=True) == ESBFormat(4, 1)
    assert require_instance("x", 1.5, float) == 1.5


@pytest.mark.parametrize("call, message", [
    (lambda: require_int("n", 5, 1, 4), "n must be an int in 1..4, got 5"),
    (lambda: require_int("n", 0, 1), "n must be an int >= 1, got 0"),
    (lambda: require_int("n", True, 0), "n must be an int >= 0, got bool True"),
    (lambda: require_bool("flag", 0), "flag must be a bool, got int 0"),
    (lambda: require_instance("config", [], dict), "config must be a dict, got list"),
    (lambda: require_instance("config", [], AssertionError), "config must be an AssertionError, got list"),
    (lambda: require_format("a", ESBFormat(4, 1), signed=False), r"a must be an unsigned ESBFormat, got ESB\(4,1\)"),
])
def test_messages_name_the_parameter(call, message):
    with pytest.raises(ParameterError, match=message):
        call()
