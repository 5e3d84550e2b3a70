"""esb_hw/layerfile.py: a layer file written from a float layer reads back through esb-hw sim's reader, its golden
output follows the float layer, and bad input is refused with the key named; examples/write_layer.py runs."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from esb_hw.data import shipped_config
from esb_hw.errors import InputError
from esb_hw.layerfile import layer_from_float, save_layer
from esb_hw.quant import ActivationQuantizer, ESBFormat
from esb_hw.sim.run import golden_output, load_layer

ROOT = Path(__file__).resolve().parents[1]
W_FORMAT, A_FORMAT = ESBFormat(4, 1), ESBFormat(8, 8, signed=False)


def float_layer(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((6, 4, 3, 3)) / 5, rng.standard_normal(6) / 10, np.abs(rng.standard_normal((4, 7, 7)))


def test_a_float_layer_written_and_read_back_follows_the_float_layer(tmp_path):
    weight, bias, image = float_layer()
    inputs = ActivationQuantizer.calibrate(image, A_FORMAT)
    y_scale = 2.0**-4
    layer = layer_from_float(weight, bias, x_scale=inputs.scale, y_scale=y_scale, w_format=W_FORMAT)
    path = save_layer(tmp_path / "l.npz", kind="conv2d", x=inputs.encode(image), w_codes=layer["w_codes"],
                      bias=layer["bias"], M=layer["M"], S=layer["S"], w_format=W_FORMAT, a_format=A_FORMAT,
                      padding=1)
    file, config = load_layer(path, shipped_config("default"), needs_x=True)
    assert config.weight_format == W_FORMAT and config.activation_format == A_FORMAT
    codes = golden_output(config, [file], file.x)
    # the same layer in float, on the quantized weights and inputs: within a level of rounding
    quantized = W_FORMAT.decode(layer["w_codes"], layer["w_scale"].reshape(-1, 1, 1, 1) * 2**W_FORMAT.k)
    x = inputs.decode(inputs.encode(image))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    real = np.array([[[np.sum(padded[:, r:r + 3, c:c + 3] * quantized[o]) + bias[o] for c in range(7)]
                      for r in range(7)] for o in range(6)])
    expected = np.clip(real / y_scale, 0, 255)
    assert np.abs(codes - expected).max() < 0.75 and codes.max() > 10  # not all clamped
    assert path.read_bytes() == save_layer(tmp_path / "again.npz", kind="conv2d", x=inputs.encode(image),
                                           w_codes=layer["w_codes"], bias=layer["bias"], M=layer["M"], S=layer["S"],
                                           w_format=W_FORMAT, a_format=A_FORMAT, padding=1).read_bytes()


def test_bad_layers_are_refused_naming_the_key(tmp_path):
    weight, bias, _ = float_layer()
    layer = layer_from_float(weight, bias, x_scale=0.01, y_scale=0.1, w_format=W_FORMAT)
    good = {"kind": "conv2d", "w_codes": layer["w_codes"], "bias": layer["bias"], "M": layer["M"], "S": layer["S"],
            "w_format": W_FORMAT, "a_format": A_FORMAT}
    save_layer(tmp_path / "l.npz", **good)
    with pytest.raises(InputError, match="l.npz exists; not replaced \\(pass force, --force in the examples, to "
                                         "replace it\\)"):
        save_layer(tmp_path / "l.npz", **good)
    save_layer(tmp_path / "l.npz", **good, force=True)
    for change, message in (({"kind": "pool"}, "kind must be 'conv2d' or 'linear'"),
                            ({"w_codes": layer["w_codes"][:, :, 0, 0]}, "w_codes of a conv2d must be OIHW"),
                            ({"w_codes": layer["w_codes"] + 16}, "w_codes must be integer codes 0..15 of ESB\\(4,1\\)"),
                            ({"bias": layer["bias"][:3]}, "bias must be 6 integers \\(one per output channel\\)"),
                            ({"M": layer["M"] * 1.0}, "M must be 6 integers"),
                            ({"S": np.zeros(6, dtype=int)}, "shift must be in 1..48, got 0"),
                            ({"x": np.full((4, 3, 3), 256)}, "x must be integer codes 0..255"),
                            ({"x": np.zeros((3, 5, 5), dtype=int)}, "x has 3 input channels, w_codes expects 4"),
                            ({"x": np.zeros((5, 5), dtype=int)}, "x of a conv2d must be CHW or NCHW"),
                            ({"stride": 3}, "stride must be 1 or 2, padding 0..7 and pool only on a conv2d"),
                            ({"padding": 8}, "got stride 1, padding 8")):
        with pytest.raises((InputError, ValueError), match=message):
            save_layer(tmp_path / "bad.npz", **{**good, **change})
    with pytest.raises(InputError, match="weight must be OIHW or OI"):
        layer_from_float(weight[0], bias, x_scale=1, y_scale=1, w_format=W_FORMAT)


def test_the_example_writes_a_layer_that_esb_hw_sim_reads(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "write_layer.py"), str(tmp_path / "l.npz")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and "wrote" in result.stdout, result.stderr
    file, _ = load_layer(tmp_path / "l.npz", None, needs_x=True)
    assert file.layer.kind == "conv2d" and file.x.shape == (8, 12, 12) and file.layer.padding == 1
    again = subprocess.run([sys.executable, str(ROOT / "examples" / "write_layer.py"), str(tmp_path / "l.npz")],
                           capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.startswith("error: ") and "exists; not replaced" in again.stderr
