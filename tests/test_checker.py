# amaranth: UnusedElaboratable=no
"""DescriptorChecker (esb_hw/hw/core/checker.py): the hardware's verdict on a descriptor equals the compiler's
Python model of the same checks (esb_hw.compiler.program.descriptor_error, and window_failure for the window's
detail) on compiled descriptors and on thousands of corrupted ones, the window verdict included (addresses, strides
and segment counts near the window's edges and past 4 GiB), and the model gives the documented code for each kind
of bad descriptor."""

import copy
import random

import numpy as np
import pytest
from amaranth import Shape
from amaranth.sim import Simulator

from esb_hw.compiler.program import compile_program, descriptor_error
from esb_hw.config import AcceleratorConfig
from esb_hw.contract.checks import ENGINE_REACH, WINDOW_CHECKS, checker_cycles, transfer_end, window_failure
from esb_hw.hw.core.checker import ERROR_CODES, DescriptorChecker
from esb_hw.layouts import buffer_word_bits, descriptor_layout, memory_word_bytes, pack
from esb_hw.sim.layer_core import random_layer

CONFIG = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=4, activation_k=4, rows=4, cols=4,
                           name="small", activation_words=128, weight_words=128, param_words=16, output_words=32,
                           entries=8)


#: Many segments per transfer: 250 channel groups in, 250 row blocks out (for the window's multiplication).
WIDE = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=4, activation_k=4, rows=4, cols=4, name="wide",
                         activation_words=2048, weight_words=4096, param_words=1024, output_words=2048, entries=8)


def compiled_descriptors(config, layers) -> tuple[list[dict], int]:
    """The descriptors of each layer compiled alone, and a window that holds every program."""
    rng = np.random.default_rng(7)
    descriptors, window = [], 0
    for kind, out_channels, in_channels, kernel, stride, padding, pool, shape in layers:
        layer = random_layer(config, rng, kind, out_channels, in_channels, kernel, stride, padding, pool)
        program = compile_program(config, [layer], shape)
        descriptors += [tile.descriptor for tile in program.tiles]
        window = max(window, program.memory_size)
    return descriptors, window


DESCRIPTORS, WINDOW = compiled_descriptors(CONFIG, [
    ("conv2d", 6, 5, 3, 2, 1, True, (5, 9, 8)), ("linear", 7, 9, 1, 1, 0, False, (5, 9)),
    ("conv2d", 4, 4, 5, 1, 2, False, (4, 7, 7)), ("conv2d", 9, 3, 1, 1, 0, True, (3, 8, 6))])
WIDE_DESCRIPTORS, WIDE_WINDOW = compiled_descriptors(WIDE, [
    ("conv2d", 4, 1000, 1, 1, 0, False, (1000, 2, 1)), ("conv2d", 1000, 4, 1, 1, 0, False, (4, 2, 1))])


def run_checker(cases: list, cycles: list | None = None, config: AcceleratorConfig = CONFIG,
                details: list | None = None) -> list[int]:
    """The checker's code for each case (a descriptor, in :data:`WINDOW`, or ``(descriptor, memory_size)``);
    ``cycles`` gets the cycles from each start to its done, ``details`` each ``detail``."""
    checker = DescriptorChecker(config)
    codes = []

    async def testbench(ctx):
        for case in cases:
            descriptor, memory_size = case if isinstance(case, tuple) else (case, WINDOW)
            ctx.set(checker.descriptor.as_value(), pack(descriptor_layout(), descriptor))
            ctx.set(checker.memory_size, memory_size)
            ctx.set(checker.start, 1)
            await ctx.tick()
            ctx.set(checker.start, 0)
            count = 1
            while True:
                *_, done, error, detail = await ctx.tick().sample(checker.done, checker.error, checker.detail)
                if done:
                    break
                count += 1
            codes.append(int(error))
            if details is not None:
                details.append(int(detail))
            if cycles is not None:
                cycles.append(count)

    simulator = Simulator(checker)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return codes


def changed(descriptor: dict, path: str, value) -> dict:
    result = copy.deepcopy(descriptor)
    *parents, last = path.split(".")
    target = result
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return result


