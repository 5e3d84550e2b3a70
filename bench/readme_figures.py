#!/usr/bin/env python3
"""The README's measured figures, written from the benches' JSON results, so that no figure goes stale.

Each generated block of README.md (``<!-- NAME:begin ... -->`` to ``<!-- NAME:end -->``) is rendered from one JSON
file that a bench wrote:

- ``digits-rtl``: ``bench/results/digits_rtl.json``, from ``python bench/digits_rtl.py --images 50 --json``;
- ``system-timing``: ``esb_hw/data/timing.json``, from ``python bench/timing.py --design system --config
  esb_hw/data/configs/default.toml --paths 10 --record`` (the record ``esb-hw build`` reports);
- ``chip``: ``bench/results/chip.json``, from ``python bench/chip.py --timing bench/results/timing_engine.json
  --json``, with ``timing_engine.json`` from ``python bench/timing.py --design engine --config
  esb_hw/data/configs/default.toml --paths 5 --json``.

- ``model-error``: ``bench/results/model_error.json``, from ``python bench/model_error.py --json --config ...`` (the
  7 configs of the README's table: ``default``, ``esb5_act_esb``, ``pot3``, ``uniform4``, ``uniform5``,
  ``array16x16``, ``array32x32``);
- ``array-timing``: ``bench/results/timing_arrays.json``, from ``python bench/timing.py --json`` (the default 8x8,
  16x16 and 32x32 arrays);
- ``compare``: ``bench/results/compare.json``, from ``python bench/compare.py --json``;
- ``compare-configs``: ``bench/results/compare_configs.json``, ``{"runs": [...]}`` of ``python bench/compare.py
  --config esb_hw/data/configs/NAME.toml --json`` for ``pot3``, ``esb5_act_esb``, ``uniform4`` and ``uniform5``;
- ``plans``: ``bench/results/plans.json``, ``{"runs": [...]}`` of ``esb-hw plan NAME --config zcu102_64x64 --json``
  for ``resnet18``, ``resnet50`` and ``mobilenetv2``.

``bench/timing.py`` stores each design's RTL digest (``rtl_sha256``) in its JSON, and ``tests/test_recorded.py``
fails when the system, the engine or an array is no longer the RTL its figures were measured on (the model-error
and comparison runs, of many array variants, are not checked that way).

``make figures`` (``python bench/readme_figures.py --update``) rewrites the blocks; without ``--update`` it checks
them, exits 1 and names each block that differs from its JSON. ``tests/test_readme_figures.py`` runs the check,
shows that it sees a wrong figure, and (slow) runs the digits bench again against its JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "bench" / "results"
TIMING = ROOT / "esb_hw" / "data" / "timing.json"


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: {path}: {error}") from None


def digits_rtl(result: dict) -> str:
    accuracy = result["accuracy"]
    images = result["images"]
    lines = ["| measure | value |", "|---|---:|",
             f"| images with every logit bit-exact / with the golden class | {result['bit_exact_images']}/{images} / "
             f"{result['same_class_images']}/{images} |",
             f"| accuracy on these {images}: float / golden / RTL | {accuracy['float']:.1%} / {accuracy['golden']:.1%} "
             f"/ {accuracy['rtl']:.1%} |"]
    for layer in result["layers"]:
        lines.append(f"| {layer['name']} ({layer['input']} → {layer['output']}, {layer['macs']:,} MACs) | "
                     f"{layer['cycles']:,.0f} cycles, {layer['utilization']:.1%} MAC utilization |")
    lines += [f"| cycles per image, start to done | {result['cycles_per_image']:,.0f}: "
              f"{result['images_per_second']:,.0f} images/s at {result['clock_mhz']:g} MHz |",
              f"| wall-clock time ({result['simulator']} build if not cached, {images} runs, checks) | "
              f"{result['wall_seconds']} s |"]
    return "\n".join(lines)


def system_timing(record_file: dict) -> str:
    (record,) = [record for record in record_file["records"] if record["config"] == "default"]
    return (f"By the delay model v3 the whole default system closes at **{record['fmax_mhz_model']:g} MHz nominal and "
            f"{record['fmax_mhz_pessimistic']:g} MHz pessimistic** (both MODELS of UltraScale+ -2, not Vivado results; "
            f"{record['lut']:,} LUTs and {record['ff']:,} FFs by yosys). Worst path: {record['worst_path']}. "
            "`esb-hw build` reports this figure for exactly this RTL (`esb_hw/data/timing.json`, written by "
            "`python bench/timing.py --design system --config esb_hw/data/configs/default.toml --paths 10 --record`, "
            "about 2.5 minutes; a test fails when the RTL changes without it).")


def chip(result: dict) -> str:
    lines = ["| config | weights | array | LUT (% of XCZU9EG) | BRAM36 % | fixed overhead | Fmax nominal / pessimistic "
             "(MODEL) | peak TOPS | GOPS/kLUT | ResNet-18 img/s | ResNet-50 img/s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for record in result["configs"]:
        lines.append(f"| `{record['name']}` | {record['weights']} | {record['array']} | {record['lut']:,} "
                     f"({record['lut_fraction']:.1%}) | {record['bram_fraction']:.1%} | "
                     f"{record['fixed_overhead_fraction']:.1%} | {record['fmax_model_mhz']:.0f} / "
                     f"{record['fmax_pessimistic_mhz']:.0f} MHz | {record['peak_tops']:.2f} | "
                     f"{record['gops_per_klut']:.1f} | {record['resnet18_images_per_second']:.1f} | "
                     f"{record['resnet50_images_per_second']:.1f} |")
    lines.append("")
    for record in result["configs"]:
        lines.append(f"- `{record['name']}` at batch 1, {record['hp_ports']} HP port "
                     f"({record['memory_bytes_per_cycle']:g} bytes per cycle): the array is busy "
                     f"{record['resnet18_utilization']:.1%} of ResNet-18's cycles and "
                     f"{record['resnet50_utilization']:.1%} of ResNet-50's; memory bounds "
                     f"{record['resnet18_memory_bound_layers']} and {record['resnet50_memory_bound_layers']} of their "
                     "layers.")
    return "\n".join(lines)


def model_error(result: dict) -> str:
    lines = ["| config | weights x activations | array | yosys LUTs | LUT/MAC | model LUT error | FFs by yosys (model) "
             "| CARRY4 / CARRY8 | BRAM36 |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in result["configs"]:
        yosys, model = row["yosys"], row["model"]
        ff = f"{yosys['ff']:,}" + ("" if model["ff"] == yosys["ff"] else f" ({model['ff']:,})")
        lines.append(f"| {row['config']} | {row['weights']} x {row['activations']} | {row['rows']}x{row['cols']} | "
                     f"{yosys['lut']:,} | {yosys['lut'] / (row['rows'] * row['cols']):.1f} | "
                     f"{100 * row['error']['lut']:+.1f} % | {ff} | {row['carries']['carry4']:,} / "
                     f"{row['carries']['carry8']:,} | {yosys['bram36']:g} |")
    return "\n".join(lines)


def array_timing(result: dict) -> str:
    lines = ["| array | LUT/MAC | BRAM36 | deepest path | worst path (model) | Fmax (model) | pessimistic (model) | "
             "max CE fan-out | max reset fan-out | `o.ready` fan-out |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for row in result["configs"]:
        deepest = row["deepest"]
        carry = f" + {deepest['carry_bits']} carry bits" if deepest["carry_bits"] else ""
        lines.append(f"| {row['rows']}x{row['cols']} | {row['lut_per_mac']:.1f} | {row['bram36']:g} | "
                     f"{deepest['lut_levels']} LUT levels{carry} | {row['worst_path_ns_model']:.2f} ns | "
                     f"{row['fmax_mhz_model']:.0f} MHz | {row['fmax_mhz_pessimistic']:.0f} MHz | "
                     f"{row['largest_enable_fanout']['pins']} | {row['largest_reset_fanout']['pins']} | "
                     f"{row['from_o_ready']['largest_fanout_pins']} |")
    return "\n".join(lines)


def _by_label(rows: list[dict]) -> dict:
    """``{label: {side: row}}`` in the bench's order."""
    table: dict = {}
    for row in rows:
        table.setdefault(row["label"], {})[row["side"]] = row
    return table


