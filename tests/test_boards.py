"""Board discovery and board pin tables (docs/architecture.md, boards/).

The expected pin tables below were written by hand from the vendor board files, not from the board
modules, and are compared exactly with the XDC that Amaranth generates (``platform.build(..., do_build=False)``,
no Vivado). The test top requests every resource, so the XDC holds every pin of the platform.
"""

from __future__ import annotations

import re
import types

import pytest
from amaranth import ClockDomain, ClockSignal, Elaboratable, Module, ResetSignal, Signal
from amaranth.lib import io

from esb_hw import boards
from esb_hw.boards import BoardClock, BoardInterfaceError, UnknownBoardError, available_boards, load_board

# ZCU102, one row per FPGA pin: XDC port key -> (package pin, IOSTANDARD).
# Source: Xilinx/XilinxBoardStore, boards/Xilinx/zcu102/3.4/part0_pins.xml
#   (commit 319d55153cfd12a41ddc60049825db38fddc99a5), <pin name=... loc=... iostandard=...>;
# the UART pins have no iostandard there: LVCMOS33 and the TX/RX directions are from
#   boards/Xilinx/zcu102/3.4/board.xml (component "uart2_pl" pins; interface "uart2_pl" TxD out -> uart2_PL_TX,
#   RxD in -> uart2_PL_RX); push-button numbering is the bit order of board.xml "push_buttons_5bits" (C W S E N).
ZCU102_EXPECTED = {
    "clk125_0.p": ("G21", "LVDS_25"),  # sysclk_p
    "clk125_0.n": ("F21", "LVDS_25"),  # sysclk_n
    "clk300_0.p": ("AL8", "DIFF_SSTL12"),  # user_si570_sysclk_p
    "clk300_0.n": ("AL7", "DIFF_SSTL12"),  # user_si570_sysclk_n
    "cpu_reset_0": ("AM13", "LVCMOS33"),  # CPU_RESET
    "led_0": ("AG14", "LVCMOS33"),  # GPIO_LED_0_LS
    "led_1": ("AF13", "LVCMOS33"),  # GPIO_LED_1_LS
    "led_2": ("AE13", "LVCMOS33"),  # GPIO_LED_2_LS
    "led_3": ("AJ14", "LVCMOS33"),  # GPIO_LED_3_LS
    "led_4": ("AJ15", "LVCMOS33"),  # GPIO_LED_4_LS
    "led_5": ("AH13", "LVCMOS33"),  # GPIO_LED_5_LS
    "led_6": ("AH14", "LVCMOS33"),  # GPIO_LED_6_LS
    "led_7": ("AL12", "LVCMOS33"),  # GPIO_LED_7_LS
    "button_0": ("AG13", "LVCMOS33"),  # GPIO_SW_C
    "button_1": ("AF15", "LVCMOS33"),  # GPIO_SW_W
    "button_2": ("AE15", "LVCMOS33"),  # GPIO_SW_S
    "button_3": ("AE14", "LVCMOS33"),  # GPIO_SW_E
    "button_4": ("AG15", "LVCMOS33"),  # GPIO_SW_N
    "switch_0": ("AN14", "LVCMOS33"),  # GPIO_DIP_SW0
    "switch_1": ("AP14", "LVCMOS33"),  # GPIO_DIP_SW1
    "switch_2": ("AM14", "LVCMOS33"),  # GPIO_DIP_SW2
    "switch_3": ("AN13", "LVCMOS33"),  # GPIO_DIP_SW3
    "switch_4": ("AN12", "LVCMOS33"),  # GPIO_DIP_SW4
    "switch_5": ("AP12", "LVCMOS33"),  # GPIO_DIP_SW5
    "switch_6": ("AL13", "LVCMOS33"),  # GPIO_DIP_SW6
    "switch_7": ("AK13", "LVCMOS33"),  # GPIO_DIP_SW7
    "uart_0.tx": ("F13", "LVCMOS33"),  # uart2_PL_TX (FPGA output, TxD)
    "uart_0.rx": ("E13", "LVCMOS33"),  # uart2_PL_RX (FPGA input, RxD)
}
# Clock frequencies: 300 MHz is the "frequency" parameter of board.xml's user_si570_sysclk interface (3.4);
# the board files give sysclk no frequency, 125 MHz is from the schematic net name CLK_125_P/N on G21/F21
# (slaclab/axi-soc-ultra-plus-core hardware/XilinxZcu102/xdc/XilinxZcu102.xdc, copied from the master XDC)
# and the 8 ns create_clock in alexforencich/verilog-ethernet example/ZCU102/fpga/fpga.xdc.
ZCU102_CLOCKS = {"clk125_0": 125e6, "clk300_0": 300e6}

