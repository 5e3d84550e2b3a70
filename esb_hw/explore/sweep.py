"""The sweep file of ``esb-hw explore``: what to vary, on which network, and what to measure.

A sweep is a TOML file (docs/explore.md has the full reference)::

    name = "formats"                  # optional: the file's stem
    config = "default"                # the base config: a shipped name or a config TOML (relative to this file)
    network = "digits"                # digits, mnist5k, resnet_mnist, or an .onnx file (relative to this file)
    dataset = "digits"                # only for an .onnx file's accuracy: its test images (digits or mnist5k)
    measures = ["resources", "accuracy"]
    timeout = 900                     # seconds per (point, measure); a slower one is recorded as timed out
    retries = 1                       # extra attempts after a crash (not after a timeout or a refused point)

    [resources]                       # options of a measure
    design = "array"

    [axes]                            # the grid is the product of the axes, in this order
    format = [{weights = "esb:4:1", activations = 4}, {weights = "uniform:4", activations = 4}]
    array = ["8x8", "16x16"]

    [search]                          # for --search
    objectives = ["max accuracy", "max images_per_second"]
    constraints = ["system_lut_model <= 150000"]
    trials = 20

An axis holds a list of values of one setting, or a list of tables that set several settings together. The
settings are the config's TOML keys (``clock_mhz``, ``weights.bits``, ``array.rows``, ``engine.entries``, ...),
three shorthands (``weights = "esb:B:K"`` / ``"uniform:B"`` / ``"pot:B"``, ``activations = B`` for a B-bit
integer or ``"esb:B:K"``, ``array = "RxC"``) and the recipe's ``ends_8bit``, ``scale_method`` and ``batch``.

Every mistake in the file is an :class:`ExploreError` naming the key and the file, before any work. A point whose
config is invalid (a format the accumulator cannot hold, say) is not a mistake in the file: it is recorded as
refused, with the config's message, and the sweep goes on.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

__all__ = ["MEASURE_NAMES", "METRICS", "NETWORKS", "Axis", "Constraint", "ExploreError", "Objective", "Point",
           "Search", "Sweep", "load_sweep", "parse_sweep"]


class ExploreError(InputError):
    """A bad sweep file or explore option (exit code 2)."""


#: The measures, in the order they are listed and run.
MEASURE_NAMES = ("resources", "timing", "throughput", "accuracy")
#: The shipped networks (``esb_hw/data/<name>/<name>.onnx``) and the test images each is scored on.
NETWORKS = {"digits": "digits", "mnist5k": "mnist5k", "resnet_mnist": "mnist5k"}
#: Each measure's options and their defaults.
MEASURE_OPTIONS = {"resources": {"design": "array"}, "timing": {"design": "array"}, "throughput": {},
                   "accuracy": {"qat": False}}
#: What ``resources`` and ``timing`` synthesize; ``model`` (resources only) runs no yosys: the resource MODEL.
DESIGNS = ("array", "engine", "system", "model")
#: The values each measure reports (the names objectives and constraints use), and which are larger-is-better.
METRICS = {
    "resources": ("lut", "ff", "bram36", "dsp", "lut_per_mac", "gops_per_klut", "system_lut_model",
                  "system_gops_per_klut_model"),
    "timing": ("fmax_mhz_model", "fmax_mhz_pessimistic"),
    "throughput": ("images_per_second", "cycles_per_image", "utilization", "array_macs_fraction"),
    "accuracy": ("accuracy", "qat_accuracy", "float_accuracy"),
}
#: The recipe's settings (not config keys) and their defaults.
RECIPE_DEFAULTS = {"ends_8bit": False, "scale_method": "dda", "batch": 1}
SCALE_METHODS = ("dda", "mse", "max")
#: Config keys an axis may set (the config TOML's, dotted).
CONFIG_KEYS = ("name", "clock_mhz", "max_reduction", "weights.bits", "weights.k", "activations.bits",
               "activations.k", "array.rows", "array.cols", "array.pe_variant", "engine.entries",
               "engine.requant_lanes", "engine.activation_words", "engine.weight_words", "engine.param_words",
               "engine.output_words")
SHORTHANDS = ("weights", "activations", "array")
TOP_KEYS = ("name", "config", "network", "dataset", "measures", "timeout", "retries", "axes", "search",
            *MEASURE_NAMES)
MAX_POINTS = 100_000
MAX_TIMEOUT = 7 * 24 * 3600
MAX_RETRIES = 10


@dataclass(frozen=True)
class Objective:
    """``max NAME`` or ``min NAME``: a metric a search optimizes."""

    metric: str
    maximize: bool

    def __str__(self) -> str:
        return f"{'max' if self.maximize else 'min'} {self.metric}"


@dataclass(frozen=True)
class Constraint:
    """``NAME <= VALUE`` or ``NAME >= VALUE``."""

    metric: str
    upper: bool
    bound: float

    def holds(self, value) -> bool:
        if value is None:
            return False
        return value <= self.bound if self.upper else value >= self.bound

    def __str__(self) -> str:
        return f"{self.metric} {'<=' if self.upper else '>='} {self.bound:g}"


@dataclass(frozen=True)
class Search:
    objectives: tuple[Objective, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    trials: int = 20
    seed: int = 0


@dataclass(frozen=True)
class Axis:
    """One axis: its name, its values as the file writes them, and the settings each stands for."""

    name: str
    values: tuple
    settings: tuple  # of dicts: setting -> value, shorthands expanded


@dataclass(frozen=True)
class Point:
    """One point of the grid: its index, each axis's value as written (``choices``) and the settings they make
    (shorthands expanded)."""

    index: int
    choices: Mapping
    settings: Mapping

    def label(self) -> str:
        def text(value) -> str:
            if isinstance(value, Mapping):
                return "{" + ", ".join(f"{key}={item}" for key, item in value.items()) + "}"
            return str(value)

        return ", ".join(f"{name}={text(value)}" for name, value in self.choices.items())


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file."""

    name: str
    path: Path
    config: Path
    network: str  # a shipped name or an absolute .onnx path
    dataset: str | None
    measures: tuple[str, ...]
    options: Mapping  # measure -> {option: value}
    axes: tuple[Axis, ...]
    timeout: float = 900.0
    retries: int = 1
    search: Search = field(default_factory=Search)

    @property
    def size(self) -> int:
        size = 1
        for axis in self.axes:
            size *= len(axis.values)
        return size

    def points(self) -> list[Point]:
        """The grid, in axis order (the last axis varies fastest)."""
        ranges = [range(len(axis.values)) for axis in self.axes]
        return [self.point_at(dict(zip((axis.name for axis in self.axes), positions, strict=True)))
                for positions in itertools.product(*ranges)]

    def point_at(self, positions: Mapping) -> Point:
        """The point whose axis ``name`` takes its ``positions[name]``-th value (a search's pick)."""
        index = 0
        choices: dict = {}
        settings: dict = {}
        for axis in self.axes:
            position = positions[axis.name]
            index = index * len(axis.values) + position
            choices[axis.name] = axis.values[position]
            settings.update(axis.settings[position])
        return Point(index, choices, settings)

    def network_file(self) -> Path:
        from ..data import example_folder

        return example_folder(self.network) / f"{self.network}.onnx" if self.network in NETWORKS else \
            Path(self.network)

    def network_sha256(self) -> str:
        return hashlib.sha256(self.network_file().read_bytes()).hexdigest()


