"""esb_hw/frontend/deploy.py: the digits batch for the board, its golden outputs and its logit bit map."""

import dataclasses

import numpy as np
import pytest

from esb_hw.compiler.program import read_output
from esb_hw.data import shipped_config
from esb_hw.errors import InputError
from esb_hw.frontend.accuracy import load_digits_model
from esb_hw.frontend.datasets import load_split
from esb_hw.frontend.deploy import digits_batch, logit_bit_map
from esb_hw.frontend.quantize import QuantRecipe, compile_segments, quantize_model

DEFAULT = shipped_config("default")


def test_batch_holds_every_held_out_image_with_the_golden_output():
    split = load_split()
    batch = digits_batch(DEFAULT)
    assert batch.images == 359 and np.array_equal(batch.labels, split.test_labels)
    integer = quantize_model(load_digits_model(), QuantRecipe.for_config(DEFAULT), split.train_images)
    golden = [int(np.argmax(batch.logits(row.tobytes()))) for row in batch.expected]
    assert golden == integer.predict(split.test_images).tolist()


def test_logit_bit_map_agrees_with_read_output():
    integer = quantize_model(load_digits_model(), QuantRecipe.for_config(DEFAULT), load_split().train_images)
    (segment,) = compile_segments(integer, DEFAULT)
    table = logit_bit_map(segment.program)
    rng = np.random.default_rng(4)
    size = segment.program.output_region()[1]
    for _ in range(5):
        blob = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        bits = np.unpackbits(np.frombuffer(blob, np.uint8), bitorder="little").astype(np.int64)
        decoded = bits[table] @ (1 << np.arange(table.shape[1]))
        assert decoded.tolist() == read_output(segment.program, blob).reshape(-1).tolist()


def test_a_golden_output_that_disagrees_with_the_program_is_refused(monkeypatch):
    """deploy.py checks its golden outputs against the compiler's NumPy run: feed it a wrong golden output."""
    from esb_hw.errors import CheckFailed
    from esb_hw.frontend import quantize

    real = quantize.IntegerModel.run

    def off_by_one(self, images, **kwargs):
        outputs = real(self, images, **kwargs)
        outputs[-1] = outputs[-1].copy()
        outputs[-1][0, 0] += 1
        return outputs

    monkeypatch.setattr(quantize.IntegerModel, "run", off_by_one)
    with pytest.raises(CheckFailed, match="image 0 disagrees with the golden model"):
        digits_batch(DEFAULT, load_digits_model())  # an explicit model: not the cached batch


def test_an_array_that_cannot_run_the_network_is_named():
    tiny = dataclasses.replace(DEFAULT, activation_words=16)
    with pytest.raises(InputError, match="does not run on this array alone .*activation words"):
        digits_batch(tiny)