def _ratios(own: dict, rival: dict, sides: list[int], separator: str) -> str:
    """The own format's LUT/MAC over the rival's, per array side."""
    return separator.join(f"{own[side]['lut_per_mac'] / rival[side]['lut_per_mac']:.2f}x" for side in sides)


def compare(result: dict) -> str:
    """The default config's weights against its rivals (``bench/compare.py --json``), and the LUT ratios."""
    table = _by_label(result["rows"])
    sides = sorted({row["side"] for row in result["rows"]})
    small = sides[0]
    lines = ["| weights | max level | mapping | " + " | ".join(f"{s}x{s} LUT/MAC" for s in sides) +
             f" | {small}x{small} FF/MAC | {small}x{small} CARRY4/CARRY8 | {small}x{small} depth | "
             f"{small}x{small} Fmax nominal / pessimistic (MODEL) |",
             "|---|---:|---|" + "---:|" * len(sides) + "---:|---:|---|---:|"]
    for label, by_side in table.items():
        row = by_side[small]
        name = row["weights"] if label == "own" else f"{label}: {row['weights']}"
        lines.append(f"| {name} | {row['levels']} | {row['mapping']} | " +
                     " | ".join(f"{by_side[s]['lut_per_mac']:.1f}" for s in sides) +
                     f" | {row['ff_per_mac']:.1f} | {row['carry4']} / {row['carry8']} | "
                     f"{row['deepest']['lut_levels']} LUTs + {row['deepest']['carry_bits']} carry bits | "
                     f"{row['fmax_mhz_model']:.0f} / {row['fmax_mhz_pessimistic']:.0f} MHz |")
    own = table["own"]
    ratios = [f"{label} {_ratios(own, by_side, sides, ', ')}" for label, by_side in table.items() if label != "own"]
    lines += ["", f"LUTs of {own[small]['weights']} per rival ({', '.join(f'{s}x{s}' for s in sides)}): "
              + "; ".join(ratios) + "."]
    return "\n".join(lines)


