#!/usr/bin/env python3
"""``python build.py --board zcu102``: the same command as ``esb-hw build`` (esb_hw/build.py), kept for the
README's first command. ``--help`` lists the options."""

import sys

from esb_hw.errors import entry_point  # pure Python: a missing dependency is then one line, not a traceback

if __name__ == "__main__":
    sys.exit(entry_point("esb_hw.build"))
