#!/bin/sh
# Icarus Verilog runs half of the cocotb tests. Install it when we may; otherwise say how, and the
# Icarus cases skip with that reason.
if command -v iverilog >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing iverilog with apt-get"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog) >/dev/null \
    && exit 0
  echo "warning: apt-get install iverilog failed; the Icarus test cases will be skipped" >&2
  exit 0
fi
echo "warning: iverilog is not installed and we are not root: run 'sudo apt-get install iverilog'." >&2
echo "         The Icarus test cases will be skipped; the Verilator cases still run." >&2
