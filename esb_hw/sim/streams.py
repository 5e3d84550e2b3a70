"""Stream helpers for ``amaranth.lib.stream`` ports (valid / ready / payload), for both kinds of simulation.

One timing model and one set of names serves Amaranth's simulator (async testbenches, ``ctx``) and cocotb on the
emitted Verilog (Verilator or Icarus):

- a source offers a payload with ``valid`` high until the sink's ``ready`` is high at a clock edge (the
  transfer), then drops ``valid``; back-to-back calls keep ``valid`` high, so a stream can move one payload per
  cycle;
- a sink raises ``ready`` until ``valid`` is high at an edge and returns the payload sampled there;
- with ``rng`` (a seeded ``random.Random``), each call first waits a random number of cycles (one more with
  probability ``idle`` for a source, ``stall`` for a sink): random gaps and random back-pressure;
- **while ``valid`` is low, a source drives random payload bits** (every field, ``last`` included), drawn from
  ``noise`` (a ``random.Random``; ``*_many`` keep one across calls). A design that reads its payload while
  ``valid`` is low then computes garbage and fails its checks.

Amaranth::

    async def testbench(ctx):
        await put_many(ctx, dut.i, payloads, rng=random.Random(1), idle=0.3)
        sums = await get_many(ctx, dut.o, count, rng=random.Random(2), stall=0.3)

cocotb (create the ports before the clock starts; call from a coroutine that is just past a rising edge, for
example after :func:`esb_hw.sim.cocotb_helpers.reset`)::

    source, sink = StreamSource(dut, "i"), StreamSink(dut, "o")
    cocotb.start_soon(source.put_many(payloads, rng=random.Random(1), idle=0.3))
    results = await sink.get_many(count, rng=random.Random(2), stall=0.3, signed=True)

In cocotb, the helpers drive signals just after a rising edge and sample in the ``ReadOnly`` phase of the cycle,
the same in both simulators.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from amaranth import Value
from amaranth.lib import data
from cocotb.handle import HierarchyObject
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.types import LogicArray

__all__ = ["StreamSink", "StreamSource", "get", "get_many", "put", "put_many"]


def _gap(rng: random.Random | None, probability: float) -> int:
    count = 0
    if rng is not None and probability > 0:
        while rng.random() < probability:
            count += 1
    return count


# ---- Amaranth simulator ---------------------------------------------------------------------------------------
def _bits_of(payload) -> Value:
    return payload.as_value() if isinstance(payload, data.View) else Value.cast(payload)


def _idle(ctx, stream, noise: random.Random) -> None:
    ctx.set(stream.valid, 0)
    raw = _bits_of(stream.payload)
    ctx.set(raw, noise.getrandbits(len(raw)) if len(raw) else 0)


async def put(ctx, stream, payload: Any, *, rng: random.Random | None = None, idle: float = 0.0,
              noise: random.Random | None = None, domain: str = "sync") -> None:
    """Offer ``payload`` on ``stream`` (which the testbench drives) until the sink takes it.

    ``payload`` is an ``int`` (the payload's bits, also for a layout payload, as :func:`esb_hw.layouts.pack`
    makes them), or what ``ctx.set`` takes for a layout (a dict, a ``data.Const``).
    Returns just after the transfer's edge with ``valid`` low and a random payload.
    """
    noise = noise or random.Random(0)
    gap = _gap(rng, idle)
    if gap:
        _idle(ctx, stream, noise)
        for _ in range(gap):
            await ctx.tick(domain)
    ctx.set(_bits_of(stream.payload) if isinstance(payload, int) else stream.payload, payload)
    ctx.set(stream.valid, 1)
    await ctx.tick(domain).until(stream.ready)
    _idle(ctx, stream, noise)


async def get(ctx, stream, *, rng: random.Random | None = None, stall: float = 0.0, domain: str = "sync") -> Any:
    """Accept one payload from ``stream`` (which the DUT drives) and return it.

    A plain ``Signal`` payload comes back as an ``int``; a ``data.View`` payload as a ``data.Const``.
    """
    gap = _gap(rng, stall)
    if gap:
        ctx.set(stream.ready, 0)
        for _ in range(gap):
            await ctx.tick(domain)
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick(domain).sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


async def put_many(ctx, stream, payloads: Iterable[Any], *, rng: random.Random | None = None, idle: float = 0.0,
                   noise: random.Random | None = None, domain: str = "sync") -> None:
    """:func:`put` each of ``payloads`` in order, with one ``noise`` generator across them."""
    noise = noise or random.Random(0x5EED)
    _idle(ctx, stream, noise)
    for payload in payloads:
        await put(ctx, stream, payload, rng=rng, idle=idle, noise=noise, domain=domain)


async def get_many(ctx, stream, count: int, *, rng: random.Random | None = None, stall: float = 0.0,
                   domain: str = "sync") -> list[Any]:
    """:func:`get` ``count`` payloads and return them in order."""
    return [await get(ctx, stream, rng=rng, stall=stall, domain=domain) for _ in range(count)]


# ---- cocotb ---------------------------------------------------------------------------------------------------
class _StreamPort:
    """The ``<name>__valid``, ``<name>__ready`` and ``<name>__payload`` handles of one stream port.

    Amaranth flattens a stream member ``i`` into the Verilog ports ``i__valid``, ``i__ready`` and
    ``i__payload`` (a layout payload is one flat vector, first field in the low bits).
    """

    def __init__(self, dut: HierarchyObject, name: str, *, clock=None):
        self.name = name
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.clock = dut.clk if clock is None else clock
        self.width = len(self.payload)


def _bit(handle) -> bool:
    value = handle.value
    return bool(value.to_unsigned() if isinstance(value, LogicArray) else int(value))


class StreamSource(_StreamPort):
    """A stream the testbench drives into the DUT (an ``In(stream.Signature(...))`` member).

    Construction drives ``valid`` low and a random payload (``noise``, seeded by default), so Icarus never sees
    an undriven ``z``.
    """

    def __init__(self, dut: HierarchyObject, name: str, *, clock=None, noise: random.Random | None = None):
        super().__init__(dut, name, clock=clock)
        self.noise = noise or random.Random(0x5EED)
        self._idle()

    def _idle(self) -> None:
        self.valid.value = 0
        self.payload.value = self.noise.getrandbits(self.width)

    async def put(self, payload: int, *, rng: random.Random | None = None, idle: float = 0.0) -> None:
        """Offer ``payload`` (an int, negative allowed) until the sink takes it; return just after the edge of
        the transfer, with ``valid`` low and a random payload."""
        gap = _gap(rng, idle)
        if gap:
            self._idle()
            for _ in range(gap):
                await RisingEdge(self.clock)
        self.payload.value = payload & ((1 << self.width) - 1)
        self.valid.value = 1
        while True:
            await ReadOnly()
            accepted = _bit(self.ready)
            await RisingEdge(self.clock)
            if accepted:
                break
        self._idle()

    async def put_many(self, payloads: Iterable[int], *, rng: random.Random | None = None,
                       idle: float = 0.0) -> None:
        """:meth:`put` each of ``payloads`` in order."""
        for payload in payloads:
            await self.put(payload, rng=rng, idle=idle)


class StreamSink(_StreamPort):
    """A stream the testbench receives from the DUT (an ``Out(stream.Signature(...))`` member).

    Construction drives ``ready`` low.
    """

    def __init__(self, dut: HierarchyObject, name: str, *, clock=None):
        super().__init__(dut, name, clock=clock)
        self.ready.value = 0

    async def get(self, *, rng: random.Random | None = None, stall: float = 0.0, signed: bool = False) -> int:
        """Accept one payload and return it (two's complement if ``signed``); return just after the edge of the
        transfer, with ``ready`` low."""
        gap = _gap(rng, stall)
        if gap:
            self.ready.value = 0
            for _ in range(gap):
                await RisingEdge(self.clock)
        self.ready.value = 1
        while True:
            await ReadOnly()
            offered = _bit(self.valid)
            payload = self.payload.value
            await RisingEdge(self.clock)
            if offered:
                break
        self.ready.value = 0
        if not isinstance(payload, LogicArray):  # a 1-bit payload is a scalar
            return int(payload)
        return payload.to_signed() if signed else payload.to_unsigned()

    async def get_many(self, count: int, *, rng: random.Random | None = None, stall: float = 0.0,
                       signed: bool = False) -> list[int]:
        """:meth:`get` ``count`` payloads and return them in order."""
        return [await self.get(rng=rng, stall=stall, signed=signed) for _ in range(count)]
