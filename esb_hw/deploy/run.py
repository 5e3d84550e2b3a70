#!/usr/bin/env python3
"""Run a program bundle on the esb-hw system of this folder's bitstream (PYNQ), check it against its golden output
and print the hardware's counters. Exit codes: 0 equal, 1 different or a hardware error, 2 bad input."""

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from esb_hw.driver import Accelerator, ProgramBundle
from esb_hw.errors import EsbError


def main(argv=None, bus=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bitfile", default=str(HERE / "esb_system.bit"), help="the overlay (its .hwh beside it)")
    parser.add_argument("--program", default=str(HERE / "program.npz"), help="a program bundle")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the run")
    parser.add_argument("--poll", action="store_true", help="poll STATUS instead of waiting for the interrupt")
    args = parser.parse_args(argv)
    try:
        bundle = ProgramBundle.load(args.program)
        if bus is None:
            from esb_hw.driver.pynq_bus import PynqBus

            bus = PynqBus.from_overlay(args.bitfile, use_interrupt=not args.poll)
        accelerator = Accelerator(bus)
        result = accelerator.run_blocking(bundle, timeout=args.timeout, use_interrupt=not args.poll)
        identity = accelerator.identity
        print(f"{bundle.name}: {bundle.descriptors} descriptors on a {identity['rows']}x{identity['cols']} array")
        print(f"cycles {result.cycles:,}; beats read {result.beats_read:,}, written {result.beats_written:,}; "
              f"compute cycles per layer {result.layer_cycles}; ended by {'interrupt' if result.interrupt else 'poll'}")
        if bundle.expected is not None:
            result.check(bundle)
            print(f"output: {len(result.output):,} bytes, equal to the golden model")
        return 0
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