# KCU105 (amaranth-boards' platform). Source: Xilinx/XilinxBoardStore,
# boards/Xilinx/kcu105/1.7/part0_pins.xml (commit 51b53c2682a8f41c4014e21735886c04a4495a49).
KCU105_EXPECTED = {
    "clk125_0.p": ("G10", "LVDS"),  # sysclk_125_p
    "clk125_0.n": ("F10", "LVDS"),  # sysclk_125_n
    "led_0": ("AP8", "LVCMOS18"),  # GPIO_LED_0_LS
    "led_1": ("H23", "LVCMOS18"),  # GPIO_LED_1_LS
    "led_2": ("P20", "LVCMOS18"),  # GPIO_LED_2_LS
    "led_3": ("P21", "LVCMOS18"),  # GPIO_LED_3_LS
    "led_4": ("N22", "LVCMOS18"),  # GPIO_LED_4_LS
    "led_5": ("M22", "LVCMOS18"),  # GPIO_LED_5_LS
    "led_6": ("R23", "LVCMOS18"),  # GPIO_LED_6_LS
    "led_7": ("P23", "LVCMOS18"),  # GPIO_LED_7_LS
}
KCU105_CLOCKS = {"clk125_0": 125e6}

_PIN_RE = re.compile(r'^set_property (?:LOC|PACKAGE_PIN) (\S+) \[get_ports "([^"]+)"\]$')
_IOSTD_RE = re.compile(r'^set_property IOSTANDARD "?([^"\s]+)"? \[get_ports "([^"]+)"\]$')
_CLOCK_RE = re.compile(r'^create_clock -name \S+ -period (\S+) \[get_nets "([^"]+)"\]$')


def _port_key(port: str) -> str:
    """``uart_0__rx__io`` -> ``uart_0.rx``, ``clk125_0__p`` -> ``clk125_0.p``, ``led_3__io`` -> ``led_3``."""
    return port.removesuffix("__io").replace("__", ".")


def parse_xdc(text: str) -> tuple[dict[str, tuple[str | None, str | None]], dict[str, float]]:
    """The pin table ``{port key: (pin, iostandard)}`` and the clocks ``{resource_n: Hz}`` of an XDC file."""
    pins: dict[str, str] = {}
    iostandards: dict[str, str] = {}
    clocks: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _PIN_RE.match(line):
            pins[_port_key(m[2])] = m[1]
        elif m := _IOSTD_RE.match(line):
            iostandards[_port_key(m[2])] = m[1]
        elif m := _CLOCK_RE.match(line):
            clocks[_port_key(m[2]).split(".")[0]] = 1e9 / float(m[1])
    table = {key: (pins.get(key), iostandards.get(key)) for key in sorted(pins.keys() | iostandards.keys())}
    return table, clocks


def compare_pin_tables(expected: dict, actual: dict) -> list[str]:
    """Every difference between two pin tables, one message each; empty when they match exactly."""
    problems = []
    for key in sorted(expected.keys() | actual.keys()):
        if key not in actual:
            problems.append(f"{key}: expected {expected[key]}, not in the XDC")
        elif key not in expected:
            problems.append(f"{key}: {actual[key]} in the XDC but not in the expected table")
        elif expected[key] != actual[key]:
            problems.append(f"{key}: expected {expected[key]}, XDC has {actual[key]}")
    return problems