BASE = DESCRIPTORS[0]
CASES = [
    ("geometry.limits.0", 0, "zero_size"),
    ("geometry.block", 0, "zero_size"),
    ("outputs.segments", 0, "zero_size"),
    ("in_channels", 0, "zero_size"),
    ("geometry.kernel_h", 8, "unsupported_kernel"),
    ("geometry.kernel_w", 15, "unsupported_kernel"),
    ("stride", 3, "unsupported_kernel"),
    ("activations.address", BASE["activations"]["address"] + 1, "misaligned"),
    ("outputs.stride", BASE["outputs"]["stride"] + 1, "misaligned"),
    ("in_channels", 4095, "reduction_too_long"),
    ("geometry.block", 12, "does_not_fit"),
    ("weights.words", 129, "does_not_fit"),
    ("activations.words", 200, "does_not_fit"),
    ("geometry.output_pixels", BASE["geometry"]["output_pixels"] + 1, "inconsistent"),
    ("geometry.pixel_blocks", BASE["geometry"]["pixel_blocks"] + 1, "inconsistent"),
    ("geometry.limits.2", 1, "inconsistent"),
    ("weights.words", BASE["weights"]["words"] - 1, "inconsistent"),
    ("geometry.groups", BASE["geometry"]["groups"] + 1, "inconsistent"),
]


@pytest.mark.parametrize(("path", "value", "name"), CASES, ids=[f"{case[0]}={case[1]}" for case in CASES])
def test_model_names_each_bad_descriptor(path, value, name):
    assert descriptor_error(CONFIG, changed(BASE, path, value), memory_size=WINDOW) == ERROR_CODES[name]


def test_compiled_descriptors_pass_the_model():
    assert [descriptor_error(CONFIG, descriptor, memory_size=WINDOW) for descriptor in DESCRIPTORS] == \
        [0] * len(DESCRIPTORS)
    assert [descriptor_error(WIDE, descriptor, memory_size=WIDE_WINDOW) for descriptor in WIDE_DESCRIPTORS] == \
        [0] * len(WIDE_DESCRIPTORS)
    assert {d["activations"]["segments"] for d in WIDE_DESCRIPTORS} >= {250}
    assert max(d["outputs"]["segments"] for d in WIDE_DESCRIPTORS) >= 60


