"""The processing element: one ESB multiply-accumulate (DESIGN.md §2, §3)."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import PE_VARIANTS
from ..quant.format import ESBFormat
from .product import ActivationLane, MultiplierProduct, ShiftAddProduct

__all__ = ["ProcessingElement"]


class ProcessingElement(wiring.Component):
    """One multiply-accumulate: ``accumulator = (first ? 0 : accumulator) + La * Lw``.

    Parameters
    ----------
    weight : ESBFormat
        Signed weight format.
    activation : ESBFormat
        Unsigned activation format (``e = 0`` for plain integers).
    accumulator_bits : int
        Signed accumulator width; :attr:`AcceleratorConfig.accumulator_bits` makes overflow impossible.
    variant : {"esb", "esb_naive", "baseline"}
        ``esb``: selects precomputed odd multiples (``3 sig_a``, ...) of the activation significand, then
        shifts (in an array the multiples are shared by every PE of a column; a lone PE computes its own).
        ``esb_naive``: adds the shifted copies of ``sig_a`` that the weight's significand bits select.
        ``baseline``: a generic ``*`` on the integer levels, for comparison.

    Attributes
    ----------
    activation_code : In(activation.bits)
    weight_code : In(weight.bits)
    valid : In(1)
        The codes are a product to accumulate.
    first : In(1)
        With ``valid``: start a new sum with this product.
    accumulator : Out(signed(accumulator_bits))
        The running sum.

    Latency 2 cycles: a product presented at cycle ``t`` is in ``accumulator`` after the clock edge that
    ends cycle ``t + 1``. Throughput one product per cycle.
    """

    def __new__(cls, *, variant: str = "esb", **kwargs):
        # Checked before the object exists, so a rejected variant leaves no unused elaboratable behind.
        if variant not in PE_VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(PE_VARIANTS)}, got {variant!r}")
        return super().__new__(cls)

    def __init__(self, *, weight: ESBFormat, activation: ESBFormat, accumulator_bits: int, variant: str = "esb"):
        self._weight = weight
        self._activation = activation
        self._variant = variant
        self.accumulator_bits = accumulator_bits
        super().__init__({
            "activation_code": In(activation.bits),
            "weight_code": In(weight.bits),
            "valid": In(1),
            "first": In(1),
            "accumulator": Out(signed(accumulator_bits)),
        })

    @classmethod
    def from_config(cls, config) -> ProcessingElement:
        return cls(weight=config.weight_format, activation=config.activation_format,
                   accumulator_bits=config.accumulator_bits, variant=config.pe_variant)

    def _product(self, m: Module):
        if self._variant == "baseline":
            m.submodules.product = product = MultiplierProduct(activation=self._activation, weight=self._weight)
            m.d.comb += product.activation_code.eq(self.activation_code)
        else:
            shared = self._variant == "esb"
            m.submodules.lane = lane = ActivationLane(activation=self._activation, weight=self._weight,
                                                      shared=shared)
            m.submodules.product = product = ShiftAddProduct(activation=self._activation, weight=self._weight,
                                                             shared=shared)
            m.d.comb += [lane.code.eq(self.activation_code), product.lane.eq(lane.lane)]
        m.d.comb += product.weight_code.eq(self.weight_code)
        return product

    def elaborate(self, platform):
        m = Module()
        product = self._product(m)
        # The one's complement happens before the product register, where it merges into the product's
        # last LUT level; the accumulator then adds the registered sign as its carry-in.
        folded = Signal(signed(len(product.magnitude) + 1))
        negative = Signal()
        valid = Signal()
        first = Signal()
        m.d.sync += [folded.eq(product.folded), negative.eq(product.negative),
                     valid.eq(self.valid), first.eq(self.first)]
        base = Mux(first, 0, self.accumulator)
        with m.If(valid):
            m.d.sync += self.accumulator.eq(base + folded + negative)
        return m
