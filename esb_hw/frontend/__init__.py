"""Model import and the quantization flow: a float CNN (ONNX or ``.npz``) becomes integer layers.

- :mod:`.model`: :class:`FloatModel`, the float chain with its NumPy reference and the ``.npz`` format;
- :mod:`.onnx_import` / :mod:`.onnx_export`: ONNX in (BatchNorm folded) and out;
- :mod:`.datasets`: the bundled digits data and its fixed split;
- :mod:`.quantize`: PTQ with DDA into an :class:`IntegerModel` run by the golden model, and the program for the
  layers the array runs.
"""

from .model import FloatLayer, FloatModel, load_npz, save_npz

__all__ = ["FloatLayer", "FloatModel", "load_npz", "save_npz"]
