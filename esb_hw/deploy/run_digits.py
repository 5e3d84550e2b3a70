#!/usr/bin/env python3
"""Run the digits CNN (digits.npz) on the esb-hw system of this folder's bitstream (PYNQ), image by image:
accuracy against the labels, every output equal to the golden model's, cycles and images per second.
Exit codes: 0 all outputs equal, 1 a difference or a hardware error, 2 bad input."""

import argparse
import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from esb_hw.driver import Accelerator
from esb_hw.driver.batch import BatchProgram, run_batch
from esb_hw.errors import EsbError


def progress(done, total):
    print(f"\r  {done}/{total} images", end="" if done < total else "\n", file=sys.stderr, flush=True)


def main(argv=None, bus=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bitfile", default=str(HERE / "esb_system.bit"), help="the overlay (its .hwh beside it)")
    parser.add_argument("--batch", default=str(HERE / "digits.npz"), help="the compiled network and its images")
    parser.add_argument("--images", type=int, help="run the first N images (default all)")
    parser.add_argument("--poll", action="store_true", help="poll STATUS instead of waiting for the interrupt")
    args = parser.parse_args(argv)
    try:
        batch = BatchProgram.load(args.batch)
        if bus is None:
            from esb_hw.driver.pynq_bus import PynqBus

            bus = PynqBus.from_overlay(args.bitfile, use_interrupt=not args.poll)
        accelerator = Accelerator(bus)
        result = asyncio.run(run_batch(accelerator, batch, count=args.images, use_interrupt=not args.poll,
                                       progress=progress))
        count = len(result.labels)
        cycles = sum(result.cycles) / count
        print(f"digits: {count} images; accuracy {result.accuracy:.1%} (golden model {result.golden_accuracy:.1%})")
        print(f"outputs equal to the golden model: {int(result.exact.sum())}/{count}")
        print(f"{cycles:,.0f} cycles per image on the hardware; {count / result.seconds:,.1f} images/s with the host "
              f"driver's overhead")
        return 0 if result.exact.all() else 1
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
