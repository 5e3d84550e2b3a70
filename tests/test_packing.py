"""Kernel taps packed onto the columns (esb_hw/compiler/packing.py): bit-exact against the golden model of the
unpacked layer, in NumPy and through the engine's RTL."""

import numpy as np
import pytest

from esb_hw.compiler.lowering import reference
from esb_hw.compiler.packing import pack_taps, worth_packing
from esb_hw.compiler.program import compile_program, input_image, read_output, run_in_numpy
from esb_hw.data import shipped_config
from esb_hw.errors import InputError
from esb_hw.sim.engine import memory_for, run_engine
from esb_hw.sim.layer_core import SMALL_ENGINE_CONFIG, random_layer

CONFIG = shipped_config("default")
#: (in channels, out channels, kernel, stride, padding, pool, input side)
STEMS = [(3, 8, 7, 2, 3, False, 15), (1, 8, 3, 1, 1, True, 10), (2, 5, 5, 2, 2, False, 9), (3, 6, 3, 2, 0, False, 8),
         (1, 3, 4, 3, 1, False, 11)]


@pytest.mark.parametrize("stem", STEMS, ids=lambda stem: "c{}o{}k{}s{}p{}{}".format(*stem[:5], "pool" * stem[5]))
def test_the_packed_layer_on_packed_codes_is_the_layer(stem):
    channels, out_channels, kernel, stride, padding, pool, side = stem
    rng = np.random.default_rng(sum(stem))
    layer = random_layer(CONFIG, rng, "conv2d", out_channels, channels, kernel, stride, padding, pool)
    codes = rng.integers(0, CONFIG.activation_format.code_count, (channels, side, side))
    codes[:, 0, :] = CONFIG.activation_format.code_count - 1  # the largest code along an edge next to padding
    packing, packed = pack_taps(layer, codes.shape)
    assert packed.weight_codes.shape == (out_channels, channels * kernel * kernel, 1, 1)
    assert (packed.stride, packed.padding, packed.pool) == (1, 0, pool)
    assert np.array_equal(reference(CONFIG, packed, packing.codes(codes)), reference(CONFIG, layer, codes))


def test_a_wrong_tap_order_is_caught():
    """The check above fails on a packing whose weights and codes disagree (channels outer instead of taps)."""
    rng = np.random.default_rng(3)
    layer = random_layer(CONFIG, rng, "conv2d", 8, 3, 3, 1, 1, False)
    codes = rng.integers(0, CONFIG.activation_format.code_count, (3, 8, 8))
    packing, packed = pack_taps(layer, codes.shape)
    wrong = type(packed)("conv2d", np.asarray(layer.weight_codes).reshape(8, -1, 1, 1), packed.params,
                         packed.output_format)
    assert not np.array_equal(reference(CONFIG, wrong, packing.codes(codes)), reference(CONFIG, layer, codes))


def test_a_packed_program_runs_bit_exactly_in_numpy_and_takes_the_unpacked_input():
    rng = np.random.default_rng(7)
    layers = [random_layer(CONFIG, rng, "conv2d", 8, 1, 3, 1, 1, True),
              random_layer(CONFIG, rng, "conv2d", 6, 8, 3, 1, 1, False)]
    codes = rng.integers(0, CONFIG.activation_format.code_count, (1, 12, 12))
    program = compile_program(CONFIG, layers, codes.shape, codes, pack_input=True)
    assert program.input_packing is not None and program.input_shape == (1, 12, 12)
    assert program.shapes[0] == (9, 12, 12) and program.layers[0].weight_codes.shape[1:] == (9, 1, 1)
    plain = compile_program(CONFIG, layers, codes.shape, codes)
    assert len(program.schedules[0].chunks) == 2 < len(plain.schedules[0].chunks) == 9
    memory = bytearray(program.image) + bytearray(1 << 16)
    run_in_numpy(program, memory)
    expected = reference(CONFIG, layers[1], reference(CONFIG, layers[0], codes))
    assert np.array_equal(read_output(program, bytes(memory[slice(*_span(program))])), expected)
    # New inputs go through the packing too.
    other = rng.integers(0, CONFIG.activation_format.code_count, (1, 12, 12))
    address, blob = input_image(program, other)
    memory[address: address + len(blob)] = blob
    run_in_numpy(program, memory)
    expected = reference(CONFIG, layers[1], reference(CONFIG, layers[0], other))
    assert np.array_equal(read_output(program, bytes(memory[slice(*_span(program))])), expected)
    with pytest.raises(InputError, match=r"the program expects \(1, 12, 12\)"):
        input_image(program, np.zeros((9, 12, 12), dtype=int))


def _span(program) -> tuple[int, int]:
    address, size = program.output_region()
    return address, address + size


def test_the_packed_stem_runs_bit_exactly_through_the_engine_rtl():
    """A 1-channel 5x5 stride-2 stem, packed (25 channels in 7 chunks instead of 25), through the engine's RTL
    with the memory model's latencies and stalls, against the golden model of the unpacked layer."""
    config = SMALL_ENGINE_CONFIG
    rng = np.random.default_rng(11)
    layer = random_layer(config, rng, "conv2d", 5, 1, 5, 2, 2, False)
    codes = rng.integers(0, config.activation_format.code_count, (1, 9, 9))
    program = compile_program(config, [layer], codes.shape, codes, base=4096, pack_input="auto")
    assert program.input_packing is not None and len(program.schedules[0].chunks) == 7
    run = run_engine(program, memory_for(program, seed=4))
    assert run.error == 0, run.error_text
    assert np.array_equal(run.output(program), reference(config, layer, codes))


def test_when_packing_is_worth_it():
    rng = np.random.default_rng(0)
    stem = random_layer(CONFIG, rng, "conv2d", 8, 3, 7, 2, 3, False)
    assert worth_packing(CONFIG, stem, (3, 32, 32))  # 49 chunks -> 19
    assert not worth_packing(CONFIG, random_layer(CONFIG, rng, "conv2d", 8, 8, 3, 1, 1, False), (8, 8, 8))
    assert not worth_packing(CONFIG, random_layer(CONFIG, rng, "conv2d", 8, 3, 1, 1, 0, False), (3, 8, 8))
    assert not worth_packing(CONFIG, random_layer(CONFIG, rng, "linear", 8, 3), (4, 3))
    plain = compile_program(CONFIG, [random_layer(CONFIG, rng, "conv2d", 8, 8, 3, 1, 1, False)], (8, 6, 6),
                            pack_input="auto")
    assert plain.input_packing is None
    with pytest.raises(InputError, match="pack_input must be True, False or 'auto', got 'yes'"):
        compile_program(CONFIG, [stem], (3, 16, 16), pack_input="yes")
    with pytest.raises(InputError, match="layer 0: only a conv2d layer's taps can be packed"):
        compile_program(CONFIG, [random_layer(CONFIG, rng, "linear", 8, 3)], (4, 3), pack_input=True)
