"""Tests for esb_hw/config.py: every error message, the shipped configs, and the derived widths."""

import dataclasses
import itertools
import re
import tomllib

import pytest

from esb_hw.config import PE_VARIANTS, AcceleratorConfig, ConfigError
from esb_hw.data import CONFIGS
from esb_hw.quant import ESBFormat

CONFIG_DIR = CONFIGS
SHIPPED = sorted(CONFIG_DIR.glob("*.toml"))
BASE = dict(weight_bits=4, weight_k=1, activation_bits=8, activation_k=8, rows=8, cols=8)
# ESB(8,4) weights (Lw_max 1984) x unsigned ESB(16,12) activations (La_max 134201344): a 48-bit
# accumulator holds at most (2**47 - 1) // (1984 * 134201344) = 528 products.
WIDE = dict(BASE, weight_bits=8, weight_k=4, activation_bits=16, activation_k=12)

BASE_TOML = """\
clock_mhz = 200.0
max_reduction = 4096
[weights]
bits = 4
k = 1
[activations]
bits = 8
k = 8
[array]
rows = 8
cols = 8
pe_variant = "esb"
"""

WIDE_TOML = BASE_TOML.replace("bits = 4\nk = 1", "bits = 8\nk = 4").replace("bits = 8\nk = 8", "bits = 16\nk = 12")


