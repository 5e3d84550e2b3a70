"""Design-space exploration: ``esb-hw explore SWEEP.toml`` on Ray (docs/explore.md).

- :mod:`.sweep`: the sweep file (axes, network, measures, search), validated, and its points;
- :mod:`.measures`: what one point costs or scores (yosys resources, delay-model timing, cycle-model throughput,
  PTQ or QAT accuracy);
- :mod:`.cache`: results stored under a content hash of everything that affects them;
- :mod:`.worker`: one (point, measure) in its own process, working folder and time limit;
- :mod:`.runner`: the tasks on Ray, with retries, progress, and resumption from the cache;
- :mod:`.search`: budgeted searches (Optuna) instead of the whole grid;
- :mod:`.results`: ``explore.json``, the Pareto fronts, the markdown table and the plot;
- :mod:`.cli`: the command line.
"""
