"""esb-hw: a hardware generator for Elastic Significant Bit (ESB) quantized DNN accelerators."""

__version__ = "0.1.0"