def config(**overrides) -> AcceleratorConfig:
    return AcceleratorConfig(**{**BASE, **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(rows=0), "rows must be in 1..64, got 0"),
        (dict(max_reduction=3), "max_reduction must be >= cols (8): one beat reduces cols products, got 3"),
        (dict(weight_bits=16, weight_k=11), "weight_bits must be in 2..8, got 16"),
        (dict(activation_bits=20, activation_k=20), "activation_bits must be in 1..16, got 20"),
        (dict(cols=65), "cols must be in 1..64, got 65"),
        (dict(rows=True), "rows must be an int, got bool True"),
        (dict(cols=8.0), "cols must be an int, got float 8.0"),
        (dict(weight_bits="4"), "weight_bits must be an int, got str '4'"),
        (dict(weight_k=None), "weight_k must be an int, got NoneType None"),
        (dict(activation_bits=8.5), "activation_bits must be an int, got float 8.5"),
        (dict(activation_k=False), "activation_k must be an int, got bool False"),
        (dict(max_reduction=0), "max_reduction must be in 1..1048576, got 0"),
        (dict(max_reduction=2**20 + 1), "max_reduction must be in 1..1048576, got 1048577"),
        (dict(max_reduction="4096"), "max_reduction must be an int, got str '4096'"),
        (dict(clock_mhz=0), "clock_mhz must be in (0, 1000], got 0"),
        (dict(entries=6), "entries must be a multiple of 4 (a pooling window stays in one block), got 6"),
        (dict(entries=68), "entries must be in 4..64, got 68"),
        (dict(requant_lanes=3), "requant_lanes must divide rows (8) or be 0 (automatic), got 3"),
        (dict(requant_lanes=-1), "requant_lanes must be in 0..64, got -1"),
        (dict(weight_words=1000), "weight_words must be a power of two, got 1000"),
        (dict(activation_words=8), "activation_words must be in 16..524288, got 8"),
        (dict(output_words=1 << 20), "output_words must be in 16..524288, got 1048576"),
        (dict(param_words=32.0), "param_words must be an int, got float 32.0"),
        (dict(clock_mhz=-5.0), "clock_mhz must be in (0, 1000], got -5.0"),
        (dict(clock_mhz=1000.5), "clock_mhz must be in (0, 1000], got 1000.5"),
        (dict(clock_mhz=float("nan")), "clock_mhz must be in (0, 1000], got nan"),
        (dict(clock_mhz=float("inf")), "clock_mhz must be in (0, 1000], got inf"),
        (dict(clock_mhz="200"), "clock_mhz must be a number, got str '200'"),
        (dict(clock_mhz=True), "clock_mhz must be a number, got bool True"),
        (dict(pe_variant="fast"), "pe_variant must be one of 'esb', 'esb_naive', 'baseline', got 'fast'"),
        (dict(pe_variant=None), "pe_variant must be one of 'esb', 'esb_naive', 'baseline', got None"),
        (dict(name=""), "name must be 1..64 characters from A-Z a-z 0-9 _ . -, got ''"),
        (dict(name="my config"), "name must be 1..64 characters from A-Z a-z 0-9 _ . -, got 'my config'"),
        (dict(name="x" * 65), "name must be 1..64 characters"),
        (dict(name=3), "name must be 1..64 characters from A-Z a-z 0-9 _ . -, got 3"),
        # k larger than the format allows
        (dict(weight_k=4), "weight format: k must be in 0..3 for a signed 4-bit format"),
        (dict(activation_k=9), "activation format: k must be in 0..8 for a unsigned 8-bit format"),
        (dict(activation_k=-1), "activation format: k must be >= 0, got -1"),
        (dict(weight_bits=8, weight_k=0), "weight format: exponent bits e = bits - k - sign = 7 must be in 0..4"),
        (dict(weight_bits=0, weight_k=0), "weight_bits must be in 2..8, got 0"),
        (dict(weight_bits=33), "weight_bits must be in 2..8, got 33"),
        (dict(weight_bits=1, weight_k=0), "weight_bits must be in 2..8, got 1"),
        # an accumulator wider than 48 bits
        (
            dict(WIDE, max_reduction=4096),
            "max_reduction must be in 1..528 so the accumulator fits in 48 bits (weights ESB(8,4), "
            "activations ESB(16,12,unsigned), max |La*Lw| = 266255466496), got 4096 (needs 51 bits)",
        ),
        # The widest supported formats still fit one product in 48 bits, so that check cannot fire now.
        (dict(weight_bits=8, weight_k=3, activation_bits=16, activation_k=12, max_reduction=8),
         "max_reduction must be in 1..4 so the accumulator fits in 48 bits"),
    ],
)
def test_constructor_errors(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config(**overrides)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
    error = ConfigError("must be in 1..64, got 0", key="array.rows", source="configs/x.toml")
    assert str(error) == "array.rows must be in 1..64, got 0 (configs/x.toml)"
    assert (error.problem, error.key, error.source) == ("must be in 1..64, got 0", "array.rows", "configs/x.toml")


def test_largest_fitting_reduction_is_exact():
    fits = config(**{**WIDE, "max_reduction": 528})
    assert fits.accumulator_bits == 48
    with pytest.raises(ConfigError, match=r"max_reduction must be in 1\.\.528 .* got 529 \(needs 49 bits\)"):
        config(**{**WIDE, "max_reduction": 529})


# ---- TOML ---------------------------------------------------------------------------------------


def edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (edit(BASE_TOML, "rows = 8", 'rows = "8"'), "array.rows must be an int, got str '8'"),
        (edit(BASE_TOML, "cols = 8", "cols = 8.0"), "array.cols must be an int, got float 8.0"),
        (edit(BASE_TOML, "rows = 8", "rows = 0"), "array.rows must be in 1..64, got 0"),
        (edit(BASE_TOML, "bits = 4", "bits = true"), "weights.bits must be an int, got bool True"),
        (edit(BASE_TOML, "k = 8", "k = [8]"), "activations.k must be an int, got list [8]"),
        (edit(BASE_TOML, "4096", "0"), "max_reduction must be in 1..1048576, got 0"),
        (edit(BASE_TOML, "200.0", '"fast"'), "clock_mhz must be a number, got str 'fast'"),
        (edit(BASE_TOML, '"esb"', '"ESB"'), "array.pe_variant must be one of 'esb', 'esb_naive', 'baseline'"),
        (edit(BASE_TOML, "k = 1", "k = 4"), "weight format: k must be in 0..3 for a signed 4-bit format"),
        ('name = "a/b"\n' + BASE_TOML, "name must be 1..64 characters from A-Z a-z 0-9 _ . -, got 'a/b'"),
        (WIDE_TOML, "max_reduction must be in 1..528 so the accumulator fits in 48 bits"),
        # unknown keys and sections, typos included
        (
            edit(BASE_TOML, "rows = 8", "rowz = 8"),
            "unknown key 'array.rowz'; allowed in [array]: rows, cols, pe_variant",
        ),
        (edit(BASE_TOML, "k = 1", "K = 1"), "unknown key 'weights.K'; allowed in [weights]: bits, k"),
        (
            edit(BASE_TOML, "[weights]", "[weight]"),
            "unknown key 'weight'; allowed at top level: name, clock_mhz, max_reduction, "
            "[weights], [activations], [array]",
        ),
        ("clock = 200.0\n" + BASE_TOML, "unknown key 'clock'; allowed at top level"),
        ("[array.extra]\nx = 1\n" + BASE_TOML, "unknown key 'array.extra'"),
        ('"weights.bits" = 4\n' + BASE_TOML, "unknown key 'weights.bits'; allowed at top level"),
        ("weights = 4\n" + BASE_TOML.split("[weights]")[0], "weights must be a table, got int 4"),
        # missing required keys
        (edit(BASE_TOML, "cols = 8\n", ""), "array.cols is required but missing"),
        (BASE_TOML.split("[array]")[0], "array.rows is required but missing"),
        # TOML syntax
        (edit(BASE_TOML, "rows = 8", "rows = "), "invalid TOML: "),
        (BASE_TOML + "[array]\n", "invalid TOML: "),
    ],
)
def test_toml_errors(tmp_path, toml, message):
    path = tmp_path / "x.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(message) + r".*\(" + re.escape(str(path)) + r"\)$"):
        AcceleratorConfig.from_toml(path)


