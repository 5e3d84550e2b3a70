"""Logic depth, a delay model and fan-out, from a synthesized netlist (yosys ``write_json`` after
``synth_xilinx``), pin by pin.

yosys's ``ltp`` counts cells along connections, so it walks a LUT6_2's O5 into the next LUT's I3 even where no
output of that LUT depends on I3 (the ternary adders' carry-save links) and reports 28 levels where the real
path has 3. Here every LUT output depends only on the inputs its INIT actually uses (LUT6_2 O5 and O6 apart), and
a carry chain counts the bits a signal travels along it.

The delay model v3 (labelled a model everywhere it is printed, until a Vivado run calibrates it) is for the
UltraScale+ -2 speed grade. DS925 (the Zynq UltraScale+ data sheet) gives the ceilings (global clock tree 775 MHz
at -2) but no longer tabulates CLB combinational delays, so the CLB and routing constants are the project's own
assumptions, uncalibrated; UG574 (the UltraScale CLB guide) gives the structure they price: eight carry bits per
slice, and a dedicated COUT-to-CIN connection from each slice to the one above, which no routed net takes.

========================  =========================================================
``CLOCK_TO_OUT``          0.10 ns from a flip-flop's clock to its output
``BRAM_CLOCK_TO_OUT``     1.00 ns from a block RAM's clock to its data output with no output register (the order
                          of DS958's 0.90 ns for a -2 Versal block RAM; assumed)
``SRL_CLOCK_TO_OUT``      1.00 ns from a shift-register LUT's clock to its output
``NET``                   0.30 ns per routed net, plus ``NET_PER_DOUBLING`` 0.04 ns per doubling of its fan-out
``LUT``                   0.10 ns through a LUT (any input)
``CARRY_ENTRY``           0.15 ns into a carry chain from the fabric, plus ``CARRY_BIT`` 0.02 ns per bit it travels
``CASCADE``               a carry cell's CO into the next carry cell's CI (UG574's dedicated cascade): no net and
                          no entry, only the bits it travels
``MUX``                   0.10 ns through a MUXF7/F8
``SETUP``                 0.05 ns at a flip-flop, 0.30 ns (``BRAM_SETUP``) at a block RAM and at every
                          input of a distributed RAM (write data, enable and address; a read address also
                          goes on through the read data)
========================  =========================================================

Every result has two variants: ``nominal`` (:data:`DELAY_MODEL`, the constants above) and ``pessimistic``
(:data:`PESSIMISTIC_MODEL`: every routed net at least 0.50 ns before its fan-out term, as a congested full chip
routes them). Both are models.

:func:`analyze` returns the worst path's delay, the estimated Fmax, its LUT levels and carry bits, the deepest
path in LUT levels, the largest clock-enable and reset fan-outs, and the largest fan-out of any net that is
combinational from a given input port (the array's ``o.ready``).
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict, deque
from dataclasses import dataclass

__all__ = ["DELAY_MODEL", "PESSIMISTIC_MODEL", "DelayModel", "analyze", "lut_dependencies", "named_paths",
           "source_line"]


@dataclass(frozen=True)
class DelayModel:
    """Delays in ns; see the module docstring. A model, not a measurement."""

    clock_to_out: float = 0.10
    bram_clock_to_out: float = 1.00
    srl_clock_to_out: float = 1.00
    net: float = 0.30
    net_per_doubling: float = 0.04
    lut: float = 0.10
    carry_entry: float = 0.15
    carry_bit: float = 0.02
    mux: float = 0.10
    setup: float = 0.05
    bram_setup: float = 0.30
    dedicated_cascade: bool = True
    name: str = "esb-hw UltraScale+ -2 model v3, nominal (uncalibrated)"


#: The nominal model.
DELAY_MODEL = DelayModel()
#: The pessimistic model: every routed net 0.50 ns or more (before its fan-out term).
PESSIMISTIC_MODEL = DelayModel(net=0.50, name="esb-hw UltraScale+ -2 model v3, pessimistic: routed nets >= 0.5 ns "
                                              "(uncalibrated)")

_FLOPS = {"FDRE": ("R",), "FDSE": ("S",), "FDCE": ("CLR",), "FDPE": ("PRE",)}
_CARRIES = {"CARRY8": 8, "CARRY4": 4}
_MUXES = {"MUXF7", "MUXF8", "MUXF9"}
_SHIFT_REGISTERS = {"SRL16E", "SRLC16E", "SRLC32E"}
#: Distributed RAM: its read data follows its read address through the LUT, like a LUT.
_LUTRAM_PREFIXES = ("RAM32M", "RAM64M", "RAM32X", "RAM64X", "RAM128X", "RAM256X", "RAM512X")
_LUTRAM_ADDRESS_PORTS = ("ADDR", "A", "DPRA", "RADR")


def _init_bits(value, size: int) -> list[int]:
    """A yosys JSON INIT parameter (a binary string, most significant bit first, or an int) as a bit list,
    bit 0 first."""
    if isinstance(value, str):
        number = int(value.replace("x", "0").replace("z", "0"), 2) if value else 0
    else:
        number = int(value)
    return [(number >> index) & 1 for index in range(size)]


def lut_dependencies(init, inputs: int) -> set[int]:
    """The inputs (0-based) that the function with truth table ``init`` (``2**inputs`` entries) depends on."""
    table = _init_bits(init, 1 << inputs)
    used = set()
    for pin in range(inputs):
        mask = 1 << pin
        if any(table[index] != table[index | mask] for index in range(1 << inputs) if not index & mask):
            used.add(pin)
    return used


def _cell_arcs(cell: dict) -> list[tuple[str, int, str, int, str, int]] | None:
    """Combinational arcs of a cell: ``(in_port, in_bit, out_port, out_bit, kind, carry_bits)``; None for a
    sequential or unknown cell (an endpoint and a start point)."""
    kind = cell["type"]
    params = cell.get("parameters", {})
    if kind.startswith("LUT") and kind[3:].isdigit():
        inputs = int(kind[3:])
        used = lut_dependencies(params.get("INIT", 0), inputs)
        return [(f"I{pin}", 0, "O", 0, "lut", 0) for pin in sorted(used)]
    if kind == "LUT6_2":
        table = _init_bits(params.get("INIT", 0), 64)
        number = sum(bit << index for index, bit in enumerate(table))
        if cell["connections"].get("I5") == ["1"]:  # I5 tied high: O6 reads only INIT[63:32]
            o6 = lut_dependencies(number >> 32, 5)
        else:
            o6 = lut_dependencies(number, 6)
        o5 = lut_dependencies(number & 0xFFFF_FFFF, 5)
        return ([(f"I{pin}", 0, "O6", 0, "lut", 0) for pin in sorted(o6)]
                + [(f"I{pin}", 0, "O5", 0, "lut", 0) for pin in sorted(o5)])
    if kind in _CARRIES:
        width = _CARRIES[kind]
        arcs = []
        for out in range(width):
            for source in range(out + 1):
                for port in ("S", "DI"):
                    if port == "DI" and source == out:
                        arcs.append((port, source, "CO", out, "carry", 1))
                        continue
                    arcs.append((port, source, "O", out, "carry", out - source + 1))
                    arcs.append((port, source, "CO", out, "carry", out - source + 1))
            for carry_in in ("CI", "CYINIT"):
                arcs.append((carry_in, 0, "O", out, "carry", out + 1))
                arcs.append((carry_in, 0, "CO", out, "carry", out + 1))
        return arcs
    if kind in _MUXES:
        return [(port, 0, "O", 0, "mux", 0) for port in ("I0", "I1", "S")]
    if kind in ("INV", "BUF"):
        return [("I", 0, "O", 0, "lut", 0)]
    if kind.startswith(_LUTRAM_PREFIXES):
        directions = cell.get("port_directions", {})
        outputs = [port for port, direction in directions.items() if direction == "output"]
        return [(port, bit, out, out_bit, "lut", 0)
                for port, direction in directions.items()
                if direction == "input" and port.startswith(_LUTRAM_ADDRESS_PORTS)
                for bit in range(len(cell["connections"].get(port, [])))
                for out in outputs for out_bit in range(len(cell["connections"].get(out, [])))]
    return None


def analyze(netlist: dict, top: str, *, model: DelayModel = DELAY_MODEL,
            pessimistic: DelayModel | None = PESSIMISTIC_MODEL, from_port: str | None = None,
            paths: int = 0) -> dict:
    """Depth, delay, Fmax and fan-out of module ``top`` of a yosys JSON netlist (see the module docstring).

    The figures are ``model``'s (nominal); with ``pessimistic`` the result also has that variant's worst path
    and Fmax (``worst_path_ns_pessimistic``, ``fmax_mhz_pessimistic``). ``from_port`` names an input port
    (``"o__ready"``): the result then has the largest fan-out (sink pins) of the nets combinational from it.
    ``paths``: the result also has ``worst_paths``, the ``paths`` slowest distinct paths of the nominal model
    (:func:`named_paths`).
    """
    module = netlist["modules"][top]
    names = _net_names(module)
    sinks, readers = _pin_loads(module)
    cascades = _carry_outputs(module)
    worst, deepest, enable_fanout, reset_fanout, ends, previous, arrival, arcs_of = _timed(
        module, model, names, sinks, cascades)
    result = {
        "model": model.name,
        "worst_path_ns": round(worst[0], 3),
        "fmax_mhz_model": round(1000.0 / worst[0], 1) if worst[0] else None,
        "worst_path": {"lut_levels": worst[1], "carry_bits": worst[2], "end": worst[3]},
        "deepest": {"lut_levels": deepest[0], "carry_bits": deepest[1], "end": deepest[2]},
        "largest_enable_fanout": _largest(enable_fanout, names),
        "largest_reset_fanout": _largest(reset_fanout, names),
    }
    if pessimistic is not None:
        slow = _timed(module, pessimistic, names, sinks, cascades)[0]
        result.update({"pessimistic_model": pessimistic.name, "worst_path_ns_pessimistic": round(slow[0], 3),
                       "fmax_mhz_pessimistic": round(1000.0 / slow[0], 1) if slow[0] else None,
                       "worst_path_pessimistic": {"lut_levels": slow[1], "carry_bits": slow[2], "end": slow[3]}})
    if from_port is not None:
        result["from_port"] = _combinational_cone(module, from_port, arcs_of, readers, sinks, names)
    if paths:
        result["worst_paths"] = named_paths(module, ends, previous, arrival, paths)
    return result


def _timed(module: dict, model: DelayModel, names: dict, sinks: dict, cascades: set[int]) -> tuple:
    """One model's arrival times through the whole module: the worst and deepest paths, the fan-outs, every end
    point, each net's slowest predecessor, the arrivals and the combinational arcs."""

    def net_delay(bit: int) -> float:
        return model.net + model.net_per_doubling * math.log2(max(sinks[bit], 1))

    arrival, depth, arcs_of = _start_points(module, model)
    previous: dict[int, tuple[int, str]] = {}
    _propagate(module, arcs_of, arrival, depth, net_delay, model, previous,
               cascades if model.dedicated_cascade else set())
    ends: list[tuple[float, str, int, str]] = []
    worst, deepest, enable_fanout, reset_fanout = _end_points(module, arcs_of, arrival, depth, net_delay, names,
                                                              model, ends)
    return worst, deepest, enable_fanout, reset_fanout, ends, previous, arrival, arcs_of


