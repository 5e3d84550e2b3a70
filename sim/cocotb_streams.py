"""cocotb helpers for ``amaranth.lib.stream`` ports (valid / ready / payload) in emitted Verilog.

Amaranth flattens a stream member ``i`` of a component's signature into the Verilog ports ``i__valid``,
``i__ready`` and ``i__payload`` (a struct payload is one flat vector, first field in the low bits).
:class:`StreamSource` (DUT input) and :class:`StreamSink` (DUT output) gather them and drive the
testbench's side idle; create them before the clock starts::

    source, sink = StreamSource(dut, "i"), StreamSink(dut, "o")
    start_clock(dut); await reset(dut)
    cocotb.start_soon(stream_put_many(source, payloads, rng=random.Random(1), idle=0.3))
    results = await stream_get_many(sink, count, rng=random.Random(2), stall=0.3, signed=True)

Timing model, the same for both simulators: the helpers drive signals just after a rising edge, sample
``ready`` / ``valid`` / ``payload`` in the ``ReadOnly`` phase of the cycle (after combinational logic has
settled), and count a transfer at the next rising edge when both were high. Call them from a coroutine
that is past a rising edge (for example after :func:`sim.cocotb_helpers.reset`). Back-to-back calls keep
``valid`` / ``ready`` high, so a stream can run at one transfer per cycle.

Random back-pressure: give ``rng`` (a seeded ``random.Random``) and ``idle`` (source) or ``stall`` (sink),
the probability of inserting one more empty cycle before offering, or accepting, the next item.
"""

import random
from collections.abc import Iterable

from cocotb.handle import HierarchyObject
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.types import LogicArray

__all__ = [
    "StreamPort",
    "StreamSink",
    "StreamSource",
    "stream_get",
    "stream_get_many",
    "stream_put",
    "stream_put_many",
]


class StreamPort:
    """The ``<name>__valid``, ``<name>__ready`` and ``<name>__payload`` handles of one stream port.

    Parameters
    ----------
    dut : HierarchyObject
        The toplevel handle.
    name : str
        The signature member's name (``"i"`` for ``i__valid`` ...); nested members use ``__``.
    clock : handle, optional
        The clock; ``dut.clk`` by default.
    """

    def __init__(self, dut: HierarchyObject, name: str, *, clock=None):
        self.name = name
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.clock = dut.clk if clock is None else clock
        self.width = len(self.payload)


class StreamSource(StreamPort):
    """A stream the testbench drives into the DUT (an ``In(stream.Signature(...))`` member).

    Construction drives ``valid`` and ``payload`` to 0, so Icarus never sees an undriven ``z`` valid.
    """

    def __init__(self, dut: HierarchyObject, name: str, *, clock=None):
        super().__init__(dut, name, clock=clock)
        self.valid.value = 0
        self.payload.value = 0


class StreamSink(StreamPort):
    """A stream the testbench receives from the DUT (an ``Out(stream.Signature(...))`` member).

    Construction drives ``ready`` to 0.
    """

    def __init__(self, dut: HierarchyObject, name: str, *, clock=None):
        super().__init__(dut, name, clock=clock)
        self.ready.value = 0


def _bit(handle) -> bool:
    value = handle.value
    return bool(value.to_unsigned() if isinstance(value, LogicArray) else int(value))


def _empty_cycles(rng: random.Random | None, probability: float) -> int:
    count = 0
    if rng is not None and probability > 0:
        while rng.random() < probability:
            count += 1
    return count


async def stream_put(
    port: StreamSource, payload: int, *, rng: random.Random | None = None, idle: float = 0.0
) -> None:
    """Offer ``payload`` (an int, negative allowed) on source ``port`` until the sink takes it.

    Returns just after the rising edge of the transfer, with ``valid`` low again.
    """
    empty_cycles = _empty_cycles(rng, idle)
    if empty_cycles:
        port.valid.value = 0
        for _ in range(empty_cycles):
            await RisingEdge(port.clock)
    port.payload.value = payload & ((1 << port.width) - 1)
    port.valid.value = 1
    while True:
        await ReadOnly()
        accepted = _bit(port.ready)
        await RisingEdge(port.clock)
        if accepted:
            break
    port.valid.value = 0


async def stream_get(
    port: StreamSink, *, rng: random.Random | None = None, stall: float = 0.0, signed: bool = False
) -> int:
    """Accept one payload from sink ``port`` and return it (two's complement if ``signed``).

    Returns just after the rising edge of the transfer, with ``ready`` low again.
    """
    empty_cycles = _empty_cycles(rng, stall)
    if empty_cycles:
        port.ready.value = 0
        for _ in range(empty_cycles):
            await RisingEdge(port.clock)
    port.ready.value = 1
    while True:
        await ReadOnly()
        offered = _bit(port.valid)
        payload = port.payload.value
        await RisingEdge(port.clock)
        if offered:
            break
    port.ready.value = 0
    if not isinstance(payload, LogicArray):  # a 1-bit payload is a scalar
        return int(payload)
    return payload.to_signed() if signed else payload.to_unsigned()


async def stream_put_many(
    port: StreamSource, payloads: Iterable[int], *, rng: random.Random | None = None, idle: float = 0.0
) -> None:
    """:func:`stream_put` each of ``payloads`` in order."""
    for payload in payloads:
        await stream_put(port, payload, rng=rng, idle=idle)


async def stream_get_many(
    port: StreamSink,
    count: int,
    *,
    rng: random.Random | None = None,
    stall: float = 0.0,
    signed: bool = False,
) -> list[int]:
    """:func:`stream_get` ``count`` payloads and return them in order."""
    return [await stream_get(port, rng=rng, stall=stall, signed=signed) for _ in range(count)]
