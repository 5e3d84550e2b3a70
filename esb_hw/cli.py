"""``esb-hw``: the one command line of the package, with a subcommand per tool.

Each subcommand is a module's ``main(argv)``, imported only when it runs (``esb-hw infer`` does not load
Amaranth). ``esb-hw SUBCOMMAND --help`` gives each one's options, outputs and exit codes: 0 success, 1 a failed
check or tool run, 2 bad input or usage.
"""

from __future__ import annotations

import sys

from .errors import entry_point

__all__ = ["SUBCOMMANDS", "main"]

#: subcommand -> (module with ``main(argv)``, one line for the list).
SUBCOMMANDS = {
    "build": ("esb_hw.build", "generate the system (or --self-test top) for a board: Verilog, Tcl, XDC, reports"),
    "sim": ("esb_hw.sim.run", "run layers from .npz files through the simulated AXI system; writes OUT.npy"),
    "infer": ("esb_hw.infer", "a CNN (digits, mnist5k, .onnx, .npz) through the golden model and the system RTL"),
    "plan": ("esb_hw.plan", "an ONNX graph (ResNet, MobileNet) quantized, placed on the array or host, and timed"),
    "accuracy": ("esb_hw.frontend.accuracy", "the digits accuracy and accuracy-per-LUT tables"),
    "explore": ("esb_hw.explore.cli", "sweeps and searches of formats, arrays and networks on Ray; Pareto fronts"),
    "report": ("esb_hw.quant.report", "the quantization error table of the number formats"),
    "gemm": ("esb_hw.sim.run_layer", "one GEMM from .npy files on the PE array's RTL"),
    "train": ("esb_hw.frontend.train", "train the example CNNs (PyTorch, the 'train' extra), optionally with QAT"),
}


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: esb-hw SUBCOMMAND [options]   (esb-hw SUBCOMMAND --help for its options)", "", "subcommands:"]
    lines += [f"  {name:<{width}}  {line}" for name, (_, line) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to a subcommand; returns its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from importlib.metadata import version

        print(f"esb-hw {version('esb-hw')}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"error: unknown subcommand {name!r} (subcommands: {', '.join(SUBCOMMANDS)})", file=sys.stderr)
        return 2
    return entry_point(SUBCOMMANDS[name][0], rest)


if __name__ == "__main__":
    sys.exit(main())