def _carry_outputs(module: dict) -> set[int]:
    """The nets a carry cell's CO drives: into another carry cell's CI they take UG574's dedicated cascade."""
    return {bit for cell in module["cells"].values() if cell["type"] in _CARRIES
            for bit in cell["connections"].get("CO", []) if isinstance(bit, int)}


def _net_names(module: dict) -> dict[int, str]:
    """Net bit -> a readable name (a visible name preferred over a hidden one)."""
    names: dict[int, str] = {}
    for name, net in module["netnames"].items():
        for index, bit in enumerate(net["bits"]):
            if isinstance(bit, int) and (bit not in names or net.get("hide_name", 1) == 0):
                names[bit] = f"{name}[{index}]" if len(net["bits"]) > 1 else name
    return names


def _pin_loads(module: dict) -> tuple[dict[int, int], dict[int, list]]:
    """Per net: the input pins it drives (output ports count as one), and those pins as ``(cell, port, bit)``."""
    sinks: dict[int, int] = defaultdict(int)
    readers: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
    for cell_name, cell in module["cells"].items():
        for port, bits in cell["connections"].items():
            if cell.get("port_directions", {}).get(port) == "input":
                for index, bit in enumerate(bits):
                    if isinstance(bit, int):
                        sinks[bit] += 1
                        readers[bit].append((cell_name, port, index))
    for port in module["ports"].values():
        if port["direction"] == "output":
            for bit in port["bits"]:
                if isinstance(bit, int):
                    sinks[bit] += 1
    return sinks, readers


