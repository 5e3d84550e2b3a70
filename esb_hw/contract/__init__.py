"""The contract between the hardware (:mod:`esb_hw.hw`) and the compiler (:mod:`esb_hw.compiler`): what both must
agree on, in pure Python, with no Amaranth component behind it.

- :mod:`esb_hw.contract.latency`: the pipeline depths and buffer depths the compiler's cycle model uses and the
  hardware builds (each component checks, when it elaborates, that it built what this module says);
- :mod:`esb_hw.layouts`: every bit layout (descriptors, memory words, streams), with pack and unpack;
- :mod:`esb_hw.regmap`: the register map, the error codes and their names.

The import rules (``tests/test_layering.py``, drawn in docs/architecture.md): the hardware imports neither the
compiler, the golden model, the front end nor the driver; the compiler does not import the hardware; the driver
imports nothing from Amaranth; nothing in the package imports the checkout's ``tests/`` or ``bench/``.
"""
