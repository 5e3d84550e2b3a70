"""Hierarchical measurement with yosys (esb_hw/estimate/measure.py): two small array runs in parallel."""

import dataclasses

import pytest

from esb_hw.config import AcceleratorConfig
from esb_hw.estimate import estimate_array
from esb_hw.estimate import measure as estimate
from esb_hw.estimate.synth import ARRAY_FLOW


def config(**changes) -> AcceleratorConfig:
    fields = dict(weight_bits=4, weight_k=1, activation_bits=8, activation_k=8, rows=8, cols=8)
    return AcceleratorConfig(**{**fields, **changes})


@pytest.mark.slow  # about 40 s of yosys
def test_measure_array_counts_flip_flops_exactly():
    """Two small yosys runs (1 and 2 rows of 3 columns, in parallel): the hierarchical measurement of a
    3x3 array and the model's exact flip-flop count agree."""
    small = dataclasses.replace(config(), rows=3, cols=3)
    lines = []
    result = estimate.measure_array(small, progress=lines.append)
    assert len(lines) == 6  # a start and an end line per run: one row, two rows, the output buffer
    assert sum(line.startswith("yosys: output buffer (75 bits): ") for line in lines) == 1
    assert result["measured"]["ff"] == estimate_array(small).ff
    assert result["error"]["ff"] == 0.0
    assert result["measured"]["lut"] == result["shared"]["lut"] + 3 * result["per_row"]["lut"]
    assert result["flow"] == ARRAY_FLOW
    assert abs(result["error"]["lut"]) < 0.3  # a 3x3 array is far from the calibration points; just sane


def test_designs_by_name():
    import gc
    import warnings

    from amaranth.hdl import UnusedElaboratable

    from esb_hw.data import shipped_config
    from esb_hw.estimate.measure import DESIGNS, design_component
    from esb_hw.hw.core.array import PEArray
    from esb_hw.hw.core.engine import Engine
    from esb_hw.hw.system import System

    config = shipped_config("default")
    with warnings.catch_warnings():  # built to check their types, never elaborated
        warnings.simplefilter("ignore", UnusedElaboratable)
        assert [type(design_component(name, config)) for name in DESIGNS] == [PEArray, Engine, System]
        gc.collect()
    with pytest.raises(ValueError, match="design must be one of array, engine, system, got 'chip'"):
        design_component("chip", config)
