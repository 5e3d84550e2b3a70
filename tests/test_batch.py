"""esb_hw/driver/batch.py: a compiled network with a batch of images, saved, loaded, decoded and run image by image
through the driver (on the fake PYNQ system of tests/fake_system.py)."""

import asyncio
import dataclasses

import numpy as np
import pytest

from esb_hw.data import shipped_config
from esb_hw.driver import Accelerator, RunFailed
from esb_hw.driver.batch import BatchProgram, run_batch
from esb_hw.driver.pynq_bus import PynqBus
from esb_hw.errors import InputError
from esb_hw.frontend.accuracy import load_digits_model
from esb_hw.frontend.datasets import load_split
from esb_hw.frontend.deploy import digits_batch
from esb_hw.frontend.quantize import QuantRecipe, compile_segments, quantize_model
from tests.fake_system import FakeSystem

DEFAULT = shipped_config("default")


@pytest.fixture(scope="module")
def digits():
    """(batch, program) for the default config."""
    integer = quantize_model(load_digits_model(), QuantRecipe.for_config(DEFAULT), load_split().train_images)
    (segment,) = compile_segments(integer, DEFAULT)
    return digits_batch(DEFAULT), segment.program


def test_save_and_load_are_byte_identical(digits, tmp_path):
    batch, _ = digits
    batch.save(tmp_path / "a.npz")
    loaded = BatchProgram.load(tmp_path / "a.npz")
    loaded.save(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert loaded.bundle_for(5).image == batch.bundle_for(5).image
    assert np.array_equal(loaded.logit_bits, batch.logit_bits)


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        BatchProgram.load(tmp_path / "absent.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(InputError, match="not a batch program"):
        BatchProgram.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(InputError, match="not a readable batch program"):
        BatchProgram.load(tmp_path / "junk.npz")


def test_inconsistent_batches_are_refused(digits):
    batch, _ = digits
    with pytest.raises(InputError, match="disagree in number"):
        dataclasses.replace(batch, labels=batch.labels[:3])
    with pytest.raises(InputError, match="a logit bit lies outside the output"):
        dataclasses.replace(batch, logit_bits=batch.logit_bits + 10_000)


def test_logits_decode_a_known_layout(digits):
    """A hand-written map: class c's 8-bit code is byte 15 - c, so the decode must read the bytes backwards."""
    batch, _ = digits
    table = np.array([[8 * (15 - cls) + bit for bit in range(8)] for cls in range(10)])
    reversed_map = dataclasses.replace(batch, logit_bits=table)
    blob = bytes(range(100, 116))
    assert reversed_map.logits(blob).tolist() == [115 - cls for cls in range(10)]


def test_run_batch_on_the_fake_board_is_exact(digits):
    batch, program = digits
    system = FakeSystem(program, finish_after=0)
    accelerator = Accelerator(PynqBus(system, allocate=system.allocate))
    seen = []
    result = asyncio.run(run_batch(accelerator, batch, count=12, use_interrupt=False,
                                   progress=lambda done, total: seen.append(done)))
    assert result.exact.all() and len(result.exact) == 12 and seen == list(range(1, 13))
    assert np.array_equal(result.predictions, result.golden_predictions)
    assert result.cycles == [12345] * 12
    # a wrong expected output is seen as a difference
    wrong = dataclasses.replace(batch, expected=batch.expected.copy())
    wrong.expected[2, 0] ^= 1
    result = asyncio.run(run_batch(accelerator, wrong, count=3, use_interrupt=False))
    assert result.exact.tolist() == [True, True, False]
    with pytest.raises(InputError, match="the batch has 359 images, asked for 400"):
        asyncio.run(run_batch(accelerator, batch, count=400))
    broken = FakeSystem(program, finish_after=0, error=7)
    with pytest.raises(RunFailed, match="error 7"):
        asyncio.run(run_batch(Accelerator(PynqBus(broken, allocate=broken.allocate)), batch, count=1,
                              use_interrupt=False))
