# amaranth: UnusedElaboratable=no
"""SelfTest (esb_hw/hw/debug/selftest.py): the built-in layer in cocotb, passing and deliberately failing."""

import dataclasses

import pytest

from esb_hw.compiler.selftest import build_test_layer
from esb_hw.config import AcceleratorConfig
from esb_hw.errors import ParameterError
from esb_hw.hw.debug.selftest import SelfTest, report_line
from esb_hw.layouts import SelfTestLayer, array_output_layout, unpack
from esb_hw.sim.pytest_helpers import simulate, simulators

SMALL = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=6, activation_k=3, rows=2, cols=3,
                          max_reduction=96, name="small")
CLOCKS_PER_BIT = 4


def params_for(layer: SelfTestLayer, expect_pass: bool, errors: int) -> dict:
    return {"clocks_per_bit": CLOCKS_PER_BIT, "expect_pass": expect_pass, "max_cycles": 5000,
            "line": report_line(expect_pass, layer.tiles, errors).decode()}


@simulators
def test_selftest_passes(simulator):
    layer = build_test_layer(SMALL, tiles=6)
    design = SelfTest(SMALL, layer, clocks_per_bit=CLOCKS_PER_BIT, heartbeat_bit=3)
    simulate(design, "esb_hw.sim.testbenches.cocotb_selftest", simulator=simulator, toplevel="selftest",
             params=params_for(layer, True, 0))


@pytest.mark.parametrize("simulator", ["icarus"])
def test_selftest_fails_on_a_corrupted_expectation(simulator):
    layer = build_test_layer(SMALL, tiles=6)
    corrupted = dataclasses.replace(layer, expected=(layer.expected[0], layer.expected[1] ^ 1, *layer.expected[2:]))
    design = SelfTest(SMALL, corrupted, clocks_per_bit=CLOCKS_PER_BIT, heartbeat_bit=3)
    simulate(design, "esb_hw.sim.testbenches.cocotb_selftest", simulator=simulator, toplevel="selftest_corrupt",
             params=params_for(corrupted, False, 1))


@pytest.mark.parametrize("simulator", ["icarus"])
def test_testbench_rejects_a_wrong_verdict(simulator):
    """The cocotb checker fails when told to expect a pass from a corrupted layer."""
    layer = build_test_layer(SMALL, tiles=6)
    corrupted = dataclasses.replace(layer, expected=(layer.expected[0] ^ 4, *layer.expected[1:]))
    design = SelfTest(SMALL, corrupted, clocks_per_bit=CLOCKS_PER_BIT, heartbeat_bit=3)
    with pytest.raises(AssertionError, match="UART said"):
        simulate(design, "esb_hw.sim.testbenches.cocotb_selftest", simulator=simulator, toplevel="selftest_corrupt",
                 params=params_for(corrupted, True, 0))


def test_built_in_layer_expectations():
    layer = build_test_layer(SMALL, tiles=6)
    assert layer.tiles == 6
    extreme = SMALL.max_product * 12  # 12 = the reduction the layer uses: 4 * cols
    first = unpack(array_output_layout(SMALL), layer.expected[0])
    second = unpack(array_output_layout(SMALL), layer.expected[1])
    assert first == [extreme, extreme] and second == [-extreme, -extreme]


def test_report_line():
    assert report_line(True, 16, 0) == b"ESB-HW SELFTEST PASS tiles=0010 errors=0000\r\n"
    assert report_line(False, 16, 11) == b"ESB-HW SELFTEST FAIL tiles=0010 errors=000B\r\n"


@pytest.mark.parametrize("kwargs, message", [
    ({"clocks_per_bit": 0}, "clocks_per_bit must be an int >= 1, got 0"),
    ({"heartbeat_bit": 0}, "heartbeat_bit must be an int in 1..63, got 0"),
    ({"primitives": 1}, "primitives must be a bool, got int 1"),
    ({"layer": SelfTestLayer((1 << 200,), (0,))}, r"layer payloads do not fit this config's beats \(43 bits in, "
                                                 r"\d+ bits out\)"),
    ({"config": "small"}, "config must be an AcceleratorConfig, got str"),
    ({"layer": SelfTestLayer((1 << 42,), (0, 0))}, "layer has 2 expected tiles but 1 beats flagged last"),
    ({"layer": SelfTestLayer((1 << 42, 0), (0,))}, "final beat does not close a tile"),
    ({"layer": SelfTestLayer((1 << 42,), (0,) * 16 ** 4)}, r"layer.tiles must be an int in 1..65535, got 65536"),
])
def test_parameters_are_checked(kwargs, message):
    arguments = {"config": SMALL, "layer": build_test_layer(SMALL, tiles=3), "clocks_per_bit": 4,
                 "heartbeat_bit": 3, **kwargs}
    config = arguments.pop("config")
    layer = arguments.pop("layer")
    with pytest.raises(ParameterError, match=message):
        SelfTest(config, layer, **arguments)


def test_layer_is_checked():
    with pytest.raises(ParameterError, match="beats must be a non-empty tuple of ints"):
        SelfTestLayer((), (1,))
    with pytest.raises(ParameterError, match=r"expected must hold ints >= 0 \(packed payloads\)"):
        SelfTestLayer((1,), (-1,))
    with pytest.raises(ParameterError, match="tiles must be an int >= 3, got 2"):
        build_test_layer(SMALL, tiles=2)
