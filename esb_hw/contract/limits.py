"""The limits the hardware enforces and the compiler respects (pure Python): what a descriptor may ask for.

The descriptor checker (:class:`esb_hw.hw.core.checker.DescriptorChecker`) refuses anything outside them with
``unsupported_kernel``; the compiler refuses a layer outside them with one line naming it. The register map
(:mod:`esb_hw.regmap`) holds the limits the host must respect (the memory base's alignment and reach).
"""

from __future__ import annotations

__all__ = ["MAX_BATCH", "MAX_KERNEL", "MAX_PADDING", "PAGE_BYTES", "STRIDES"]

#: The largest kernel side (the sequencer's window counters).
MAX_KERNEL = 7
#: A layer's strides (the descriptor's ``stride``). The sequencer's walk is the geometry's steps, so a batch's flatten
#: can step its window by a whole image (esb_hw/compiler/program.py).
STRIDES = (1, 2)
#: The largest padding the compiler lowers (the geometry's padding fields).
MAX_PADDING = 7
#: Memory regions are aligned to pages of this many bytes; no AXI burst crosses one.
PAGE_BYTES = 4096
#: The most images a batched program takes (the compiler's limit, not the hardware's: a program's descriptors and
#: memory grow with its batch).
MAX_BATCH = 256
