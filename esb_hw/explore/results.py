"""What a sweep writes: ``explore.json``, the Pareto fronts, ``explore.md`` and ``fronts.png``.

``explore.json`` holds one record per point, in grid order: its index, the axes' values as the sweep file wrote
them, the config, every measure's status, values and error, and a ``pareto`` flag per front. It holds nothing that
depends on the machine or the run (no times, no node names, no cache hits), so the same sweep gives the same bytes
on every machine; ``run.json`` beside it has those.

The fronts (:data:`FRONTS`) are computed over the points whose measures gave both values:

- ``accuracy_vs_lut_per_mac``: the most accurate for the LUTs per MAC (needs ``accuracy`` and ``resources``);
- ``images_per_second_vs_lut``: the fastest for the whole system's LUTs (``throughput`` and ``resources``; the
  LUTs are the resource MODEL's, ``system_lut_model``, unless ``resources.design = "system"`` measured them);
- ``search``: with ``--search``, the front of the search's objectives among the points that meet its constraints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import InputError
from .sweep import Constraint, Objective, Sweep

__all__ = ["FRONTS", "build_document", "document_text", "front_axes", "markdown", "merged_values", "pareto_flags",
           "plot_fronts", "short_label", "write_text"]

#: name -> (x metric, minimized; y metric, maximized), with the measures each needs.
FRONTS = {
    "accuracy_vs_lut_per_mac": ("lut_per_mac", "accuracy", ("resources", "accuracy")),
    "images_per_second_vs_lut": ("system_lut_model", "images_per_second", ("resources", "throughput")),
}
#: Columns of the markdown table: metric -> (header, format).
COLUMNS = {"lut": ("LUT", "{:,}"), "lut_per_mac": ("LUT/MAC", "{:.2f}"),
           "gops_per_klut": ("GOPS/kLUT", "{:.1f}"), "mapping": ("mapping", "{}"),
           "system_lut_model": ("system LUT (MODEL)", "{:,}"),
           "system_gops_per_klut_model": ("system GOPS/kLUT (MODEL)", "{:.2f}"),
           "fmax_mhz_model": ("Fmax MHz (MODEL)", "{:.1f}"), "fmax_mhz_pessimistic": ("pessimistic (MODEL)",
                                                                                      "{:.1f}"),
           "images_per_second": ("images/s (cycle MODEL)", "{:,.1f}"), "utilization": ("utilization", "{:.1%}"),
           "accuracy": ("accuracy", "{:.1%}"), "qat_accuracy": ("QAT accuracy", "{:.1%}")}


def pareto_flags(values: list[tuple | None]) -> list[bool]:
    """For each point's objective tuple (every entry larger-is-better; None: not measured), whether no other
    point is at least as good on every entry and better on one. Two objectives (every front but a search's with
    more) take a sort and a scan; more take the pairwise comparison."""
    if {len(value) for value in values if value is not None} == {2}:
        return _pareto_2d(values)
    flags = []
    for mine in values:
        if mine is None:
            flags.append(False)
            continue
        dominated = any(other is not None and other != mine and all(o >= m for o, m in zip(other, mine, strict=True))
                        for other in values)
        flags.append(not dominated)
    return flags


def _pareto_2d(values: list[tuple | None]) -> list[bool]:
    flags = [False] * len(values)
    order = sorted((i for i, value in enumerate(values) if value is not None), key=lambda i: values[i], reverse=True)
    best_above = None  # the largest second entry among points with a larger first entry
    start = 0
    while start < len(order):
        first = values[order[start]][0]
        stop = start
        while stop < len(order) and values[order[stop]][0] == first:
            stop += 1
        top = values[order[start]][1]  # the group's largest second entry (sorted descending)
        for i in order[start:stop]:
            flags[i] = values[i][1] == top and (best_above is None or best_above < top)
        best_above = top if best_above is None else max(best_above, top)
        start = stop
    return flags


def merged_values(measures: Mapping) -> dict:
    """The values of every measure that gave values (``{measure: result}``), in one dict."""
    merged = {}
    for result in measures.values():
        if result["status"] == "ok":
            merged.update(result["values"])
    return merged


def _metrics(record: Mapping) -> dict:
    return merged_values(record["measures"])


def front_axes(sweep: Sweep) -> dict[str, tuple[str, str]]:
    fronts = {}
    for name, (x, y, needs) in FRONTS.items():
        if all(measure in sweep.measures for measure in needs):
            if name == "images_per_second_vs_lut" and sweep.options["resources"]["design"] == "system":
                x = "lut"
            fronts[name] = (x, y)
    return fronts


def build_document(sweep: Sweep, records: list[dict], *, objectives: tuple[Objective, ...] = (),
                   constraints: tuple[Constraint, ...] = (), search: Mapping | None = None) -> dict:
    """``explore.json``'s content: the records with their ``pareto`` flags, and the fronts' definitions."""
    fronts = {name: {"x": x, "y": y, "minimize": [x], "maximize": [y]} for name, (x, y) in front_axes(sweep).items()}
    metrics = [_metrics(record) for record in records]
    for record in records:
        record["pareto"] = {}
    for name, (x, y) in front_axes(sweep).items():
        values = [(-m[x], m[y]) if m.get(x) is not None and m.get(y) is not None else None for m in metrics]
        for record, flag in zip(records, pareto_flags(values), strict=True):
            record["pareto"][name] = flag
    if objectives:
        fronts["search"] = {"minimize": [o.metric for o in objectives if not o.maximize],
                            "maximize": [o.metric for o in objectives if o.maximize],
                            "constraints": [str(c) for c in constraints]}
        values = []
        for m in metrics:
            feasible = all(c.holds(m.get(c.metric)) for c in constraints)
            scores = [m.get(o.metric) for o in objectives]
            values.append(tuple(s if o.maximize else -s for s, o in zip(scores, objectives, strict=True))
                          if feasible and None not in scores else None)
        for record, flag in zip(records, pareto_flags(values), strict=True):
            record["pareto"]["search"] = flag
    document = {"sweep": sweep.name, "file": sweep.path.name, "network": _network_name(sweep),
                "config": sweep.config.stem, "measures": list(sweep.measures),
                "options": {measure: dict(options) for measure, options in sweep.options.items()},
                "timeout": sweep.timeout, "grid_points": sweep.size, "points": len(records), "fronts": fronts,
                "records": records}
    if search is not None:
        document["search"] = dict(search)
    return document


def _network_name(sweep: Sweep) -> str:
    from .sweep import NETWORKS

    return sweep.network if sweep.network in NETWORKS else Path(sweep.network).name


def _cell(value) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{key}={item}" for key, item in value.items())
    return str(value)


def markdown(document: Mapping) -> str:
    """The records as a markdown table (axes, the measured metrics, fronts, errors), with a line per front."""
    records = document["records"]
    axes = list(records[0]["choices"]) if records else []
    metrics = [name for name in COLUMNS if any(_metrics(record).get(name) is not None for record in records)]
    fronts = list(document["fronts"])
    header = ["#", *axes, *(COLUMNS[name][0] for name in metrics), *(f"front: {name}" for name in fronts), "notes"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---:"] + ["---"] * len(axes)
                            + ["---" if name == "mapping" else "---:" for name in metrics]
                            + [":---:"] * len(fronts) + ["---"]) + "|"]
    for record in records:
        values = _metrics(record)
        cells = [str(record["point"]), *(_cell(record["choices"][axis]) for axis in axes)]
        cells += [COLUMNS[name][1].format(values[name]) if values.get(name) is not None else "—" for name in metrics]
        cells += ["**yes**" if record["pareto"].get(name) else "" for name in fronts]
        notes = [f"{measure}: {result['status']} ({result.get('error', '')})".replace("|", "/")
                 for measure, result in record["measures"].items() if result["status"] != "ok"]
        cells.append("; ".join(notes))
        lines.append("| " + " | ".join(cells) + " |")
    summary = []
    for name, front in document["fronts"].items():
        members = [record for record in records if record["pareto"].get(name)]
        goal = ", ".join([f"max {m}" for m in front["maximize"]] + [f"min {m}" for m in front["minimize"]])
        where = f" subject to {', '.join(front['constraints'])}" if front.get("constraints") else ""
        points = "; ".join(f"#{record['point']} ({', '.join(_cell(v) for v in record['choices'].values())})"
                           for record in members) or "none"
        summary.append(f"Front `{name}` ({goal}{where}): {points}.")
    summary += _accuracy_findings(records)
    failed = sum(any(result["status"] != "ok" for result in record["measures"].values()) for record in records)
    summary.append(f"{len(records)} of {document['grid_points']} grid points; {failed} with a measure that did not "
                   "give values (its notes say why).")
    return "\n".join(lines) + "\n\n" + "\n\n".join(summary) + "\n"


def _accuracy_findings(records: list[dict], noise: float = 0.015) -> list[str]:
    """With accuracy and LUT/MAC: the most accuracy per LUT/MAC, and the cheapest point within ``noise`` of the
    float model's accuracy."""
    points = [(record, _metrics(record)) for record in records]
    points = [(record, m) for record, m in points if m.get("accuracy") is not None and m.get("lut_per_mac")]
    if not points:
        return []

    def name(record) -> str:
        return f"#{record['point']} ({', '.join(_cell(v) for v in record['choices'].values())})"

    record, m = max(points, key=lambda item: (item[1]["accuracy"] / item[1]["lut_per_mac"], item[1]["accuracy"]))
    lines = [f"Most accuracy per LUT/MAC: {name(record)}, {m['accuracy']:.1%} at {m['lut_per_mac']:.2f} LUT/MAC."]
    reference = max((m.get("float_accuracy") or 0) for _, m in points)
    close = [(record, m) for record, m in points if reference and m["accuracy"] >= reference - noise]
    if close:
        record, m = min(close, key=lambda item: (item[1]["lut_per_mac"], -item[1]["accuracy"]))
        lines.append(f"Cheapest within {100 * noise:.1f} points of the float model's {reference:.1%}: {name(record)}, "
                     f"{m['accuracy']:.1%} at {m['lut_per_mac']:.2f} LUT/MAC.")
    return lines


