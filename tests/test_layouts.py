"""The shared bit layouts and pack/unpack (esb_hw/layouts.py)."""

import pytest
from amaranth import signed
from amaranth.lib import data

from esb_hw.config import AcceleratorConfig
from esb_hw.errors import ParameterError
from esb_hw.layouts import SelfTestLayer, array_input_layout, array_output_layout, pack, unpack

CONFIG = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=6, activation_k=3, rows=2, cols=3)


def test_input_beat_bit_positions():
    """activations first (6 bits each), then weights[r][c] row-major (4 bits each), then last."""
    layout = array_input_layout(CONFIG)
    assert layout.size == 3 * 6 + 2 * 3 * 4 + 1
    beat = {"activations": [1, 0, 0], "weights": [[0, 0, 0], [0, 0, 9]], "last": 1}
    assert pack(layout, beat) == 1 | 9 << (18 + 5 * 4) | 1 << 42
    assert unpack(layout, pack(layout, beat)) == beat


def test_output_beat_is_signed_row_0_low():
    layout = array_output_layout(CONFIG)
    bits = CONFIG.accumulator_bits
    assert pack(layout, [-1, 2]) == (1 << bits) - 1 | 2 << bits
    assert unpack(layout, pack(layout, [-1, 2])) == [-1, 2]


def test_unpack_catches_a_wrong_field():
    layout = data.StructLayout({"value": signed(4), "last": 1})
    assert unpack(layout, 0b1_1111) == {"value": -1, "last": 1}
    assert unpack(layout, 0b0_1111) != {"value": -1, "last": 1}


@pytest.mark.parametrize("value, message", [
    ({"activations": [0, 0, 64], "weights": [[0] * 3] * 2, "last": 0},
     r"beat.activations\[2\] must be in 0..63 \(unsigned\(6\)\), got 64"),
    ({"activations": [0, 0], "weights": [[0] * 3] * 2, "last": 0}, "beat.activations must have 3 elements, got 2"),
    ({"activations": [0] * 3, "weights": [[0] * 3] * 2}, "beat lacks the fields last"),
    ({"activations": [0] * 3, "weights": [[0] * 3] * 2, "last": 0, "first": 1},
     "beat has unknown fields first; fields: activations, weights, last"),
    ({"activations": [0] * 3, "weights": [[0] * 3, [0, 0, 1.5]], "last": 0},
     r"beat.weights\[1\]\[2\] must be an integer, got 1.5"),
    ([0, 0, 0], "beat must be a mapping of fields, got list"),
])
def test_pack_names_the_bad_field(value, message):
    with pytest.raises(ParameterError, match=message):
        pack(array_input_layout(CONFIG), value, where="beat")


def test_signed_range():
    assert pack(signed(4), -8) == 8
    with pytest.raises(ParameterError, match=r"value must be in -8..7 \(signed\(4\)\), got 8"):
        pack(signed(4), 8)
    with pytest.raises(ParameterError, match="bits must be >= 0, got -1"):
        unpack(signed(4), -1)


def test_self_test_layer():
    layer = SelfTestLayer((1, 2, 3), (4,))
    assert layer.tiles == 1
    with pytest.raises(ParameterError, match="beats must be a non-empty tuple of ints"):
        SelfTestLayer([1], (4,))


def test_weight_encoding_by_format():
    import dataclasses

    import numpy as np

    from esb_hw.layouts import weight_encoding, weight_fields

    uniform = AcceleratorConfig(weight_bits=4, weight_k=2, activation_bits=8, activation_k=8, rows=2, cols=3)
    assert weight_encoding(uniform) == "twos" and weight_encoding(CONFIG) == "code"
    assert weight_encoding(dataclasses.replace(uniform, pe_variant="baseline")) == "code"
    codes = np.array([0, 1, 7, 8, 9, 15])  # levels 0, 1, 7, 0 (negative zero), -1, -7
    assert weight_fields(uniform, codes).tolist() == [0, 1, 7, 0, 15, 9]  # two's complement, 4 bits
    assert weight_fields(CONFIG, codes).tolist() == codes.tolist()


def test_requant_constants_are_the_golden_models():
    from esb_hw.layouts import REQUANT_MULTIPLIER_BITS, REQUANT_SHIFT_RANGE
    from esb_hw.quant import golden
    assert REQUANT_MULTIPLIER_BITS == golden.MULTIPLIER_BITS and REQUANT_SHIFT_RANGE == golden.SHIFT_RANGE


def test_docs_memory_tables_match_the_layouts():
    """docs/memory.md's descriptor table (bit ranges) and error table are those of esb_hw/layouts.py."""
    import re
    from pathlib import Path

    from esb_hw.layouts import ENGINE_ERRORS, descriptor_layout

    text = (Path(__file__).resolve().parents[1] / "docs" / "memory.md").read_text()
    documented = {name: (int(low), int(high or low))
                  for name, low, high in re.findall(r"^\| `(\w+)` \| (\d+)(?:-(\d+))? \|", text, re.M)}
    layout = descriptor_layout()
    expected = {name: (field.offset, field.offset + field.width - 1) for name, field in layout}
    assert documented == expected
    assert f"{layout.size} bits" in text
    errors = {int(code): name for code, name in re.findall(r"^\| (\d+) \| `(\w+)` \|", text, re.M)}
    assert errors == {code: name for code, (name, _) in ENGINE_ERRORS.items()}
