"""Xilinx ZCU102 evaluation board (Zynq UltraScale+ XCZU9EG-2FFVB1156E): the PL-side platform.

Sources
-------
Every pin and I/O standard comes from the Xilinx board files for zcu102, file version 3.4, in the public
repository ``Xilinx/XilinxBoardStore``:

[PINS]  ``boards/Xilinx/zcu102/3.4/part0_pins.xml`` (commit 319d55153cfd12a41ddc60049825db38fddc99a5):
        pin name, ``loc`` and ``iostandard`` of every FPGA pin below.
[BOARD] ``boards/Xilinx/zcu102/3.4/board.xml`` (commit 1ab1c3f13f997e4e5726644cfd8bf6a68f03102a): the
        interfaces built on those pins (clock frequency, reset polarity, GPIO bit order, UART directions)
        and the I/O standard of the UART pins, which [PINS] leaves out.

Corroborating, not authoritative (they agree with the board files on every pin and I/O standard here):

[XDC1]  ``alexforencich/verilog-ethernet``, ``example/ZCU102/fpga/fpga.xdc`` (commit
        9a8ba2f0f22c51379ef376d877e859a59f821d73): a hardware-tested ZCU102 design.
[XDC2]  ``slaclab/axi-soc-ultra-plus-core``, ``hardware/XilinxZcu102/xdc/XilinxZcu102.xdc`` (commit
        9ca3a854da2105c2fe2cb2965dc5ab92aef709a9): keeps the schematic net names and bank notes of the
        Xilinx ZCU102 master XDC in its comments.

The ZCU102 user guide (UG1182) could not be read through the project's search tools (only its title page
was reachable), so no UG1182 table is cited; the board files are the vendor source used.

Resources
---------
``clk125`` 0
    Differential 125 MHz system clock ``sysclk_p``/``sysclk_n`` = G21/F21, ``LVDS_25`` [PINS]. The 3.4 board
    files give this clock no interface and so no frequency; the 125 MHz comes from the schematic net name
    ``CLK_125_P``/``CLK_125_N`` (bank 47) in [XDC2] and the 8.000 ns ``create_clock`` on the same pins in
    [XDC1].
``clk300`` 0
    Differential user Si570 clock ``user_si570_sysclk_p``/``_n`` = AL8/AL7, ``DIFF_SSTL12`` [PINS]; 300 MHz is
    the ``frequency`` parameter of the ``user_si570_sysclk`` interface and component [BOARD]. The Si570 is
    programmable; 300 MHz is its power-on default. This is the accelerator's default clock.
``cpu_reset`` 0
    The CPU_RESET pushbutton (SW20) ``CPU_RESET`` = AM13, ``LVCMOS33`` [PINS]. Active high: the ``reset``
    interface has ``rst_polarity`` = 1 and the component is described as an active-high push button
    [BOARD]; [XDC2]'s comment agrees. It is the platform's ``default_rst`` (Amaranth resets are active high).
``led`` 0..7
    ``GPIO_LED_0_LS`` .. ``GPIO_LED_7_LS`` = AG14 AF13 AE13 AJ14 AJ15 AH13 AH14 AL12, ``LVCMOS33`` [PINS];
    bit *i* of the ``led_8bits`` interface is ``GPIO_LED_i_LS`` and the LEDs are active high [BOARD].
``button`` 0..4
    The five directional pushbuttons, numbered as bits 0..4 of the ``push_buttons_5bits`` interface
    [BOARD]: 0 = ``GPIO_SW_C`` (centre) = AG13, 1 = ``GPIO_SW_W`` = AF15, 2 = ``GPIO_SW_S`` = AE15,
    3 = ``GPIO_SW_E`` = AE14, 4 = ``GPIO_SW_N`` = AG15, all ``LVCMOS33`` [PINS]; active high [BOARD].
    :data:`BUTTON_INDEX` maps ``"c"``, ``"w"``, ``"s"``, ``"e"``, ``"n"`` to these numbers.
``switch`` 0..7
    The 8-position GPIO DIP switch ``GPIO_DIP_SW0`` .. ``GPIO_DIP_SW7`` = AN14 AP14 AM14 AN13 AN12 AP12 AL13
    AK13, ``LVCMOS33`` [PINS]; bit *i* of ``dip_switches_8bits`` is ``GPIO_DIP_SWi`` [BOARD]. The board files
    state no polarity for the switches, so they are not inverted.
``uart`` 0
    The PL-side UART: channel 2 of the CP2108 USB-UART bridge (the ``uart2_pl`` component) [BOARD].
    ``tx`` (FPGA output) = ``uart2_PL_TX`` = F13 and ``rx`` (FPGA input) = ``uart2_PL_RX`` = E13 [PINS];
    the directions are the ``uart2_pl`` interface's ``TxD`` (out) and ``RxD`` (in) port maps, and
    ``LVCMOS33`` is the ``iostandard`` of the ``uart2_pl`` component pins [BOARD]. [XDC1] agrees (F13 drives
    the CP2108's RX_2, E13 comes from its TX_2). Note: the schematic net names ``UART2_TXD_O_FPGA_RXD`` /
    ``UART2_RXD_I_FPGA_TXD`` read either way and third-party write-ups disagree on which net sits on which
    pin; the board files' port directions settle it. RTS/CTS are not in the 3.4 board files and are left
    out.

There are no connectors (the FMC, PMOD and other headers are not described here).
"""

