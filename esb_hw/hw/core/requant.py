"""Requantization at the array edge (docs/arithmetic.md): an exact accumulator to an activation code.

``y = ((acc + bias) * M + 2**(S - 1)) >> S`` with an arithmetic shift, then clamped to ``[0, La_max]`` (which
also does the optional ReLU: the activation formats are unsigned, so ReLU before the clamp changes nothing), then,
for ESB activations, the nearest level with ties up.

The rounding shift is computed as ``((p >> (S - 1)) + 1) >> 1``: for integer ``p``,
``floor((p + 2**(S-1)) / 2**S) = floor((floor(p / 2**(S-1)) + 1) / 2)``, so no variable addend is needed.
The ESB encoding of a level ``v`` is ``(sh << k) + (v >> sh) + v[sh - 1]`` with ``sh = max(msb(v) - k, 0)``:
rounding ``v`` to the grid of its binade (step ``2**sh``), ties up; a carry out of the significand lands on the
next binade's first code by itself, because codes are monotone in level.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ...config import AcceleratorConfig
from ...contract.latency import requant_latency, require_latency
from ...layouts import REQUANT_MULTIPLIER_BITS, requant_input_layout
from ...quant.format import ESBFormat
from ..arith.multiplier import BoothMultiplier
from ..checks import require_bool, require_format, require_instance

__all__ = ["Requantizer", "esb_encoder", "requant_latency"]

#: Codes the output FIFO holds: at least the pipeline's latency, so that a lane whose consumer never stalls takes
#: one value per cycle.
OUTPUT_DEPTH = 16


def esb_encoder(m: Module, level, activation: ESBFormat):
    """An expression for the code of unsigned ``activation`` nearest to ``level`` (``0 <= level <= Lmax``), ties
    up (combinational; plain integers pass through)."""
    if activation.exponent_bits == 0 or activation.max_shift == 0:
        return level  # every level up to 2**(k+1) - 1 is its own code
    k = activation.k
    width = len(level)
    shift = Signal(range(activation.max_shift + 2), name="encode_shift")
    # sh = max(msb(level) - k, 0): the highest set bit at k + 1 or above decides.
    for position in range(k + 1, width):
        with m.If(level[position]):
            m.d.comb += shift.eq(position - k)
    significand = Signal(k + 2, name="encode_significand")
    below = Signal.like(shift, name="encode_below")  # sh - 1, the bit that decides the rounding
    round_up = Signal(name="encode_round_up")
    m.d.comb += [significand.eq(level >> shift), below.eq(shift - 1),
                 round_up.eq(Mux(shift == 0, 0, (level >> below)[0]))]
    return (shift << k) + significand + round_up


class Requantizer(wiring.Component):
    """One requantization lane: an accumulator and its channel's ``(bias, M, S)`` in, an activation code out.

    The data path runs free (no clock enable, no reset on data registers), with a ``valid`` bit per stage, into a
    FIFO of :data:`OUTPUT_DEPTH` codes; the input takes a value only while the FIFO has room for every value in
    flight (a credit counter), so back-pressure on ``o`` reaches only the FIFO's read side and the counter.

    Parameters
    ----------
    config : AcceleratorConfig
        ``accumulator_bits`` and the activation format.
    primitives : bool
        Build the multiplier from UltraScale+ ``LUT6``/``LUT6_2``/``CARRY8``
        (:class:`~esb_hw.hw.arith.multiplier.BoothMultiplier`); else plain Amaranth. No DSP either way.

    Attributes
    ----------
    i : In(stream.Signature(requant_input_layout(config)))
        ``accumulator`` and ``params`` (``bias``, ``multiplier`` ``M`` in ``0..2**16 - 1``, ``shift`` ``S`` in
        ``1..48``; the compiler guarantees the ranges). The payload is ignored while ``valid`` is low.
        ``i.ready`` is a comparison of a register: low while :data:`OUTPUT_DEPTH` values are accepted but not yet
        taken from ``o``.
    o : Out(stream.Signature(activation.bits))
        The activation code.

    Latency :func:`requant_latency` cycles (12 for 16-bit ``M``) from an accepted input to its code on ``o``
    when ``o`` is ready; throughput one value per cycle while fewer than :data:`OUTPUT_DEPTH` codes wait.
    """

    def __init__(self, config: AcceleratorConfig, *, primitives: bool = False):
        require_instance("config", config, AcceleratorConfig)
        require_bool("primitives", primitives)
        require_format("activation", config.activation_format, signed=False)
        self.config = config
        self.primitives = primitives
        self.latency = requant_latency(config)
        super().__init__({
            "i": In(stream.Signature(requant_input_layout(config))),
            "o": Out(stream.Signature(config.activation_format.bits)),
        })

    def elaborate(self, platform):
        config = self.config
        activation = config.activation_format
        m = Module()
        params = self.i.payload.params

        m.submodules.output = output = SyncFIFOBuffered(width=activation.bits, depth=OUTPUT_DEPTH)
        wiring.connect(m, wiring.flipped(self.o), output.r_stream)
        outstanding = Signal(range(OUTPUT_DEPTH + 1))
        accepted = Signal()
        m.d.comb += [self.i.ready.eq(outstanding != OUTPUT_DEPTH), accepted.eq(self.i.valid & self.i.ready)]
        m.d.sync += outstanding.eq(outstanding + accepted - (self.o.valid & self.o.ready))

        multiplier = BoothMultiplier(x_bits=config.accumulator_bits + 1, m_bits=REQUANT_MULTIPLIER_BITS,
                                     primitives=self.primitives)
        m.submodules.multiplier = multiplier
        stages = 1 + multiplier.latency + 5  # sum, multiplier, two shifts, clamp flags, level, encode
        # Then the output FIFO's write and its buffered read: two more.
        require_latency("Requantizer", stages + 2, requant_latency(config))
        valid = [Signal(name=f"valid_{stage}") for stage in range(stages)]
        m.d.sync += valid[0].eq(accepted)
        m.d.sync += [valid[stage].eq(valid[stage - 1]) for stage in range(1, stages)]

        # Stage 0: acc + bias, and S - 1 (the compiler keeps S >= 1), which travels beside the product.
        total = Signal(signed(config.accumulator_bits + 1), reset_less=True)
        m.d.sync += total.eq(self.i.payload.accumulator + params.bias)
        shift = Signal(len(params.shift), reset_less=True)
        factor = Signal(REQUANT_MULTIPLIER_BITS, reset_less=True)
        m.d.sync += [shift.eq(params.shift - 1), factor.eq(params.multiplier)]
        m.d.comb += [multiplier.x.eq(total), multiplier.m.eq(factor)]
        for step in range(multiplier.latency):
            delayed = Signal.like(shift, name=f"shift_{step}", reset_less=True)
            m.d.sync += delayed.eq(shift)
            shift = delayed

        # p >> (S - 1) in two steps of at most three LUT levels each: by 8 * ((S - 1) // 8), then by (S - 1) % 8.
        coarse = Signal(signed(len(multiplier.product)), reset_less=True)
        fine_shift = Signal(3, reset_less=True)
        m.d.sync += [coarse.eq(multiplier.product >> (shift[3:] << 3)), fine_shift.eq(shift[:3])]
        halved = Signal(signed(len(coarse)), reset_less=True)
        m.d.sync += halved.eq(coarse >> fine_shift)

        # y = ((p >> (S - 1)) + 1) >> 1 rounds half up; then the clamp to [0, La_max] (which is also the ReLU),
        # decided on h = p >> (S - 1) without the wide addition: y <= 0 when h < 0, y > La_max when
        # h >= 2 La_max + 1, and in between y comes from h's low bits.
        limit = 2 * activation.max_level + 1
        low_bits = limit.bit_length()
        negative, saturated = Signal(reset_less=True), Signal(reset_less=True)
        low = Signal(low_bits, reset_less=True)
        m.d.sync += [negative.eq(halved < 0), saturated.eq(halved >= limit), low.eq(halved[:low_bits])]
        level = Signal(range(activation.max_level + 1), reset_less=True)
        m.d.sync += level.eq(Mux(negative, 0, Mux(saturated, activation.max_level, (low + 1) >> 1)))
        code = Signal(activation.bits, reset_less=True)
        m.d.sync += code.eq(esb_encoder(m, level, activation))
        m.d.comb += [output.w_data.eq(code), output.w_en.eq(valid[-1])]
        return m
