"""A board's memory bandwidth as the cycle model sees it (pure Python: the board modules and the compiler read it).

Each engine has one AXI4 master on one high-performance port: a beat of
:data:`~esb_hw.layouts.MEMORY_BEAT_BYTES` bytes per PL clock cycle each way at most (AXI reads and writes have
channels of their own). All the engines share the DDR behind the ports. An engine's share, reads and writes
together, is therefore the smaller of its port's two directions and its part of the DDR's bandwidth
(:meth:`BoardMemory.bytes_per_cycle`), and a layer takes at least its bytes over that share
(:class:`esb_hw.compiler.timeline.EngineTimeline`). Both are models: no DDR refresh, page or arbitration loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

__all__ = ["BoardMemory"]


@dataclass(frozen=True)
class BoardMemory:
    """The memory a board gives the programmable logic.

    Attributes
    ----------
    ports : int
        High-performance AXI slave ports into the DDR (one engine each).
    port_bytes : int
        Bytes per beat of each port (128 bits: 16).
    ddr_bytes_per_second : float
        The DDR's peak bandwidth, reads and writes together.
    source : str
        Where the figures come from.
    """

    ports: int
    port_bytes: int
    ddr_bytes_per_second: float
    source: str = ""

    def bytes_per_cycle(self, clock_mhz: float, engines: int = 1) -> float:
        """One engine's share in bytes per PL cycle at ``clock_mhz``, reads and writes together: its port's beat
        each way, or its part of the DDR's bandwidth if that is less."""
        if not 1 <= engines <= self.ports:
            raise InputError(f"{engines} engines need {engines} memory ports; the board has {self.ports}")
        if not clock_mhz > 0:
            raise InputError(f"the clock must be positive, got {clock_mhz!r} MHz")
        return min(2.0 * self.port_bytes, self.ddr_bytes_per_second / (clock_mhz * 1e6) / engines)
