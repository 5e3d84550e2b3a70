"""cocotb UART receiver: decode 8N1 lines from a transmit pin, counting clock cycles per bit."""

from cocotb.triggers import ClockCycles, RisingEdge

__all__ = ["receive_line"]


async def receive_line(clock, tx, clocks_per_bit: int, max_cycles: int) -> str:
    """Decode bytes from ``tx`` (sampled mid-bit on ``clock``) until a newline; fail after ``max_cycles``
    idle cycles before a start bit."""
    text = ""
    for _ in range(256):
        for _ in range(max_cycles):
            await RisingEdge(clock)
            if int(tx.value) == 0:
                break
        else:
            raise AssertionError(f"no start bit within {max_cycles} cycles; received so far {text!r}")
        await ClockCycles(clock, clocks_per_bit // 2)
        assert int(tx.value) == 0, "start bit too short"
        byte = 0
        for bit in range(8):
            await ClockCycles(clock, clocks_per_bit)
            byte |= int(tx.value) << bit
        await ClockCycles(clock, clocks_per_bit)
        assert int(tx.value) == 1, f"stop bit missing after {chr(byte)!r}"
        text += chr(byte)
        if text.endswith("\n"):
            return text
    raise AssertionError(f"no newline: {text!r}")