from __future__ import annotations

from amaranth.build import Attrs, Clock, DiffPairs, Pins, Resource
from amaranth.vendor import XilinxPlatform
from amaranth_boards.resources import ButtonResources, LEDResources, SwitchResources, UARTResource

from ..contract.bandwidth import BoardMemory
from . import BoardClock

__all__ = [
    "BOARD_PART",
    "BUTTON_INDEX",
    "LED_PINS",
    "MEMORY",
    "INTERRUPT_CONTROLLER_BASE",
    "REGISTER_BASE",
    "CAPACITY",
    "DEFAULT_CLOCK",
    "DESCRIPTION",
    "PART",
    "PLATFORM",
    "ZCU102Platform",
    "block_design_tcl",
]

#: Resource number of each directional pushbutton (bit order of the vendor's ``push_buttons_5bits``).
BUTTON_INDEX = {"c": 0, "w": 1, "s": 2, "e": 3, "n": 4}

_LVCMOS33 = Attrs(IOSTANDARD="LVCMOS33")
#: ``GPIO_LED_0_LS`` .. ``GPIO_LED_7_LS`` [PINS], ``LVCMOS33``.
LED_PINS = "AG14 AF13 AE13 AJ14 AJ15 AH13 AH14 AL12"


class ZCU102Platform(XilinxPlatform):
    """The ZCU102's programmable logic: PL clocks, CPU reset, user LEDs, pushbuttons, DIP switch, PL UART.

    There is no Zynq PS block design here (docs/toolchain.md); the PS glue is added by the build flow.
    """

    device = "xczu9eg"
    package = "ffvb1156"
    speed = "2-e"
    default_clk = "clk300"
    default_rst = "cpu_reset"
    resources = [
        Resource("clk125", 0, DiffPairs("G21", "F21", dir="i"), Clock(125e6), Attrs(IOSTANDARD="LVDS_25")),
        Resource("clk300", 0, DiffPairs("AL8", "AL7", dir="i"), Clock(300e6), Attrs(IOSTANDARD="DIFF_SSTL12")),
        Resource("cpu_reset", 0, Pins("AM13", dir="i"), _LVCMOS33),
        *LEDResources(pins=LED_PINS, attrs=_LVCMOS33),
        *ButtonResources(pins="AG13 AF15 AE15 AE14 AG15", attrs=_LVCMOS33),
        *SwitchResources(pins="AN14 AP14 AM14 AN13 AN12 AP12 AL13 AK13", attrs=_LVCMOS33),
        UARTResource(0, rx="E13", tx="F13", attrs=_LVCMOS33),
    ]
    connectors = []


