"""Resource figures: yosys synthesis (:mod:`.synth`), the analytical model (:mod:`.model`), its calibration
fit (:mod:`.calibrate`) and the hierarchical whole-design measurement (:mod:`.measure`)."""

from .model import (
    CALIBRATION_PATH,
    MODEL_TOLERANCE,
    RESOURCES,
    CalibrationError,
    DoesNotFitError,
    ResourceEstimate,
    check_fits,
    estimate_array,
    estimate_design,
    estimate_extra,
    exceeds_tolerance,
    flip_flops,
    gops_per_klut,
    load_calibration,
    model_error,
    peak_gops,
    relative_error,
)
from .synth import ARRAY_FLOW, SynthesisError, YosysResult, synthesize, yosys_command, yosys_version

__all__ = [
    "ARRAY_FLOW", "CALIBRATION_PATH", "MODEL_TOLERANCE", "RESOURCES", "CalibrationError", "DoesNotFitError",
    "ResourceEstimate", "SynthesisError", "YosysResult", "check_fits", "estimate_array", "estimate_design",
    "estimate_extra", "exceeds_tolerance", "flip_flops", "gops_per_klut", "load_calibration", "model_error",
    "peak_gops", "relative_error", "synthesize", "yosys_command", "yosys_version",
]
