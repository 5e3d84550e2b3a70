"""A board's memory bandwidth (esb_hw/contract/bandwidth.py)."""

import pytest

from esb_hw.boards import zcu102
from esb_hw.contract.bandwidth import BoardMemory
from esb_hw.errors import InputError


def test_the_zcu102_share_of_one_engine_is_its_port_both_ways():
    memory = zcu102.MEMORY
    assert (memory.ports, memory.port_bytes, memory.ddr_bytes_per_second) == (4, 16, 19.2e9)
    assert memory.bytes_per_cycle(300.0) == 32.0  # 64 bytes a cycle of DDR at 300 MHz; one port, 16 each way
    assert memory.bytes_per_cycle(300.0, engines=4) == pytest.approx(16.0)  # the DDR binds: 64 / 4
    assert memory.bytes_per_cycle(400.0, engines=4) == pytest.approx(12.0)  # 48 / 4
    assert memory.bytes_per_cycle(400.0, engines=2) == pytest.approx(24.0)
    assert memory.bytes_per_cycle(800.0) == pytest.approx(24.0)


def test_engines_beyond_the_ports_and_a_bad_clock_are_refused():
    memory = BoardMemory(ports=2, port_bytes=16, ddr_bytes_per_second=1e9)
    with pytest.raises(InputError, match="3 engines need 3 memory ports; the board has 2"):
        memory.bytes_per_cycle(100.0, engines=3)
    with pytest.raises(InputError, match="clock must be positive"):
        memory.bytes_per_cycle(0.0)
    assert memory.bytes_per_cycle(100.0) == pytest.approx(10.0)
    assert memory.bytes_per_cycle(10.0) == 32.0
