"""esb_hw/npzfile.py: the same arrays give the same bytes, numpy reads them back, and a failed write leaves no file
(neither a half-written one nor the temporary beside it)."""

import numpy as np
import pytest

from esb_hw.npzfile import write_npz


def test_the_same_arrays_give_the_same_bytes(tmp_path):
    arrays = {"b": np.arange(5), "a": np.eye(2), "s": np.array("text")}
    write_npz(tmp_path / "one.npz", arrays)
    write_npz(tmp_path / "two.npz", dict(reversed(arrays.items())))
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    with np.load(tmp_path / "one.npz") as loaded:
        assert sorted(loaded.files) == ["a", "b", "s"] and np.array_equal(loaded["b"], np.arange(5))


def test_a_failed_write_leaves_nothing(tmp_path):
    write_npz(tmp_path / "kept.npz", {"a": np.zeros(2)})
    before = (tmp_path / "kept.npz").read_bytes()
    with pytest.raises(ValueError):  # objects need pickle, which write_npz refuses
        write_npz(tmp_path / "kept.npz", {"a": np.zeros(3), "z": np.array([object()], dtype=object)})
    assert (tmp_path / "kept.npz").read_bytes() == before  # the old file, whole
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kept.npz"]
