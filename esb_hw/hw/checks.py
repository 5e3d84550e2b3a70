"""Parameter checks shared by the hardware components: each raises :class:`~esb_hw.errors.ParameterError`
with a message that names the parameter, its value and what is allowed."""

from __future__ import annotations

from ..errors import ParameterError
from ..quant.format import ESBFormat

__all__ = ["require_bool", "require_format", "require_instance", "require_int"]


def require_int(name: str, value, low: int, high: int | None = None) -> int:
    """``value`` if it is an ``int`` (not a bool) in ``low..high`` (``high`` None: no upper bound)."""
    allowed = f">= {low}" if high is None else f"in {low}..{high}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(f"{name} must be an int {allowed}, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        raise ParameterError(f"{name} must be an int {allowed}, got {value}")
    return value


def require_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def require_instance(name: str, value, kind: type):
    if not isinstance(value, kind):
        article = "an" if kind.__name__[0] in "AEIOU" else "a"
        raise ParameterError(f"{name} must be {article} {kind.__name__}, got {type(value).__name__}")
    return value


def require_format(name: str, value, *, signed: bool) -> ESBFormat:
    """``value`` if it is an :class:`ESBFormat` with the given signedness."""
    require_instance(name, value, ESBFormat)
    if value.signed != signed:
        wanted = "signed" if signed else "unsigned"
        raise ParameterError(f"{name} must be {'a' if signed else 'an'} {wanted} ESBFormat, got {value}")
    return value