def _fail(where: str, problem: str, source: str) -> ExploreError:
    return ExploreError(f"{where} {problem} ({source})" if where else f"{problem} ({source})")


def _setting(key: str, value, where: str, source: str) -> dict:
    """The settings one axis value of ``key`` stands for (shorthands expanded), checked for type."""
    from ..frontend.quantize import WeightQuantizer

    if key == "weights":
        if not isinstance(value, str):
            raise _fail(where, f"takes a format string (esb:B:K, uniform:B, pot:B), got {value!r}", source)
        try:
            fmt = WeightQuantizer(value).fmt
        except InputError as error:
            raise _fail(where, str(error), source) from None
        if fmt is None:
            raise _fail(where, f"{value!r} has no hardware mapping (apot runs in the golden model only)", source)
        return {"weights.bits": fmt.bits, "weights.k": fmt.k}
    if key == "activations":
        if isinstance(value, int) and not isinstance(value, bool):
            return {"activations.bits": value, "activations.k": value}
        match = re.fullmatch(r"esb:(\d+):(\d+)", value) if isinstance(value, str) else None
        if not match:
            raise _fail(where, f"takes a bit width (a plain integer) or \"esb:B:K\" (unsigned), got {value!r}",
                        source)
        return {"activations.bits": int(match[1]), "activations.k": int(match[2])}
    if key == "array":
        match = re.fullmatch(r"(\d+)x(\d+)", value) if isinstance(value, str) else None
        if not match:
            raise _fail(where, f"takes \"ROWSxCOLS\", got {value!r}", source)
        return {"array.rows": int(match[1]), "array.cols": int(match[2])}
    if key == "ends_8bit":
        if not isinstance(value, bool):
            raise _fail(where, f"takes true or false, got {value!r}", source)
    elif key == "scale_method":
        if value not in SCALE_METHODS:
            raise _fail(where, f"takes one of {', '.join(SCALE_METHODS)}, got {value!r}", source)
    elif key == "batch":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _fail(where, f"takes a positive integer, got {value!r}", source)
    elif key not in CONFIG_KEYS:
        allowed = ", ".join((*SHORTHANDS, *RECIPE_DEFAULTS, *CONFIG_KEYS))
        raise _fail(where, f"is not a setting; settings: {allowed}", source)
    elif isinstance(value, Mapping | list):
        raise _fail(where, f"takes a single value, got {value!r}", source)
    return {key: value}


