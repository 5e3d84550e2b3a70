"""Corrupted and hostile programs for the memory window's fuzz (docs/system.md, "The memory window"): each one is a
good program's bundle with one descriptor changed, run on the whole system's RTL through the driver, followed by
the good program. Used by ``bench/window_fuzz.py`` and ``tests/test_system.py``.

Two families, told apart because the hardware owes them different things:

- **corrupted** (``bit_flips``, ``garbage``, ``weight_bits``): a descriptor's bytes, or the weights' and
  parameters' (every byte of which some tile loads), changed after the compiler wrote them (a flipped bit in DDR, a
  stray write). The CRC-32s catch them: every run must end with error ``corrupted``, never a wrong answer nor even
  a right one (that would mean a CRC did not look).
- **hostile** (``window``, ``field``): the descriptor was changed and its CRC recomputed (a compiler bug, or a
  program written to escape). The engine cannot know what was meant: a run may end with an error or with any
  output, but no burst may leave the window and the next good program must be exact.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Callable

from esb_hw.compiler.program import Program, to_bundle
from esb_hw.config import AcceleratorConfig
from esb_hw.contract.checks import ENGINE_REACH, WINDOW_CHECKS
from esb_hw.driver import ProgramBundle
from esb_hw.layouts import (
    DESCRIPTOR_BYTES,
    buffer_word_bits,
    descriptor_image,
    descriptor_layout,
    memory_word_bytes,
    read_descriptor,
)
from esb_hw.regmap import ENGINE_ERRORS

__all__ = ["CORRUPTED", "HOSTILE", "FuzzCase", "corrupt", "fuzz_cases", "fuzz_report", "run_fuzz"]

CORRUPTED = ("bit_flips", "garbage", "weight_bits")
HOSTILE = ("window", "field")


@dataclasses.dataclass(frozen=True)
class FuzzCase:
    """One changed program: its bundle, the kind of change and what was changed."""

    bundle: ProgramBundle
    kind: str
    change: str


def _leaves(value, prefix=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}{key}.")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{prefix}{index}.")
    else:
        yield prefix[:-1]


def _set(descriptor: dict, path: str, value: int) -> None:
    *parents, last = path.split(".")
    target = descriptor
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value


def _field_range(path: str) -> tuple[int, int]:
    from amaranth import Shape

    shape = descriptor_layout()
    for key in path.split("."):
        shape = shape[int(key) if key.isdigit() else key].shape
    shape = Shape.cast(shape)
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


def corrupt(bundle: ProgramBundle, config: AcceleratorConfig, rng: random.Random, kind: str,
            regions: dict | None = None) -> FuzzCase:
    """``bundle`` with one descriptor changed as ``kind`` says (:data:`CORRUPTED`, :data:`HOSTILE`), or for
    ``weight_bits`` bits of the weights or parameters (``regions``: the program's)."""
    if kind == "weight_bits":
        names = sorted(name for name in regions or {} if name.startswith(("weights_", "params_")))
        if not names:
            raise ValueError("weight_bits needs the program's regions")
        name = rng.choice(names)
        address, size = regions[name]
        image = bytearray(bundle.image)
        bits = [8 * address + rng.randrange(8 * size) for _ in range(rng.choice((1, 1, 2, 3)))]
        for bit in bits:
            image[bit // 8] ^= 1 << bit % 8
        if bytes(image) == bundle.image:
            return corrupt(bundle, config, rng, kind, regions)
        change = f"{name}: bits {sorted(bit - 8 * address for bit in bits)} flipped"
        return FuzzCase(dataclasses.replace(bundle, image=bytes(image), name=f"{bundle.name}_{kind}"), kind, change)
    index = rng.randrange(bundle.descriptors)
    at = bundle.program_address + index * DESCRIPTOR_BYTES
    image = bytearray(bundle.image)
    old = bytes(image[at:at + DESCRIPTOR_BYTES])
    if kind == "bit_flips":
        bits = rng.sample(range(8 * DESCRIPTOR_BYTES), rng.choice((1, 1, 2, 3)))
        for bit in bits:
            image[at + bit // 8] ^= 1 << bit % 8
        change = f"descriptor {index}: bits {sorted(bits)} flipped"
    elif kind == "garbage":
        length = rng.randint(2, 16)
        start = rng.randrange(DESCRIPTOR_BYTES - length + 1)
        image[at + start:at + start + length] = bytes(rng.getrandbits(8) for _ in range(length))
        change = f"descriptor {index}: bytes {start}..{start + length - 1} overwritten"
    elif kind in HOSTILE:
        descriptor = read_descriptor(old)
        change = _hostile(descriptor, config, rng, kind, len(bundle.image))
        image[at:at + DESCRIPTOR_BYTES] = descriptor_image(descriptor)
        change = f"descriptor {index}: {change}"
    else:
        raise ValueError(f"unknown kind {kind!r}")
    if bytes(image[at:at + DESCRIPTOR_BYTES]) == old:  # a change that changed nothing: try again
        return corrupt(bundle, config, rng, kind)
    name = f"{bundle.name}_{kind}"
    return FuzzCase(dataclasses.replace(bundle, image=bytes(image), name=name, expected=bundle.expected), kind, change)


def _hostile(descriptor: dict, config: AcceleratorConfig, rng: random.Random, kind: str, window: int) -> str:
    """Change ``descriptor`` in place; returns what changed."""
    if kind == "field":
        path = rng.choice(list(_leaves(descriptor)))
        low, high = _field_range(path)
        current = descriptor
        for key in path.split("."):
            current = current[int(key) if key.isdigit() else key]
        value = rng.choice([current + 1, current - 1, 0, rng.randint(low, high)])
        value = min(max(value, low), high)
        _set(descriptor, path, value)
        return f"{path} {current} -> {value}"
    sizes = {name: memory_word_bytes(bits) for name, bits in buffer_word_bits(config).items()}
    _detail, name, buffer = rng.choice(WINDOW_CHECKS)
    transfer, size = descriptor[name], sizes[buffer]
    span = transfer["words"] * size
    runs = max(transfer["segments"] - 1, 1)
    before = dict(transfer)
    choice = rng.randrange(5)
    if choice == 0:  # the last bytes of the window, or just past it
        transfer["address"] = window - span + rng.choice((-size, 0, size, 16 * size))
    elif choice == 1:  # far outside: the kernel's pages, another process's buffer
        transfer["address"] = rng.randrange(window, ENGINE_REACH)
    elif choice == 2:  # a stride that takes the last run past the end, or around 4 GiB
        transfer["stride"] = rng.choice([(window - transfer["address"]) // runs + size,
                                         ENGINE_REACH // runs + size, ENGINE_REACH - size])
    elif choice == 3:  # anywhere inside the window (a silent retarget the hardware cannot know is wrong)
        transfer["address"] = rng.randrange(max(window - span, 1))
    else:  # both at random
        transfer["address"], transfer["stride"] = rng.randrange(ENGINE_REACH), rng.randrange(ENGINE_REACH)
    for key in ("address", "stride"):
        transfer[key] = min(max(transfer[key], 0), ENGINE_REACH - 1)
        transfer[key] -= transfer[key] % size  # aligned: the window check is what is tested
    return f"{name} address {before['address']:#x} -> {transfer['address']:#x}, stride {before['stride']:#x} -> " \
           f"{transfer['stride']:#x}"


def fuzz_cases(programs: list[tuple[str, Program]], count: int, seed: int = 1) -> list[FuzzCase]:
    """``count`` changed programs, the kinds in turn, each from one of ``programs`` (name, program)."""
    rng = random.Random(seed)
    bundles = [(to_bundle(program, name), program) for name, program in programs]
    kinds = CORRUPTED + HOSTILE
    cases = []
    for number in range(count):
        bundle, program = bundles[number % len(bundles)]
        cases.append(corrupt(bundle, program.config, rng, kinds[number % len(kinds)], program.regions))
    return cases


def run_fuzz(config: AcceleratorConfig, programs: list[tuple[str, Program]], count: int, *, seed: int = 1,
             good_every: int = 1, simulator: str = "verilator", pause: float = 0.1,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Run ``count`` changed programs on one simulated system, a good program after every ``good_every`` of them
    (and at the end); returns :func:`fuzz_report`'s dict."""
    from esb_hw.sim.system import run_system_rtl

    cases = fuzz_cases(programs, count, seed)
    goods = [to_bundle(program, name) for name, program in programs]
    bundles = goods + [case.bundle for case in cases]
    runs, roles = [], []
    for number in range(count):
        runs.append({"bundle": len(goods) + number, "timeout": 2e-3})
        roles.append(("changed", number))
        if (number + 1) % good_every == 0 or number == count - 1:
            good = number % len(goods)
            runs.append({"bundle": good, "timeout": 2e-3})
            roles.append(("good", good))
    result = run_system_rtl(config, bundles, runs, simulator=simulator, pause=pause, seed=seed,
                            run_name=f"window_fuzz_{config.name}", progress=progress, progress_by_run=True)
    return fuzz_report(cases, goods, roles, result.runs)


def fuzz_report(cases: list[FuzzCase], goods: list[ProgramBundle], roles: list, runs: list[dict]) -> dict:
    """Counts per kind: runs, outcomes (exact, silently wrong, errors by name, timeouts), bursts outside the
    window, canaries changed; and the good programs' runs (exact or not). ``failures`` lists every run that broke
    a rule: a corrupted program that did not end with ``corrupted``, a burst outside, a canary changed, a run that
    did not end (a timeout), a good program not exact."""
    names = {code: name for code, (name, _) in ENGINE_ERRORS.items()}
    kinds: dict[str, Counter] = {}
    good = Counter()
    failures = []
    for (role, number), run in zip(roles, runs, strict=True):
        bundle = goods[number] if role == "good" else cases[number].bundle
        exact = run["outcome"] == "ok" and bytes.fromhex(run["output"]) == bundle.expected
        outside = len(run.get("outside", []))
        if role == "good":
            good["runs"] += 1
            good["exact"] += exact
            if not exact or outside or not run["canaries_intact"]:
                failures.append(f"good run of {bundle.name} after changed program {number}: {run['outcome']} "
                                f"{run['message']}")
            continue
        case = cases[number]
        counts = kinds.setdefault(case.kind, Counter())
        counts["programs"] += 1
        if run["outcome"] == "RunFailed":
            outcome = f"error {names.get(run['error'], run['error'])}"
        elif run["outcome"] == "ok":
            outcome = "exact" if exact else "silently wrong"
        else:
            outcome = run["outcome"]
        counts[outcome] += 1
        counts["bursts outside"] += outside
        counts["canaries changed"] += not run["canaries_intact"]
        broken = outside or not run["canaries_intact"] or run["outcome"] not in ("ok", "RunFailed")
        if case.kind in CORRUPTED and outcome != "error corrupted":  # the CRCs refuse every one
            broken = True
        if broken:
            failures.append(f"{case.kind} ({case.change}): {outcome}, {outside} bursts outside, canaries "
                            f"{'intact' if run['canaries_intact'] else 'CHANGED'}; {run['message']}")
    return {"kinds": {kind: dict(counts) for kind, counts in kinds.items()}, "good": dict(good),
            "failures": failures}