def short_label(record: Mapping) -> str:
    """A point's label on a plot: its axes' values, a table's values joined by ``/``."""
    def text(value) -> str:
        return "/".join(str(item) for item in value.values()) if isinstance(value, Mapping) else str(value)

    return " ".join(text(value) for value in record["choices"].values())


def plot_fronts(document: Mapping, path: Path) -> bool:
    """Draw each front with a scatter of all points (PNG); False when there is no front to draw."""
    fronts = {name: front for name, front in document["fronts"].items() if name in FRONTS}
    if not fronts:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("the plot needs matplotlib: pip install 'esb-hw[plot]'") from None
    figure, axes = plt.subplots(1, len(fronts), figsize=(6.5 * len(fronts), 4.5), squeeze=False)
    labels = {"lut_per_mac": "LUT/MAC (yosys)", "accuracy": "test accuracy (%)", "images_per_second":
              "images/s (cycle MODEL)", "system_lut_model": "whole-system LUTs (resource MODEL)", "lut": "LUTs (yosys)"}
    for axis, (name, front) in zip(axes[0], fronts.items(), strict=True):
        x, y = front["x"], front["y"]
        scale = 100 if y == "accuracy" else 1
        points = [(record, _metrics(record)) for record in document["records"]]
        points = [(record, m) for record, m in points if m.get(x) is not None and m.get(y) is not None]
        for record, m in points:
            on_front = record["pareto"].get(name)
            axis.scatter(m[x], scale * m[y], color="tab:red" if on_front else "tab:blue", s=18)
            axis.annotate(short_label(record), (m[x], scale * m[y]), fontsize=6, xytext=(2, 2),
                          textcoords="offset points")
        line = sorted((m[x], scale * m[y]) for record, m in points if record["pareto"].get(name))
        if line:
            axis.plot(*zip(*line, strict=True), color="tab:red", linewidth=1)
        values = [m[x] for _, m in points]
        if values and min(values) > 0 and max(values) > 10 * min(values):
            axis.set_xscale("log")
        axis.set_xlabel(labels.get(x, x))
        axis.set_ylabel(labels.get(y, y))
        axis.set_title(f"{document['sweep']}: {name.replace('_', ' ')} (red: Pareto front)", fontsize=9)
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=110, metadata={"Software": None})
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror}") from None
    finally:
        plt.close(figure)
    return True


def write_text(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def document_text(document: Mapping) -> str:
    """``explore.json``'s bytes: keys in the order the sweep and the measures give them (the same every run)."""
    return json.dumps(document, indent=1) + "\n"