def _start_points(module: dict, model: DelayModel) -> tuple[dict, dict, dict]:
    """Arrival (ns, LUT levels, carry bits) and depth at the start points (input ports, flip-flop and RAM
    outputs), and the arcs of every combinational cell."""
    arrival: dict[int, tuple[float, int, int]] = {}  # net -> (ns, LUT levels, carry bits) of the slowest path
    depth: dict[int, tuple[int, int]] = {}  # net -> (LUT levels, carry bits) of the deepest path, apart
    arcs_of: dict[str, list] = {}
    for port in module["ports"].values():
        if port["direction"] == "input":
            for bit in port["bits"]:
                if isinstance(bit, int):
                    arrival[bit] = (0.0, 0, 0)
                    depth[bit] = (0, 0)
    for cell_name, cell in module["cells"].items():
        arcs = _cell_arcs(cell)
        if arcs is None:
            start = (model.bram_clock_to_out if cell["type"].startswith("RAMB")
                     else model.srl_clock_to_out if cell["type"] in _SHIFT_REGISTERS else model.clock_to_out)
            for port, bits in cell["connections"].items():
                if cell.get("port_directions", {}).get(port) == "output":
                    for bit in bits:
                        if isinstance(bit, int):
                            arrival[bit] = (start, 0, 0)
                            depth[bit] = (0, 0)
        else:
            arcs_of[cell_name] = arcs
    return arrival, depth, arcs_of


