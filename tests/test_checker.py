# amaranth: UnusedElaboratable=no
"""DescriptorChecker (esb_hw/hw/core/checker.py): the hardware's verdict on a descriptor equals the compiler's
Python model of the same checks (esb_hw.compiler.program.descriptor_error) on compiled descriptors and on
thousands of corrupted ones, and the model gives the documented code for each kind of bad descriptor."""

import copy
import random

import numpy as np
import pytest
from amaranth import Shape
from amaranth.sim import Simulator

from esb_hw.compiler.program import compile_program, descriptor_error
from esb_hw.config import AcceleratorConfig
from esb_hw.contract.checks import checker_cycles
from esb_hw.hw.core.checker import ERROR_CODES, DescriptorChecker
from esb_hw.layouts import descriptor_layout, pack
from esb_hw.sim.layer_core import random_layer

CONFIG = AcceleratorConfig(weight_bits=4, weight_k=1, activation_bits=4, activation_k=4, rows=4, cols=4,
                           name="small", activation_words=128, weight_words=128, param_words=16, output_words=32,
                           entries=8)


def compiled_descriptors() -> list[dict]:
    rng = np.random.default_rng(7)
    descriptors = []
    for kind, out_channels, in_channels, kernel, stride, padding, pool, shape in [
            ("conv2d", 6, 5, 3, 2, 1, True, (5, 9, 8)), ("linear", 7, 9, 1, 1, 0, False, (5, 9)),
            ("conv2d", 4, 4, 5, 1, 2, False, (4, 7, 7)), ("conv2d", 9, 3, 1, 1, 0, True, (3, 8, 6))]:
        layer = random_layer(CONFIG, rng, kind, out_channels, in_channels, kernel, stride, padding, pool)
        program = compile_program(CONFIG, [layer], shape)
        descriptors += [tile.descriptor for tile in program.tiles]
    return descriptors


DESCRIPTORS = compiled_descriptors()


def run_checker(descriptors: list[dict], cycles: list | None = None) -> list[int]:
    """The checker's code for each descriptor; ``cycles`` gets the cycles from each start to its done."""
    checker = DescriptorChecker(CONFIG)
    codes = []

    async def testbench(ctx):
        for descriptor in descriptors:
            ctx.set(checker.descriptor.as_value(), pack(descriptor_layout(), descriptor))
            ctx.set(checker.start, 1)
            await ctx.tick()
            ctx.set(checker.start, 0)
            count = 1
            while True:
                *_, done, error = await ctx.tick().sample(checker.done, checker.error)
                if done:
                    break
                count += 1
            codes.append(int(error))
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
    assert descriptor_error(CONFIG, changed(BASE, path, value)) == ERROR_CODES[name]


def test_compiled_descriptors_pass_the_model():
    assert [descriptor_error(CONFIG, descriptor) for descriptor in DESCRIPTORS] == [0] * len(DESCRIPTORS)


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
    expected = [descriptor_error(CONFIG, descriptor) for descriptor in cases]
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
            assert count == checker_cycles(descriptor, CONFIG), descriptor
            exact += 1
    assert exact >= len(DESCRIPTORS) + 100
    assert cycles[: len(DESCRIPTORS)] != [checker_cycles(DESCRIPTORS[0], CONFIG) + 1] * len(DESCRIPTORS)


def test_a_wrong_verdict_is_caught():
    """The comparison above fails when the model and the hardware disagree (here, on purpose)."""
    verdicts = run_checker([BASE])
    assert verdicts == [0]
    assert verdicts != [ERROR_CODES["inconsistent"]]