PLATFORM = ZCU102Platform
PART = "xczu9eg-ffvb1156-2-e"
#: XCZU9EG programmable logic: 274,080 CLB LUTs, 548,160 CLB flip-flops, 912 36 Kb block RAMs,
#: 2,520 DSP slices (the Zynq UltraScale+ MPSoC product table, DS891, as quoted in the project issue;
#: checked against the "available on zcu102" column of the utilization table in Xilinx/CHaiDNN README.md,
#: commit 7c0b733624acdc28fca80920d7fc93395d2ec88e).
CAPACITY = dict(lut=274_080, ff=548_160, bram36=912, dsp=2_520)
DEFAULT_CLOCK = BoardClock("clk300", 0, 300e6)
#: The PS's four high-performance slave ports S_AXI_HP0..3_FPD (128 bits each as the block design configures them)
#: and its 64-bit DDR4 at 2,400 MT/s: 19.2 GB/s peak, the figure the project takes for the board's SODIMM (not
#: checked against a data sheet here; a model input).
MEMORY = BoardMemory(ports=4, port_bytes=16, ddr_bytes_per_second=19.2e9,
                     source="S_AXI_HP0..3_FPD at 128 bits; 64-bit DDR4-2400 (19.2 GB/s peak, assumed)")
DESCRIPTION = "Xilinx ZCU102 evaluation board (Zynq UltraScale+ XCZU9EG-2FFVB1156E)"

#: The Vivado board part (board files 3.4, the version the pins above come from).
BOARD_PART = "xilinx.com:zcu102:part0:3.4"
#: Where the system's registers appear on M_AXI_HPM0_FPD (the start of its 0xA000_0000 window), and the
#: interrupt controller's registers after them.
REGISTER_BASE = 0xA000_0000
INTERRUPT_CONTROLLER_BASE = 0xA001_0000


