# amaranth: UnusedElaboratable=no
"""Board top level (esb_hw/hw/top.py): elaboration on every board, and the ZCU102 top through its pins."""

import dataclasses
from pathlib import Path

import pytest

from esb_hw.boards import available_boards, load_board
from esb_hw.compiler.selftest import build_test_layer
from esb_hw.config import AcceleratorConfig
from esb_hw.errors import ParameterError
from esb_hw.hw.clocking import plan_clock, uart_clocks_per_bit
from esb_hw.hw.debug.selftest import report_line
from esb_hw.hw.top import SelfTestTop
from esb_hw.sim.pytest_helpers import simulate
from esb_hw.sim.runner import SIM_MODELS

ROOT = Path(__file__).resolve().parents[1]

SMALL = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=8, activation_k=8, rows=2, cols=2,
                          max_reduction=64, clock_mhz=150.0)


@pytest.mark.parametrize("board_name", available_boards())
def test_top_elaborates_for_every_board(board_name):
    board = load_board(board_name)
    top = SelfTestTop(SMALL, board.DEFAULT_CLOCK, layer=build_test_layer(SMALL))
    plan = board.PLATFORM().build(top, name="top", do_build=False, emit_src=False)
    verilog = plan.files["top.v"]
    primitive = {"zcu102": "MMCME4_BASE", "kcu105": "MMCME3_BASE"}[board_name]
    assert "module top" in verilog and primitive in verilog  # 150 MHz differs from both board clocks
    assert "create_clock" in plan.files["top.xdc"]


def test_top_uses_the_board_clock_directly_when_it_matches():
    board = load_board("zcu102")
    config = AcceleratorConfig(**{**SMALL.__dict__, "clock_mhz": 300.0})
    top = SelfTestTop(config, board.DEFAULT_CLOCK, layer=build_test_layer(config))
    plan = board.PLATFORM().build(top, name="top", do_build=False, emit_src=False)
    assert "MMCME4_BASE" not in plan.files["top.v"]


def board_top_verilog(config, layer) -> str:
    """The ZCU102 top.v, as build.py writes it, with stand-ins for the clocking and I/O primitives."""
    board = load_board("zcu102")
    plan = board.PLATFORM().build(SelfTestTop(config, board.DEFAULT_CLOCK, layer=layer), name="top",
                                  do_build=False, emit_src=False)
    models = [SIM_MODELS / name for name in ("xilinx_board_stubs.v", "xilinx_primitives.v")]
    return "\n".join([plan.files["top.v"], *(path.read_text() for path in models)])


# About 90 s each (the whole board top in Verilator): `make test-all` runs them.
@pytest.mark.slow
@pytest.mark.parametrize("corrupt", [False, True], ids=["passes", "corrupted_fails"])
def test_board_top_through_its_pins(corrupt):
    config = dataclasses.replace(SMALL, rows=2, cols=3, clock_mhz=200.0)
    layer = build_test_layer(config, tiles=4)
    if corrupt:
        layer = dataclasses.replace(layer, expected=(*layer.expected[:-1], layer.expected[-1] ^ 2))
    params = {"clocks_per_bit": uart_clocks_per_bit(plan_clock(300.0, 200.0).output_mhz),
              "expect_pass": not corrupt, "max_cycles": 20000,
              "line": report_line(not corrupt, layer.tiles, int(corrupt)).decode()}
    simulate(board_top_verilog(config, layer), "esb_hw.sim.testbenches.cocotb_board_top", simulator="verilator",
             toplevel="top", params=params)


def test_top_checks_its_parameters():
    board = load_board("zcu102")
    layer = build_test_layer(SMALL)
    with pytest.raises(ParameterError, match="layer must be a SelfTestLayer, got NoneType"):
        SelfTestTop(SMALL, board.DEFAULT_CLOCK, layer=None)
    with pytest.raises(ParameterError, match="config must be an AcceleratorConfig, got dict"):
        SelfTestTop({}, board.DEFAULT_CLOCK, layer=layer)
    with pytest.raises(ParameterError, match=r"clock must be a boards.BoardClock \(resource, number, frequency_hz\), "
                                             "got str 'zcu'"):
        SelfTestTop(SMALL, "zcu", layer=layer)