def compare_configs(result: dict) -> str:
    """The other shipped configs' LUT ratios to their rivals (``bench/compare.py --config NAME --json`` each)."""
    lines = ["| config (weights x activations) | rival | LUT ratio, " +
             " / ".join(f"{s}x{s}" for s in sorted({r['side'] for run in result['runs'] for r in run['rows']})) +
             " |", "|---|---|---:|"]
    for run in result["runs"]:
        table = _by_label(run["rows"])
        own = table["own"]
        sides = sorted(own)
        for label, by_side in table.items():
            if label == "own":
                continue
            ratio = _ratios(own, by_side, sides, " / ")
            lines.append(f"| {run['config']} ({own[sides[0]]['weights']} x {run['activations']}) | {label}: "
                         f"{by_side[sides[0]]['weights']}, {by_side[sides[0]]['mapping']} | {ratio} |")
    return "\n".join(lines)


#: block name -> (source JSON, renderer)
_NETWORK_NAMES = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50",
                  "mobilenetv2": "MobileNetV2"}


def plans(result: dict) -> str:
    """The reference networks' placement and array cycles (``esb-hw plan NAME --json`` each)."""
    lines = ["| network | on the array | cycles per image (MODEL) | images/s (MODEL) | utilization (MODEL) |",
             "|---|---:|---:|---:|---:|"]
    for run in result["runs"]:
        name = run["model"].split()[0]
        share = run["engine_macs"] / run["macs"]
        lines.append(f"| {_NETWORK_NAMES.get(name, name)} | {share:.1%} of {run['macs'] / 1e9:.3f} GMAC | "
                     f"{run['engine_cycles']:,} | {run['engine_images_per_second']:.1f} | "
                     f"{run['engine_utilization']:.1%} |")
    configs = sorted({(run["config"], run["clock_mhz"]) for run in result["runs"]})
    lines.append("")
    lines.append("On " + ", ".join(f"`{name}` at its configured {clock:g} MHz" for name, clock in configs)
                 + ", counting the array alone (the nodes the host runs, the max pools, are not timed). "
                 "Utilization counts the useful MACs: a depthwise layer's zeros are work, not MACs.")
    return "\n".join(lines)