def test_toml_file_errors(tmp_path):
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=re.escape(f"config file not found ({missing})")):
        AcceleratorConfig.from_toml(missing)
    with pytest.raises(ConfigError, match=re.escape("cannot read config file: ") + ".*" + re.escape(f"({tmp_path})")):
        AcceleratorConfig.from_toml(tmp_path)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'name = "\xff"\n')
    with pytest.raises(ConfigError, match=re.escape("invalid TOML: ") + ".*" + re.escape(f"({binary})")):
        AcceleratorConfig.from_toml(binary)


def test_from_dict_errors_name_toml_keys_without_source():
    layout = config().to_dict()
    layout["array"]["rows"] = 0
    with pytest.raises(ConfigError, match=r"^array\.rows must be in 1\.\.64, got 0$"):
        AcceleratorConfig.from_dict(layout)
    with pytest.raises(ConfigError, match=r"^config must be a table, got list \[\] \(here\)$"):
        AcceleratorConfig.from_dict([], source="here")


def test_name_defaults_to_file_stem(tmp_path):
    path = tmp_path / "my_cfg.toml"
    path.write_text(BASE_TOML)
    loaded = AcceleratorConfig.from_toml(str(path))
    assert loaded == config(name="my_cfg")
    assert AcceleratorConfig.from_dict(tomllib.loads(BASE_TOML)).name == "custom"


# ---- shipped configs ----------------------------------------------------------------------------

EXPECTED_FORMATS = {
    "default": (ESBFormat(4, 1), ESBFormat(8, 8, signed=False)),
    "pot3": (ESBFormat(3, 0), ESBFormat(8, 8, signed=False)),
    "esb5_act_esb": (ESBFormat(5, 2), ESBFormat(6, 3, signed=False)),
    "uniform4": (ESBFormat(4, 2), ESBFormat(8, 8, signed=False)),
    "uniform5": (ESBFormat(5, 3), ESBFormat(8, 8, signed=False)),
}


def test_expected_configs_are_shipped():
    assert set(EXPECTED_FORMATS) <= {path.stem for path in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.stem)
def test_shipped_config_loads_and_round_trips(path):
    loaded = AcceleratorConfig.from_toml(path)
    assert loaded.name == path.stem
    assert path.read_text().startswith("#"), "each shipped config starts with a comment header"
    with path.open("rb") as file:
        assert tomllib.load(file) == loaded.to_dict(), "shipped files spell out every key, canonically"
    assert AcceleratorConfig.from_dict(loaded.to_dict()) == loaded
    assert loaded.accumulator_bits <= 48
    if path.stem in EXPECTED_FORMATS:
        assert (loaded.weight_format, loaded.activation_format) == EXPECTED_FORMATS[path.stem]
        assert (loaded.rows, loaded.cols) == (8, 8)


def test_shipped_format_shapes():
    pot3 = AcceleratorConfig.from_toml(CONFIG_DIR / "pot3.toml").weight_format
    assert pot3.integer_levels().tolist() == [-4, -2, -1, 0, 1, 2, 4]
    uniform4 = AcceleratorConfig.from_toml(CONFIG_DIR / "uniform4.toml").weight_format
    assert uniform4.integer_levels().tolist() == list(range(-7, 8))
    uniform5 = AcceleratorConfig.from_toml(CONFIG_DIR / "uniform5.toml").weight_format
    assert uniform5.integer_levels().tolist() == list(range(-15, 16))


