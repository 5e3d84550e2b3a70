#!/usr/bin/env python3
"""Write a layer file for ``esb-hw sim`` from a float convolution: quantize the input and the weights, fold the
scales into ``(bias, M, S)`` and save (the format: esb_hw/layerfile.py).

    python examples/write_layer.py layer.npz
    esb-hw sim --layer layer.npz --out out.npy --check
"""

import argparse
import sys

import numpy as np

from esb_hw.errors import EsbError
from esb_hw.layerfile import layer_from_float, save_layer
from esb_hw.quant import ActivationQuantizer, ESBFormat


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the layer file to write (.npz)")
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((16, 8, 3, 3)) / 6      # float conv2d, OIHW
    bias = rng.standard_normal(16) / 10
    image = np.abs(rng.standard_normal((8, 12, 12)))     # a non-negative input, CHW
    w_format, a_format = ESBFormat(4, 1), ESBFormat(8, 8, signed=False)  # the default config's formats

    inputs = ActivationQuantizer.calibrate(image, a_format)  # input code = level * 2**-f
    y_scale = 2.0**-4                                         # the output codes' step, chosen for this layer
    layer = layer_from_float(weight, bias, x_scale=inputs.scale, y_scale=y_scale, w_format=w_format)
    try:
        save_layer(args.out, kind="conv2d", x=inputs.encode(image), w_codes=layer["w_codes"], bias=layer["bias"],
                   M=layer["M"], S=layer["S"], w_format=w_format, a_format=a_format, stride=1, padding=1,
                   relu=True, pool=False, force=args.force)
    except EsbError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print(f"wrote {args.out}: conv2d 8->16 channels, 3x3, on an 8x12x12 input; M {layer['M'].min()}.."
          f"{layer['M'].max()}, S {layer['S'].min()}..{layer['S'].max()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