def batch(result: dict) -> str:
    """Linear layers' utilization per batch, and the RTL runs (``bench/batch.py --rtl --json``)."""
    batches = sorted({row["batch"] for row in result["linear"]})
    lines = ["| linear layer | " + " | ".join(f"batch {size}" for size in batches) + " |",
             "|---|" + "---:|" * len(batches)]
    for name in dict.fromkeys(row["layer"] for row in result["linear"]):
        cells = []
        for size in batches:
            row = next(row for row in result["linear"] if row["layer"] == name and row["batch"] == size)
            cells.append("does not compile" if "error" in row else f"{row['utilization']:.1%}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    refused = {row["layer"]: row["error"] for row in result["linear"] if "error" in row}
    lines.append("")
    lines.append(f"Utilization over the whole run, loads included (cycle MODEL), on `{result['config']}` "
                 f"({result['array'][0]}x{result['array'][1]})."
                 + "".join(f" {name}: {error.removeprefix('layer 0: ')}." for name, error in refused.items())
                 + " Through the system's RTL, bit-exact:")
    for run in result.get("rtl", []):
        lines.append(f"- {run['run']}: {run['rtl_cycles']:,.0f} cycles a run measured, {run['model_cycles']:,} "
                     f"MODEL ({run['model_error']:+.2%})"
                     + (f", {run['rtl_utilization']:.1%} utilization" if "rtl_utilization" in run else
                        f", {run['rtl_cycles_per_image']:,.0f} cycles per image"))
    return "\n".join(lines)


def explore_scale(result: dict) -> str:
    """The 40-point sweep with 1 and 2 Ray workers (``bench/explore_scale.py --json``)."""
    lines = ["| workers | points | wall s (Ray's start included) | sweep s (without it) | task s (sum) | "
             "speed-up (wall) | speed-up (sweep) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['workers']} | {row['points']} | {row['wall_seconds']:.1f} | {row['run_seconds']:.1f} | "
                     f"{row['task_seconds']:.1f} | {row['speedup_wall']:.2f}x | {row['speedup_run']:.2f}x |")
    lines.append("")
    lines.append(f"`{result['sweep']}`, each run from an empty cache, on the project's 2-core machine; both runs gave "
                 "the same `explore.json` bytes. Task seconds are the tasks' own wall times, summed: with 2 workers "
                 "each task takes longer, as the two cores share the machine.")
    return "\n".join(lines)


def _merged(record: dict) -> dict:
    from esb_hw.explore.results import merged_values

    return merged_values(record["measures"])


def explore_search(result: dict) -> str:
    """A search against the whole grid of the same sweep (``esb-hw explore examples/sweeps/arrays.toml``, with
    and without ``--search pareto``; the two ``explore.json`` files in ``bench/results/``)."""
    search, grid = result["search"], result["grid"]
    summary = search["search"]
    from esb_hw.explore.results import pareto_flags, short_label
    from esb_hw.explore.sweep import parse_constraint

    constraints = [parse_constraint(text, "search.constraints", "explore.json", tuple(search["measures"]))
                   for text in summary["constraints"]]

    def feasible(values: dict) -> bool:
        return all(constraint.holds(values.get(constraint.metric)) for constraint in constraints)

    objective = summary["objectives"][0].split()[1]
    found = max((r for r in search["records"] if feasible(_merged(r))), key=lambda r: _merged(r)[objective])
    best = max((r for r in grid["records"] if feasible(_merged(r))), key=lambda r: _merged(r)[objective])
    goals = [text.split() for text in summary["objectives"]]

    def score(record: dict):  # the search's objectives, larger-is-better; None off the budget
        values = _merged(record)
        if not feasible(values) or any(values.get(name) is None for _, name in goals):
            return None
        return tuple(values[name] if sense == "max" else -values[name] for sense, name in goals)

    grid_front = [r for r, on in zip(grid["records"], pareto_flags([score(r) for r in grid["records"]]), strict=True)
                  if on]
    search_front = {r["point"] for r in search["records"] if r["pareto"].get("search")}
    lines = ["| | points evaluated | fastest within the budget | its images/s | its LUTs (MODEL) | front points |",
             "|---|---:|---|---:|---:|---:|"]
    lines.append(f"| `--search {summary['kind']}`, {summary['trials']} trials, seed {summary['seed']} | "
                 f"{summary['distinct_points']} | #{found['point']} {short_label(found)} | "
                 f"{_merged(found)[objective]:,.1f} | {_merged(found)['system_lut_model']:,} | {len(search_front)} |")
    lines.append(f"| the whole grid | {len(grid['records'])} | #{best['point']} {short_label(best)} | "
                 f"{_merged(best)[objective]:,.1f} | {_merged(best)['system_lut_model']:,} | {len(grid_front)} |")
    missed = [r for r in grid_front if r["point"] not in search_front]
    lines.append("")
    lines.append(f"Objectives: {', '.join(summary['objectives'])}; constraint: {', '.join(summary['constraints'])}. "
                 f"The grid's front: " + "; ".join(
                     f"#{r['point']} {short_label(r)} ({_merged(r)['images_per_second']:,.0f} images/s, "
                     f"{_merged(r)['accuracy']:.1%})" for r in grid_front)
                 + f". The search's front holds {len(grid_front) - len(missed)} of them"
                 + (f" and misses {', '.join('#' + str(r['point']) for r in missed)}" if missed else "")
                 + f". The search took {result['seconds']['search']:g} s and the rest of the grid "
                   f"{result['seconds']['rest_of_grid']:g} s more (cycle MODEL and resource MODEL tasks; on this "
                   "small network a bigger array is not always faster).")
    return "\n".join(lines)


BLOCKS = {"digits-rtl": (RESULTS / "digits_rtl.json", digits_rtl), "system-timing": (TIMING, system_timing),
          "chip": (RESULTS / "chip.json", chip), "model-error": (RESULTS / "model_error.json", model_error),
          "array-timing": (RESULTS / "timing_arrays.json", array_timing),
          "compare": (RESULTS / "compare.json", compare),
          "compare-configs": (RESULTS / "compare_configs.json", compare_configs),
          "plans": (RESULTS / "plans.json", plans), "batch": (RESULTS / "batch.json", batch),
          "explore-scale": (RESULTS / "explore_scale.json", explore_scale),
          "explore-search": (RESULTS / "explore_arrays.json", explore_search)}


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin (generated by: make figures) -->", f"<!-- {name}:end -->"


def render(name: str) -> str:
    source, renderer = BLOCKS[name]
    return renderer(_load(source))


def block(text: str, name: str) -> str | None:
    """The content between ``name``'s markers in ``text`` (without the newlines next to them), or ``None``."""
    begin, end = markers(name)
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        return None
    return text[start + len(begin):stop].strip("\n")


def stale(text: str) -> list[str]:
    """The blocks of ``text`` that are missing or differ from their JSON, as lines that say which and why."""
    problems = []
    for name, (source, _) in BLOCKS.items():
        found = block(text, name)
        if found is None:
            problems.append(f"{name}: the README has no '{markers(name)[0]}' block")
        elif found != render(name):
            problems.append(f"{name}: the README's block differs from {source.relative_to(ROOT)} (run make figures)")
    return problems


def update(text: str) -> str:
    for name in BLOCKS:
        begin, end = markers(name)
        start, stop = text.find(begin), text.find(end)
        if start < 0 or stop < start:
            raise SystemExit(f"error: README.md has no '{begin}' ... '{end}' markers")
        text = text[:start + len(begin)] + "\n" + render(name) + "\n" + text[stop:]
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite README.md's blocks (default: check them)")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    if args.update:
        args.readme.write_text(update(text), encoding="utf-8")
        print(f"updated {', '.join(BLOCKS)} in {args.readme}")
        return 0
    problems = stale(text)
    for problem in problems:
        print(f"stale: {problem}", file=sys.stderr)
    if not problems:
        print(f"{', '.join(BLOCKS)}: every figure equals its JSON")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
