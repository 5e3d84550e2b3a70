"""The accelerator configuration: one frozen dataclass, its validation and TOML loading (docs/architecture.md).

A config file looks like this (``name`` defaults to the file stem; ``clock_mhz``, ``max_reduction`` and
``pe_variant`` have defaults)::

    name = "default"
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
    [engine]              # the layer engine; every key has a default
    entries = 32
    requant_lanes = 0     # 0: automatic (about rows // 8)
    activation_words = 2048
    weight_words = 2048
    param_words = 64
    output_words = 2048

Every problem raises :class:`ConfigError`, whose message names the field (or TOML key), the bad value and
the allowed range, and for files ends with ``(<path>)``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .quant.format import ESBFormat

__all__ = [
    "AcceleratorConfig",
    "ConfigError",
    "MAX_ACCUMULATOR_BITS",
    "MAX_ARRAY_SIDE",
    "MAX_CLOCK_MHZ",
    "MAX_BUFFER_WORDS",
    "MAX_REDUCTION",
    "MIN_BUFFER_WORDS",
    "PE_VARIANTS",
]

#: PE implementations the generator knows (docs/architecture.md, §6): ``esb``, shift-add with the activation's odd
#: multiples (3a, ...) computed once per array column and selected by each PE (the cheapest, the default);
#: ``esb_naive``, each PE adds its own shifted copies; ``baseline``, a generic LUT multiplier of the same formats.
PE_VARIANTS = ("esb", "esb_naive", "baseline")
#: Largest number of PE rows or columns.
MAX_ARRAY_SIDE = 64
#: Largest ``max_reduction``.
MAX_REDUCTION = 1 << 20
#: Widest weight code (signed ESB) the PE generator supports.
MAX_WEIGHT_BITS = 8
#: Widest activation code (unsigned) the PE generator supports.
MAX_ACTIVATION_BITS = 16
#: Depths of a layer-engine buffer bank, in words (powers of two).
MIN_BUFFER_WORDS = 16
MAX_BUFFER_WORDS = 1 << 19
#: Largest ``clock_mhz``.
MAX_CLOCK_MHZ = 1000.0
#: Widest accumulator the generator builds (signed, sign bit included).
MAX_ACCUMULATOR_BITS = 48

_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")

#: The TOML layout, section -> {key: field} with "" for the top level: the one schema behind ``to_dict``,
#: ``from_dict`` and the key names in error messages.
_LAYOUT = {
    "": {"name": "name", "clock_mhz": "clock_mhz", "max_reduction": "max_reduction"},
    "weights": {"bits": "weight_bits", "k": "weight_k"},
    "activations": {"bits": "activation_bits", "k": "activation_k"},
    "array": {"rows": "rows", "cols": "cols", "pe_variant": "pe_variant"},
    "engine": {"entries": "entries", "requant_lanes": "requant_lanes", "activation_words": "activation_words",
               "weight_words": "weight_words", "param_words": "param_words", "output_words": "output_words"},
}
_TOML_KEY = {
    field: f"{section}.{key}" if section else key
    for section, keys in _LAYOUT.items()
    for key, field in keys.items()
}
_INT_BOUNDS = {"rows": (1, MAX_ARRAY_SIDE), "cols": (1, MAX_ARRAY_SIDE), "max_reduction": (1, MAX_REDUCTION),
               # Hardware widths the generator supports: a PE selects among 2**(weight significand bits)
               # multiples, and the lanes decode activations of up to 16 bits.
               "weight_bits": (2, MAX_WEIGHT_BITS), "activation_bits": (1, MAX_ACTIVATION_BITS),
               # The layer engine: running sums per array row (the sequencer's block field has 7 bits), and
               # buffer depths per bank (two banks each; the descriptor's word counts have 20 bits).
               "entries": (4, 64), "requant_lanes": (0, MAX_ARRAY_SIDE),
               **{f"{buffer}_words": (MIN_BUFFER_WORDS, MAX_BUFFER_WORDS)
                  for buffer in ("activation", "weight", "param", "output")}}
_INT_FIELDS = ("weight_bits", "weight_k", "activation_bits", "activation_k", "rows", "cols", "max_reduction",
               "entries", "requant_lanes", "activation_words", "weight_words", "param_words", "output_words")
_BUFFER_FIELDS = ("activation_words", "weight_words", "param_words", "output_words")


class ConfigError(InputError):
    """An invalid accelerator configuration; the CLI prints it as ``error: <message>`` and exits 2.

    Parameters
    ----------
    problem : str
        What is wrong, e.g. ``"must be in 1..64, got 0"``.
    key : str or None
        The field or TOML key the problem is about; it starts the message.
    source : str or None
        Where the value came from (a file path); it ends the message in parentheses.
    """

    def __init__(self, problem: str, *, key: str | None = None, source: str | None = None):
        self.problem, self.key, self.source = problem, key, source
        message = problem if key is None else f"{key} {problem}"
        super().__init__(message if source is None else f"{message} ({source})")


def _describe(value: object) -> str:
    return f"{type(value).__name__} {value!r}"


def _field_of(section: str, key: str, source: str | None) -> str:
    """The field behind TOML ``key`` in ``section`` ("" for the top level); unknown keys are errors."""
    if key not in _LAYOUT[section]:
        if section:
            path, where, allowed = f"{section}.{key}", f"in [{section}]", [*_LAYOUT[section]]
        else:
            sections = [f"[{name}]" for name in _LAYOUT if name]
            path, where, allowed = key, "at top level", [*_LAYOUT[""], *sections]
        raise ConfigError(f"unknown key {path!r}; allowed {where}: {', '.join(allowed)}", source=source)
    return _LAYOUT[section][key]


@dataclass(frozen=True)
class AcceleratorConfig:
    """Everything the generator needs to build one accelerator; the single source of derived widths.

    Parameters
    ----------
    weight_bits, weight_k : int
        The signed ESB weight format ``ESBFormat(weight_bits, weight_k)``; exponent bits
        ``e = bits - k - 1`` must be in ``0..4``.
    activation_bits, activation_k : int
        The unsigned activation format ``ESBFormat(activation_bits, activation_k, signed=False)``;
        ``e = bits - k`` must be in ``0..4`` and ``e = 0`` is a plain integer.
    rows, cols : int
        PE array shape, each in ``1..64``.
    max_reduction : int
        Longest dot product a layer may need, in ``1..2**20``; it sets :attr:`accumulator_bits`, which
        must stay ``<= 48``.
    clock_mhz : float
        Target clock in MHz, in ``(0, 1000]``.
    pe_variant : str
        One of :data:`PE_VARIANTS`.
    name : str
        1 to 64 characters from ``A-Z a-z 0-9 _ . -``; names reports and build outputs.
    entries : int
        The layer engine's running sums per array row (output pixels per block), ``4..64``, a multiple of 4.
    requant_lanes : int
        Requantization lanes, dividing ``rows``; 0 (the default) picks about ``rows // 8`` (:attr:`lanes`).
    activation_words, weight_words, param_words, output_words : int
        Depth of one bank of each layer-engine buffer, in words, a power of two in ``16..2**19``; each buffer
        has two banks (double buffering).

    Raises
    ------
    ConfigError
        For any bad field, naming the field, the value and the allowed range.
    """

    weight_bits: int
    weight_k: int
    activation_bits: int
    activation_k: int
    rows: int
    cols: int
    max_reduction: int = 4096
    clock_mhz: float = 200.0
    pe_variant: str = "esb"
    name: str = "custom"
    entries: int = 32
    requant_lanes: int = 0
    activation_words: int = 2048
    weight_words: int = 2048
    param_words: int = 64
    output_words: int = 2048

    def __post_init__(self):
        for field in _INT_FIELDS:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"must be an int, got {_describe(value)}", key=field)
            if field in _INT_BOUNDS:  # k is range-checked by ESBFormat below
                low, high = _INT_BOUNDS[field]
                if not low <= value <= high:
                    raise ConfigError(f"must be in {low}..{high}, got {value}", key=field)
        clock = self.clock_mhz
        if isinstance(clock, bool) or not isinstance(clock, int | float):
            raise ConfigError(f"must be a number, got {_describe(clock)}", key="clock_mhz")
        if not 0 < clock <= MAX_CLOCK_MHZ:
            raise ConfigError(f"must be in (0, {MAX_CLOCK_MHZ:g}], got {clock!r}", key="clock_mhz")
        object.__setattr__(self, "clock_mhz", float(clock))
        if not isinstance(self.pe_variant, str) or self.pe_variant not in PE_VARIANTS:
            allowed = ", ".join(map(repr, PE_VARIANTS))
            raise ConfigError(f"must be one of {allowed}, got {self.pe_variant!r}", key="pe_variant")
        if not isinstance(self.name, str) or not _NAME_PATTERN.fullmatch(self.name):
            problem = f"must be 1..64 characters from A-Z a-z 0-9 _ . -, got {self.name!r}"
            raise ConfigError(problem, key="name")
        for group in ("weight", "activation"):
            try:
                getattr(self, f"{group}_format")
            except (TypeError, ValueError) as error:
                raise ConfigError(f"{group} format: {error}") from None
        self._check_accumulator()
        self._check_engine()
        if self.max_reduction < self.cols:
            raise ConfigError(f"must be >= cols ({self.cols}): one beat reduces cols products, got "
                              f"{self.max_reduction}", key="max_reduction")

    def _check_accumulator(self):
        limit = (1 << (MAX_ACCUMULATOR_BITS - 1)) - 1  # largest magnitude a signed 48-bit value holds
        fitting = limit // self.max_product
        formats = f"weights {self.weight_format}, activations {self.activation_format}"
        if fitting == 0:
            raise ConfigError(
                f"formats: one product La*Lw needs {self.product_bits} bits, more than the "
                f"{MAX_ACCUMULATOR_BITS}-bit accumulator limit ({formats})"
            )
        if self.max_reduction > fitting:
            raise ConfigError(
                f"must be in 1..{fitting} so the accumulator fits in {MAX_ACCUMULATOR_BITS} bits ({formats}, "
                f"max |La*Lw| = {self.max_product}), got {self.max_reduction} "
                f"(needs {self.accumulator_bits} bits)",
                key="max_reduction",
            )

    def _check_engine(self):
        if self.entries % 4:
            raise ConfigError(f"must be a multiple of 4 (a pooling window stays in one block), got {self.entries}",
                              key="entries")
        if self.requant_lanes and self.rows % self.requant_lanes:
            raise ConfigError(f"must divide rows ({self.rows}) or be 0 (automatic), got {self.requant_lanes}",
                              key="requant_lanes")
        for field in _BUFFER_FIELDS:
            value = getattr(self, field)
            if value & (value - 1):
                raise ConfigError(f"must be a power of two, got {value}", key=field)

    # ---- derived quantities (never stored) ------------------------------------------------------
    @property
    def weight_format(self) -> ESBFormat:
        """The signed weight format."""
        return ESBFormat(self.weight_bits, self.weight_k, signed=True)

    @property
    def activation_format(self) -> ESBFormat:
        """The unsigned activation format."""
        return ESBFormat(self.activation_bits, self.activation_k, signed=False)

    @property
    def lanes(self) -> int:
        """Requantization lanes: ``requant_lanes``, or when it is 0 the largest divisor of ``rows`` up to
        ``rows // 8`` (at least 1): enough for the array's pace on 3x3 layers (``docs/architecture.md``)."""
        if self.requant_lanes:
            return self.requant_lanes
        return max(lanes for lanes in range(1, max(1, self.rows // 8) + 1) if self.rows % lanes == 0)

    @property
    def macs(self) -> int:
        """Number of MAC units, ``rows * cols``."""
        return self.rows * self.cols

    @property
    def weight_significand_bits(self) -> int:
        return self.weight_format.significand_bits

    @property
    def activation_significand_bits(self) -> int:
        return self.activation_format.significand_bits

    @property
    def weight_shift_bits(self) -> int:
        return self.weight_format.shift_bits

    @property
    def activation_shift_bits(self) -> int:
        return self.activation_format.shift_bits

    @property
    def max_product(self) -> int:
        """Largest ``|La * Lw|``: ``La_max * Lw_max``."""
        return self.activation_format.max_level * self.weight_format.max_level

    @property
    def product_bits(self) -> int:
        """Width of a signed product ``La * Lw``, sign bit included."""
        return self.max_product.bit_length() + 1

    @property
    def accumulator_bits(self) -> int:
        """Smallest signed width that holds any sum of ``max_reduction`` products exactly (docs/arithmetic.md)."""
        return (self.max_reduction * self.max_product).bit_length() + 1

    # ---- dict and TOML --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The config in the TOML layout: top-level scalars plus ``weights``, ``activations``, ``array``,
        ``engine``."""
        result = {key: getattr(self, field) for key, field in _LAYOUT[""].items()}
        for section, keys in _LAYOUT.items():
            if section:
                result[section] = {key: getattr(self, field) for key, field in keys.items()}
        return result

    @classmethod
    def from_dict(cls, d: Mapping, source: str | os.PathLike | None = None) -> AcceleratorConfig:
        """Build a config from the TOML layout (what :meth:`to_dict` returns).

        Parameters
        ----------
        d : Mapping
            Top-level keys ``name``, ``clock_mhz``, ``max_reduction`` and tables ``weights``
            (``bits``, ``k``), ``activations`` (``bits``, ``k``), ``array`` (``rows``, ``cols``,
            ``pe_variant``) and the optional ``engine`` (``entries``, ``requant_lanes``, ``*_words``).
        source : str or os.PathLike, optional
            Where ``d`` came from; appended to error messages.

        Raises
        ------
        ConfigError
            For unknown or missing keys and any invalid value, naming the TOML key.
        """
        source = None if source is None else str(source)
        if not isinstance(d, Mapping):
            raise ConfigError(f"config must be a table, got {_describe(d)}", source=source)
        values = {}
        for key, value in d.items():
            if key and key in _LAYOUT:
                if not isinstance(value, Mapping):
                    raise ConfigError(f"must be a table, got {_describe(value)}", key=key, source=source)
                for subkey, subvalue in value.items():
                    values[_field_of(key, subkey, source)] = subvalue
            else:
                values[_field_of("", key, source)] = value
        for field in dataclasses.fields(cls):
            if field.default is dataclasses.MISSING and field.name not in values:
                raise ConfigError("is required but missing", key=_TOML_KEY[field.name], source=source)
        try:
            return cls(**values)
        except ConfigError as error:
            raise ConfigError(error.problem, key=_TOML_KEY.get(error.key, error.key), source=source) from None

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> AcceleratorConfig:
        """Load a TOML config file; ``name`` defaults to the file stem.

        Raises
        ------
        ConfigError
            If the file is missing or unreadable, is not valid TOML, or holds an invalid config.
        """
        source = str(path)
        try:
            with open(path, "rb") as file:
                data = tomllib.load(file)
        except FileNotFoundError:
            raise ConfigError("config file not found", source=source) from None
        except OSError as error:
            raise ConfigError(f"cannot read config file: {error.strerror}", source=source) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"invalid TOML: {error}", source=source) from None
        data.setdefault("name", Path(path).stem)
        return cls.from_dict(data, source=source)
