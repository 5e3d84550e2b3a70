"""The memory model (esb_hw/sim/memory.py), driven cycle by cycle from Python: latency bounds, one beat per cycle, beats
held until taken, byte strobes, error beats and the outstanding-request limit."""

import random

import pytest

from esb_hw.sim.memory import MemoryModel

IDLE = {"read_request_valid": 0, "read_request_address": 0, "read_request_beats": 0, "read_data_ready": 0,
        "write_request_valid": 0, "write_request_address": 0, "write_request_beats": 0, "write_data_valid": 0,
        "write_data": 0, "write_strobe": 0, "response_ready": 0}


def cycle(memory, **inputs):
    driven = memory.outputs()
    memory.edge(driven, {**IDLE, **inputs})
    return driven


def read(memory, address, beats, *, ready=lambda cycle: True, limit=1000):
    """Request ``beats`` from beat ``address``; returns (cycle of each beat, data, error)."""
    requested = None
    got = []
    for now in range(limit):
        want = requested is None
        driven = memory.outputs()
        take = bool(driven["read_data_valid"]) and ready(now)
        memory.edge(driven, {**IDLE, "read_request_valid": int(want), "read_request_address": address,
                             "read_request_beats": beats, "read_data_ready": int(ready(now))})
        if want and driven["read_request_ready"]:
            requested = now
        if take:
            got.append((now - requested, driven["read_data"], driven["read_error"]))
            if len(got) == beats:
                return got
    raise AssertionError("the read did not finish")


def test_reads_return_the_contents_after_the_latency_one_beat_per_cycle():
    memory = MemoryModel(1 << 12, rng=random.Random(1), latency=(20, 100), stall=0.0)
    memory.write_bytes(0, bytes(range(256)) * 16)
    for trial in range(20):
        beats = read(memory, trial, 4)
        first = beats[0][0]
        assert 20 <= first <= 101
        assert [delay for delay, _, _ in beats] == [first, first + 1, first + 2, first + 3]
        for index, (_, value, error) in enumerate(beats):
            start = (trial + index) * 16
            assert value == int.from_bytes(memory.read_bytes(start, 16), "little") and error == 0


def test_a_beat_waits_for_ready_and_stalls_spread_the_beats():
    memory = MemoryModel(1 << 12, rng=random.Random(2), latency=(20, 20), stall=0.5)
    memory.write_bytes(0, bytes(range(256)) * 16)
    beats = read(memory, 3, 8, ready=lambda now: now % 3 == 0)
    delays = [delay for delay, _, _ in beats]
    assert delays == sorted(delays) and delays[-1] - delays[0] >= 2 * 7
    assert [value for _, value, _ in beats] == [int.from_bytes(memory.read_bytes(16 * (3 + i), 16), "little")
                                                for i in range(8)]


def test_strobes_write_only_their_bytes_and_each_write_is_answered():
    memory = MemoryModel(1 << 12, rng=random.Random(3), latency=(4, 8), stall=0.0)
    memory.write_bytes(0, b"\xaa" * 64)
    cycle(memory, write_request_valid=1, write_request_address=1, write_request_beats=1)
    value = int.from_bytes(bytes(range(16)), "little")
    while not cycle(memory)["write_data_ready"]:
        pass
    memory.edge(memory.outputs(), {**IDLE, "write_data_valid": 1, "write_data": value, "write_strobe": 0x00F0})
    assert memory.read_bytes(16, 16) == b"\xaa" * 4 + bytes(range(4, 8)) + b"\xaa" * 8
    assert memory.read_bytes(0, 16) == b"\xaa" * 16
    answered = [cycle(memory, response_ready=1)["response_valid"] for _ in range(20)]
    assert answered.count(1) == 1


def test_bad_beats_and_addresses_past_the_end_answer_with_errors():
    memory = MemoryModel(1 << 8, rng=random.Random(4), latency=(1, 2), stall=0.0, bad_beats={2})
    assert [error for _, _, error in read(memory, 1, 3)] == [0, 1, 0]
    assert [error for _, _, error in read(memory, 15, 2)] == [0, 1]


def test_at_most_outstanding_requests_are_accepted():
    memory = MemoryModel(1 << 12, rng=random.Random(5), latency=(50, 50), stall=0.0, outstanding=3)
    accepted = 0
    for _ in range(10):
        driven = memory.outputs()
        memory.edge(driven, {**IDLE, "read_request_valid": 1, "read_request_beats": 1})
        accepted += driven["read_request_ready"]
    assert accepted == 3


def test_size_must_be_whole_beats():
    with pytest.raises(ValueError, match="size must be a multiple of 16, got 100"):
        MemoryModel(100)