def block_design_tcl(*, clock_mhz: float, module: str, instance: str, led_port: str = "leds") -> str:
    """The Zynq UltraScale+ block design around the system (docs/system.md), as a Tcl proc ``create_system_bd``.

    - ``zynq_ultra_ps_e`` with the board preset; ``M_AXI_HPM0_FPD`` (32 bits) through a SmartConnect to the
      system's ``s_axi`` at :data:`REGISTER_BASE` (4 KiB) and to an AXI interrupt controller (PYNQ takes
      interrupts only through one) at :data:`INTERRUPT_CONTROLLER_BASE`;
    - the system's ``m_axi`` through a SmartConnect to ``S_AXI_HP0_FPD`` at 128 bits, reaching DDR_LOW and
      DDR_HIGH;
    - ``pl_clk0`` at ``clock_mhz`` for everything, ``proc_sys_reset`` from ``pl_resetn0``;
    - the system's ``interrupt`` into the controller, whose ``irq`` drives ``pl_ps_irq0``;
    - the system's four status LEDs on an external port ``led_port`` (pins in the XDC).
    """
    ps, reset, intc = "zynq_ultra_ps_e_0", "proc_sys_reset_0", "axi_intc_0"
    control, memory = "smartconnect_control", "smartconnect_memory"
    return f"""proc create_system_bd {{design}} {{
  create_bd_design $design
  create_bd_cell -type ip -vlnv xilinx.com:ip:zynq_ultra_ps_e {ps}
  apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {{apply_board_preset "1"}} [get_bd_cells {ps}]
  set_property -dict [list \
    CONFIG.PSU__USE__M_AXI_GP0 {{1}} CONFIG.PSU__MAXIGP0__DATA_WIDTH {{32}} \
    CONFIG.PSU__USE__M_AXI_GP1 {{0}} CONFIG.PSU__USE__M_AXI_GP2 {{0}} \
    CONFIG.PSU__USE__S_AXI_GP2 {{1}} CONFIG.PSU__SAXIGP2__DATA_WIDTH {{128}} \
    CONFIG.PSU__USE__IRQ0 {{1}} \
    CONFIG.PSU__FPGA_PL0_ENABLE {{1}} CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ {{{clock_mhz:g}}} \
  ] [get_bd_cells {ps}]

  create_bd_cell -type module -reference {module} {instance}
  create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset {reset}
  create_bd_cell -type ip -vlnv xilinx.com:ip:axi_intc {intc}
  set_property -dict [list CONFIG.C_IRQ_CONNECTION {{1}} CONFIG.C_IRQ_IS_LEVEL {{1}}] [get_bd_cells {intc}]
  create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect {control}
  set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{2}}] [get_bd_cells {control}]
  create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect {memory}
  set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{1}}] [get_bd_cells {memory}]

  # Clock and reset
  connect_bd_net [get_bd_pins {ps}/pl_clk0] [get_bd_pins {ps}/maxihpm0_fpd_aclk] [get_bd_pins {ps}/saxihp0_fpd_aclk] \
    [get_bd_pins {instance}/ap_clk] [get_bd_pins {reset}/slowest_sync_clk] [get_bd_pins {intc}/s_axi_aclk] \
    [get_bd_pins {control}/aclk] [get_bd_pins {memory}/aclk]
  connect_bd_net [get_bd_pins {ps}/pl_resetn0] [get_bd_pins {reset}/ext_reset_in]
  connect_bd_net [get_bd_pins {reset}/peripheral_aresetn] [get_bd_pins {instance}/ap_rst_n] \
    [get_bd_pins {intc}/s_axi_aresetn] [get_bd_pins {control}/aresetn] [get_bd_pins {memory}/aresetn]

  # Registers: HPM0_FPD -> the system and the interrupt controller
  connect_bd_intf_net [get_bd_intf_pins {ps}/M_AXI_HPM0_FPD] [get_bd_intf_pins {control}/S00_AXI]
  connect_bd_intf_net [get_bd_intf_pins {control}/M00_AXI] [get_bd_intf_pins {instance}/s_axi]
  connect_bd_intf_net [get_bd_intf_pins {control}/M01_AXI] [get_bd_intf_pins {intc}/s_axi]

  # Memory: the system's master -> HP0_FPD (128 bits)
  connect_bd_intf_net [get_bd_intf_pins {instance}/m_axi] [get_bd_intf_pins {memory}/S00_AXI]
  connect_bd_intf_net [get_bd_intf_pins {memory}/M00_AXI] [get_bd_intf_pins {ps}/S_AXI_HP0_FPD]

  # Interrupt: the system -> the controller -> pl_ps_irq0
  connect_bd_net [get_bd_pins {instance}/interrupt] [get_bd_pins {intc}/intr]
  connect_bd_net [get_bd_pins {intc}/irq] [get_bd_pins {ps}/pl_ps_irq0]

  # Status LEDs (heartbeat, busy, done, error) on the board's GPIO LEDs
  create_bd_port -dir O -from 3 -to 0 {led_port}
  connect_bd_net [get_bd_pins {instance}/leds] [get_bd_ports {led_port}]

  # Addresses
  assign_bd_address -target_address_space [get_bd_addr_spaces {ps}/Data] -offset 0x{REGISTER_BASE:08X} -range 4K \
    [get_bd_addr_segs {instance}/s_axi/reg0]
  assign_bd_address -target_address_space [get_bd_addr_spaces {ps}/Data] -offset 0x{INTERRUPT_CONTROLLER_BASE:08X} \
    -range 64K [get_bd_addr_segs {intc}/S_AXI/Reg]
  assign_bd_address -target_address_space [get_bd_addr_spaces {instance}/m_axi] \
    [get_bd_addr_segs {ps}/SAXIGP2/HP0_DDR_LOW]
  assign_bd_address -target_address_space [get_bd_addr_spaces {instance}/m_axi] \
    [get_bd_addr_segs {ps}/SAXIGP2/HP0_DDR_HIGH]

  validate_bd_design
  save_bd_design
}}
"""