# ---- derived widths -----------------------------------------------------------------------------


def minimum_signed_width(bound: int) -> int:
    """Brute force: the fewest bits whose two's-complement range holds both -bound and +bound."""
    width = 1
    while not (-(1 << (width - 1)) <= -bound and bound <= (1 << (width - 1)) - 1):
        width += 1
    return width


def small_formats(signed: bool):
    for bits in range(1, 6):
        for k in range(bits + 1):
            try:
                yield ESBFormat(bits, k, signed=signed)
            except ValueError:
                pass


@pytest.mark.parametrize("weights", list(small_formats(signed=True)), ids=str)
def test_widths_match_brute_force(weights):
    for activations, reduction in itertools.product(small_formats(signed=False), (1, 2, 3, 1000, 2**20)):
        products = [la * lw for la in activations.integer_levels() for lw in weights.integer_levels()]
        largest = max(abs(int(product)) for product in products)
        formats = dict(
            weight_bits=weights.bits,
            weight_k=weights.k,
            activation_bits=activations.bits,
            activation_k=activations.k,
            max_reduction=reduction,
            cols=1,  # max_reduction must be >= cols
        )
        if minimum_signed_width(reduction * largest) > 48:
            with pytest.raises(ConfigError, match=f"max_reduction must be in 1..{(2**47 - 1) // largest} "):
                config(**formats)
            continue
        cfg = config(**formats)
        assert cfg.max_product == largest
        assert cfg.product_bits == minimum_signed_width(largest)
        assert cfg.accumulator_bits == minimum_signed_width(reduction * largest)
        for fmt, significand_bits, shift_bits in (
            (weights, cfg.weight_significand_bits, cfg.weight_shift_bits),
            (activations, cfg.activation_significand_bits, cfg.activation_shift_bits),
        ):
            split = fmt.significand_shift(range(fmt.code_count))
            assert int(split.significand.max()) < 1 << significand_bits
            assert int(split.shift.max()) < 1 << shift_bits


def test_derived_properties():
    cfg = config(rows=4, cols=16)
    assert cfg.macs == 64
    assert cfg.weight_format == ESBFormat(4, 1)
    assert cfg.activation_format == ESBFormat(8, 8, signed=False)
    assert (cfg.weight_significand_bits, cfg.weight_shift_bits) == (2, 2)
    assert (cfg.activation_significand_bits, cfg.activation_shift_bits) == (8, 0)
    assert (cfg.max_product, cfg.product_bits, cfg.accumulator_bits) == (12 * 255, 13, 25)


# ---- dataclass behaviour ------------------------------------------------------------------------


def test_frozen_and_hashable():
    cfg = config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.rows = 4
    assert hash(cfg) == hash(config())
    assert {cfg: "x"}[config()] == "x"
    assert config(clock_mhz=250) == config(clock_mhz=250.0)
    assert type(config(clock_mhz=250).clock_mhz) is float
    assert config(rows=4) != cfg


@pytest.mark.parametrize("variant", PE_VARIANTS)
def test_every_pe_variant_is_accepted(variant):
    assert config(pe_variant=variant).pe_variant == variant


def test_defaults():
    cfg = config()
    assert (cfg.max_reduction, cfg.clock_mhz, cfg.pe_variant, cfg.name) == (4096, 200.0, "esb", "custom")
    assert (cfg.entries, cfg.requant_lanes, cfg.lanes) == (32, 0, 1)
    assert (cfg.activation_words, cfg.weight_words, cfg.param_words, cfg.output_words) == (2048, 2048, 64, 2048)


@pytest.mark.parametrize(("rows", "lanes"), [(1, 1), (8, 1), (12, 1), (16, 2), (28, 2), (32, 4), (64, 8)])
def test_automatic_lanes_divide_rows(rows, lanes):
    cfg = config(rows=rows, cols=rows)
    assert cfg.lanes == lanes and rows % cfg.lanes == 0
    assert config(rows=rows, cols=rows, requant_lanes=1).lanes == 1
