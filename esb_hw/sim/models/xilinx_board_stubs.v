// Stand-ins for the clocking and I/O primitives the generated board top instantiates, so that
// `verilator --lint-only` and the top-level cocotb test can use top.v without the vendor library. Port names
// and directions follow UG974 (UltraScale Architecture Libraries Guide). The buffers and FDPE behave as
// documented; the MMCM stand-in only passes its input clock through and reports lock (frequency synthesis is
// not simulated; tests/test_top.py checks the MMCM settings instead).
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off UNDRIVEN */
module BUFG (input I, output O); assign O = I; endmodule
module IBUF (input I, output O); assign O = I; endmodule
module IBUFDS (input I, input IB, output O); assign O = I; endmodule
module OBUFT (input I, input T, output O); assign O = T ? 1'bz : I; endmodule
module FDPE #(parameter [0:0] INIT = 1'b1) (input C, input CE, input D, input PRE, output reg Q);
  always @(posedge C or posedge PRE) if (PRE) Q <= 1'b1; else if (CE) Q <= D;
endmodule
module MMCME3_BASE #(
  parameter real CLKIN1_PERIOD = 0.0, parameter integer DIVCLK_DIVIDE = 1,
  parameter real CLKFBOUT_MULT_F = 5.0, parameter real CLKOUT0_DIVIDE_F = 1.0
) (input CLKIN1, input CLKFBIN, input RST, input PWRDWN, output CLKFBOUT, output CLKOUT0, output LOCKED);
  assign CLKFBOUT = CLKIN1;
  assign CLKOUT0 = CLKIN1;
  assign LOCKED = !RST;
endmodule
module MMCME4_BASE #(
  parameter real CLKIN1_PERIOD = 0.0, parameter integer DIVCLK_DIVIDE = 1,
  parameter real CLKFBOUT_MULT_F = 5.0, parameter real CLKOUT0_DIVIDE_F = 1.0
) (input CLKIN1, input CLKFBIN, input RST, input PWRDWN, output CLKFBOUT, output CLKOUT0, output LOCKED);
  assign CLKFBOUT = CLKIN1;
  assign CLKOUT0 = CLKIN1;
  assign LOCKED = !RST;
endmodule