def _cell_order(module: dict, arcs_of: dict) -> tuple[dict[str, int], dict[str, set[str]]]:
    """For a topological walk of the combinational cells: how many driving cells each waits for, and the cells
    each drives. A cell waits only for the inputs its arcs start from: a distributed RAM's write data and enable
    are synchronous, so a RAM whose read data feeds back into its write data (an accumulator) is no loop."""
    driven_by_comb: dict[int, str] = {}
    for cell_name in arcs_of:
        for port, bits in module["cells"][cell_name]["connections"].items():
            if module["cells"][cell_name]["port_directions"].get(port) == "output":
                for bit in bits:
                    if isinstance(bit, int):
                        driven_by_comb[bit] = cell_name
    arc_ports = {cell_name: {arc[0] for arc in arcs} for cell_name, arcs in arcs_of.items()}
    dependents: dict[str, set[str]] = defaultdict(set)
    waiting: dict[str, int] = {}
    for cell_name in arcs_of:
        cell = module["cells"][cell_name]
        drivers = {driven_by_comb[bit] for port, bits in cell["connections"].items()
                   if port in arc_ports[cell_name] for bit in bits
                   if isinstance(bit, int) and bit in driven_by_comb}
        for driver in drivers:
            dependents[driver].add(cell_name)
        drivers.discard(cell_name)  # count distinct driving cells, not bits
        waiting[cell_name] = len(drivers)
    return waiting, dependents


def _propagate(module: dict, arcs_of: dict, arrival: dict, depth: dict, net_delay, model: DelayModel,
               previous: dict, cascades: set[int]) -> None:
    """Arrival and depth through the combinational cells, in topological order (Kahn), cell by cell; ``previous``
    gets, per net, the net and the cell its slowest arrival came through. A carry cell's CI fed from a net in
    ``cascades`` (another carry cell's CO) costs only the bits the carry travels."""
    waiting, dependents = _cell_order(module, arcs_of)
    ready = deque(name for name, count in waiting.items() if count == 0)
    processed = 0
    while ready:
        cell_name = ready.popleft()
        processed += 1
        connections = module["cells"][cell_name]["connections"]
        for in_port, in_bit, out_port, out_bit, kind, carry_bits in arcs_of[cell_name]:
            if in_port not in connections or out_port not in connections:
                continue
            if in_bit >= len(connections[in_port]) or out_bit >= len(connections[out_port]):
                continue
            source, target = connections[in_port][in_bit], connections[out_port][out_bit]
            if not isinstance(source, int) or not isinstance(target, int) or source not in arrival:
                continue
            time, levels, bits = arrival[source]
            deep_levels, deep_bits = depth[source]
            if kind == "carry" and in_port == "CI" and source in cascades:
                time += model.carry_bit * carry_bits
                bits, deep_bits = bits + carry_bits, deep_bits + carry_bits
            elif kind == "lut":
                time += net_delay(source)
                time, levels, deep_levels = time + model.lut, levels + 1, deep_levels + 1
            elif kind == "mux":
                time += net_delay(source) + model.mux
            else:
                time += net_delay(source) + model.carry_entry + model.carry_bit * carry_bits
                bits, deep_bits = bits + carry_bits, deep_bits + carry_bits
            if target not in arrival or time > arrival[target][0]:
                arrival[target] = (time, levels, bits)
                previous[target] = (source, cell_name)
            if target not in depth or (deep_levels, deep_bits) > depth[target]:
                depth[target] = (deep_levels, deep_bits)
        for dependent in dependents[cell_name]:
            if dependent == cell_name:
                continue
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
    if processed != len(arcs_of):
        raise ValueError(f"combinational loop: {len(arcs_of) - processed} cells never became ready")


