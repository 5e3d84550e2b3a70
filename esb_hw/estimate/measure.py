"""Whole-design measurement with yosys, hierarchically: a flat run of a big array takes minutes to hours, so
the array is synthesized with one row and with two rows and scaled, and the self-test wrapper is measured
around a one-row array (``build.py --estimate``).

Each function takes ``progress``, a callable that receives one line per finished yosys run (``build.py``
prints them), since a run can take minutes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..compiler.selftest import build_test_layer
from ..config import AcceleratorConfig
from ..hw.core.array import OUTPUT_DEPTH, PEArray
from ..hw.core.output_buffer import OutputBuffer
from ..hw.debug.selftest import SelfTest
from ..layouts import SelfTestLayer, array_input_layout, array_output_layout
from .calibrate import split_rows
from .model import RESOURCES, estimate_array, estimate_design, model_error, rom_luts
from .synth import YosysResult, synthesize, yosys_version

__all__ = ["DESIGNS", "FLAT_MACS", "design_component", "measure_array", "measure_design", "measure_rows",
           "synthesize_rows"]

#: A callable taking one progress line, or None for silence.
Progress = Callable[[str], None] | None
#: The largest design (in MACs) that ``measure_design`` synthesizes flat.
FLAT_MACS = 256


#: The whole designs the benches synthesize or place and route by name.
DESIGNS = ("array", "engine", "system")


def design_component(design: str, config: AcceleratorConfig, *, primitives: bool = False):
    """A fresh ``PEArray``, layer ``Engine`` or whole ``System`` of ``config`` (``design`` in :data:`DESIGNS`);
    ``primitives`` instantiates Xilinx carry cells (yosys ``synth_xilinx``), off for other families."""
    if design == "engine":
        from ..hw.core.engine import Engine

        return Engine(config, primitives=primitives)
    if design == "system":
        from ..hw.system import System

        return System(config, primitives=primitives)
    if design != "array":
        raise ValueError(f"design must be one of {', '.join(DESIGNS)}, got {design!r}")
    return PEArray(config, primitives=primitives)


def _timed(progress: Progress, what: str, run: Callable[[], YosysResult]) -> YosysResult:
    started = time.perf_counter()
    if progress:
        progress(f"yosys: {what} ...")
    result = run()
    if progress:
        progress(f"yosys: {what}: {result.lut:,} LUTs, {result.ff:,} FFs ({time.perf_counter() - started:.0f} s)")
    return result


def synthesize_rows(config: AcceleratorConfig, rows: int, *, timing: bool = False) -> YosysResult:
    """yosys run of ``PEArray(config)`` with ``rows`` rows (``-dff`` flow, which every array needs); with
    ``timing``, the pin-accurate analysis of :mod:`esb_hw.estimate.timing`, fan-out from ``o.ready`` included."""
    return synthesize(PEArray(dataclasses.replace(config, rows=rows), primitives=True), f"array_{rows}x{config.cols}",
                      timing=timing, from_port="o__ready" if timing else None, dff=True)


def measure_rows(config: AcceleratorConfig, jobs: int = 2, progress: Progress = None) -> dict[str, dict]:
    """yosys runs of ``config``'s array with one row and with two rows (``cols`` as configured), in parallel.

    Returns ``{"one_row": YosysResult as dict, "two_rows": ...}``.
    """
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, 2))) as pool:
        one, two = pool.map(lambda rows: _timed(progress, f"array of {rows} row{'s' * (rows > 1)} x "
                                                          f"{config.cols} columns",
                                                  lambda: synthesize_rows(config, rows, timing=rows == 2)),
                            (1, 2))
    return {"one_row": dataclasses.asdict(one), "two_rows": dataclasses.asdict(two)}


def measure_array(config: AcceleratorConfig, jobs: int = 2, progress: Progress = None) -> dict:
    """Measure ``PEArray(config)`` hierarchically with yosys and compare the model (``build.py --estimate``).

    A flat run of a big array takes minutes to hours, so this synthesizes one row and two rows (``rows=1``,
    ``rows=2``, ``cols=config.cols``) and scales: what doubling the rows adds is one row's products, tree
    and accumulator (``per_row = two - one``); what a single row has beyond that is built once however many
    rows there are: the activation lanes (``cols`` registered codes, odd multiples) and the stream control
    (``shared = one - per_row``). So ``measured = shared + rows * per_row``, exact for ``rows <= 2``. Block RAM
    does not scale that way (the output buffer is one memory as wide as all rows' sums), so it comes from a run
    of the full-width output buffer alone. The timing (depth, the delay model's Fmax, fan-outs) is the two-row
    run's, marked ``"source": "two-row slice"``: rows do not lengthen any path, but enable and reset fan-outs
    grow with the rows, so read those from a flat run of the whole array (``bench/timing.py``).

    Returns
    -------
    dict
        ``measured`` and ``model`` (``lut``, ``ff``, ``bram36``, ``dsp``), ``error`` (relative, per resource,
        model against measured), ``timing``, ``per_row``, ``shared``, ``runs``, ``flow``, ``yosys``,
        ``method`` and ``seconds``.
    """
    started = time.perf_counter()
    runs = measure_rows(config, jobs=jobs, progress=progress)
    per_row, shared = split_rows(runs["one_row"], runs["two_rows"])
    measured = {key: shared[key] + config.rows * per_row[key] for key in RESOURCES}
    buffer = _timed(progress, f"output buffer ({array_output_layout(config).size} bits)",
                    lambda: synthesize(OutputBuffer(array_output_layout(config), depth=OUTPUT_DEPTH), "buffer"))
    measured["bram36"] = buffer.bram36
    estimate = estimate_array(config)
    timing = {**runs["two_rows"]["timing"], "source": "two-row slice"} if runs["two_rows"]["timing"] else None
    return {
        "source": "yosys-hierarchical",
        "method": f"shared + rows * per_row, from yosys runs of 1 and 2 rows of {config.cols} columns",
        "measured": measured,
        "model": estimate.as_dict(),
        "error": model_error(estimate, measured),
        "timing": timing,
        "per_row": per_row,
        "shared": shared,
        "runs": runs,
        "flow": runs["two_rows"]["flow"],
        "yosys": yosys_version(),
        "seconds": time.perf_counter() - started,
    }


def measure_design(config: AcceleratorConfig, layer: SelfTestLayer, *, clocks_per_bit: int, heartbeat_bit: int,
                   jobs: int = 2, progress: Progress = None) -> dict:
    """yosys figures of the whole self-checking design (``build.py --estimate``): ``SelfTest`` with the board
    top's UART divisor and heartbeat bit, without the top's four synchronizer flip-flops and clock primitives.

    Up to :data:`FLAT_MACS` MACs the whole design and the bare array are each synthesized flat (an 8x8 design
    takes about 20 s). Above that, hierarchically: the array with :func:`measure_array` (one and two rows,
    scaled), and the wrapper as a one-row ``SelfTest`` minus a one-row ``PEArray``, plus the LUTs and FFs by
    which the full-size ROMs and their read registers are wider than the one-row ones (the only part of the
    wrapper that grows with the rows; the ROMs are mapped LUT6s, one per bit per 64 words).
    """
    started = time.perf_counter()
    selftest = {"clocks_per_bit": clocks_per_bit, "heartbeat_bit": heartbeat_bit}
    model = estimate_design(config, layer, **selftest)
    if config.macs <= FLAT_MACS:
        designs = [(SelfTest(config, layer, **selftest, primitives=True), "selftest"),
                   (PEArray(config, primitives=True), "array")]
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, 2))) as pool:
            whole, bare = pool.map(
                lambda design: _timed(progress, f"flat {design[1]} ({config.rows}x{config.cols})",
                                      lambda: synthesize(design[0], design[1], dff=True,
                                                         timing=design[1] == "array",
                                                         from_port="o__ready" if design[1] == "array" else None)),
                designs)
        measured = {key: getattr(whole, key) for key in RESOURCES}
        array_measured = {key: getattr(bare, key) for key in RESOURCES}
        array_model = estimate_array(config)
        array = {"source": "yosys-flat", "method": "one flat yosys run", "measured": array_measured,
                 "model": array_model.as_dict(), "error": model_error(array_model, array_measured),
                 "timing": {**bare.timing, "source": "flat"}, "flow": bare.flow, "yosys": yosys_version()}
        method = "flat yosys runs of the whole design and of the bare array"
        wrapper = {key: measured[key] - array_measured[key] for key in RESOURCES}
    else:
        array = measure_array(config, jobs=jobs, progress=progress)
        one_row = dataclasses.replace(config, rows=1)
        small_layer = build_test_layer(one_row, tiles=layer.tiles)
        designs = [(SelfTest(one_row, small_layer, **selftest, primitives=True),
                    "selftest"), (PEArray(one_row, primitives=True), "array_1row")]
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, 2))) as pool:
            wrapped, bare = pool.map(
                lambda design: _timed(progress, f"one-row {design[1]}",
                                      lambda: synthesize(design[0], design[1], dff=True)), designs)
        wider = {"beat": array_input_layout(config).size - array_input_layout(one_row).size,
                 "tile": array_output_layout(config).size - array_output_layout(one_row).size}
        rom_growth = rom_luts(wider["beat"], len(layer.beats)) + rom_luts(wider["tile"], layer.tiles)
        wrapper = {key: getattr(wrapped, key) - getattr(bare, key) for key in RESOURCES}
        wrapper["lut"] += rom_growth
        wrapper["ff"] += wider["beat"] + wider["tile"]
        measured = {key: array["measured"][key] + wrapper[key] for key in RESOURCES}
        method = (f"array: {array['method']}; wrapper: one-row SelfTest minus one-row PEArray, plus "
                  f"{rom_growth} LUTs and {wider['beat'] + wider['tile']} FFs of wider ROMs")
    return {
        **measured,
        "method": method,
        "array": array,
        "wrapper": wrapper,
        "model": model.as_dict(),
        "model_error": model_error(model, measured),
        "seconds": time.perf_counter() - started,
    }
