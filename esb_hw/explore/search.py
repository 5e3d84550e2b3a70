"""Budgeted searches over a sweep's grid with Optuna, instead of evaluating every point.

Each axis is one categorical parameter (the index of its value). ``random`` draws points with Optuna's
``RandomSampler``; ``pareto`` runs NSGA-II (``NSGAIISampler``) on the search's objectives, with its constraints as
Optuna constraints (a point that breaks one, or whose measure failed, is infeasible). Both are seeded
(``search.seed`` or ``--seed``), so a search picks the same points every time it sees the same results.

Trials are asked in batches as wide as the workers (Optuna's ask-and-tell), each batch runs on Ray through the
:class:`~esb_hw.explore.runner.Explorer` (so the cache answers a point seen before, in this search or an earlier
run), and their values are told back. The search stops after ``trials`` trials; a point drawn twice is evaluated
once, and the result counts the distinct points evaluated against the grid's size.
"""

from __future__ import annotations

import warnings

from .sweep import Constraint, ExploreError, Objective, Point, Sweep

__all__ = ["SEARCHES", "run_search"]

SEARCHES = ("random", "pareto")
#: The value a failed or unmeasured constraint gets (Optuna: > 0 is infeasible).
INFEASIBLE = 1e30


def _violation(constraint: Constraint, value) -> float:
    if value is None:
        return INFEASIBLE
    return value - constraint.bound if constraint.upper else constraint.bound - value


def run_search(sweep: Sweep, kind: str, objectives: tuple[Objective, ...], constraints: tuple[Constraint, ...],
               trials: int, seed: int, evaluate, batch: int) -> tuple[list[Point], dict]:
    """Search ``sweep``'s grid; ``evaluate(points)`` measures points and returns ``{index: metrics}`` (the
    merged values of the measures that gave values). Returns the distinct points evaluated, in the order first
    drawn, and a summary for ``explore.json``."""
    try:
        import optuna
    except ImportError:
        raise ExploreError("--search needs Optuna: pip install 'esb-hw[explore]'") from None
    if kind not in SEARCHES:
        raise ExploreError(f"--search takes {' or '.join(SEARCHES)}, got {kind!r}")
    if not objectives:
        raise ExploreError("--search needs at least one objective (search.objectives or --objective)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning, module="optuna")

    def constraint_values(trial) -> list[float]:
        return trial.user_attrs.get("constraints", [INFEASIBLE] * len(constraints))

    constraints_func = constraint_values if constraints else None
    if kind == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        population = max(4, min(20, trials // 3))
        sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=population,
                                                constraints_func=constraints_func)
    study = optuna.create_study(directions=["maximize" if o.maximize else "minimize" for o in objectives],
                                sampler=sampler)
    seen: dict[int, Point] = {}
    known: dict[int, dict] = {}
    asked = 0
    while asked < trials:
        batch_trials = []
        for _ in range(min(batch, trials - asked)):
            trial = study.ask()
            positions = {axis.name: trial.suggest_categorical(axis.name, list(range(len(axis.values))))
                         for axis in sweep.axes}
            batch_trials.append((trial, sweep.point_at(positions)))
            asked += 1
        fresh = {point.index: point for _, point in batch_trials if point.index not in seen}
        seen.update(fresh)
        if fresh:
            known.update(evaluate(list(fresh.values())))
        for trial, point in batch_trials:
            values = known.get(point.index, {})
            trial.set_user_attr("point", point.index)
            trial.set_user_attr("constraints", [_violation(c, values.get(c.metric)) for c in constraints])
            scores = [values.get(o.metric) for o in objectives]
            if None in scores:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, [float(score) for score in scores])
    summary = {"kind": kind, "seed": seed, "trials": trials, "distinct_points": len(seen),
               "grid_points": sweep.size, "objectives": [str(o) for o in objectives],
               "constraints": [str(c) for c in constraints]}
    return list(seen.values()), summary
