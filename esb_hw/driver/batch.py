"""A compiled network and a batch of inputs for it, run image by image through :class:`~esb_hw.driver.Accelerator`.

Pure Python and NumPy, so that it runs on the board. A :class:`BatchProgram` holds one program bundle, the input
region's bytes for each image, each image's expected output bytes (the golden model's), the labels, and where each
class's logit code lies in the output bytes (``logit_bits``: per class, the bit indices of its code, least
significant first), so that the board decodes the logits without the compiler. ``esb_hw.frontend.deploy`` makes
one; ``deploy/run_digits.py`` runs one.
"""

from __future__ import annotations

import dataclasses
import time
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..npzfile import write_npz
from . import ProgramBundle

__all__ = ["BatchProgram", "BatchResult", "run_batch"]

_BUNDLE_FIELDS = ("image", "program_address", "descriptors", "layers", "output_address", "output_bytes",
                  "config_id", "array")


@dataclasses.dataclass(frozen=True, eq=False)
class BatchProgram:
    name: str
    bundle: ProgramBundle
    input_address: int
    inputs: np.ndarray  # uint8 (N, input bytes)
    expected: np.ndarray  # uint8 (N, output bytes)
    labels: np.ndarray  # int64 (N,)
    logit_bits: np.ndarray  # int64 (classes, code bits)

    def __post_init__(self):
        count = len(self.labels)
        if self.inputs.ndim != 2 or self.expected.ndim != 2 or len(self.inputs) != count or len(self.expected) != count:
            raise InputError(f"{self.name}: inputs, expected outputs and labels disagree in number")
        if self.input_address + self.inputs.shape[1] > len(self.bundle.image):
            raise InputError(f"{self.name}: the input region lies outside the image")
        if self.expected.shape[1] != self.bundle.output_bytes:
            raise InputError(f"{self.name}: expected outputs of {self.expected.shape[1]} bytes, the program writes "
                             f"{self.bundle.output_bytes}")
        bits = self.logit_bits
        if bits.size and (bits.min() < 0 or bits.max() >= 8 * self.bundle.output_bytes):
            raise InputError(f"{self.name}: a logit bit lies outside the output")

    @property
    def images(self) -> int:
        return len(self.labels)

    def bundle_for(self, index: int) -> ProgramBundle:
        """The program with image ``index``'s input, expecting its golden output."""
        image = bytearray(self.bundle.image)
        blob = self.inputs[index].tobytes()
        image[self.input_address:self.input_address + len(blob)] = blob
        return dataclasses.replace(self.bundle, image=bytes(image), expected=self.expected[index].tobytes(),
                                   name=f"{self.name}[{index}]")

    def logits(self, output: bytes) -> np.ndarray:
        """The logit codes (one per class) in a run's output bytes."""
        bits = np.unpackbits(np.frombuffer(output, np.uint8), bitorder="little").astype(np.int64)
        weights = np.left_shift(1, np.arange(self.logit_bits.shape[1], dtype=np.int64))
        return bits[self.logit_bits] @ weights

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` whose bytes depend only on the contents."""
        arrays = {f"bundle_{key}": np.asarray(getattr(self.bundle, key)) for key in _BUNDLE_FIELDS if key != "image"}
        arrays.update(bundle_image=np.frombuffer(self.bundle.image, np.uint8), name=np.asarray(self.name),
                      input_address=np.asarray(self.input_address), inputs=self.inputs.astype(np.uint8),
                      expected=self.expected.astype(np.uint8), labels=self.labels.astype(np.int64),
                      logit_bits=self.logit_bits.astype(np.int64))
        write_npz(path, arrays)

    @classmethod
    def load(cls, path: str | Path) -> BatchProgram:
        """Read a batch; a missing or malformed file raises :class:`~esb_hw.errors.InputError`."""
        try:
            with np.load(path, allow_pickle=False) as archive:
                needed = {f"bundle_{key}" for key in _BUNDLE_FIELDS} | {"name", "input_address", "inputs", "expected",
                                                                         "labels", "logit_bits"}
                missing = needed - set(archive.files)
                if missing:
                    raise InputError(f"{path}: not a batch program (missing {', '.join(sorted(missing))})")
                fields = {key: archive[f"bundle_{key}"] for key in _BUNDLE_FIELDS}
                bundle = ProgramBundle(image=fields["image"].astype(np.uint8).tobytes(),
                                       **{key: int(fields[key]) for key in _BUNDLE_FIELDS[1:-1]},
                                       array=tuple(int(value) for value in fields["array"]), name=str(archive["name"]))
                return cls(str(archive["name"]), bundle, int(archive["input_address"]), archive["inputs"],
                           archive["expected"], archive["labels"], archive["logit_bits"])
        except InputError:
            raise
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
            raise InputError(f"{path}: not a readable batch program ({error})") from None


@dataclasses.dataclass
class BatchResult:
    predictions: np.ndarray
    golden_predictions: np.ndarray
    labels: np.ndarray
    exact: np.ndarray  # per image: the output bytes equal the golden model's
    cycles: list[int]
    layer_cycles: list[list[int]]
    seconds: float

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.labels))

    @property
    def golden_accuracy(self) -> float:
        return float(np.mean(self.golden_predictions == self.labels))


async def run_batch(accelerator, batch: BatchProgram, *, count: int | None = None, timeout: float = 10.0,
                    use_interrupt: bool = True, progress=None) -> BatchResult:
    """Run the first ``count`` images (all by default), one run each; ``progress(done, total)`` after each."""
    count = batch.images if count is None else count
    if not 1 <= count <= batch.images:
        raise InputError(f"the batch has {batch.images} images, asked for {count}")
    predictions, golden, exact, cycles, layer_cycles = [], [], [], [], []
    started = time.perf_counter()
    for index in range(count):
        result = await accelerator.run(batch.bundle_for(index), timeout=timeout, use_interrupt=use_interrupt)
        predictions.append(int(np.argmax(batch.logits(result.output))))
        golden.append(int(np.argmax(batch.logits(batch.expected[index].tobytes()))))
        exact.append(result.output == batch.expected[index].tobytes())
        cycles.append(result.cycles)
        layer_cycles.append(list(result.layer_cycles))
        if progress:
            progress(index + 1, count)
    return BatchResult(np.array(predictions), np.array(golden), batch.labels[:count], np.array(exact), cycles,
                       layer_cycles, time.perf_counter() - started)