def _end_points(module: dict, arcs_of: dict, arrival: dict, depth: dict, net_delay, names: dict,
                model: DelayModel, ends: list) -> tuple:
    """The worst and the deepest path over the end points (every input pin of a sequential cell, and the output
    ports), and the clock-enable and reset fan-outs; ``ends`` gets every end point as ``(ns, end, net, the
    register or port it ends in)``."""
    worst = (0.0, 0, 0, "")
    deepest = (0, 0, "")
    enable_fanout: dict[int, int] = defaultdict(int)
    reset_fanout: dict[int, int] = defaultdict(int)
    for cell_name, cell in module["cells"].items():
        lutram = cell["type"].startswith(_LUTRAM_PREFIXES)
        if cell_name in arcs_of and not lutram:
            continue
        setup = model.bram_setup if cell["type"].startswith("RAMB") or lutram else model.setup
        q = cell["connections"].get("Q", [None])[0] if cell["type"] in _FLOPS else None
        register = _register(names.get(q, cell_name)) if isinstance(q, int) else cell_name
        for port, bits in cell["connections"].items():
            if cell.get("port_directions", {}).get(port) != "input" or port in ("C", "CLK", "CLKARDCLK",
                                                                                   "CLKBWRCLK", "WCLK"):
                continue
            for bit in bits:
                if not isinstance(bit, int) or bit not in arrival:
                    continue
                if cell["type"] in _FLOPS and port == "CE":
                    enable_fanout[bit] += 1
                if cell["type"] in _FLOPS and port in _FLOPS[cell["type"]]:
                    reset_fanout[bit] += 1
                time, levels, carry = arrival[bit]
                total = time + net_delay(bit) + setup
                ends.append((total, f"{cell['type']} {port} of {register}", bit, register))
                if total > worst[0]:
                    worst = (total, levels, carry, f"{cell['type']} {port} <- {names.get(bit, bit)}")
                if depth[bit] > deepest[:2]:
                    deepest = (*depth[bit], names.get(bit, str(bit)))
    for port_name, port in module["ports"].items():  # output ports end paths too (no setup: a boundary)
        if port["direction"] != "output":
            continue
        for bit in port["bits"]:
            if isinstance(bit, int) and bit in arrival:
                time, levels, carry = arrival[bit]
                ends.append((time, f"output {port_name}", bit, port_name))
                if time > worst[0]:
                    worst = (time, levels, carry, f"output {port_name} <- {names.get(bit, bit)}")
                if depth[bit] > deepest[:2]:
                    deepest = (*depth[bit], f"output {port_name}")
    return worst, deepest, enable_fanout, reset_fanout


def _net_sources(module: dict) -> dict[int, tuple[str, str]]:
    """Net bit -> (name, source line): a visible name with a source preferred, then any visible name."""
    found: dict[int, tuple[int, str, str]] = {}
    for name, net in module["netnames"].items():
        source = source_line(net.get("attributes", {}).get("src", ""))
        rank = (2 if source else 0) + (1 if net.get("hide_name", 1) == 0 else 0)
        for index, bit in enumerate(net["bits"]):
            if isinstance(bit, int) and (bit not in found or rank > found[bit][0]):
                found[bit] = (rank, f"{name}[{index}]" if len(net["bits"]) > 1 else name, source)
    return {bit: (name, source) for bit, (_, name, source) in found.items()}


