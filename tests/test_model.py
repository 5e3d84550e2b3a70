"""The analytical resource model (esb_hw/estimate/model.py): structure from the hardware, exact flip-flops,
fit checks and throughput."""

import re
from pathlib import Path

import pytest
from amaranth.back import rtlil

from esb_hw.config import AcceleratorConfig
from esb_hw.data import shipped_config
from esb_hw.estimate import (
    MODEL_TOLERANCE,
    DoesNotFitError,
    ResourceEstimate,
    check_fits,
    estimate_array,
    estimate_extra,
    exceeds_tolerance,
    gops_per_klut,
    model,
    model_error,
    peak_gops,
    relative_error,
)
from esb_hw.hw.core.array import PEArray
from esb_hw.layouts import weight_encoding

ROOT = Path(__file__).resolve().parents[1]

ZCU102 = {"lut": 274_080, "ff": 548_160, "bram36": 912, "dsp": 2_520}
COMPONENTS = ["lanes", "products", "trees", "accumulators", "control", "output"]


def config(**changes) -> AcceleratorConfig:
    fields = dict(weight_bits=4, weight_k=1, activation_bits=8, activation_k=8, rows=8, cols=8)
    return AcceleratorConfig(**{**fields, **changes})


# ---- structure and monotonicity ----------------------------------------------------------------------------
def elaborated_register_bits(design) -> int:
    """Flip-flop bits of the elaborated design, before any synthesis: the widths of its register cells."""
    text = rtlil.convert(design, emit_src=False)
    cells = re.findall(r"cell \$(?:dff|adff|sdff|dffe)\b.*?\n((?:\s+parameter.*\n)+)", text)
    return sum(int(re.search(r"parameter \\WIDTH (\d+)", parameters).group(1)) for parameters in cells)


@pytest.mark.parametrize("variant", ["esb", "esb_naive", "baseline"])
@pytest.mark.parametrize("shape, bram36", [((3, 5), 1.0), ((2, 8), 1.0), ((1, 1), 0.5)])
def test_flip_flops_are_those_of_the_elaborated_array(variant, shape, bram36):
    """The model's flip-flops are what the hardware reports it registers; the elaborated netlist has exactly one
    more: the registered beat's ``last`` bit, which nothing reads and synthesis removes."""
    small = config(pe_variant=variant, rows=shape[0], cols=shape[1], max_reduction=64)
    result = estimate_array(small)
    assert sorted(result.breakdown) == sorted(COMPONENTS)
    assert elaborated_register_bits(PEArray(small)) == result.ff + 1
    # The sums (19 bits per row at max_reduction 64) wait in one RAMB36 (up to 72 bits) or one RAMB18 (36).
    assert small.accumulator_bits == 19 and result.bram36 == bram36 and result.dsp == 0


@pytest.mark.parametrize("weights, activations", [((4, 2), (8, 8)), ((5, 3), (8, 8)), ((6, 4), (6, 3))])
def test_flip_flops_of_recoded_arrays(weights, activations):
    """Radix-4 recoded arrays, whose 5- and 6-bit products give the tree a second, partly constant term."""
    small = config(weight_bits=weights[0], weight_k=weights[1], activation_bits=activations[0],
                   activation_k=activations[1], rows=3, cols=5, max_reduction=64)
    assert weight_encoding(small) == "twos"
    assert elaborated_register_bits(PEArray(small)) == estimate_array(small).ff + 1


@pytest.mark.parametrize("variant", ["esb", "esb_naive", "baseline"])
@pytest.mark.parametrize("field, values", [
    ("rows", [1, 2, 3, 8, 16, 64]),
    ("cols", [1, 2, 3, 5, 8, 16, 64]),
    ("activation_bits", [2, 4, 6, 8]),  # plain integers: k = bits
    ("max_reduction", [8, 64, 4096, 1 << 20]),  # accumulator bits (at least cols)
])
def test_model_grows_with_size(variant, field, values):
    estimates = []
    for value in values:
        changes = {field: value, "pe_variant": variant}
        if field == "activation_bits":
            changes["activation_k"] = value
        estimates.append(estimate_array(config(**changes)))
    for smaller, larger in zip(estimates, estimates[1:], strict=False):
        assert larger.lut >= smaller.lut and larger.ff > smaller.ff


