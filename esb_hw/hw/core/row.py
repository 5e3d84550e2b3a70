"""One dot-product row of the PE array: ``cols`` products, a registered adder tree and an exact accumulator."""

from __future__ import annotations

from amaranth import Cat, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ...config import AcceleratorConfig
from ...contract.latency import TREE_ARITY, require_latency, row_terms
from ...layouts import weight_encoding
from ..arith.accumulator import Accumulator
from ..arith.product import MultiplierProduct, ShiftAddProduct, lane_layout, product_structure
from ..arith.recoded import RecodedProduct, recoded_structure, recoded_top_span
from ..arith.tree import SignFoldingAdderTree, tree_levels, tree_structure
from ..checks import require_bool, require_instance, require_int

__all__ = ["DotProductRow", "TREE_ARITY", "row_structure", "row_terms"]

#: Inputs per adder of the row trees: a ternary adder absorbs two product signs and, built from LUT6_2 and
#: CARRY8, costs one LUT per bit where two binary adders cost two.


def _term_bits(config: AcceleratorConfig) -> int:
    """Signed width of a registered one's-complement product: the magnitude plus the sign."""
    return config.max_product.bit_length() + 1


def row_structure(config: AcceleratorConfig) -> dict[str, dict[str, int]]:
    """What one :class:`DotProductRow` of ``config`` builds, per part, for the resource model.

    ``products`` (for all ``cols`` products together): ``register_bits`` (the one's-complement terms,
    :func:`row_terms`; the top bit of each is its sign, so no separate sign register; a recoded top term
    registers only its :func:`~esb_hw.hw.arith.recoded.recoded_top_span` and its sign) and ``count``, plus one
    product's
    :func:`~esb_hw.hw.arith.product.product_structure` under ``features``, or for radix-4 recoded products
    ``mapped_luts``, their exact LUT count (:func:`~esb_hw.hw.arith.recoded.recoded_structure`). ``tree``:
    :func:`~esb_hw.hw.arith.tree.tree_structure`. ``accumulator``: ``register_bits`` (the accumulator) and
    ``adder_bits`` (one gated LUT6_2 per bit).
    """
    term_bits = _term_bits(config)
    if weight_encoding(config) == "twos":
        mapped = recoded_structure(config.activation_format, config.weight_format)
        features = {"mapped_luts": mapped["adder_luts"] + mapped["high_luts"] + mapped["top_luts"]}
    else:
        features = product_structure(config.activation_format, config.weight_format, config.pe_variant)
    terms = row_terms(config)
    register_bits = terms * term_bits
    if terms > config.cols:
        start, stop = recoded_top_span(config.activation_format, config.weight_format)
        register_bits = config.cols * (term_bits + stop - start + 1)
    return {
        "products": {"count": config.cols, "register_bits": register_bits, "features": features},
        "tree": tree_structure(terms, term_bits, TREE_ARITY),
        "accumulator": {"register_bits": config.accumulator_bits, "adder_bits": config.accumulator_bits},
    }