def source_line(attribute: str) -> str:
    """``/any/where/esb_hw/hw/core/engine.py:327.5-327.40|...`` -> ``esb_hw/hw/core/engine.py:327``: the first
    Python source of a yosys ``src`` attribute in the design (yosys's techmap files, Amaranth's internals and the
    standard library's ``contextlib`` name no design line; :func:`~esb_hw.estimate.synth.synthesize` cuts the
    design's own paths to relative ones), from the package directory on (the same on every machine)."""
    for first in attribute.split("|"):
        path, _, position = first.rpartition(":")
        if not path.endswith(".py") or "/amaranth/" in path or "/lib/python3." in path or path.startswith(
                (sys.base_prefix, sys.prefix)):
            continue  # yosys's techmap files, Amaranth's and the standard library's own lines
        marker = path.rfind("esb_hw/")
        path = path[marker:] if marker >= 0 else path.rsplit("/", 1)[-1]
        return f"{path}:{position.split('.')[0]}"
    return ""


def _register(name: str) -> str:
    """A net's name without its bit index: the register or signal it belongs to."""
    return name.split("[")[0] if name.endswith("]") else name


def named_paths(module: dict, ends: list, previous: dict, arrival: dict, count: int) -> list[dict]:
    """The ``count`` slowest paths with distinct (start signal, end signal) pairs, each from its start point (a
    flip-flop, RAM or input port) to its end, step by step: the cell each net is driven through, the net's name,
    a source line (the cell's, else the net's; where yosys made both, ``near`` the nearest one along the path)
    and the net's arrival in ns."""
    sources = _net_sources(module)
    chosen: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for total, end, bit, register in sorted(ends, key=lambda item: (-item[0], item[1], item[2])):
        steps = []
        net, through = bit, None
        while True:
            name, source = sources.get(net, (str(net), ""))
            steps.append({"net": name, "through": through, "src": source, "at_ns": round(arrival[net][0], 3)})
            if net not in previous:
                break
            net, cell_name = previous[net]
            cell = module["cells"][cell_name]
            steps[-1]["through"] = cell["type"]
            steps[-1]["src"] = source_line(cell.get("attributes", {}).get("src", "")) or steps[-1]["src"]
        steps.reverse()
        key = (_register(steps[0]["net"]), register)
        if key in seen:
            continue
        seen.add(key)
        known = [index for index, step in enumerate(steps) if step["src"]]
        for index, step in enumerate(steps):
            if not step["src"] and known:
                nearest = min(known, key=lambda other: (abs(other - index), -other))
                step["src"] = f"near {steps[nearest]['src']}"
        chosen.append({"delay_ns": round(total, 3), "fmax_mhz_model": round(1000.0 / total, 1) if total else None,
                       "start": steps[0]["net"], "end": end, "steps": steps})
        if len(chosen) == count:
            break
    return chosen


def _largest(counts: dict[int, int], names: dict[int, str]) -> dict:
    if not counts:
        return {"pins": 0, "net": None}
    bit = max(counts, key=lambda key: (counts[key], -key))
    return {"pins": counts[bit], "net": names.get(bit, str(bit))}


def _combinational_cone(module, port_name, arcs_of, readers, sinks, names) -> dict:
    """Nets reached from ``port_name`` through combinational arcs, and the largest fan-out among them."""
    if port_name not in module["ports"]:
        raise ValueError(f"no port {port_name!r}; ports: {', '.join(sorted(module['ports']))}")
    frontier = deque(bit for bit in module["ports"][port_name]["bits"] if isinstance(bit, int))
    reached = set(frontier)
    while frontier:
        bit = frontier.popleft()
        for cell_name, port, index in readers[bit]:
            if cell_name not in arcs_of:
                continue
            connections = module["cells"][cell_name]["connections"]
            for in_port, in_bit, out_port, out_bit, *_ in arcs_of[cell_name]:
                if in_port == port and in_bit == index and out_port in connections:
                    target = connections[out_port][out_bit] if out_bit < len(connections[out_port]) else None
                    if isinstance(target, int) and target not in reached:
                        reached.add(target)
                        frontier.append(target)
    largest = max(reached, key=lambda bit: (sinks[bit], -bit))
    return {"port": port_name, "nets": len(reached), "largest_fanout_pins": sinks[largest],
            "largest_net": names.get(largest, str(largest)),
            "total_pins": sum(sinks[bit] for bit in reached)}
