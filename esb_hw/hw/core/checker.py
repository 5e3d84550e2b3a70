"""The descriptor checker: a descriptor that the engine cannot run safely is refused, with the first problem's
code (:data:`esb_hw.layouts.ENGINE_ERRORS`), before anything is loaded or written.

It checks what keeps the engine from hanging and from touching memory outside the descriptor's regions:

- no size or count is zero; the kernel is 1..7 a side and the stride 1 or 2;
- addresses and strides are multiples of their word size;
- the reduction ``in_channels * kernel_h * kernel_w`` is at most ``max_reduction`` (the accumulator's width);
- every transfer fits its buffer's bank, and a pixel block fits the array's running sums;
- the geometry agrees with itself and with the transfers: the channel groups hold ``in_channels``, the
  activation runs are ``in_height * in_width`` words, the output runs are the row blocks' ``output_pixels``
  words, which the pixel walk's limits produce, and the pixel blocks cover the walk; the weight and parameter
  transfers are one run each, of the words the row blocks need;
- every transfer lies inside the memory window: ``address + stride * (segments - 1) + words * word_bytes`` (in 41
  bits: nothing wraps) is at most ``MEMORY_SIZE``, or 4 GiB (the engine's reach) if that is less
  (:data:`esb_hw.contract.checks.WINDOW_CHECKS`); ``detail`` names the first transfer that leaves it.

Products are formed by one shift-and-add multiplier (a bit of the multiplier per cycle, no DSP); a descriptor
takes about 140 cycles (exactly :func:`esb_hw.contract.checks.checker_cycles`), while the engine computes the
previous tile. The product checks are the contract's table (:data:`esb_hw.contract.checks.PRODUCT_CHECKS`).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...config import AcceleratorConfig
from ...contract.checks import ENGINE_REACH, PRODUCT_CHECKS, WINDOW_CHECKS
from ...contract.limits import MAX_KERNEL, STRIDES
from ...layouts import ENGINE_ERRORS, buffer_word_bits, descriptor_layout, memory_word_bytes
from ..checks import require_instance

__all__ = ["DescriptorChecker", "ERROR_CODES"]

#: Error name -> code.
ERROR_CODES = {name: code for code, (name, _) in ENGINE_ERRORS.items()}
#: Width of the products. The product checks' stay below 2**31; a transfer's end ``address + stride *
#: (segments - 1) + words * word_bytes`` can reach 2**41, but it only matters whether it passes the window (at most
#: 2**32): a product past 2**33 sets a sticky ``overflow`` instead, which fails the window check.
PRODUCT_BITS = 33
#: Width of the window's size (the register map's MEMORY_SIZE).
MEMORY_SIZE_BITS = 40


class DescriptorChecker(wiring.Component):
    """Checks one descriptor against the config.

    Parameters
    ----------
    config : AcceleratorConfig
        The array shape, ``max_reduction``, ``entries`` and the buffer depths per bank.

    Attributes
    ----------
    descriptor : In(descriptor_layout())
        Held from ``start`` to ``done``.
    memory_size : In(40)
        The window's size in bytes (a multiple of 16), held from ``start`` to ``done``.
    start : In(1)
    busy : Out(1)
    done : Out(1)
        One cycle, with ``error`` and ``detail`` valid.
    error : Out(4)
        0, or the code of the first problem found.
    detail : Out(3)
        With error ``outside_window``, the transfer that leaves the window (:data:`esb_hw.regmap.WINDOW_DETAILS`);
        0 otherwise.

    Latency: 2 cycles, plus for each product check a load, a compare and per extra factor a setup and one cycle
    per multiplier bit plus one, then a cycle, and for each window check a load, two cycles for the span, a setup,
    a compare and one cycle per bit of ``segments - 1`` plus one (:func:`esb_hw.contract.checks.checker_cycles`,
    exact); one descriptor at a time.
    """

    def __init__(self, config: AcceleratorConfig):
        require_instance("config", config, AcceleratorConfig)
        self.config = config
        super().__init__({"descriptor": In(descriptor_layout()), "memory_size": In(MEMORY_SIZE_BITS),
                          "start": In(1), "busy": Out(1), "done": Out(1), "error": Out(4), "detail": Out(3)})

    def _immediate(self, d) -> list[tuple[str, object]]:
        """(error, failing condition) checks without products, in priority order."""
        g = d.geometry
        config = self.config
        transfers = {"activation": d.activations, "weight": d.weights, "param": d.params, "output": d.outputs}
        sizes = [*g.limits, g.in_height, g.in_width, g.kernel_h, g.kernel_w, g.groups, g.row_blocks,
                 g.pixel_blocks, g.block, g.output_pixels, d.in_channels, d.stride]
        sizes += [field for transfer in transfers.values() for field in (transfer.words, transfer.segments)]
        bits = buffer_word_bits(config)
        misaligned = []
        for name, transfer in transfers.items():
            low = memory_word_bytes(bits[name]).bit_length() - 1
            if low:
                misaligned += [transfer.address[:low] != 0, transfer.stride[:low] != 0]
        window = g.pool + 1
        return [
            ("zero_size", Cat(*(size == 0 for size in sizes)).any()),
            ("unsupported_kernel", (g.kernel_h > MAX_KERNEL) | (g.kernel_w > MAX_KERNEL)
             | ~Cat(*(d.stride == stride for stride in (0, *STRIDES))).any()),
            ("misaligned", Cat(*misaligned).any() if misaligned else Const(0)),
            ("does_not_fit", g.block > config.entries),
            ("inconsistent", (g.limits[2] != window) | (g.limits[3] != window)
             | (d.activations.segments != g.groups) | (d.outputs.segments != g.row_blocks)
             | (d.outputs.words != g.output_pixels) | (d.weights.segments != 1) | (d.params.segments != 1)),
        ]

    def _term(self, term: str, d, walk_pixels):
        """A term of :data:`esb_hw.contract.checks.PRODUCT_CHECKS` as a value of the descriptor or the config."""
        if term.startswith("config."):
            return Const(getattr(self.config, term.removeprefix("config.")))
        if term == "walk_pixels":
            return walk_pixels
        value = d
        for part in term.split("."):
            value = value[int(part)] if part.isdigit() else getattr(value, part)
        return value

    def _products(self, d, walk_pixels) -> list[tuple[str, list, str, object]]:
        """(error, factors, relation, right-hand side) checks, in priority order, from the contract's table (the
        cycle model counts the checker's cycles from the same table)."""
        checks = []
        for error, factors, relation, addends in PRODUCT_CHECKS:
            terms = [self._term(term, d, walk_pixels) for term in addends]
            right = terms[0]
            for term in terms[1:]:
                right = right + term
            checks.append((error, [self._term(term, d, walk_pixels) for term in factors], relation, right))
        return checks

    def elaborate(self, platform):
        m = Module()
        d = self.descriptor
        immediate = self._immediate(d)
        # The pixel walk's length: output_pixels, times 4 with pooling (a window's four pixels).
        walk_pixels = Signal(len(d.geometry.output_pixels) + 2)
        products = self._products(d, walk_pixels)
        product = Signal(PRODUCT_BITS, name="product")
        multiplicand = Signal(PRODUCT_BITS, name="multiplicand")
        bound = Signal(PRODUCT_BITS, name="bound")
        overflow = Signal()
        multiplier = Signal(max(len(factor) for _, factors, _, _ in products for factor in factors))
        limit = Signal(range(ENGINE_REACH + 1))  # the window, clamped to the engine's reach
        with m.If(self.start & ~self.busy):
            m.d.sync += [walk_pixels.eq(Mux(d.geometry.pool, d.geometry.output_pixels << 2, d.geometry.output_pixels)),
                         limit.eq(Mux(self.memory_size >= ENGINE_REACH, ENGINE_REACH, self.memory_size)),
                         self.error.eq(0), self.detail.eq(0)]
        with m.FSM(name="check") as fsm:
            with m.State("idle"):
                with m.If(self.start):
                    m.next = "immediate"
            with m.State("immediate"):
                m.next = "load_0"
                for name, failing in reversed(immediate):  # the first failing check sets the code last
                    with m.If(failing):
                        m.d.sync += self.error.eq(ERROR_CODES[name])
                        m.next = "report"
            for index, (name, factors, relation, rhs) in enumerate(products):
                with m.State(f"load_{index}"):
                    # registered: no adder before the compare
                    m.d.sync += [product.eq(factors[0]), bound.eq(rhs), overflow.eq(0)]
                    m.next = f"setup_{index}_1" if len(factors) > 1 else f"compare_{index}"
                for position in range(1, len(factors)):
                    following = f"setup_{index}_{position + 1}" if position + 1 < len(factors) else \
                        f"compare_{index}"
                    with m.State(f"setup_{index}_{position}"):
                        m.d.sync += [multiplicand.eq(product), multiplier.eq(factors[position]), product.eq(0)]
                        m.next = f"multiply_{index}_{position}"
                    with m.State(f"multiply_{index}_{position}"):
                        _multiply_step(m, product, multiplicand, multiplier, overflow, following)
                with m.State(f"compare_{index}"):
                    passed = {"<=": product <= bound, "==": product == bound, ">=": product >= bound,
                              "<": product < bound}[relation]
                    with m.If(passed):
                        m.next = f"load_{index + 1}" if index + 1 < len(products) else "window_load_0"
                    with m.Else():
                        m.d.sync += self.error.eq(ERROR_CODES[name])
                        m.next = "report"
            self._window(m, d, limit, product, multiplicand, multiplier, bound, overflow)
            with m.State("report"):
                m.d.comb += self.done.eq(1)
                m.next = "idle"
        m.d.comb += self.busy.eq(~fsm.ongoing("idle"))
        return m

    def _window(self, m: Module, d, limit, product, multiplicand, multiplier, bound, overflow) -> None:
        """The window checks (:data:`esb_hw.contract.checks.WINDOW_CHECKS`), one transfer at a time, on the product
        checks' shift-and-add multiplier: ``product`` starts at ``address``, adds ``words * word_bytes`` (a
        multiplication by 1, so that no adder of its own is needed) and ``stride * (segments - 1)``; then
        ``product <= limit`` unless it overflowed. The transfer is selected by a 2-bit index (one 4:1 multiplexer
        per bit), not by a state of its own."""
        bits = buffer_word_bits(self.config)
        details = [detail for detail, _, _ in WINDOW_CHECKS]
        assert details == list(range(1, len(WINDOW_CHECKS) + 1))  # the detail is the index plus one
        index = Signal(range(len(WINDOW_CHECKS)))
        transfers = [getattr(d, name) for _, name, _ in WINDOW_CHECKS]
        shifts = [memory_word_bytes(bits[buffer]).bit_length() - 1 for _, _, buffer in WINDOW_CHECKS]

        def selected(value_of):
            result = value_of(transfers[-1], shifts[-1])
            for position in reversed(range(len(transfers) - 1)):
                result = Mux(index == position, value_of(transfers[position], shifts[position]), result)
            return result

        with m.State("window_load_0"):  # the first window check: the state the product checks go on to
            m.d.sync += index.eq(0)
            m.next = "window_load"
        with m.State("window_load"):
            m.d.sync += [product.eq(selected(lambda t, _: t.address)),
                         multiplicand.eq(selected(lambda t, shift: t.words << shift)),
                         multiplier.eq(1), bound.eq(limit), overflow.eq(0)]
            m.next = "window_span"
        with m.State("window_span"):
            _multiply_step(m, product, multiplicand, multiplier, overflow, "window_setup")
        with m.State("window_setup"):
            m.d.sync += [multiplicand.eq(selected(lambda t, _: t.stride)),
                         multiplier.eq(selected(lambda t, _: t.segments) - 1)]
            m.next = "window_multiply"
        with m.State("window_multiply"):
            _multiply_step(m, product, multiplicand, multiplier, overflow, "window_compare")
        with m.State("window_compare"):
            with m.If(overflow | (product > bound)):
                m.d.sync += [self.error.eq(ERROR_CODES["outside_window"]), self.detail.eq(index + 1)]
                m.next = "report"
            with m.Elif(index == len(WINDOW_CHECKS) - 1):
                m.next = "report"
            with m.Else():
                m.d.sync += index.eq(index + 1)
                m.next = "window_load"


def _multiply_step(m: Module, product, multiplicand, multiplier, overflow, following: str) -> None:
    """One cycle of the shift-and-add multiplication ``product += multiplicand * multiplier``, low bit first; on to
    ``following`` once the multiplier is 0. A sum past ``PRODUCT_BITS`` bits, or a multiplicand that leaves them
    while multiplier bits remain, sets ``overflow``."""
    with m.If(multiplier == 0):
        m.next = following
    with m.Else():
        total = Signal(len(product) + 1)
        m.d.comb += total.eq(product + multiplicand)
        with m.If(multiplier[0]):
            m.d.sync += [product.eq(total[:-1]), overflow.eq(overflow | total[-1])]
        m.d.sync += [multiplicand.eq(multiplicand << 1), multiplier.eq(multiplier >> 1)]
        with m.If(multiplicand[-1] & (multiplier[1:] != 0)):
            m.d.sync += overflow.eq(1)
