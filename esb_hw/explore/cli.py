"""``esb-hw explore SWEEP.toml``: a sweep or a search over configs, formats and networks, on Ray.

Each (point, measure) is a Ray task of one CPU with a time limit, retries and its own working folder; its result
is stored under a content hash of its inputs, so a rerun (or a run killed and started again) computes only what is
missing. Ray runs on this machine by default (``--workers`` CPUs, all of them unless given); ``--address`` joins a
running cluster (docs/explore.md has the recipe).

Writes, in ``--out`` (default ``build/explore/<sweep name>``):

- ``explore.json``: one record per point with its inputs, every measure, the errors and a ``pareto`` flag per
  front (byte-identical for the same sweep and results);
- ``explore.md``: the same as a markdown table, with the fronts;
- ``fronts.png``: accuracy against LUT/MAC and images/s against LUTs, fronts in red (needs matplotlib);
- ``run.json``: this run's times, workers, Ray nodes and cache hits (not deterministic);
- ``cache/`` (unless ``--cache``) and ``work/`` (the working folders of failed tasks, with their logs).

``--search random|pareto`` evaluates ``--trials`` points drawn by Optuna instead of the grid, for the objectives
and constraints of the sweep's ``[search]`` table or of ``--objective``/``--constraint``.

Exit codes: 0 the sweep ran (points that failed or timed out are recorded, not fatal), 1 Ray could not start,
2 bad input (a bad sweep file or option names the key).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from ..errors import EsbError, InputError
from .sweep import ExploreError, load_sweep, parse_constraint, parse_objective

__all__ = ["main"]

MAX_WORKERS = 1024
MAX_SEED = 2**32 - 1
#: What explore writes in --out; a folder holding anything else is not reused without --force.
OUR_FILES = ("explore.json", "explore.md", "fronts.png", "run.json", "cache", "work")


def _records(sweep, points, results) -> list[dict]:
    from ..config import ConfigError
    from .measures import point_config

    records = []
    for point in sorted(points, key=lambda point: point.index):
        try:
            config = point_config(sweep, point).to_dict()
            del config["name"]
        except ConfigError:
            config = None
        measures = {}
        for measure in sweep.measures:
            result = results[point.index][measure]
            entry = {"status": result["status"]}
            if result["status"] == "ok":
                entry["values"] = result["values"]
            else:
                entry["error"] = result.get("error", "")
            measures[measure] = entry
        records.append({"point": point.index, "choices": dict(point.choices), "settings": dict(point.settings),
                        "config": config, "measures": measures})
    return records


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- explore:{name}:begin -->", f"<!-- explore:{name}:end -->"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="esb-hw explore", description=__doc__.splitlines()[0],
                                     epilog="docs/explore.md describes the sweep file.")
    parser.add_argument("sweep", type=Path, metavar="SWEEP.toml", help="the sweep file")
    parser.add_argument("--out", type=Path, help="results folder (default build/explore/<sweep name>)")
    parser.add_argument("--cache", type=Path, help="results cache folder, shareable between sweeps (default "
                                                    "OUT/cache)")
    parser.add_argument("--limit", type=int, help="evaluate at most N points of the grid (the first N)")
    parser.add_argument("--workers", type=int, help="local Ray CPUs (default: all of this machine's)")
    parser.add_argument("--address", help="join the running Ray cluster at this address (ray start --head)")
    parser.add_argument("--timeout", type=float, help="seconds per (point, measure), overriding the sweep's")
    parser.add_argument("--search", choices=("random", "pareto"), help="a budgeted search instead of the grid")
    parser.add_argument("--trials", type=int, help="with --search: how many trials (default: the sweep's, or 20)")
    parser.add_argument("--seed", type=int, help="with --search: the sampler's seed (default: the sweep's, or 0)")
    parser.add_argument("--objective", action="append", default=[], metavar="'max|min METRIC'",
                        help="with --search: an objective (repeatable; replaces the sweep's)")
    parser.add_argument("--constraint", action="append", default=[], metavar="'METRIC <=|>= NUMBER'",
                        help="with --search: a constraint (repeatable; replaces the sweep's)")
    parser.add_argument("--dry-run", action="store_true", help="list the points and what the cache holds; run nothing")
    parser.add_argument("--update-readme", type=Path, metavar="README.md",
                        help="write explore.md between this file's <!-- explore:NAME:begin/end --> markers")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="also write the fronts' plot to this file")
    parser.add_argument("--force", action="store_true", help="reuse an --out folder that holds another sweep's "
                                                             "results; overwrite the --plot file")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        if args.debug:
            raise
        return error.exit_code


def _check_args(args, sweep) -> None:
    if args.limit is not None and not 1 <= args.limit <= sweep.size:
        raise ExploreError(f"--limit must be in 1..{sweep.size} (the grid's points), got {args.limit}")
    if args.workers is not None and not 1 <= args.workers <= MAX_WORKERS:
        raise ExploreError(f"--workers must be in 1..{MAX_WORKERS}, got {args.workers}")
    if args.workers is not None and args.address:
        raise ExploreError("--workers applies to a local Ray instance; a cluster's CPUs are its own (drop one)")
    if args.timeout is not None and not 0 < args.timeout <= 7 * 24 * 3600:
        raise ExploreError(f"--timeout must be in (0, 604800] seconds, got {args.timeout:g}")
    search_only = [name for name, value in (("--trials", args.trials), ("--seed", args.seed),
                                            ("--objective", args.objective), ("--constraint", args.constraint))
                   if value not in (None, [])]
    if search_only and not args.search:
        raise ExploreError(f"{', '.join(search_only)} apply with --search only")
    if args.search and args.limit is not None:
        raise ExploreError("--limit applies to the grid; a search's budget is --trials")
    if args.trials is not None and not 1 <= args.trials <= 100_000:
        raise ExploreError(f"--trials must be in 1..100000, got {args.trials}")
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        raise ExploreError(f"--seed must be in 0..{MAX_SEED}, got {args.seed}")
    if args.dry_run and args.search:
        raise ExploreError("--dry-run lists the grid's points; a search draws its points as it runs (drop one)")
    if args.plot is not None:
        from ..errors import check_output_file
        from .results import front_axes

        if not front_axes(sweep):
            raise ExploreError("--plot: this sweep has no front to draw (it needs resources with accuracy or "
                               "throughput)")
        check_output_file(args.plot, args.force, option="--plot", suffix=".png")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ExploreError("--plot needs matplotlib: pip install 'esb-hw[plot]'") from None
    if args.update_readme is not None:
        begin, end = _markers(sweep.name)
        try:
            text = args.update_readme.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ExploreError(f"--update-readme {args.update_readme}: cannot read it ({error})") from None
        if begin not in text or end not in text or text.index(end) < text.index(begin):
            raise ExploreError(f"--update-readme {args.update_readme} has no '{begin}' ... '{end}' markers")


def _run(args) -> int:
    import dataclasses

    from .cache import ResultCache, task_key
    from .measures import task_for
    from .results import build_document, document_text, markdown, merged_values, plot_fronts, write_text
    from .runner import Explorer, Progress

    sweep = load_sweep(args.sweep)
    _check_args(args, sweep)
    if args.timeout is not None:
        sweep = dataclasses.replace(sweep, timeout=float(args.timeout))
    out = args.out or Path("build") / "explore" / sweep.name
    if out.exists() and not out.is_dir():
        raise ExploreError(f"--out {out}: is a file")
    previous = out / "explore.json"
    if previous.is_file() and not args.force:
        try:
            owner = json.loads(previous.read_text(encoding="utf-8")).get("sweep")
        except (OSError, ValueError, AttributeError):
            owner = None
        if owner != sweep.name:
            raise ExploreError(f"--out {out} holds the results of another sweep ({owner!r}); pass --force to replace "
                               "them or choose another folder")
    others = sorted(entry.name for entry in out.iterdir() if entry.name not in OUR_FILES) if out.is_dir() else []
    if others and not args.force:
        raise ExploreError(f"--out {out} holds files explore did not write ({', '.join(others[:3])}"
                           f"{', ...' if len(others) > 3 else ''}); pass --force to write beside them or choose "
                           "another folder")
    if not args.dry_run:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ExploreError(f"--out {out}: cannot make the folder: {error.strerror}") from None
    cache = ResultCache(args.cache or out / "cache", create=not args.dry_run)
    objectives = tuple(parse_objective(text, "--objective", "command line", sweep.measures)
                       for text in args.objective) or sweep.search.objectives
    constraints = tuple(parse_constraint(text, "--constraint", "command line", sweep.measures)
                        for text in args.constraint) or sweep.search.constraints
    points = sweep.points()[: args.limit] if args.limit else sweep.points()
    print(f"{sweep.name}: {sweep.size} grid points x {len(sweep.measures)} measures ({', '.join(sweep.measures)}) "
          f"on {Path(sweep.network).name}; timeout {sweep.timeout:g} s per task", file=sys.stderr)
    if args.dry_run:
        from ..config import ConfigError

        for point in points:
            states = []
            for measure in sweep.measures:
                try:
                    key = task_key(task_for(sweep, point, measure))
                except ConfigError as error:
                    states.append(f"{measure}: refused ({error})")
                    continue
                stored = cache.get(key, sweep.timeout)
                states.append(f"{measure}: {'cached ' + stored['status'] if stored else 'to run'}")
            print(f"#{point.index} {point.label()}: {'; '.join(states)}")
        return 0
    started = time.monotonic()
    explorer = Explorer(sweep, cache, out / "work", workers=args.workers or (None if args.address else
                                                                             os.cpu_count()), address=args.address)
    results: dict[int, dict] = {}
    search_summary = None
    try:
        if args.search:
            from .search import run_search

            trials = args.trials or sweep.search.trials
            seed = sweep.search.seed if args.seed is None else args.seed
            progress = Progress(None, label=f"explore {sweep.name} ({args.search} search of {trials} trials)")

            def evaluate(batch):
                found = explorer.run(batch, progress, final=False)
                results.update(found)
                return {index: merged_values(measures) for index, measures in found.items()}

            points, search_summary = run_search(sweep, args.search, objectives, constraints, trials, seed, evaluate,
                                                batch=explorer.workers or max(1, explorer.cpus()))
            progress.show(final=True)
        else:
            results = explorer.run(points, Progress(len(points), label=f"explore {sweep.name}"))
        nodes, startup = dict(explorer.nodes), explorer.startup_seconds
        ran, task_seconds, logs = explorer.ran, explorer.task_seconds, list(explorer.failed_logs)
    finally:
        explorer.close()
    records = _records(sweep, points, results)
    document = build_document(sweep, records, objectives=objectives if args.search else (),
                              constraints=constraints if args.search else (), search=search_summary)
    write_text(out / "explore.json", document_text(document))
    table = markdown(document)
    write_text(out / "explore.md", table)
    try:
        plotted = plot_fronts(document, out / "fronts.png")
    except InputError as error:  # no matplotlib: the results stand without their plot
        print(f"note: no fronts.png: {error}", file=sys.stderr)
        plotted = False
    if args.plot is not None and plotted:
        import shutil

        shutil.copyfile(out / "fronts.png", args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    run = {"seconds": round(time.monotonic() - started, 1), "ray_startup_seconds": startup,
           "workers": explorer.workers, "address": args.address, "host": platform.node(), "nodes": nodes,
           "tasks": {"cached": sum(result.get("cached", False) for measures in results.values()
                                   for result in measures.values()),
                     "ran": ran, "task_seconds": round(task_seconds, 1)},
           "failed_logs": logs}
    write_text(out / "run.json", json.dumps(run, indent=1, sort_keys=True) + "\n")
    if args.update_readme is not None:
        from ..quant.report import update_readme

        update_readme(args.update_readme, table, *_markers(sweep.name))
        print(f"updated {args.update_readme}", file=sys.stderr)
    for line in table.split("\n\n")[1:]:
        print(line.strip())
    if search_summary:
        print(f"{args.search} search: {search_summary['trials']} trials evaluated {search_summary['distinct_points']} "
              f"distinct points of the {sweep.size}-point grid")
    written = ["explore.json", "explore.md", *(["fronts.png"] if plotted else []), "run.json"]
    print(f"wrote {', '.join(str(out / name) for name in written)} ({run['seconds']:g} s)")
    return 0

