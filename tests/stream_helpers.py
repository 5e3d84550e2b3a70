"""Stream helpers for Amaranth's own simulator (``amaranth.sim``, async testbenches).

``stream`` is an ``amaranth.lib.stream.Interface`` (or any object with ``valid``, ``ready`` and ``payload``),
typically a member of the component under test. A testbench drives one side of it::

    async def testbench(ctx):
        await stream_put(ctx, dut.i, {"value": -3, "last": 1})
        assert await stream_get(ctx, dut.o) == -3

Timing: ``stream_put`` asserts ``valid`` and returns after the clock edge at which ``ready`` was high (the
transfer); ``stream_get`` asserts ``ready`` and returns the payload sampled at the edge at which ``valid``
was high. Both drop their handshake signal on return, and back-to-back calls keep it high, so a stream
can run at one transfer per cycle. With ``rng`` (a seeded ``random.Random``), each call first waits a random
number of cycles (each one more with probability ``idle`` / ``stall``), which is random back-pressure on
the sink side and random gaps on the source side.
"""

import random
from collections.abc import Iterable
from typing import Any

__all__ = ["stream_get", "stream_get_many", "stream_put", "stream_put_many"]


async def _wait_random(ctx, rng: random.Random | None, probability: float, domain: str) -> None:
    if rng is None or probability <= 0:
        return
    while rng.random() < probability:
        await ctx.tick(domain)


async def stream_put(
    ctx, stream, payload: Any, *, rng: random.Random | None = None, idle: float = 0.0, domain: str = "sync"
) -> None:
    """Offer ``payload`` on ``stream`` (which the testbench drives) until the sink takes it."""
    await _wait_random(ctx, rng, idle, domain)
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick(domain).until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(
    ctx, stream, *, rng: random.Random | None = None, stall: float = 0.0, domain: str = "sync"
) -> Any:
    """Accept one payload from ``stream`` (which the DUT drives) and return it.

    A plain ``Signal`` payload comes back as an ``int``; a ``data.View`` payload as a ``data.Const``.
    """
    await _wait_random(ctx, rng, stall, domain)
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick(domain).sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


async def stream_put_many(
    ctx,
    stream,
    payloads: Iterable[Any],
    *,
    rng: random.Random | None = None,
    idle: float = 0.0,
    domain: str = "sync",
) -> None:
    """:func:`stream_put` each of ``payloads`` in order."""
    for payload in payloads:
        await stream_put(ctx, stream, payload, rng=rng, idle=idle, domain=domain)


async def stream_get_many(
    ctx,
    stream,
    count: int,
    *,
    rng: random.Random | None = None,
    stall: float = 0.0,
    domain: str = "sync",
) -> list[Any]:
    """:func:`stream_get` ``count`` payloads and return them in order."""
    return [await stream_get(ctx, stream, rng=rng, stall=stall, domain=domain) for _ in range(count)]