@pytest.mark.parametrize("weights", [[(3, 0), (4, 0), (5, 0)], [(3, 1), (4, 2), (5, 3)], [(4, 1), (5, 1)]])
def test_model_grows_with_weight_bits(weights):
    estimates = [estimate_array(config(weight_bits=bits, weight_k=k)) for bits, k in weights]
    for smaller, larger in zip(estimates, estimates[1:], strict=False):
        assert larger.lut > smaller.lut and larger.ff > smaller.ff


def test_flip_flops_of_the_default_array():
    # Counted by hand from array.py, row.py and output_buffer.py: 64 activation bits; 64 PEs x (4 weight bits +
    # 13-bit term); 8 ternary trees x (level 1: 15 + 15 + two passed 13-bit terms + 4 signs; level 2: 17 + the
    # passed 15-bit sum + 2 signs); 8 x 25-bit accumulators;
    # 4 stages x (valid, first, last) + starts_tile + a 6-bit credit counter + the buffer's two 6-bit pointers
    # (5 address bits and a wrap bit) and o.valid. The sums wait in block RAM, not in flip-flops.
    assert model.flip_flops(config()) == {"lanes": 64, "products": 1088,
                                             "trees": 8 * (15 + 15 + 13 + 13 + 4 + 17 + 15 + 2), "accumulators": 200,
                                             "control": 12 + 1 + 6 + 6 + 6 + 1, "output": 0}


# ---- model error ---------------------------------------------------------------------------------------------
def test_relative_error():
    assert relative_error(115, 100) == pytest.approx(0.15)
    assert relative_error(80, 100) == pytest.approx(-0.2)
    assert relative_error(0, 0) == 0.0
    assert relative_error(3, 0) == float("inf")


def test_a_doubled_model_is_flagged():
    measured = {"lut": 2698, "ff": 2441, "bram36": 0, "dsp": 0}
    good = ResourceEstimate(lut=2582, ff=2441)
    doubled = ResourceEstimate(lut=2 * 2582, ff=2 * 2441)
    assert exceeds_tolerance(model_error(good, measured)) == []
    errors = model_error(doubled, measured)
    assert errors["lut"] > MODEL_TOLERANCE
    assert exceeds_tolerance(errors) == ["lut"]
    assert exceeds_tolerance(errors, resources=("lut", "ff")) == ["lut", "ff"]


# ---- estimates add -------------------------------------------------------------------------------------------
def test_extra_overhead_adds_to_the_array():
    array = estimate_array(config())
    wrapper = estimate_extra("wrapper", lut=400, ff=300, bram36=2.5, dsp=1)
    total = array + wrapper + estimate_extra("wrapper", lut=100)
    assert (total.lut, total.ff, total.bram36, total.dsp) == (array.lut + 500, array.ff + 300, array.bram36 + 2.5, 1)
    assert total.breakdown["wrapper"] == {"lut": 500, "ff": 300, "bram36": 2.5, "dsp": 1}
    assert total.breakdown["products"] == array.breakdown["products"]
    assert "wrapper" not in array.breakdown  # the operands are untouched