def _axes(table, source: str) -> tuple[Axis, ...]:
    if not isinstance(table, Mapping) or not table:
        raise _fail("[axes]", "must be a table of at least one axis", source)
    axes = []
    owners: dict[str, str] = {}
    for name, values in table.items():
        where = f"axes.{name}"
        if not isinstance(values, list) or not values:
            raise _fail(where, "must be a non-empty list of values", source)
        expanded = []
        for number, value in enumerate(values):
            if isinstance(value, Mapping):
                settings: dict = {}
                for key, item in value.items():
                    more = _setting(key, item, f"{where}[{number}].{key}", source)
                    twice = sorted(set(more) & set(settings))
                    if twice:
                        raise _fail(f"{where}[{number}]", f"sets {twice[0]!r} twice (through {key!r})", source)
                    settings.update(more)
            else:
                settings = _setting(name, value, f"{where}[{number}]", source)
            for key in settings:
                if owners.setdefault(key, name) != name:
                    raise _fail(where, f"sets {key!r}, which axis {owners[key]!r} sets too", source)
            expanded.append(settings)
        if len({repr(sorted(item.items())) for item in expanded}) < len(expanded):
            raise _fail(where, "repeats a value", source)
        axes.append(Axis(name, tuple(dict(value) if isinstance(value, Mapping) else value for value in values),
                         tuple(expanded)))
    return tuple(axes)


def _metric(name, where: str, source: str, measures: tuple[str, ...]) -> str:
    known = {metric: measure for measure, metrics in METRICS.items() for metric in metrics}
    if name not in known:
        raise _fail(where, f"names no metric: {name!r} (metrics: {', '.join(known)})", source)
    if known[name] not in measures:
        raise _fail(where, f"needs the {known[name]!r} measure for {name!r}; add it to measures", source)
    return name


def parse_objective(text, where: str, source: str, measures: tuple[str, ...]) -> Objective:
    match = re.fullmatch(r"\s*(max|min)\s+(\w+)\s*", text) if isinstance(text, str) else None
    if not match:
        raise _fail(where, f"takes \"max METRIC\" or \"min METRIC\", got {text!r}", source)
    return Objective(_metric(match[2], where, source, measures), match[1] == "max")


def parse_constraint(text, where: str, source: str, measures: tuple[str, ...]) -> Constraint:
    match = re.fullmatch(r"\s*(\w+)\s*(<=|>=)\s*([-+0-9.eE]+)\s*", text) if isinstance(text, str) else None
    try:
        bound = float(match[3]) if match else None
    except ValueError:
        bound = None
    if bound is None:
        raise _fail(where, f"takes \"METRIC <= NUMBER\" or \"METRIC >= NUMBER\", got {text!r}", source)
    return Constraint(_metric(match[1], where, source, measures), match[2] == "<=", bound)