def leaf_paths(value, prefix=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaf_paths(item, f"{prefix}{key}.")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaf_paths(item, f"{prefix}{index}.")
    else:
        yield prefix[:-1]


def corrupted(rng: random.Random, count: int) -> list[dict]:
    """Descriptors with one or two fields changed: by one, to 0, to a random value in the field's range."""
    layout = descriptor_layout()
    results = []
    for _ in range(count):
        descriptor = rng.choice(DESCRIPTORS)
        for _ in range(rng.choice((1, 1, 2))):
            path = rng.choice(list(leaf_paths(descriptor)))
            shape = layout
            for key in path.split("."):
                shape = shape[int(key) if key.isdigit() else key].shape
            shape = Shape.cast(shape)
            width, signed = shape.width, shape.signed
            low, high = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
            current = descriptor
            for key in path.split("."):
                current = current[int(key) if key.isdigit() else key]
            value = rng.choice([current + 1, current - 1, 0, rng.randint(low, high), rng.randint(0, 16)])
            descriptor = changed(descriptor, path, min(max(value, low), high))
        results.append(descriptor)
    return results


def test_hardware_equals_the_model_on_compiled_and_corrupted_descriptors():
    cases = DESCRIPTORS + [changed(BASE, path, value) for path, value, _ in CASES] + corrupted(random.Random(3), 400)
    expected = [descriptor_error(CONFIG, descriptor, memory_size=WINDOW) for descriptor in cases]
    assert run_checker(cases) == expected
    assert len(set(expected)) >= 6, "the corruptions reach most of the error codes"


def test_the_cycle_model_counts_the_checkers_cycles_exactly():
    """esb_hw.contract.checks.checker_cycles equals the hardware's cycles on every descriptor that gets past the
    immediate checks (those that do not end in 2 cycles, with an error)."""
    cases = DESCRIPTORS + corrupted(random.Random(4), 300)
    cycles = []
    codes = run_checker(cases, cycles)
    exact = 0
    for descriptor, count, code in zip(cases, cycles, codes, strict=True):
        if count == 2:
            assert code != 0
        else:
            assert count == checker_cycles(descriptor, CONFIG, memory_size=WINDOW), descriptor
            exact += 1
    assert exact >= len(DESCRIPTORS) + 100
    assert cycles[: len(DESCRIPTORS)] != [checker_cycles(DESCRIPTORS[0], CONFIG) + 1] * len(DESCRIPTORS)


def window_cases(rng: random.Random, config, descriptors, window, count: int) -> list[tuple[dict, int]]:
    """``(descriptor, memory_size)`` pairs that reach the window checks and sit near their edges: one transfer's
    address, stride or both moved (near the window's end, near 4 GiB, wrapping 32 bits, random), mostly aligned,
    in a window at the transfer's end, one beat either side, 0, 4 GiB, past it, 2**40 - 16 or random."""
    sizes = {name: memory_word_bytes(bits) for name, bits in buffer_word_bits(config).items()}
    cases = []
    for _ in range(count):
        descriptor = copy.deepcopy(rng.choice(descriptors))
        _detail, name, buffer = rng.choice(WINDOW_CHECKS)
        transfer, size = descriptor[name], sizes[buffer]
        span = transfer["words"] * size
        runs = transfer["segments"] - 1
        choice = rng.randrange(6)
        if choice in (0, 5):
            transfer["address"] = rng.choice([window - span, window - span + size, ENGINE_REACH - span,
                                              ENGINE_REACH - size, rng.randrange(ENGINE_REACH), 0])
        if choice in (1, 5) and runs:
            stride = rng.choice([(window - transfer["address"] - span) // runs, ENGINE_REACH // runs,
                                 ENGINE_REACH - size, rng.randrange(ENGINE_REACH), transfer["stride"] + size])
            transfer["stride"] = max(0, min(stride, ENGINE_REACH - 1))
        if choice == 2:
            transfer["address"] = rng.randrange(ENGINE_REACH)
            transfer["stride"] = rng.randrange(ENGINE_REACH)
        if rng.random() < 0.9:  # aligned, so that the window check is reached
            transfer["address"] -= transfer["address"] % size
            transfer["stride"] -= transfer["stride"] % size
        transfer["address"] = max(0, transfer["address"])
        end = transfer_end(transfer, size)
        memory_size = rng.choice([window, end + -end % 16, end + -end % 16 - 16, end + -end % 16 + 16, 0,
                                  ENGINE_REACH, ENGINE_REACH + 16, (1 << 40) - 16, rng.randrange(1 << 36) * 16])
        cases.append((descriptor, min(max(memory_size, 0), (1 << 40) - 16)))
    return cases


@pytest.mark.parametrize("config", [CONFIG, WIDE], ids=["small", "wide"])
def test_hardware_equals_the_model_on_the_window_verdict(config):
    """2,000 descriptors over the two configs (1,000 each): the code and the detail agree."""
    descriptors, window = (DESCRIPTORS, WINDOW) if config is CONFIG else (WIDE_DESCRIPTORS, WIDE_WINDOW)
    cases = window_cases(random.Random(11 if config is CONFIG else 12), config, descriptors, window, 1000)
    sizes = {name: memory_word_bytes(bits) for name, bits in buffer_word_bits(config).items()}
    expected_codes = [descriptor_error(config, d, memory_size=size) for d, size in cases]
    expected_details = [window_failure(d, sizes, size) if code == ERROR_CODES["outside_window"] else 0
                        for (d, size), code in zip(cases, expected_codes, strict=True)]
    details, cycles = [], []
    assert run_checker(cases, cycles, config, details) == expected_codes
    assert details == expected_details
    for (descriptor, size), count in zip(cases, cycles, strict=True):
        if count != 2:
            assert count == checker_cycles(descriptor, config, memory_size=size)
    outside = expected_codes.count(ERROR_CODES["outside_window"])
    assert outside >= 300 and expected_codes.count(0) >= 200, "both verdicts are well represented"
    assert set(expected_details) == {0, 1, 2, 3, 4}, "every transfer's check is reached"


def test_a_transfer_that_wraps_32_bits_is_outside_a_4_gib_window():
    """A stride that takes the last run past 4 GiB would wrap the engine's 32-bit addresses back to the start of
    the window: in 41 bits it is outside, whatever the window."""
    descriptor = copy.deepcopy(WIDE_DESCRIPTORS[0])
    transfer = descriptor["activations"]
    transfer["stride"] = ENGINE_REACH // (transfer["segments"] - 1) + 16
    assert (transfer["address"] + transfer["stride"] * (transfer["segments"] - 1)) % ENGINE_REACH < WIDE_WINDOW
    for memory_size in (WIDE_WINDOW, ENGINE_REACH, (1 << 40) - 16):
        assert descriptor_error(WIDE, descriptor, memory_size=memory_size) == ERROR_CODES["outside_window"]
    details = []
    assert run_checker([(descriptor, (1 << 40) - 16)], config=WIDE, details=details) == [ERROR_CODES["outside_window"]]
    assert details == [1]


def test_a_wrong_verdict_is_caught():
    """The comparison above fails when the model and the hardware disagree (here, on purpose)."""
    verdicts = run_checker([BASE])
    assert verdicts == [0]
    assert verdicts != [ERROR_CODES["inconsistent"]]
