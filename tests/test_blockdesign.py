"""The ZCU102 system's Vivado Tcl (esb_hw/boards/zcu102.py block_design_tcl, esb_hw/boards/_vivado.py
project_tcl) run in tclsh against stub Vivado commands: every interface connection, clock and reset net, address
segment and PS setting is checked by name against a table written from the IP's documented port names, every pin of
the system it names exists on the generated wrapper, and the project copies the bitstream and the .hwh into
deploy/."""

import shutil
import subprocess
from pathlib import Path

import pytest

from esb_hw.boards import _vivado, zcu102
from esb_hw.data import shipped_config
from esb_hw.hw.system import SYSTEM_NAME, System, system_verilog, wrapper_ports
from esb_hw.sim.layer_core import SMALL_ENGINE_CONFIG

# Stub Vivado: each command logs what the test needs and returns a handle naming its object.
STUBS = r"""
set log [open $::env(STUB_LOG) w]
proc note {args} { puts $::log [join $args "\t"] }
proc create_project {name dir args} { note PROJECT $name [lsearch -inline -glob $args x*] }
proc current_project {} { return project }
proc current_fileset {} { return sources_1 }
proc set_property {args} {
  if {[lindex $args 0] eq "-dict"} {
    foreach {key value} [lindex $args 1] { note PROPERTY [lindex $args 2] $key $value }
  } else { note PROPERTY [lindex $args 2] [lindex $args 0] [lindex $args 1] }
}
proc add_files {args} { note FILES [lindex $args end] }
proc update_compile_order {args} {}
proc create_bd_design {name} { note BD $name }
proc create_bd_cell {args} { note CELL [lindex $args end] [lindex $args [expr {[lsearch $args -vlnv] + 1}]] \
  [lindex $args [expr {[lsearch $args -reference] + 1}]] }
proc apply_bd_automation {args} { note AUTOMATION [lindex $args [expr {[lsearch $args -rule] + 1}]] \
  [lindex $args [expr {[lsearch $args -config] + 1}]] }
proc get_bd_cells {name} { return cell:$name }
proc get_bd_pins {name} { return pin:$name }
proc get_bd_intf_pins {name} { return intf:$name }
proc get_bd_ports {name} { return port:$name }
proc get_bd_addr_segs {name} { return seg:$name }
proc get_bd_addr_spaces {name} { return space:$name }
proc create_bd_port {args} { note PORT [lindex $args end] [lindex $args 1] }
proc connect_bd_net {args} { note NET {*}$args }
proc connect_bd_intf_net {args} { note INTF {*}$args }
proc assign_bd_address {args} {
  set offset ""; set range ""
  if {[lsearch $args -offset] >= 0} { set offset [lindex $args [expr {[lsearch $args -offset] + 1}]] }
  if {[lsearch $args -range] >= 0} { set range [lindex $args [expr {[lsearch $args -range] + 1}]] }
  note ADDRESS [lindex $args [expr {[lsearch $args -target_address_space] + 1}]] [lindex $args end] $offset $range
}
proc validate_bd_design {} { note VALIDATE }
proc save_bd_design {} { note SAVE }
proc get_files {name} { return $name }
proc make_wrapper {args} { note WRAPPER {*}$args }
proc launch_runs {args} { note LAUNCH {*}$args }
proc wait_on_run {run} {}
proc get_runs {name} { return run:$name }
proc get_property {name object} { if {$name eq "PROGRESS"} { return $::env(STUB_PROGRESS) } ; return "failed" }
proc open_run {run} {}
proc report_utilization {args} { note REPORT utilization }
proc report_timing_summary {args} { note REPORT timing }
source [lindex $argv 0]
close $log
"""

CONFIG = shipped_config("default")
SMALL = SMALL_ENGINE_CONFIG
PS, INSTANCE = "zynq_ultra_ps_e_0", f"{SYSTEM_NAME}_0"


