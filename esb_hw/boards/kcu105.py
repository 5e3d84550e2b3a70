"""Xilinx KCU105 evaluation board (Kintex UltraScale XCKU040-2FFVA1156E), from amaranth-boards.

This module only adapts ``amaranth_boards.kcu105.KCU105Platform`` (amaranth-boards 0.0.21) to the board
interface of :mod:`boards`; it shows that a board can come from amaranth-boards unchanged. That platform
defines two resources:

``clk125`` 0
    Differential 125 MHz system clock, G10/F10, ``LVDS``; the platform's ``default_clk``.
``led`` 0..7
    AP8 H23 P20 P21 N22 M22 R23 P23, ``LVCMOS18``.

These pins and I/O standards were checked against the vendor board files, ``Xilinx/XilinxBoardStore``
``boards/Xilinx/kcu105/1.7/part0_pins.xml`` (commit 51b53c2682a8f41c4014e21735886c04a4495a49):
``sysclk_125_p``/``_n`` = G10/F10 ``LVDS`` and ``GPIO_LED_0_LS`` .. ``GPIO_LED_7_LS`` as above, ``LVCMOS18``.
``tests/test_boards.py`` holds that table.

``CAPACITY`` is the XCKU040 column of the Kintex UltraScale feature summary in DS890 (UltraScale
Architecture and Product Overview): 242,400 CLB LUTs, 484,800 CLB flip-flops, 600 36 Kb block RAMs,
1,920 DSP slices. The DS890 text could not be retrieved through the project's search tools when this module
was written; the figures are the well-known DS890 values and should be re-checked against the document.
"""

from __future__ import annotations

from amaranth_boards.kcu105 import KCU105Platform

from . import BoardClock

__all__ = ["CAPACITY", "DEFAULT_CLOCK", "DESCRIPTION", "PART", "PLATFORM"]

PLATFORM = KCU105Platform
PART = "xcku040-ffva1156-2-e"
CAPACITY = dict(lut=242_400, ff=484_800, bram36=600, dsp=1_920)
DEFAULT_CLOCK = BoardClock("clk125", 0, 125e6)
DESCRIPTION = "Xilinx KCU105 evaluation board (Kintex UltraScale XCKU040-2FFVA1156E)"
