#!/usr/bin/env python3
"""``python build.py --board zcu102``: the same command as ``esb-hw build`` (esb_hw/build.py), kept for the
README's first command. ``--help`` lists the options."""

import sys

from esb_hw.build import main

if __name__ == "__main__":
    sys.exit(main())