class AllResourcesBlinky(Elaboratable):
    """Requests every resource of the platform, so that the XDC constrains every pin; counts on ``clock``,
    blinks LED 0 and, where there is a UART, loops its RX back to TX."""

    def __init__(self, clock: BoardClock):
        self.clock = clock

    def elaborate(self, platform):
        m = Module()
        # Amaranth 0.5 only constrains ports that reach a buffer, so every port gets one.
        bufs = {}

        def buffer(key, port):
            if isinstance(port, io.PortLike):
                bufs[key] = io.Buffer(port.direction, port)
                m.submodules["buf_" + key.replace(".", "_")] = bufs[key]
            else:  # a resource with subsignals, e.g. uart.rx / uart.tx
                for sub_name, sub_port in vars(port).items():
                    buffer(f"{key}.{sub_name}", sub_port)

        for name, number in platform.resources:
            buffer(f"{name}_{number}", platform.request(name, number, dir="-"))

        m.domains.sync = ClockDomain()
        m.d.comb += ClockSignal("sync").eq(bufs["{}_{}".format(*self.clock[:2])].i)
        if platform.default_rst is not None:
            m.d.comb += ResetSignal("sync").eq(bufs[f"{platform.default_rst}_0"].i)
        counter = Signal(28)
        m.d.sync += counter.eq(counter + 1)
        m.d.comb += bufs["led_0"].o.eq(counter[-1])
        if "uart_0.tx" in bufs:
            m.d.comb += bufs["uart_0.tx"].o.eq(bufs["uart_0.rx"].i)
        return m


def _build_xdc(board_name: str) -> str:
    board = load_board(board_name)
    plan = board.PLATFORM().build(AllResourcesBlinky(board.DEFAULT_CLOCK), do_build=False)
    return plan.files["top.xdc"]


@pytest.fixture(scope="module")
def zcu102_xdc():
    return _build_xdc("zcu102")


@pytest.fixture(scope="module")
def kcu105_xdc():
    return _build_xdc("kcu105")


# --- ZCU102 pin table ------------------------------------------------------------------------------------


def test_zcu102_xdc_matches_vendor_table(zcu102_xdc):
    table, _ = parse_xdc(zcu102_xdc)
    assert compare_pin_tables(ZCU102_EXPECTED, table) == []


def test_zcu102_xdc_clock_constraints(zcu102_xdc):
    _, clocks = parse_xdc(zcu102_xdc)
    assert clocks.keys() == ZCU102_CLOCKS.keys()
    for name, hz in ZCU102_CLOCKS.items():
        assert clocks[name] == pytest.approx(hz)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda t: t.update({"led_3": ("AJ13", "LVCMOS33")}), "led_3"),  # one pin changed
        (lambda t: t.update({"uart_0.tx": ("F13", "LVCMOS18")}), "uart_0.tx"),  # one I/O standard changed
        (lambda t: t.update({"uart_0.tx": ("E13", "LVCMOS33"), "uart_0.rx": ("F13", "LVCMOS33")}), "uart_0.rx"),
        (lambda t: t.pop("switch_7"), "switch_7"),  # a pin missing from the expected table
        (lambda t: t.update({"led_8": ("A1", "LVCMOS33")}), "led_8"),  # a pin the XDC does not have
    ],
)
def test_checker_detects_a_wrong_expected_table(zcu102_xdc, mutate, needle):
    table, _ = parse_xdc(zcu102_xdc)
    wrong = dict(ZCU102_EXPECTED)
    mutate(wrong)
    problems = compare_pin_tables(wrong, table)
    assert problems
    assert any(p.startswith(needle + ":") for p in problems)


def test_parse_xdc_reads_both_pin_spellings():
    text = (
        'set_property LOC G21 [get_ports "clk125_0__p"]\n'
        'set_property IOSTANDARD "LVDS_25" [get_ports "clk125_0__p"]\n'
        'set_property PACKAGE_PIN AM13 [get_ports "cpu_reset_0__io"]\n'
        'set_property IOSTANDARD LVCMOS33 [get_ports "cpu_reset_0__io"]\n'
        'create_clock -name clk125_0__p -period 8.0 [get_nets "clk125_0__p"]\n'
    )
    table, clocks = parse_xdc(text)
    assert table == {"clk125_0.p": ("G21", "LVDS_25"), "cpu_reset_0": ("AM13", "LVCMOS33")}
    assert clocks == {"clk125_0": pytest.approx(125e6)}


def test_zcu102_polarity_and_directions():
    # board.xml 3.4: reset rst_polarity = 1 ("Active High"); LEDs and push buttons "Active High".
    platform = load_board("zcu102").PLATFORM()
    for (name, _number), resource in platform.resources.items():
        for phys in resource.ios:
            if hasattr(phys, "invert"):
                assert phys.invert is False, name
    uart = platform.resources[("uart", 0)]
    dirs = {sub.name: sub.ios[0].dir for sub in uart.ios}
    assert dirs == {"rx": "i", "tx": "o"}
    assert platform.default_rst == "cpu_reset"


