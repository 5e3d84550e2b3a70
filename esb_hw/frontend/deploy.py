"""The digits network as a :class:`~esb_hw.driver.batch.BatchProgram` for the board (``build.py`` writes it into
``deploy/digits.npz``): quantized for the config (PTQ, DDA), compiled at base 0, with every held-out image's input
and golden output."""

from __future__ import annotations

from functools import cache

import numpy as np

from ..errors import CheckFailed, InputError
from .datasets import load_split
from .quantize import QuantRecipe, compile_segments, quantize_model

__all__ = ["digits_batch", "logit_bit_map"]


def logit_bit_map(program) -> np.ndarray:
    """``(classes, code bits)``: the bit index, in the program's output bytes, of each bit of each class's code
    (found by setting each output bit alone and decoding with :func:`esb_hw.compiler.program.read_output`)."""
    from ..compiler.program import read_output

    size = program.output_region()[1]
    codes = read_output(program, bytes(size)).reshape(-1)
    bits = program.config.activation_format.bits
    table = np.full((codes.size, bits), -1, dtype=np.int64)
    for index in range(8 * size):
        blob = bytearray(size)
        blob[index // 8] = 1 << (index % 8)
        changed = read_output(program, bytes(blob)).reshape(-1).astype(np.int64)
        for output in np.flatnonzero(changed):
            table[output, int(changed[output]).bit_length() - 1] = index
    if np.any(table < 0):
        raise CheckFailed("an output code bit has no place in the output bytes")
    return table


def digits_batch(config, model=None):
    """The batch for ``config``, or raise :class:`InputError` naming the layers the array cannot run (the board
    runs the whole network on the array). The shipped model's batch is made once per config in a process."""
    if model is None:
        return _shipped_batch(config)
    return _batch(config, model)


@cache
def _shipped_batch(config):
    return _batch(config, None)


def _batch(config, model):
    from ..compiler.program import input_image, to_bundle
    from ..driver.batch import BatchProgram
    from .accuracy import load_digits_model

    model = load_digits_model() if model is None else model
    split = load_split()
    integer = quantize_model(model, QuantRecipe.for_config(config), split.train_images)
    segments = compile_segments(integer, config)
    if len(segments) != 1 or segments[0].program is None:
        host = [segment for segment in segments if segment.program is None]
        reason = host[0].reason if host else f"it compiles into {len(segments)} programs, not one"
        raise InputError(f"the digits network does not run on this array alone ({reason})")
    program = segments[0].program
    codes = integer.input_codes(split.test_images)
    first = to_bundle(program, "digits", codes[0])
    address = input_image(program, codes[0])[0]
    inputs = np.stack([np.frombuffer(input_image(program, image)[1], np.uint8) for image in codes])
    outputs = integer.run(None, codes=codes)[-1]
    logit_bits = logit_bit_map(program)
    expected = np.zeros((len(codes), first.output_bytes), dtype=np.uint8)
    bits = np.unpackbits(expected, axis=1, bitorder="little")
    flat = outputs.reshape(len(codes), -1).astype(np.int64)
    for bit in range(logit_bits.shape[1]):
        bits[:, logit_bits[:, bit]] = (flat >> bit) & 1
    expected = np.packbits(bits, axis=1, bitorder="little")
    if expected[0].tobytes() != first.expected:  # the golden model against the compiler's NumPy run
        raise CheckFailed("the digits program's output for image 0 disagrees with the golden model")
    batch = BatchProgram("digits", first, address, inputs, expected, split.test_labels.copy(), logit_bits)
    for array in (batch.inputs, batch.expected, batch.labels, batch.logit_bits):
        array.flags.writeable = False  # a cached batch is shared
    return batch