def run_tcl(tmp_path, *, progress="100%", mutate=lambda text: text):
    tclsh = shutil.which("tclsh")
    assert tclsh, "tclsh is missing (Debian package tcl)"
    (tmp_path / "system_bd.tcl").write_text(mutate(zcu102.block_design_tcl(
        clock_mhz=CONFIG.clock_mhz, module=SYSTEM_NAME, instance=INSTANCE)))
    (tmp_path / "system.tcl").write_text(_vivado.project_tcl(part=zcu102.PART, board_part=zcu102.BOARD_PART,
                                                             verilog="esb_system.v", bd_script="system_bd.tcl",
                                                             xdc="system.xdc"))
    (tmp_path / "stubs.tcl").write_text(STUBS)
    run = tmp_path / "vivado" / "esb_system.runs" / "impl_1"
    run.mkdir(parents=True)
    (run / "esb_wrapper.bit").write_bytes(b"bit")
    handoff = tmp_path / "vivado" / "esb_system.gen" / "sources_1" / "bd" / "esb" / "hw_handoff"
    handoff.mkdir(parents=True)
    (handoff / "esb.hwh").write_text("<hwh/>")
    result = subprocess.run([tclsh, str(tmp_path / "stubs.tcl"), str(tmp_path / "system.tcl")], cwd=tmp_path,
                            env={"STUB_LOG": str(tmp_path / "log.txt"), "STUB_PROGRESS": progress,
                                 "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=False)
    lines = [line.split("\t") for line in (tmp_path / "log.txt").read_text().splitlines()]
    return result, lines


def handles(line, kind):
    return {item.split(":", 1)[1] for item in line[1:] if item.startswith(f"{kind}:")}


# Written from the IPs' documented port names (zynq_ultra_ps_e PG201, proc_sys_reset PG164, axi_intc PG099,
# smartconnect PG247) and the system's ports (docs/system.md).
EXPECTED_INTERFACES = [
    {f"{PS}/M_AXI_HPM0_FPD", "smartconnect_control/S00_AXI"},
    {"smartconnect_control/M00_AXI", f"{INSTANCE}/s_axi"},
    {"smartconnect_control/M01_AXI", "axi_intc_0/s_axi"},
    {f"{INSTANCE}/m_axi", "smartconnect_memory/S00_AXI"},
    {"smartconnect_memory/M00_AXI", f"{PS}/S_AXI_HP0_FPD"},
]
EXPECTED_NETS = [
    {f"{PS}/pl_clk0", f"{PS}/maxihpm0_fpd_aclk", f"{PS}/saxihp0_fpd_aclk", f"{INSTANCE}/ap_clk",
     "proc_sys_reset_0/slowest_sync_clk", "axi_intc_0/s_axi_aclk", "smartconnect_control/aclk",
     "smartconnect_memory/aclk"},
    {f"{PS}/pl_resetn0", "proc_sys_reset_0/ext_reset_in"},
    {"proc_sys_reset_0/peripheral_aresetn", f"{INSTANCE}/ap_rst_n", "axi_intc_0/s_axi_aresetn",
     "smartconnect_control/aresetn", "smartconnect_memory/aresetn"},
    {f"{INSTANCE}/interrupt", "axi_intc_0/intr"},
    {"axi_intc_0/irq", f"{PS}/pl_ps_irq0"},
]
EXPECTED_ADDRESSES = [
    (f"{PS}/Data", f"{INSTANCE}/s_axi/reg0", "0xA0000000", "4K"),
    (f"{PS}/Data", "axi_intc_0/S_AXI/Reg", "0xA0010000", "64K"),
    (f"{INSTANCE}/m_axi", f"{PS}/SAXIGP2/HP0_DDR_LOW", "", ""),
    (f"{INSTANCE}/m_axi", f"{PS}/SAXIGP2/HP0_DDR_HIGH", "", ""),
]
EXPECTED_PS = {"PSU__USE__M_AXI_GP0": "1", "PSU__USE__S_AXI_GP2": "1", "PSU__SAXIGP2__DATA_WIDTH": "128",
               "PSU__USE__IRQ0": "1", "PSU__FPGA_PL0_ENABLE": "1", "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ": "200"}


def check_design(lines):
    """Every connection, net, address segment and PS setting the block design made, against the tables."""
    interfaces = [handles(line, "intf") for line in lines if line[0] == "INTF"]
    assert sorted(map(sorted, interfaces)) == sorted(map(sorted, EXPECTED_INTERFACES))
    nets = [handles(line, "pin") for line in lines if line[0] == "NET"]
    led_nets = [line for line in lines if line[0] == "NET" and handles(line, "port")]
    assert sorted(map(sorted, (net for net in nets if net))) == sorted(map(sorted, EXPECTED_NETS + [
        {f"{INSTANCE}/leds"}]))
    assert handles(led_nets[0], "port") == {"leds"}
    addresses = [(line[1].split(":", 1)[1], line[2].split(":", 1)[1], line[3], line[4]) for line in lines
                 if line[0] == "ADDRESS"]
    assert sorted(addresses) == sorted(EXPECTED_ADDRESSES)
    ps = {line[2].removeprefix("CONFIG."): line[3] for line in lines
          if line[0] == "PROPERTY" and line[1] == f"cell:{PS}"}
    assert {key: ps.get(key) for key in EXPECTED_PS} == EXPECTED_PS
    cells = {line[1]: line[2:] for line in lines if line[0] == "CELL"}
    assert cells[INSTANCE][1] == SYSTEM_NAME  # a module reference to the wrapper
    assert cells[PS][0] == "xilinx.com:ip:zynq_ultra_ps_e"
    assert ["AUTOMATION", "xilinx.com:bd_rule:zynq_ultra_ps_e", 'apply_board_preset "1"'] in lines
    order = [line[0] for line in lines]
    assert order.index("VALIDATE") < order.index("SAVE") < order.index("WRAPPER") < order.index("LAUNCH")
    assert ["PROPERTY", "project", "board_part", zcu102.BOARD_PART] in lines


def test_block_design_connections_clocks_and_addresses(tmp_path):
    result, lines = run_tcl(tmp_path)
    assert result.returncode == 0, result.stderr
    check_design(lines)
    assert (tmp_path / "deploy" / "esb_system.bit").read_bytes() == b"bit"
    assert (tmp_path / "deploy" / "esb_system.hwh").read_text() == "<hwh/>"


def test_every_system_pin_named_exists_on_the_wrapper(tmp_path):
    _, lines = run_tcl(tmp_path)
    system = System(SMALL)
    system_verilog(system)  # elaborated: the ports are the same for every config
    ports = {name for name, *_ in wrapper_ports(system)}
    named = set()
    for line in lines:
        for item in line[1:]:
            kind, _, path = item.partition(":")
            if kind in ("pin", "intf") and path.startswith(f"{INSTANCE}/"):
                named.add(path.split("/")[1])
    assert named and named <= ports | {"s_axi", "m_axi"}, named - ports
    assert {"s_axi_awaddr", "m_axi_araddr"} <= ports


def test_a_failed_implementation_is_an_error_line(tmp_path):
    result, _ = run_tcl(tmp_path, progress="30%")
    assert result.returncode != 0
    assert "ERROR: [esb-hw] implementation did not finish" in result.stderr


@pytest.mark.parametrize(("wrong", "right"), [("S_AXI_HP0_FPD", "S_AXI_HPC0_FPD"), ("-range 4K", "-range 8K"),
                                              ("pl_ps_irq0", "pl_ps_irq1"), ("{128}", "{64}")])
def test_the_check_catches_a_wrong_block_design(tmp_path, wrong, right):
    result, lines = run_tcl(tmp_path, mutate=lambda text: text.replace(wrong, right))
    assert result.returncode == 0, result.stderr
    with pytest.raises(AssertionError):
        check_design(lines)


def test_reports_and_log_are_parsed(tmp_path):
    utilization = tmp_path / "utilization.rpt"
    utilization.write_text("| Site Type | Used | Fixed |\n"
                           "| CLB LUTs                |  6812 |     0 |   274080 |  2.49 |\n"
                           "| CLB Registers           |  7001 |     0 |\n| Block RAM Tile    |   23.5 |     0 |\n"
                           "| DSPs              |    0 |     0 |\n")
    assert _vivado.parse_utilization(utilization) == {"lut": 6812, "ff": 7001, "bram36": 23.5, "dsp": 0}
    timing = tmp_path / "timing.rpt"
    timing.write_text("    WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)\n"
                      "    -------      -------  ---------------------  -------------------      -------\n"
                      "     -0.125       -3.000                     12                 9000        0.010\n")
    assert _vivado.parse_timing(timing) == {"wns_ns": -0.125, "whs_ns": 0.01, "met": False}
    log = tmp_path / "system.log"
    log.write_text("INFO: fine\nERROR: [BD 41-758] The following clock pins are not connected\nERROR: later\n")
    assert _vivado.first_error_line(log) == "ERROR: [BD 41-758] The following clock pins are not connected"
    with pytest.raises(Exception, match="no 'DSPs' row"):
        utilization.write_text("| CLB LUTs | 1 |\n| CLB Registers | 2 |\n| Block RAM Tile | 3 |\n")
        _vivado.parse_utilization(utilization)
    assert "missing" in _vivado.first_error_line(tmp_path / "absent.log")
    assert Path(tmp_path / "absent.log").exists() is False
