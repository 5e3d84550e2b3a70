// Behavioral models of the UltraScale+ primitives the ternary adders use, for Icarus and Verilator runs
// of netlists built with primitives=True. Written from the primitive descriptions in UG974 (UltraScale
// Architecture Libraries Guide): LUT6_2 returns INIT at the index formed by its inputs (O5 from the lower
// 32 bits, with I5 ignored), and CARRY8 in SINGLE_CY8 mode is an 8-bit carry chain:
// CO[i] = S[i] ? carry into bit i : DI[i], O[i] = S[i] ^ carry into bit i.
module LUT6_2 #(parameter [63:0] INIT = 64'h0) (
  output O6, output O5, input I0, input I1, input I2, input I3, input I4, input I5
);
  assign O6 = INIT[{I5, I4, I3, I2, I1, I0}];
  assign O5 = INIT[{1'b0, I4, I3, I2, I1, I0}];
endmodule

module CARRY8 #(parameter CARRY_TYPE = "SINGLE_CY8") (
  output [7:0] CO, output [7:0] O, input CI, input CI_TOP, input [7:0] DI, input [7:0] S
);
  wire [8:0] carry;
  assign carry[0] = CI;
  genvar i;
  generate
    for (i = 0; i < 8; i = i + 1) begin : chain
      assign carry[i + 1] = S[i] ? carry[i] : DI[i];
    end
  endgenerate
  assign O = S ^ carry[7:0];
  assign CO = carry[8:1];
endmodule

module LUT6 #(parameter [63:0] INIT = 64'h0) (
  output O, input I0, input I1, input I2, input I3, input I4, input I5
);
  assign O = INIT[{I5, I4, I3, I2, I1, I0}];
endmodule
