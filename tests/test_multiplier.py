# amaranth: UnusedElaboratable=no
"""BoothMultiplier (esb_hw/hw/arith/multiplier.py): exact products, latency, the primitive netlist proven equal."""

import random

import equivalence
import pytest
from amaranth.sim import Simulator

from esb_hw.errors import ParameterError
from esb_hw.hw.arith import lutmap
from esb_hw.hw.arith.multiplier import BoothMultiplier, booth_digits, multiplier_levels


def products(x_bits, m_bits, pairs):
    """``x * m`` of each pair as the multiplier computes it, fed one pair per cycle and read ``latency`` cycles
    later (the documented latency)."""
    dut = BoothMultiplier(x_bits=x_bits, m_bits=m_bits)
    results = []

    async def testbench(ctx):
        for cycle in range(len(pairs) + dut.latency):
            if cycle < len(pairs):
                ctx.set(dut.x, pairs[cycle][0])
                ctx.set(dut.m, pairs[cycle][1])
            if cycle >= dut.latency:
                results.append(ctx.get(dut.product))
            await ctx.tick()

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return results


def mismatches(pairs, results):
    return [index for index, ((x, m), got) in enumerate(zip(pairs, results, strict=True)) if x * m != got]


@pytest.mark.parametrize("x_bits, m_bits", [(1, 1), (3, 2), (4, 5), (5, 4), (2, 7)])
def test_every_pair_of_small_operands(x_bits, m_bits):
    pairs = [(x, m) for x in range(-(1 << (x_bits - 1)), 1 << (x_bits - 1)) for m in range(1 << m_bits)]
    assert mismatches(pairs, products(x_bits, m_bits, pairs)) == []


def test_requantization_width_extremes_and_random():
    """The default config's requantization operands: 26-bit ``acc + bias`` by 16-bit ``M``."""
    x_bits, m_bits = 26, 16
    rng = random.Random(4)
    edges = [-(1 << (x_bits - 1)), -1, 0, 1, (1 << (x_bits - 1)) - 1]
    pairs = [(x, m) for x in edges for m in (0, 1, 0x5555, 0xAAAA, 0x8000, (1 << m_bits) - 1)]
    pairs += [(rng.randrange(-(1 << (x_bits - 1)), 1 << (x_bits - 1)), rng.randrange(1 << m_bits))
              for _ in range(500)]
    assert mismatches(pairs, products(x_bits, m_bits, pairs)) == []


def test_checker_catches_a_wrong_product():
    pairs = [(3, 5), (-7, 9), (2, 0)]
    results = products(5, 4, pairs)
    assert results == [15, -63, 0]
    results[1] += 1
    assert mismatches(pairs, results) == [1]


def test_latency_and_structure():
    assert booth_digits(16) == 9 and multiplier_levels(16) == 3  # 10 operands -> 4 -> 2 -> 1
    assert BoothMultiplier(x_bits=26, m_bits=16).latency == 4
    assert booth_digits(1) == 1 and BoothMultiplier(x_bits=3, m_bits=1).latency == 2  # 2 operands, one adder


@pytest.mark.parametrize("x_bits, m_bits", [(6, 5), (9, 4)])
def test_primitive_netlist_equals_the_plain_one(tmp_path, x_bits, m_bits):
    plain = BoothMultiplier(x_bits=x_bits, m_bits=m_bits)
    result = equivalence.prove_equal(tmp_path, plain, BoothMultiplier(x_bits=x_bits, m_bits=m_bits, primitives=True),
                                     steps=plain.latency + 1)
    assert result.returncode == 0, result.stdout + result.stderr


def test_proof_fails_for_a_wrong_lut(tmp_path, monkeypatch):
    real = lutmap.lut_init
    monkeypatch.setattr(lutmap, "lut_init", lambda function, inputs: real(function, inputs) ^ (1 << 5))
    plain = BoothMultiplier(x_bits=6, m_bits=5)
    result = equivalence.prove_equal(tmp_path, plain, BoothMultiplier(x_bits=6, m_bits=5, primitives=True),
                                     steps=plain.latency + 1)
    assert result.returncode != 0 and "proof did fail" in result.stdout + result.stderr


@pytest.mark.parametrize("kwargs, message", [
    ({"x_bits": 0}, "x_bits must be an int in 1..64, got 0"),
    ({"m_bits": 65}, "m_bits must be an int in 1..64, got 65"),
    ({"primitives": "yes"}, "primitives must be a bool, got str 'yes'"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        BoothMultiplier(**{"x_bits": 8, "m_bits": 8, **kwargs})
