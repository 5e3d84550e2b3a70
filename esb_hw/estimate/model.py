"""The analytical resource model: prices what the hardware says it builds, with calibrated coefficients.

:func:`estimate_array` prices a :class:`~esb_hw.hw.core.array.PEArray` per part. The structure comes from the
hardware modules themselves (:func:`~esb_hw.hw.core.array.array_structure`), never from formulas copied here:

``lanes`` (one per column)
    FFs: the registered activation code. LUTs: the lane's structure (:func:`~esb_hw.hw.arith.product.lane_structure`)
    times ``coefficients["lane"][variant]``.
``products`` (one per PE)
    FFs: the registered weight code and the registered one's-complement product. LUTs: the product's structure
    (:func:`~esb_hw.hw.arith.product.product_structure`) times ``coefficients["product"][variant]``.
``trees`` (one per row)
    FFs: every adder, carried-term and delayed-sign register. LUTs: the tree's adder bits (one LUT6_2 per
    output bit of a ternary adder, one LUT per input bit of a binary one) times ``tree_adder_bit`` (about 1), plus
    one shift-register LUT per bit of each long delay chain (exact).
``accumulators`` (one per row)
    FFs: the accumulator. LUTs: one gated LUT6_2 per accumulator bit times ``accumulator_bit``.
``control`` (once)
    FFs: the pipeline flags, the credit counter and the output buffer's pointers. LUTs: a fitted constant.
``output`` (once)
    The output buffer's block RAMs (its read latch is inside them).

The coefficients live in ``calibration.json`` beside this module (:mod:`esb_hw.estimate.calibrate` fits them;
``bench/calibrate.py`` regenerates the file). Flip-flops need no coefficient: they are exact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..config import AcceleratorConfig
from ..errors import EsbError, InputError, ParameterError
from ..hw.core.array import array_structure
from ..layouts import SelfTestLayer, array_input_layout, array_output_layout

__all__ = [
    "CALIBRATION_PATH",
    "LANE_TERMS",
    "MODEL_TOLERANCE",
    "PRODUCT_TERMS",
    "RESOURCES",
    "CalibrationError",
    "DoesNotFitError",
    "ResourceEstimate",
    "check_fits",
    "estimate_array",
    "estimate_design",
    "estimate_engine",
    "estimate_extra",
    "estimate_selftest",
    "exceeds_tolerance",
    "flip_flops",
    "gops_per_klut",
    "load_calibration",
    "lut_terms",
    "model_error",
    "pe_mapping",
    "peak_gops",
    "relative_error",
    "rom_luts",
    ]

#: The resources every estimate and measurement reports, in order.
RESOURCES = ("lut", "ff", "bram36", "dsp")
#: The calibration data and fitted coefficients, shipped beside this module.
CALIBRATION_PATH = Path(__file__).with_name("calibration.json")
#: Largest relative LUT error of the model against yosys that the project accepts.
MODEL_TOLERANCE = 0.15
#: The LUT terms of one product and of one lane, per PE variant: the keys of the hardware's structure
#: dicts, each priced by ``coefficients["product" | "lane"][variant][term]``.
PRODUCT_TERMS = {
    "esb": ("magnitude_bits", "mux_inputs"),
    "esb_naive": ("magnitude_bits", "mux_inputs", "adder_bits"),
    "baseline": ("partial_product_bits", "mux_inputs"),
}
LANE_TERMS = {"esb": ("adder_bits",), "esb_naive": (), "baseline": ("mux_inputs",)}

_LABELS = {"lut": "LUTs", "ff": "FFs", "bram36": "BRAM36", "dsp": "DSPs"}


def _check_amount(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or math.isinf(value):
        raise ParameterError(f"{name} must be a finite number >= 0, got {value!r}")


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
        raise ParameterError(f"name must be a non-empty string, got {name!r}")
    parts = {"lut": lut, "ff": ff, "bram36": bram36, "dsp": dsp}
    return ResourceEstimate(**parts, breakdown={name: dict(parts)})



# ---- calibration data ----
class CalibrationError(EsbError):
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


def flip_flops(config: AcceleratorConfig) -> dict[str, int]:
    """Exact flip-flop count per part of ``PEArray(config)``: the ``register_bits`` the hardware reports."""
    return {part: details["register_bits"] for part, details in array_structure(config).items()}


def lut_terms(config: AcceleratorConfig, coefficients: dict) -> dict[str, float]:
    """LUTs per part (unrounded) of ``PEArray(config)`` with ``coefficients``."""
    structure, variant = array_structure(config), config.pe_variant
    features = structure["products"]["features"]
    if "mapped_luts" in features:  # hand-mapped (radix-4 recoded): exact, nothing to calibrate
        product = features["mapped_luts"]
    else:
        product = sum(coefficients["product"][variant][term] * count for term, count in features.items())
    # A recoded lane of shifting activations has the baseline lane's shifter: priced with its coefficient.
    lane_coefficients = {**coefficients["lane"]["baseline"], **coefficients["lane"][variant]}
    lane = sum(lane_coefficients[term] * count for term, count in structure["lanes"]["features"].items())
    return {
        "lanes": structure["lanes"]["count"] * lane,
        "products": structure["products"]["count"] * product,
        "trees": structure["trees"]["count"] * (coefficients["tree_adder_bit"] * structure["trees"]["adder_bits"]
                                                + structure["trees"]["shift_registers"]),
        "accumulators": (structure["accumulators"]["count"] * coefficients["accumulator_bit"]
                         * structure["accumulators"]["adder_bits"]),
        "control": coefficients["control"],
        "output": 0.0,
    }


def estimate_array(config: AcceleratorConfig) -> ResourceEstimate:
    """The analytical resource model of ``PEArray(config)`` (see the module docstring for its terms).

    Its block RAMs are the output buffer's; synthesized with ``-nodsp`` as docs/architecture.md prescribes, it has no
    DSPs.

    Raises
    ------
    CalibrationError
        If ``calibration.json`` is missing or incomplete.
    """
    if not isinstance(config, AcceleratorConfig):
        raise ParameterError(f"config must be an AcceleratorConfig, got {type(config).__name__}")
    luts = lut_terms(config, _calibration()["coefficients"])
    structure = array_structure(config)
    ffs = flip_flops(config)
    breakdown = {name: {"lut": round(luts[name]), "ff": ffs[name], "bram36": structure[name].get("bram36", 0),
                        "dsp": 0} for name in luts}
    return ResourceEstimate(lut=sum(part["lut"] for part in breakdown.values()), ff=sum(ffs.values()),
                            bram36=sum(part["bram36"] for part in breakdown.values()), breakdown=breakdown)


def pe_mapping(config: AcceleratorConfig) -> str:
    """How the array multiplies for ``config``'s formats: ``radix-4 recoded`` (uniform, the competent integer
    design), ``shift`` (power of two) or ``select-and-shift``; a uniform format without a recoded mapping says it
    is not competent."""
    from ..layouts import weight_encoding

    if weight_encoding(config) == "twos":
        return "radix-4 recoded"
    if config.weight_format.k == 0:
        return "shift"
    if config.weight_format.exponent_bits <= 1:
        return "select-and-shift (no recoded mapping for this uniform format yet: not competent)"
    return "select-and-shift"


def peak_gops(config: AcceleratorConfig) -> float:
    """Peak throughput in GOPS at the target clock: ``2 * macs * clock_mhz / 1000`` (a MAC is two operations)."""
    return 2 * config.macs * config.clock_mhz / 1000


def gops_per_klut(config: AcceleratorConfig, luts: int | float) -> float:
    """docs/architecture.md: ``peak_gops / (luts / 1000)``."""
    if isinstance(luts, bool) or not isinstance(luts, int | float) or not luts > 0:
        raise ValueError(f"luts must be a number > 0, got {luts!r}")
    return peak_gops(config) / (luts / 1000)


class DoesNotFitError(InputError):
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



#: LUTs of the self-test wrapper beyond its ROMs: UART, report text, counters, FSM and the tile comparator.
#: From yosys runs of SelfTest minus PEArray at rows=2, cols=8 (default: 296, esb5_act_esb: 186 LUTs once the
#: ROMs are taken out); a rough constant (flat yosys of the default 8x8 design agrees within 0.2 %).
SELFTEST_LUT_OVERHEAD = 240


def rom_luts(width: int, depth: int) -> int:
    """LUTs of a ``depth x width`` ROM built from LUT6s (64 words each), which is how yosys maps these ROMs."""
    return width * math.ceil(depth / 64)


#: Parts of the engine besides the array, as ``bench/core_cost.py --write`` stores them in ``calibration.json``.
ENGINE_PARTS = ("buffers and addressing", "requantization", "memory interface", "descriptor checker",
                "control (the rest)")


def bram36_blocks(width: int, depth: int) -> float:
    """RAMB36E2 blocks (a RAMB18E2 counts half) of a simple dual-port ``depth x width`` memory: the cheapest of
    the primitives' aspect ratios (UG573: 32Kx1 .. 512x72 for RAMB36, 16Kx1 .. 512x36 for RAMB18), side by side
    for the width and stacked for the depth. A MODEL of what Vivado infers."""
    shapes = [(32768 >> level, (1, 2, 4, 9, 18, 36, 72)[level], 1.0) for level in range(7)]
    shapes += [(16384 >> level, (1, 2, 4, 9, 18, 36)[level], 0.5) for level in range(6)]
    return min(math.ceil(depth / block_depth) * math.ceil(width / block_width) * cost
               for block_depth, block_width, cost in shapes)


def estimate_engine(config: AcceleratorConfig) -> ResourceEstimate:
    """A MODEL of the whole layer engine (:class:`esb_hw.hw.core.engine.Engine`): the array priced as
    :func:`estimate_array` (the PE array's model stands in for the stationary array, which yosys puts within
    about 5 % of it), the other parts from ``bench/core_cost.py --write`` measurements at 8x8 and 16x16
    (interpolated linearly in the array's rows, the requantization per lane), and the buffers' block RAMs from
    their shapes (:func:`bram36_blocks`)."""
    from ..layouts import buffer_word_bits

    measured = _calibration().get("engine")
    if not measured:
        raise CalibrationError("calibration.json has no engine measurements; run python bench/core_cost.py --write")
    points = sorted((int(rows), parts) for rows, parts in measured.items())
    total = estimate_array(config)
    total = ResourceEstimate(lut=total.lut, ff=total.ff, bram36=total.bram36, breakdown={"array": total.as_dict()})
    for part in ENGINE_PARTS:
        values = {}
        for resource in ("lut", "ff"):
            xs = [rows for rows, _ in points]
            ys = [parts[part][resource] / (parts[part].get("lanes", 1)) for _, parts in points]
            if len(xs) == 1 or config.rows <= xs[0]:
                value = ys[0] * config.rows / xs[0] if part == "control (the rest)" else ys[0]
            else:
                low = max(index for index, rows in enumerate(xs) if rows <= config.rows or index == 0)
                high = min(low + 1, len(xs) - 1)
                span = xs[high] - xs[low] or 1
                value = ys[low] + (ys[high] - ys[low]) * (config.rows - xs[low]) / span
            values[resource] = max(0, round(value * (config.lanes if part == "requantization" else 1)))
        total = total + estimate_extra(part, **values)
    bits = buffer_word_bits(config)
    brams = sum(bram36_blocks(bits[name], 2 * getattr(config, f"{name}_words"))
                for name in ("activation", "weight", "output"))
    return total + estimate_extra("buffers (block RAM)", bram36=brams)


def estimate_selftest(config: AcceleratorConfig, layer: SelfTestLayer, *, clocks_per_bit: int,
                      heartbeat_bit: int) -> ResourceEstimate:
    """The self-test wrapper around the array: the two ROMs (beats, expected sums) and the fixed logic.

    FFs are what the wrapper registers (:func:`~esb_hw.hw.debug.selftest.selftest_register_bits`); LUTs are
    the ROMs (:func:`rom_luts`) plus :data:`SELFTEST_LUT_OVERHEAD`. ``clocks_per_bit`` and ``heartbeat_bit`` are
    the board top's (:func:`esb_hw.hw.clocking.uart_clocks_per_bit`, :func:`~esb_hw.hw.clocking.heartbeat_bit`).
    """
    from ..hw.debug.selftest import selftest_register_bits

    lut = (SELFTEST_LUT_OVERHEAD + rom_luts(array_input_layout(config).size, len(layer.beats))
           + rom_luts(array_output_layout(config).size, layer.tiles))
    ff = selftest_register_bits(config, layer, clocks_per_bit=clocks_per_bit, heartbeat_bit=heartbeat_bit)
    return estimate_extra("selftest", lut=lut, ff=ff)


def estimate_design(config: AcceleratorConfig, layer: SelfTestLayer, **selftest) -> ResourceEstimate:
    """Model of the whole self-checking design: :func:`estimate_array` plus :func:`estimate_selftest`."""
    return estimate_array(config) + estimate_selftest(config, layer, **selftest)


#: The host interface's parts (:func:`estimate_system`), measured by ``bench/system_cost.py --write``.
SYSTEM_PARTS = ("AXI4-Lite registers", "AXI4 master")


def estimate_system(config: AcceleratorConfig) -> ResourceEstimate:
    """A MODEL of the whole system (:class:`esb_hw.hw.system.System`): :func:`estimate_engine` plus the AXI4-Lite
    registers and the AXI4 master as yosys measured them (they do not depend on the array)."""
    measured = _calibration().get("system")
    if not measured:
        raise CalibrationError("calibration.json has no system measurements; run python bench/system_cost.py --write")
    total = estimate_engine(config)
    for part in SYSTEM_PARTS:
        total = total + estimate_extra(part, lut=measured[part]["lut"], ff=measured[part]["ff"])
    return total