def _search(table, source: str, measures: tuple[str, ...]) -> Search:
    if table is None:
        return Search()
    if not isinstance(table, Mapping):
        raise _fail("[search]", "must be a table", source)
    unknown = set(table) - {"objectives", "constraints", "trials", "seed"}
    if unknown:
        raise _fail("[search]", f"has unknown key {sorted(unknown)[0]!r}; keys: objectives, constraints, trials, "
                    "seed", source)
    objectives = table.get("objectives", [])
    constraints = table.get("constraints", [])
    if not isinstance(objectives, list) or not isinstance(constraints, list):
        raise _fail("[search]", "objectives and constraints must be lists of strings", source)
    trials, seed = table.get("trials", 20), table.get("seed", 0)
    for key, value, low in (("trials", trials, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_POINTS:
            raise _fail(f"search.{key}", f"must be an integer in {low}..{MAX_POINTS}, got {value!r}", source)
    return Search(tuple(parse_objective(text, f"search.objectives[{n}]", source, measures)
                        for n, text in enumerate(objectives)),
                  tuple(parse_constraint(text, f"search.constraints[{n}]", source, measures)
                        for n, text in enumerate(constraints)), trials, seed)


def parse_sweep(data: Mapping, path: Path) -> Sweep:
    """A sweep from the parsed TOML ``data`` of the file at ``path`` (relative paths are relative to it)."""
    from ..data import config_path, shipped_config_names

    source = str(path)
    unknown = [key for key in data if key not in TOP_KEYS]
    if unknown:
        raise _fail("", f"unknown key {unknown[0]!r}; keys: {', '.join(TOP_KEYS)}", source)
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", name):
        raise _fail("name", f"must be 1..64 characters from A-Z a-z 0-9 _ . -, not starting with a dot, got {name!r}",
                    source)
    config = data.get("config", "default")
    if not isinstance(config, str):
        raise _fail("config", f"must be a shipped config name or a .toml path, got {config!r}", source)
    if config.endswith(".toml"):
        config_file = path.parent / config
    elif config in shipped_config_names():
        config_file = config_path(config)
    else:
        config_file = None
    if config_file is None or not config_file.is_file():
        raise _fail("config", f"{config!r} is neither a .toml file (relative to this file) nor a shipped config "
                    f"({', '.join(shipped_config_names())})", source)
    from ..config import AcceleratorConfig, ConfigError

    try:
        AcceleratorConfig.from_toml(config_file)
    except ConfigError as error:
        raise _fail("config", f"is not a valid config: {error}", source) from None
    network = data.get("network")
    if not isinstance(network, str):
        raise _fail("network", f"is required: {', '.join(NETWORKS)} or an .onnx file", source)
    if network not in NETWORKS:
        file = path.parent / network
        if file.suffix.lower() != ".onnx":
            raise _fail("network", f"must be one of {', '.join(NETWORKS)} or an .onnx file, got {network!r}", source)
        if not file.is_file():
            raise _fail("network", f"{network!r}: no such file", source)
        network = str(file.resolve())
    measures = data.get("measures")
    if not isinstance(measures, list) or not measures or any(item not in MEASURE_NAMES for item in measures):
        raise _fail("measures", f"must be a non-empty list of {', '.join(MEASURE_NAMES)}, got {measures!r}", source)
    if len(set(measures)) < len(measures):
        raise _fail("measures", f"repeats a measure: {measures!r}", source)
    measures = tuple(measure for measure in MEASURE_NAMES if measure in measures)
    dataset = data.get("dataset")
    if dataset is not None and dataset not in ("digits", "mnist5k"):
        raise _fail("dataset", f"must be digits or mnist5k, got {dataset!r}", source)
    if dataset is not None and network in NETWORKS:
        raise _fail("dataset", f"applies to an .onnx network only; {network} is scored on {NETWORKS[network]}",
                    source)
    if "accuracy" in measures and network not in NETWORKS and dataset is None:
        raise _fail("dataset", "is required for the accuracy of an .onnx network (digits or mnist5k: its test "
                    "images)", source)
    options = {}
    for measure in MEASURE_NAMES:
        table = data.get(measure, {})
        if measure in data and measure not in measures:
            raise _fail(f"[{measure}]", f"sets options of a measure not in measures ({', '.join(measures)})", source)
        if not isinstance(table, Mapping):
            raise _fail(f"[{measure}]", "must be a table", source)
        allowed = MEASURE_OPTIONS[measure]
        for key in table:
            if key not in allowed:
                keys = ", ".join(allowed) or "none"
                raise _fail(f"{measure}.{key}", f"is not an option of {measure} (options: {keys})", source)
        merged = {**allowed, **table}
        designs = DESIGNS if measure == "resources" else DESIGNS[:-1]
        if "design" in merged and merged["design"] not in designs:
            raise _fail(f"{measure}.design", f"must be one of {', '.join(designs)}, got {merged['design']!r}", source)
        if "qat" in merged and not isinstance(merged["qat"], bool):
            raise _fail(f"{measure}.qat", f"must be true or false, got {merged['qat']!r}", source)
        if measure in measures:
            options[measure] = merged
    timeout = data.get("timeout", 900)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT:
        raise _fail("timeout", f"must be a number of seconds in (0, {MAX_TIMEOUT}], got {timeout!r}", source)
    retries = data.get("retries", 1)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise _fail("retries", f"must be an integer in 0..{MAX_RETRIES}, got {retries!r}", source)
    axes = _axes(data.get("axes"), source)
    sweep = Sweep(name, path, config_file.resolve(), network, dataset, measures, options, axes, float(timeout),
                  retries, _search(data.get("search"), source, measures))
    if sweep.size > MAX_POINTS:
        raise _fail("[axes]", f"make {sweep.size:,} points, more than {MAX_POINTS:,}", source)
    return sweep


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file (:class:`ExploreError` on any problem, naming the key)."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ExploreError(f"{path}: no such sweep file") from None
    except IsADirectoryError:
        raise ExploreError(f"{path}: is a folder, not a sweep file") from None
    except OSError as error:
        raise ExploreError(f"{path}: cannot read it: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ExploreError(f"{path}: invalid TOML: {error}") from None
    return parse_sweep(data, path)
