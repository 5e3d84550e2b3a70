"""The memory window's fuzz (esb_hw/sim/fuzz.py): the changes are what they claim (a corrupted descriptor fails its
CRC, a hostile one passes it), the report flags every broken rule when fed wrong runs, and on the whole system's
RTL (Verilator) corrupted and hostile programs never leave the window, the corrupted ones are all refused, and the
good program after each is exact. bench/window_fuzz.py runs the same at scale."""

import random

import numpy as np
import pytest

from esb_hw.compiler.program import compile_program, to_bundle
from esb_hw.layouts import DESCRIPTOR_BYTES, descriptor_intact
from esb_hw.sim.fuzz import CORRUPTED, HOSTILE, FuzzCase, corrupt, fuzz_cases, fuzz_report, run_fuzz
from esb_hw.sim.layer_core import SMALL_ENGINE_CONFIG, random_layer
from esb_hw.sim.pytest_helpers import require_simulator

CONFIG = SMALL_ENGINE_CONFIG


def programs():
    rng = np.random.default_rng(21)
    conv = random_layer(CONFIG, rng, "conv2d", 6, 5, 3, 2, 1, True)
    linear = random_layer(CONFIG, rng, "linear", 7, 9)
    return [("conv_pool", compile_program(CONFIG, [conv], (5, 9, 8), rng.integers(0, 16, (5, 9, 8)))),
            ("linear", compile_program(CONFIG, [linear], (5, 9), rng.integers(0, 16, (5, 9))))]


def descriptors_of(bundle):
    start = bundle.program_address
    return [bundle.image[start + index * DESCRIPTOR_BYTES:start + (index + 1) * DESCRIPTOR_BYTES]
            for index in range(bundle.descriptors)]


@pytest.mark.parametrize("kind", [kind for kind in CORRUPTED + HOSTILE if kind != "weight_bits"])
def test_each_kind_changes_one_descriptor_as_it_says(kind):
    name, program = programs()[0]
    bundle = to_bundle(program, name)
    for seed in range(20):
        case = corrupt(bundle, CONFIG, random.Random(seed), kind)
        before, after = descriptors_of(bundle), descriptors_of(case.bundle)
        changed = [index for index, (old, new) in enumerate(zip(before, after, strict=True)) if old != new]
        assert len(changed) == 1, case.change
        assert descriptor_intact(after[changed[0]]) is (kind in HOSTILE), case.change
        outside = case.bundle.image[:bundle.program_address] + case.bundle.image[
            bundle.program_address + bundle.descriptors * DESCRIPTOR_BYTES:]
        assert outside == bundle.image[:bundle.program_address] + bundle.image[
            bundle.program_address + bundle.descriptors * DESCRIPTOR_BYTES:]


def test_weight_bits_change_only_weights_and_parameters():
    name, program = programs()[0]
    bundle = to_bundle(program, name)
    inside = set()
    for region, (address, size) in program.regions.items():
        if region.startswith(("weights_", "params_")):
            inside.update(range(address, address + size))
    for seed in range(20):
        case = corrupt(bundle, CONFIG, random.Random(seed), "weight_bits", program.regions)
        changed = {index for index, (old, new) in enumerate(zip(bundle.image, case.bundle.image, strict=True))
                   if old != new}
        assert changed and changed <= inside, case.change


def fake_run(ok=True, exact=True, bundle=None, outside=(), canaries=True, error=0):
    output = bundle.expected if exact else bytes(len(bundle.expected))
    return {"outcome": "ok" if ok else "RunFailed", "message": "", "output": output.hex(), "error": error,
            "outside": list(outside), "canaries_intact": canaries}


def test_the_report_flags_every_broken_rule():
    """Wrong runs fed to the report: each broken rule is a failure; the allowed outcomes are not."""
    named = programs()
    cases = fuzz_cases(named, 5)
    goods = [to_bundle(program, name) for name, program in named]
    kinds = [case.kind for case in cases]
    assert kinds == list(CORRUPTED + HOSTILE)
    assert kinds[3:] == ["window", "field"]
    cases = cases[:2] + cases[3:]  # bit_flips, garbage, window, field
    roles = [("changed", number) for number in range(4)] + [("good", 0)]

    def report(runs):
        return fuzz_report(cases, goods, roles, runs)

    allowed = [fake_run(ok=False, bundle=cases[0].bundle, error=11), fake_run(ok=False, bundle=cases[1].bundle,
                                                                               error=11),
               fake_run(exact=False, bundle=cases[2].bundle), fake_run(bundle=cases[3].bundle),
               fake_run(bundle=goods[0])]
    result = report(allowed)
    assert result["failures"] == []
    assert result["kinds"]["window"]["silently wrong"] == 1 and result["kinds"]["bit_flips"]["error corrupted"] == 1
    broken = {
        "a corrupted program's wrong answer": (0, fake_run(exact=False, bundle=cases[0].bundle)),
        "a corrupted program's right answer": (0, fake_run(bundle=cases[0].bundle)),
        "a corrupted program's other error": (1, fake_run(ok=False, bundle=cases[1].bundle, error=5)),
        "a burst outside": (2, fake_run(ok=False, bundle=cases[2].bundle, outside=[["aw", 0, 1]], error=10)),
        "a changed canary": (3, fake_run(bundle=cases[3].bundle, canaries=False)),
        "a good program not exact": (4, fake_run(exact=False, bundle=goods[0])),
        "a timeout": (1, {**fake_run(bundle=cases[1].bundle), "outcome": "DriverTimeout"}),
    }
    for what, (position, run) in broken.items():
        runs = list(allowed)
        runs[position] = run
        assert len(report(runs)["failures"]) == 1, what


def test_corrupted_and_hostile_programs_stay_in_the_window_on_verilator():
    """Ten changed programs, two of each kind, each followed by a good one (bench/window_fuzz.py: 250)."""
    require_simulator("verilator")
    report = run_fuzz(CONFIG, programs(), 10, seed=4)
    assert report["failures"] == []
    assert sum(counts["programs"] for counts in report["kinds"].values()) == 10
    for kind in ("bit_flips", "garbage"):
        assert report["kinds"][kind].get("error corrupted") == 2, report
    assert report["kinds"]["weight_bits"].get("error corrupted") == 2, report
    assert report["good"] == {"runs": 10, "exact": 10}


@pytest.mark.slow
def test_two_hundred_changed_programs_stay_in_the_window():
    require_simulator("verilator")
    report = run_fuzz(CONFIG, programs(), 200, seed=7, good_every=4)
    assert report["failures"] == []
    for kind in CORRUPTED:
        counts = report["kinds"][kind]
        assert counts.get("error corrupted") == counts["programs"] == 40, report
    assert sum(counts.get("bursts outside", 0) for counts in report["kinds"].values()) == 0
    assert report["good"]["exact"] == report["good"]["runs"] == 50


def test_fuzz_case_is_frozen():
    case = fuzz_cases(programs(), 1)[0]
    assert isinstance(case, FuzzCase)
    with pytest.raises(AttributeError):
        case.kind = "other"
