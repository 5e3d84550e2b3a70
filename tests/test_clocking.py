"""Clock planning (esb_hw/hw/clocking.py): MMCM settings within the device limits."""

import pytest

from esb_hw.errors import InputError
from esb_hw.hw.clocking import ClockError, plan_clock, uart_clocks_per_bit


@pytest.mark.parametrize("target", [200.0, 250.0, 100.0, 150.0, 123.4, 333.33, 500.0, 6.25, 775.0])
def test_mmcm_plan_respects_the_limits(target):
    plan = plan_clock(300.0, target)
    assert plan.uses_mmcm
    pfd = plan.input_mhz / plan.divide
    vco = pfd * plan.multiply
    assert 10.0 <= pfd <= 500.0 and 800.0 <= vco <= 1440.0
    assert 2.0 <= plan.multiply <= 128.0 and 1.0 <= plan.output_divide <= 128.0
    assert (plan.multiply * 8).is_integer() and (plan.output_divide * 8).is_integer()
    assert plan.output_mhz == pytest.approx(vco / plan.output_divide)
    assert plan.output_mhz <= target + 1e-9 and plan.output_mhz >= 0.995 * target


def test_exact_plans_are_simple():
    plan = plan_clock(300.0, 200.0)
    assert (plan.divide, plan.multiply, plan.output_divide, plan.output_mhz) == (1, 4.0, 6.0, 200.0)
    assert not plan_clock(300.0, 300.0).uses_mmcm


@pytest.mark.parametrize("target", [1.0, 800.0])
def test_impossible_clock(target):
    with pytest.raises(ClockError, match=r"clock_mhz must be in 6.25..775.0 for the MMCM"):
        plan_clock(300.0, target)


def test_clock_error_is_an_input_error():
    assert issubclass(ClockError, InputError) and ClockError.exit_code == 2


def test_uart_divisor():
    assert uart_clocks_per_bit(200.0) == 1736
    assert uart_clocks_per_bit(0.05) == 1  # never zero