@pytest.mark.parametrize("kwargs, message", [
    ({"lut": -1}, "lut must be a finite number >= 0, got -1"),
    ({"ff": True}, "ff must be a finite number >= 0, got True"),
    ({"dsp": float("nan")}, "dsp must be a finite number >= 0, got nan"),
])
def test_bad_amounts(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        estimate_extra("wrapper", **kwargs)


def test_bad_extra_name():
    with pytest.raises(ValueError, match="name must be a non-empty string, got ''"):
        estimate_extra("", lut=1)


# ---- throughput ------------------------------------------------------------------------------------------------
def test_peak_gops_and_gops_per_klut():
    default = config()  # 64 MACs at 200 MHz
    assert peak_gops(default) == pytest.approx(25.6)
    assert gops_per_klut(default, 2560) == pytest.approx(10.0)
    assert peak_gops(config(rows=16, cols=32, clock_mhz=250.0)) == pytest.approx(2 * 512 * 0.25)
    with pytest.raises(ValueError, match=r"luts must be a number > 0, got 0"):
        gops_per_klut(default, 0)


# ---- fitting the board ---------------------------------------------------------------------------------------
def test_check_fits_returns_utilization():
    utilization = check_fits(ResourceEstimate(lut=27_408, ff=0, bram36=456, dsp=0), ZCU102, "zcu102")
    assert utilization == {"lut": 0.1, "ff": 0.0, "bram36": 0.5, "dsp": 0.0}
    measured = {"lut": 27_408, "ff": 54_816, "bram36": 0.0, "dsp": 0, "source": "yosys"}
    assert check_fits(measured, ZCU102, "zcu102") == {"lut": 0.1, "ff": 0.1, "bram36": 0.0, "dsp": 0.0}


def test_check_fits_message():
    with pytest.raises(DoesNotFitError) as caught:
        check_fits(ResourceEstimate(lut=301_234, ff=1_000), ZCU102, "zcu102")
    assert str(caught.value) == "design does not fit zcu102: 301,234 LUTs > 274,080 available (110%)"
    assert caught.value.over == {"lut": (301_234, 274_080)}
    assert isinstance(caught.value, ValueError)


def test_check_fits_names_every_resource_over():
    with pytest.raises(DoesNotFitError, match=re.escape(
            "design does not fit kcu105: 300,000 LUTs > 242,400 available (124%); "
            "600.5 BRAM36 > 600 available (100%); 2,000 DSPs > 1,920 available (104%)")):
        check_fits(ResourceEstimate(lut=300_000, ff=0, bram36=600.5, dsp=2_000),
                   {"lut": 242_400, "ff": 484_800, "bram36": 600, "dsp": 1_920}, "kcu105")


def test_an_oversized_config_does_not_fit():
    big = estimate_array(config(weight_bits=6, weight_k=3, rows=64, cols=64))
    assert big.lut > ZCU102["lut"] and big.ff < ZCU102["ff"]
    expected = (f"design does not fit zcu102: {big.lut:,} LUTs > 274,080 available "
                f"({100 * big.lut / 274_080:.0f}%)")
    with pytest.raises(DoesNotFitError, match=f"^{re.escape(expected)}$"):
        check_fits(big, ZCU102, "zcu102")


def test_capacity_needs_every_resource():
    with pytest.raises(ValueError, match=r"capacity lacks dsp, got keys \['bram36', 'ff', 'lut'\]"):
        check_fits(ResourceEstimate(lut=1, ff=1), {"lut": 1, "ff": 1, "bram36": 1}, "zcu102")




@pytest.mark.parametrize(("width", "depth", "blocks"), [(64, 4096, 8), (32, 4096, 4), (36, 512, 0.5), (72, 512, 1),
                                                        (128, 4096, 15), (18, 1024, 0.5), (1, 32768, 1)])
def test_bram36_blocks_follow_the_primitive_aspect_ratios(width, depth, blocks):
    from esb_hw.estimate.model import bram36_blocks

    assert bram36_blocks(width, depth) == blocks


def test_the_engine_model_adds_its_parts_to_the_array():
    import dataclasses

    from esb_hw.estimate.model import ENGINE_PARTS, estimate_array, estimate_engine

    config = shipped_config("default")
    engine = estimate_engine(config)
    assert set(engine.breakdown) == {"array", *ENGINE_PARTS, "buffers (block RAM)"}
    assert engine.breakdown["array"]["lut"] == estimate_array(config).lut
    assert engine.lut == sum(part["lut"] for part in engine.breakdown.values())
    assert engine.dsp == 0 and engine.bram36 >= 3
    two_lanes = estimate_engine(dataclasses.replace(config, rows=16, cols=16, requant_lanes=2))
    one_lane = estimate_engine(dataclasses.replace(config, rows=16, cols=16, requant_lanes=1))
    assert two_lanes.breakdown["requantization"]["lut"] > one_lane.breakdown["requantization"]["lut"]
    bigger = estimate_engine(dataclasses.replace(config, activation_words=8192))
    assert bigger.bram36 > engine.bram36