def test_zcu102_button_index_is_vendor_bit_order():
    zcu102 = load_board("zcu102")
    assert zcu102.BUTTON_INDEX == {"c": 0, "w": 1, "s": 2, "e": 3, "n": 4}
    pins = {d: ZCU102_EXPECTED[f"button_{i}"][0] for d, i in zcu102.BUTTON_INDEX.items()}
    assert pins == {"c": "AG13", "w": "AF15", "s": "AE15", "e": "AE14", "n": "AG15"}


# --- KCU105 (the mechanism is general) ------------------------------------------------------------------


def test_kcu105_builds_a_plan_matching_vendor_table(kcu105_xdc):
    table, clocks = parse_xdc(kcu105_xdc)
    assert compare_pin_tables(KCU105_EXPECTED, table) == []
    assert clocks == {name: pytest.approx(hz) for name, hz in KCU105_CLOCKS.items()}


def test_kcu105_plan_has_the_vivado_files():
    board = load_board("kcu105")
    plan = board.PLATFORM().build(AllResourcesBlinky(board.DEFAULT_CLOCK), do_build=False)
    assert {"top.v", "top.xdc", "top.tcl", "build_top.sh"} <= set(plan.files)


# --- the board interface -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["kcu105", "zcu102"])
def test_board_interface(name):
    board = load_board(name)
    platform = board.PLATFORM()
    assert board.PART == f"{platform.device}-{platform.package}-{platform.speed}"
    assert set(board.CAPACITY) == {"lut", "ff", "bram36", "dsp"}
    assert isinstance(board.DEFAULT_CLOCK, BoardClock)
    resource = platform.resources[tuple(board.DEFAULT_CLOCK[:2])]
    assert resource.clock is not None
    assert resource.clock.frequency == board.DEFAULT_CLOCK.frequency_hz
    assert platform.default_clk == board.DEFAULT_CLOCK.resource
    assert board.DESCRIPTION


def test_zcu102_interface_values():
    zcu102 = load_board("zcu102")
    assert zcu102.PART == "xczu9eg-ffvb1156-2-e"
    assert zcu102.CAPACITY == {"lut": 274_080, "ff": 548_160, "bram36": 912, "dsp": 2_520}
    assert zcu102.DEFAULT_CLOCK == BoardClock("clk300", 0, 300e6)
    assert zcu102.DEFAULT_CLOCK[:2] == ("clk300", 0)
    assert zcu102.PLATFORM.__name__ == "ZCU102Platform"


# --- discovery ---------------------------------------------------------------------------------------------


def test_available_boards():
    assert available_boards() == ["kcu105", "zcu102"]


@pytest.mark.parametrize("name", ["nope", "ZCU102", "zcu102.py", "../zcu102", "", "__init__"])
def test_unknown_board_lists_the_boards(name):
    with pytest.raises(UnknownBoardError) as info:
        load_board(name)
    assert isinstance(info.value, ValueError)
    assert str(info.value) == f"unknown board {name!r}; available: kcu105, zcu102"
    assert info.value.available == ["kcu105", "zcu102"]


def test_load_board_returns_the_module():
    assert load_board("zcu102") is boards.zcu102
    assert load_board("kcu105").PLATFORM.__name__ == "KCU105Platform"


def test_interface_check_rejects_incomplete_modules():
    good = load_board("zcu102")
    fake = types.ModuleType("fake")
    with pytest.raises(BoardInterfaceError, match="does not define PLATFORM, PART"):
        boards.check_interface("fake", fake)
    for attr in boards.REQUIRED_ATTRIBUTES:
        setattr(fake, attr, getattr(good, attr))
    boards.check_interface("fake", fake)
    fake.CAPACITY = {"lut": 1, "ff": 1, "bram36": 1}
    with pytest.raises(BoardInterfaceError, match="CAPACITY"):
        boards.check_interface("fake", fake)
    fake.CAPACITY = dict(good.CAPACITY)
    fake.DEFAULT_CLOCK = ("clk300", 0)
    with pytest.raises(BoardInterfaceError, match="DEFAULT_CLOCK"):
        boards.check_interface("fake", fake)