class DotProductRow(wiring.Component):
    """``accumulator = (restart ? 0 : accumulator) + sum_c La[c] * Lw[c]``, one set of ``cols`` products per
    cycle.

    Parameters
    ----------
    config : AcceleratorConfig
        Formats, ``cols``, accumulator width and PE variant.
    primitives : bool
        Build the tree and the accumulator from UltraScale(+) ``LUT6_2``/``CARRY8`` and, where every LUT needs
        at most 6 inputs, the products' select and shift levels from hand-mapped ``LUT6`` (for synthesis);
        the default plain Amaranth simulates anywhere.
    entries : int
        Running sums the row keeps (:class:`~esb_hw.hw.arith.accumulator.Accumulator`): 1, a register; up to
        64, a distributed RAM addressed by ``entry`` (a block of outputs that share the row's weights).

    Attributes
    ----------
    lanes : In(ArrayLayout(lane_layout(...), cols))
        The decoded activations from the column lanes (variants ``esb`` and ``esb_naive``).
    weights : In(ArrayLayout(weight.bits, cols))
        This row's weights, encoded as :func:`esb_hw.layouts.weight_encoding` says: ESB codes, or two's
        complement levels for the radix-4 recoded products of uniform formats.
    activation_codes : In(ArrayLayout(activation.bits, cols))
        The raw activation codes (variant ``baseline`` only, instead of ``lanes``).
    accumulate : In(1)
        The tree's output is a sum to add this cycle (the ``valid`` flag of the last stage): the accumulator's
        clock enable. The product and tree registers run free, with no enable and no reset.
    restart : In(1)
        With ``accumulate``: drop the old accumulator, start from this sum (the ``first`` flag).
    total : Out(signed(accumulator_bits))
        ``(restart ? 0 : accumulator) + the tree's sums``: what the accumulator loads at the next edge when
        ``accumulate`` is high (combinational; the array writes it into its output buffer on a tile's last beat).
    accumulator : Out(signed(accumulator_bits))
        The running sum (of entry ``entry``).
    entry : In(range(entries))
        Only when ``entries > 1``: the running sum that the tree's output of this cycle belongs to.

    Latency: ``latency = 1 + tree_levels(row_terms(config), 3)`` cycles from codes on ``lanes``/``weights`` to
    their sum on ``total``; the product register is the first. Throughput: one set of ``cols`` products per cycle.
    """

    def __init__(self, config: AcceleratorConfig, *, primitives: bool = False, entries: int = 1):
        require_instance("config", config, AcceleratorConfig)
        require_bool("primitives", primitives)
        require_int("entries", entries, 1, 64)
        self.config = config
        self.primitives = primitives
        self.entries = entries
        self.latency = 1 + tree_levels(row_terms(config), TREE_ARITY)
        activation, weight = config.activation_format, config.weight_format
        ports = {"weights": In(data.ArrayLayout(weight.bits, config.cols)),
                 "accumulate": In(1), "restart": In(1),
                 "total": Out(signed(config.accumulator_bits)),
                 "accumulator": Out(signed(config.accumulator_bits))}
        if entries > 1:
            ports["entry"] = In(range(entries))
        if config.pe_variant == "baseline":
            ports["activation_codes"] = In(data.ArrayLayout(activation.bits, config.cols))
        else:
            ports["lanes"] = In(data.ArrayLayout(lane_layout(activation, weight, config.pe_variant == "esb",
                                                             weight_encoding(config) == "twos"), config.cols))
        super().__init__(ports)

    def _product(self, m: Module, col: int):
        config = self.config
        if weight_encoding(config) == "twos":
            product = RecodedProduct(activation=config.activation_format, weight=config.weight_format,
                                     primitives=self.primitives)
            m.submodules[f"product_{col}"] = product
            m.d.comb += [product.lane.eq(self.lanes[col]), product.weight_level.eq(self.weights[col])]
            return product
        if config.pe_variant == "baseline":
            product = MultiplierProduct(activation=config.activation_format, weight=config.weight_format)
            m.d.comb += product.activation_code.eq(self.activation_codes[col])
        else:
            product = ShiftAddProduct(activation=config.activation_format, weight=config.weight_format,
                                      shared=config.pe_variant == "esb", primitives=self.primitives)
            m.d.comb += product.lane.eq(self.lanes[col])
        m.submodules[f"product_{col}"] = product
        m.d.comb += product.weight_code.eq(self.weights[col])
        return product

    def elaborate(self, platform):
        config = self.config
        m = Module()
        term_bits = _term_bits(config)
        m.submodules.tree = tree = SignFoldingAdderTree(count=row_terms(config), term_bits=term_bits,
                                                        arity=TREE_ARITY, primitives=self.primitives)
        require_latency("DotProductRow (the product register and the tree)", 1 + tree.levels, self.latency)
        # Top terms first: the terms a tree level passes on are its last ones, and a passed top term's sign copies
        # would be registered several times (synthesis merges them, which the resource model does not know).
        terms, top_terms = [], []
        for col in range(config.cols):
            product = self._product(m, col)
            # One's complement registered with its sign; the tree adds the pending +1s as carries.
            folded = Signal(signed(term_bits), name=f"folded_{col}", reset_less=True)
            m.d.sync += folded.eq(product.folded)
            terms.append(folded)
            if isinstance(product, RecodedProduct) and product.terms == 2:
                # Only the bits that carry |d2| a << 4 and the sign; the other bits are copies of the sign.
                start, stop = recoded_top_span(config.activation_format, config.weight_format)
                core = Signal(stop - start, name=f"top_core_{col}", reset_less=True)
                sign = Signal(name=f"top_sign_{col}", reset_less=True)
                m.d.sync += [core.eq(product.top_folded[start:stop]), sign.eq(product.top_negative)]
                top_terms.append(Cat(sign.replicate(start), core, sign.replicate(term_bits - stop)).as_signed())
        for index, term in enumerate(top_terms + terms):
            m.d.comb += [tree.terms[index].eq(term), tree.negatives[index].eq(term[-1])]

        # (restart ? 0 : accumulator) + the tree's two sums + its two pending signs, in one LUT per bit.
        m.submodules.accumulator = accumulator = Accumulator(width=config.accumulator_bits,
                                                             addend_bits=tree.sum_bits, primitives=self.primitives,
                                                             entries=self.entries)
        if self.entries > 1:
            m.d.comb += accumulator.entry.eq(self.entry)
        m.d.comb += [accumulator.addends.eq(tree.sums), accumulator.carries.eq(tree.pending),
                     accumulator.accumulate.eq(self.accumulate),
                     accumulator.restart.eq(self.restart), self.total.eq(accumulator.total),
                     self.accumulator.eq(accumulator.accumulator)]
        return m
