"""ProcessingElement (esb_hw/hw/pe.py): exhaustive products and extreme sums in Amaranth's simulator."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from esb_hw.config import PE_VARIANTS, AcceleratorConfig
from esb_hw.hw.pe import ProcessingElement
from esb_hw.quant import ESBFormat

CONFIGS = ["default", "pot3", "esb5_act_esb", "uniform4"]
LATENCY = 2  # documented in ProcessingElement's docstring


def make_pe(config: AcceleratorConfig, variant: str) -> ProcessingElement:
    return ProcessingElement(weight=config.weight_format, activation=config.activation_format,
                             accumulator_bits=config.accumulator_bits, variant=variant)


def run_pe(pe: ProcessingElement, beats):
    """Drive ``(weight_code, activation_code, first)`` one per cycle; return the accumulator seen
    ``LATENCY`` cycles after each beat."""
    observed = []

    async def testbench(ctx):
        ctx.set(pe.valid, 1)
        for index in range(len(beats) + LATENCY - 1):
            if index < len(beats):
                weight_code, activation_code, first = beats[index]
                ctx.set(pe.weight_code, int(weight_code))
                ctx.set(pe.activation_code, int(activation_code))
                ctx.set(pe.first, int(first))
            else:
                ctx.set(pe.valid, 0)
            await ctx.tick()
            if index >= LATENCY - 1:
                observed.append(ctx.get(pe.accumulator))

    simulator = Simulator(pe)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return observed


def golden_running_sums(config, beats):
    """DESIGN.md §2: exact sums of La * Lw, restarted by ``first``."""
    sums, total = [], 0
    for weight_code, activation_code, first in beats:
        product = int(config.activation_format.level(activation_code)) * int(config.weight_format.level(weight_code))
        total = product if first else total + product
        sums.append(total)
    return sums


def mismatches(config, beats, observed):
    expected = golden_running_sums(config, beats)
    return [(index, beats[index], got, want) for index, (got, want) in enumerate(zip(observed, expected, strict=True))
            if got != want]


@pytest.mark.parametrize("variant", PE_VARIANTS)
@pytest.mark.parametrize("name", CONFIGS)
def test_every_weight_code_times_every_activation_code(name, variant):
    config = AcceleratorConfig.from_toml(f"configs/{name}.toml")
    weights, activations = np.meshgrid(np.arange(config.weight_format.code_count),
                                       np.arange(config.activation_format.code_count), indexing="ij")
    beats = [(w, a, 1) for w, a in zip(weights.ravel(), activations.ravel(), strict=True)]
    observed = run_pe(make_pe(config, variant), beats)
    assert mismatches(config, beats, observed) == []


def extreme_sequences(config):
    """Longest sums of the largest products, positive and negative, and negative-zero codes mixed in."""
    weight, activation = config.weight_format, config.activation_format
    top_activation = int(activation.code_of_level(np.array([activation.max_level]))[0])
    most_positive = int(weight.code_of_level(np.array([weight.max_level]))[0])
    most_negative = int(weight.code_of_level(np.array([-weight.max_level]))[0])
    negative_zero = 1 << (weight.bits - 1)
    length = config.max_reduction
    positive = [(most_positive, top_activation, index == 0) for index in range(length)]
    negative = [(most_negative, top_activation, index == 0) for index in range(length)]
    with_zeros = [(negative_zero if index % 3 else most_negative, top_activation, index == 0) for index in range(64)]
    return positive + negative + with_zeros


@pytest.mark.parametrize("variant", PE_VARIANTS)
@pytest.mark.parametrize("name", ["default", "esb5_act_esb"])
def test_extreme_sums_at_the_maximum_reduction_length(name, variant):
    config = AcceleratorConfig.from_toml(f"configs/{name}.toml")
    beats = extreme_sequences(config)
    observed = run_pe(make_pe(config, variant), beats)
    assert mismatches(config, beats, observed) == []
    extremes = golden_running_sums(config, beats)
    assert max(extremes) == config.max_reduction * config.max_product == -min(extremes)


def test_random_sums_with_restarts():
    config = AcceleratorConfig.from_toml("configs/esb5_act_esb.toml")
    rng = np.random.default_rng(3)
    beats = [(rng.integers(32), rng.integers(64), rng.random() < 0.1) for _ in range(3000)]
    beats[0] = (beats[0][0], beats[0][1], True)
    assert mismatches(config, beats, run_pe(make_pe(config, "esb"), beats)) == []


def test_checker_catches_a_wrong_accumulator():
    config = AcceleratorConfig.from_toml("configs/default.toml")
    beats = [(3, 200, 1), (5, 17, 0), (9, 255, 0)]
    observed = run_pe(make_pe(config, "esb"), beats)
    observed[1] += 1
    assert [entry[0] for entry in mismatches(config, beats, observed)] == [1]


def test_hold_without_valid():
    config = AcceleratorConfig.from_toml("configs/default.toml")
    pe = make_pe(config, "esb")
    seen = []

    async def testbench(ctx):
        ctx.set(pe.valid, 1)
        ctx.set(pe.first, 1)
        ctx.set(pe.weight_code, 2)  # level 2
        ctx.set(pe.activation_code, 10)
        await ctx.tick()
        ctx.set(pe.valid, 0)
        for _ in range(4):
            await ctx.tick()
            seen.append(ctx.get(pe.accumulator))

    simulator = Simulator(pe)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    assert seen == [20, 20, 20, 20]


def test_unknown_variant():
    with pytest.raises(ValueError, match="variant must be one of esb, esb_naive, baseline, got 'fast'"):
        ProcessingElement(weight=ESBFormat(4, 1), activation=ESBFormat(8, 8, False), accumulator_bits=25,
                          variant="fast")


def test_from_config():
    config = AcceleratorConfig.from_toml("configs/default.toml")
    pe = ProcessingElement.from_config(config)
    assert pe.accumulator_bits == config.accumulator_bits == 25
    assert len(pe.weight_code) == 4 and len(pe.activation_code) == 8
    run_pe(pe, [(1, 1, 1)])  # elaborated, so no unused-elaboratable warning
