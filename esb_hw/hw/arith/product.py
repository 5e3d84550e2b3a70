"""ESB products by shift and add (docs/arithmetic.md), and the generic-multiplier baseline.

A product ``La * Lw`` equals ``(sig_a * sig_w) << (sh_a + sh_w)`` with the sign of the weight. The
significand product is built from shifted copies of ``sig_a``, never with ``*``. Products leave these blocks
as a magnitude, a ``negative`` flag and ``folded``, their one's complement; the row's adder tree adds the
pending ``+1`` of each negative product as a carry (:mod:`esb_hw.hw.arith.tree`).

:func:`product_structure` and :func:`lane_structure` describe what these blocks build (multiplexer inputs,
adder bits, output bits); the resource model (:mod:`esb_hw.estimate.model`) prices them, so the model never
re-derives the hardware by hand.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ...quant.format import ESBFormat
from ..checks import require_bool, require_format
from .lutmap import LUT_INPUTS, map_lut

__all__ = [
    "fold_sign",
    "ActivationLane",
    "ShiftAddProduct",
    "MultiplierProduct",
    "decode_fields",
    "lane_layout",
    "lane_odd_multiples",
    "lane_structure",
    "odd_multiple_count",
    "product_structure",
    "select_sources",
]


def fold_sign(magnitude, negative):
    """``magnitude XOR negative``: ``-magnitude - 1`` when ``negative``, as a signed value one bit wider.

    Adding ``negative`` afterwards completes the negation. The caller adds it where an adder already exists
    (a carry-in, or a popcount of many signs) instead of building a negation adder per product.
    """
    return (Cat(magnitude, 0) ^ negative.replicate(len(magnitude) + 1)).as_signed()


def decode_fields(code, fmt: ESBFormat):
    """Amaranth expressions ``(negative, significand, shift)`` of a code (docs/arithmetic.md).

    ``significand = (E != 0) << k | m`` is ``fmt.significand_bits`` wide; ``shift = max(E - 1, 0)``.
    """
    mantissa = code[: fmt.k]
    exponent = code[fmt.k: fmt.k + fmt.exponent_bits]
    negative = code[fmt.bits - 1] if fmt.signed else Const(0, 1)
    if fmt.exponent_bits == 0:
        return negative, mantissa, Const(0, 1)
    significand = Cat(mantissa, exponent.any())
    if fmt.exponent_bits == 1:
        return negative, significand, Const(0, 1)
    shift = Mux(exponent == 0, 0, exponent - 1)[: max(fmt.shift_bits, 1)]
    return negative, significand, shift


def _check_formats(activation, weight) -> None:
    require_format("activation", activation, signed=False)
    require_format("weight", weight, signed=True)


def odd_multiple_count(weight: ESBFormat) -> int:
    """How many odd multiples ``3, 5, ..`` of ``sig_a`` a shared-multiples PE selects from."""
    return (1 << (weight.significand_bits - 1)) - 1 if weight.significand_bits > 1 else 0


def lane_odd_multiples(weight: ESBFormat, shared: bool, recoded: bool = False) -> int:
    """How many odd multiples a lane computes: none unshared, only ``3a`` for radix-4 recoded products
    (:mod:`esb_hw.hw.arith.recoded`), else :func:`odd_multiple_count`."""
    if not shared:
        return 0
    return 1 if recoded else odd_multiple_count(weight)


def lane_layout(activation: ESBFormat, weight: ESBFormat, shared: bool, recoded: bool = False) -> data.StructLayout:
    """The decoded activation one lane broadcasts to the PEs that multiply it: ``significand``, ``shift`` and the
    odd multiples; or for radix-4 recoded products (``recoded``, with ``shared``) the whole integer ``level``
    ``La = sig_a << sh_a`` and ``triple = 3 La``."""
    if shared and recoded:
        level_bits = max(activation.max_level.bit_length(), 1)
        return data.StructLayout({"level": level_bits, "triple": level_bits + 2})
    fields = {
        "significand": max(activation.significand_bits, 1),
        "shift": max(activation.shift_bits, 1),
    }
    count = lane_odd_multiples(weight, shared)
    if count:
        fields["odd_multiples"] = data.ArrayLayout(activation.significand_bits + weight.significand_bits, count)
    return data.StructLayout(fields)


def _odd_and_zeros(value: int) -> tuple[int, int]:
    """``value = odd << zeros`` with ``odd`` odd (``value > 0``)."""
    zeros = (value & -value).bit_length() - 1
    return value >> zeros, zeros


def _adder_bits(max_addend: int, shifts: list[int]) -> int:
    """Carry-chain bits of ``sum(max_addend << s)`` added in order: each adder spans the bits from its shift
    to the top of the running sum (the bits below pass through)."""
    total, bits = max_addend << shifts[0], 0
    for shift in shifts[1:]:
        total += max_addend << shift
        bits += total.bit_length() - shift
    return bits


def select_sources(activation: ESBFormat, weight: ESBFormat) -> dict[int, set[tuple[int, int]]]:
    """The select stage of a shared-multiples product: for each bit ``i`` of ``sig_a * sig_w``, the lane bits
    ``(odd, j)`` (bit ``j`` of ``odd * sig_a``) that some weight significand ``odd << z`` routes to
    ``i = j + z``."""
    candidates: dict[int, set[tuple[int, int]]] = {}
    for value in range(1, weight.max_significand + 1):
        odd, zeros = _odd_and_zeros(value)
        for bit in range((odd * activation.max_significand).bit_length()):
            candidates.setdefault(bit + zeros, set()).add((odd, bit))
    return candidates


def product_structure(activation: ESBFormat, weight: ESBFormat, variant: str) -> dict[str, int]:
    """What one product of ``variant`` builds, as counts the resource model prices.

    - ``magnitude_bits``: output bits, each at least one LUT level (the last multiplexer and the sign XOR);
    - ``mux_inputs``: 2:1-multiplexer inputs. ``esb``: the select stage (:func:`select_sources`: a bit with
      ``n`` candidates costs ``n - 1``) plus the shift stage, which moves each selected bit by up to
      ``max_shift_a + max_shift_w`` places; ``esb_naive``: the shift stage of ``sig_a * sig_w``;
      ``baseline``: the shift of ``La * sig_w`` by ``sh_w``;
    - ``adder_bits`` (``esb_naive``): the adders of ``sum_j sig_w[j] ? sig_a << j``;
    - ``partial_product_bits`` (``baseline``): ``level_bits(La) * significand_bits(w)``, the multiplier
      that the generic ``*`` of the levels maps to.
    """
    max_sig_a, max_sig_w = activation.max_significand, weight.max_significand
    shifts = activation.max_shift + weight.max_shift
    magnitude = (activation.max_level * weight.max_level).bit_length()
    if variant == "esb":
        sources = select_sources(activation, weight)
        select_inputs = sum(len(candidates) - 1 for candidates in sources.values())
        return {"magnitude_bits": magnitude, "mux_inputs": select_inputs + len(sources) * shifts}
    if variant == "esb_naive":
        return {"magnitude_bits": magnitude, "mux_inputs": (max_sig_a * max_sig_w).bit_length() * shifts,
                "adder_bits": _adder_bits(max_sig_a, list(range(weight.significand_bits)))}
    if variant == "baseline":
        return {"partial_product_bits": activation.level_bits * weight.significand_bits,
                "mux_inputs": (activation.level_bits + weight.significand_bits) * weight.max_shift}
    raise ValueError(f"unknown PE variant {variant!r}")


def lane_structure(activation: ESBFormat, weight: ESBFormat, variant: str, recoded: bool = False) -> dict[str, int]:
    """What one activation lane (one per array column) builds beyond its registered code.

    ``adder_bits`` (``esb``): the adders of the odd multiples ``3a, 5a, ..`` (for ``recoded`` lanes ``3 La``);
    ``mux_inputs`` (``baseline``, and ``recoded`` lanes of activations that shift): the shifter
    ``sig_a << sh_a`` that makes the level ``La``, which synthesis shares between the rows of a column;
    ``esb_naive`` builds nothing.
    """
    if variant == "esb" and recoded:
        features = {"adder_bits": _adder_bits(activation.max_level, [0, 1])}
        if activation.max_shift:
            features["mux_inputs"] = activation.significand_bits * activation.max_shift
        return features
    if variant == "esb":
        odds = [2 * index + 3 for index in range(lane_odd_multiples(weight, True))]
        return {"adder_bits": sum(_adder_bits(activation.max_significand,
                                              [b for b in range(odd.bit_length()) if odd >> b & 1])
                                  for odd in odds)}
    if variant == "esb_naive":
        return {}
    if variant == "baseline":
        return {"mux_inputs": activation.significand_bits * activation.max_shift}
    raise ValueError(f"unknown PE variant {variant!r}")


class ActivationLane(wiring.Component):
    """Decode one activation code for every PE that multiplies it.

    Parameters
    ----------
    activation, weight : ESBFormat
        The activation (unsigned) and weight (signed) formats.
    shared : bool
        Also compute the odd multiples ``3 sig_a, 5 sig_a, ..`` that shared-multiples PEs select from.
    recoded : bool
        With ``shared``: the integer level ``La`` and ``3 La``, all that radix-4 recoded products need.

    Attributes
    ----------
    code : In(activation.bits)
        The activation code.
    lane : Out(lane_layout(...))
        ``significand`` (``sig_a``), ``shift`` (``sh_a``) and, when shared, ``odd_multiples[i]`` =
        ``(2 i + 3) * sig_a``; when ``recoded``, ``level`` (``La``) and ``triple`` (``3 La``).

    Combinational: latency 0.
    """

    def __init__(self, *, activation: ESBFormat, weight: ESBFormat, shared: bool, recoded: bool = False):
        _check_formats(activation, weight)
        require_bool("shared", shared)
        require_bool("recoded", recoded)
        self._activation = activation
        self._weight = weight
        self._shared = shared
        self._recoded = shared and recoded
        self._count = lane_odd_multiples(weight, shared, recoded)
        super().__init__({
            "code": In(activation.bits),
            "lane": Out(lane_layout(activation, weight, shared, recoded)),
        })

    def elaborate(self, platform):
        m = Module()
        _, significand, shift = decode_fields(self.code, self._activation)
        if self._recoded:
            level = Signal(len(self.lane.level), name="level")
            m.d.comb += [level.eq(significand << shift), self.lane.level.eq(level),
                         self.lane.triple.eq(level + (level << 1))]
            return m
        m.d.comb += [self.lane.significand.eq(significand), self.lane.shift.eq(shift)]
        if self._count:
            for index in range(self._count):
                odd = 2 * index + 3
                # odd * sig = sum of the shifted copies selected by odd's set bits (odd is a constant).
                terms = [significand << bit for bit in range(odd.bit_length()) if odd >> bit & 1]
                total = terms[0]
                for term in terms[1:]:
                    total = total + term
                m.d.comb += self.lane.odd_multiples[index].eq(total)
        return m


class ShiftAddProduct(wiring.Component):
    """``|La * Lw|`` and its sign from a decoded activation lane and a weight code, by shift and add.

    Parameters
    ----------
    activation, weight : ESBFormat
    shared : bool
        ``False``: add the copies ``sig_a << j`` selected by the bits of ``sig_w`` (at most ``k + 1``).
        ``True``: select ``sig_a * odd`` from the lane's odd multiples, then shift by the trailing zeros.
    primitives : bool
        With ``shared``, map ``folded`` onto LUT6 primitives as two levels, select (odd multiple by the
        weight's significand) and shift-plus-sign, when every LUT needs at most 6 inputs (the default config
        does: 1 + 1 LUT per bit); otherwise, and by default, plain Amaranth.

    Attributes
    ----------
    lane : In(lane_layout(...))
        From :class:`ActivationLane`.
    weight_code : In(weight.bits)
    magnitude : Out(unsigned), width ``(La_max * Lw_max).bit_length()``
    negative : Out(1)
        The weight's sign bit; set for negative zero too (the magnitude is then 0).
    folded : Out(signed(magnitude_bits + 1))
        :func:`fold_sign` of the two: the one's complement the adder trees take.

    Combinational: latency 0.
    """

    def __init__(self, *, activation: ESBFormat, weight: ESBFormat, shared: bool, primitives: bool = False):
        _check_formats(activation, weight)
        require_bool("shared", shared)
        require_bool("primitives", primitives)
        self._activation = activation
        self._weight = weight
        self._shared = shared
        self.primitives = primitives
        self.magnitude_bits = (activation.max_level * weight.max_level).bit_length()
        super().__init__({
            "lane": In(lane_layout(activation, weight, shared)),
            "weight_code": In(weight.bits),
            "magnitude": Out(self.magnitude_bits),
            "negative": Out(1),
            "folded": Out(signed(self.magnitude_bits + 1)),
        })

    @property
    def mapped(self) -> bool:
        """Whether ``folded`` is built from hand-mapped LUT6s (see ``primitives``)."""
        return self.primitives and self._lut_plan() is not None

    def _lut_plan(self):
        """``(select, shift)`` LUT input plans, or None when a LUT would need more than 6 inputs."""
        weight, activation = self._weight, self._activation
        if not self._shared or not odd_multiple_count(weight) or activation.max_shift or weight.exponent_bits < 1:
            return None
        code_bits = weight.k + weight.exponent_bits  # the magnitude code decides sig_w and sh_w
        select_width = activation.significand_bits + weight.significand_bits
        select = []
        for bit in range(select_width):
            sources = sorted({(value >> ((value & -value).bit_length() - 1), bit - ((value & -value).bit_length() - 1))
                              for value in range(1, weight.max_significand + 1)
                              if 0 <= bit - ((value & -value).bit_length() - 1)})
            if len(sources) + code_bits > LUT_INPUTS:
                return None
            select.append(sources)
        if weight.max_shift + 1 + weight.exponent_bits + 1 > LUT_INPUTS:
            return None
        return select

    def _mapped_folded(self, m: Module):
        """Two LUT levels: ``selected[i] = (sig_a * sig_w)[i]`` from odd-multiple bits and the magnitude code;
        ``folded[i] = selected[i - sh_w] ^ sign`` from selected bits, the exponent field and the sign."""
        weight = self._weight
        code = self.weight_code[: weight.k + weight.exponent_bits]
        negative = self.weight_code[weight.bits - 1]
        odd_bits = {1: self.lane.significand}
        for index in range(odd_multiple_count(weight)):
            odd_bits[2 * index + 3] = self.lane.odd_multiples[index]

        def significand_of(code_value):
            exponent, mantissa = code_value >> weight.k, code_value & ((1 << weight.k) - 1)
            return ((1 << weight.k) | mantissa) if exponent else mantissa

        selected = []
        for bit, sources in enumerate(self._lut_plan()):
            pins = [odd_bits[odd][position] if position < len(odd_bits[odd]) else Const(0, 1)
                    for odd, position in sources]

            def select(bits, bit=bit, sources=sources):
                source_bits, code_value = bits[: len(sources)], sum(b << i for i, b in enumerate(bits[len(sources):]))
                significand = significand_of(code_value)
                if significand == 0:
                    return 0
                zeros = (significand & -significand).bit_length() - 1
                key = (significand >> zeros, bit - zeros)
                return source_bits[sources.index(key)] if key in sources else 0

            selected.append(map_lut(m, f"select_{bit}", [*pins, *code], select))
        exponent = code[weight.k:]
        shift_count = weight.max_shift + 1

        def shift_and_sign(bits):
            field = sum(b << i for i, b in enumerate(bits[shift_count: shift_count + weight.exponent_bits]))
            return bits[max(field - 1, 0)] ^ bits[-1]

        for bit in range(self.magnitude_bits):
            shifted = [selected[bit - shift] if 0 <= bit - shift < len(selected) else Const(0, 1)
                       for shift in range(shift_count)]
            m.d.comb += self.folded[bit].eq(map_lut(m, f"shift_{bit}", [*shifted, *exponent, negative],
                                                    shift_and_sign))
        m.d.comb += self.folded[self.magnitude_bits].eq(negative)

    def _significand_product(self, m: Module, sig_a, sig_w):
        if not self._shared or not odd_multiple_count(self._weight):
            terms = [Mux(sig_w[bit], sig_a << bit, 0) for bit in range(self._weight.significand_bits)]
            total = terms[0]
            for term in terms[1:]:
                total = total + term
            return total
        # sig_w = odd << zeros: pick the odd multiple, then shift it by the trailing zeros of sig_w.
        width = self._activation.significand_bits + self._weight.significand_bits
        selected = Signal(width)
        with m.Switch(sig_w):
            for value in range(1, 1 << self._weight.significand_bits):
                zeros = (value & -value).bit_length() - 1
                odd = value >> zeros
                source = sig_a if odd == 1 else self.lane.odd_multiples[(odd - 3) // 2]
                with m.Case(value):
                    m.d.comb += selected.eq(source << zeros)
            with m.Default():
                m.d.comb += selected.eq(0)
        return selected

    def elaborate(self, platform):
        m = Module()
        negative, sig_w, sh_w = decode_fields(self.weight_code, self._weight)
        significand_product = self._significand_product(m, self.lane.significand, sig_w)
        m.d.comb += [
            self.magnitude.eq(significand_product << (self.lane.shift + sh_w)),
            self.negative.eq(negative),
        ]
        if self.mapped:
            self._mapped_folded(m)
        else:
            m.d.comb += self.folded.eq(fold_sign(self.magnitude, self.negative))
        return m


class MultiplierProduct(wiring.Component):
    """Baseline: ``|La| * |Lw|`` with a generic multiplier on the decoded integer levels.

    Same ports as :class:`ShiftAddProduct` except that ``lane`` is replaced by ``activation_code``.
    Combinational: latency 0.
    """

    def __init__(self, *, activation: ESBFormat, weight: ESBFormat):
        _check_formats(activation, weight)
        self._activation = activation
        self._weight = weight
        self.magnitude_bits = (activation.max_level * weight.max_level).bit_length()
        super().__init__({
            "activation_code": In(activation.bits),
            "weight_code": In(weight.bits),
            "magnitude": Out(self.magnitude_bits),
            "negative": Out(1),
            "folded": Out(signed(self.magnitude_bits + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        _, sig_a, sh_a = decode_fields(self.activation_code, self._activation)
        negative, sig_w, sh_w = decode_fields(self.weight_code, self._weight)
        level_a = (sig_a << sh_a)[: self._activation.level_bits]
        level_w = (sig_w << sh_w)[: self._weight.level_bits]
        m.d.comb += [self.magnitude.eq(level_a * level_w), self.negative.eq(negative),
                     self.folded.eq(fold_sign(self.magnitude, self.negative))]
        return m
