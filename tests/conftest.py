"""Shared pytest setup: deterministic hypothesis runs in CI, and the simulator build cache in the checkout."""

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

# Simulator builds go to the checkout's sim_build/ (git-ignored), so a fresh clone measures a fresh build; the
# installed package's default is the user's cache folder (esb_hw.sim.runner.build_root).
os.environ.setdefault("ESB_SIM_BUILD", str(Path(__file__).resolve().parents[1] / "sim_build"))

settings.register_profile(
    "default", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
# CI: fixed examples, so a red run is reproducible and a green one is not luck.
settings.register_profile(
    "ci", deadline=None, max_examples=200, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "default"))
