"""The system's AXI4-Lite register map, defined once: the hardware (:mod:`esb_hw.hw.bus.registers`), the driver
(:mod:`esb_hw.driver`), ``regmap.json`` and the C header (:func:`c_header`) all come from :data:`REGISTERS`.

Pure Python (no Amaranth, no NumPy), so that the driver runs on a PYNQ image with this file and ``regmap.json``.
Offset 0x00 is the usual HLS/PYNQ control register: ``ap_start``, ``ap_done`` (cleared when read), ``ap_idle`` and
``ap_ready``; 0x04-0x0C are the usual interrupt registers (global enable, enable, status). Documented in
docs/system.md.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass

__all__ = ["ACCESS", "ADDRESS_BITS", "CLEARED_BY_HARDWARE", "CORRUPTED_DETAILS", "DATA_BITS", "ENGINE_ERRORS",
           "MAGIC", "REGISTERS", "REGMAP_VERSION", "SET_BY_HARDWARE", "WINDOW_DETAILS", "Field", "Register",
           "RegisterModel", "by_name", "c_header", "config_id", "engine_error", "port_name", "regmap_dict",
           "regmap_json"]

#: Width of the register bus and of every register.
DATA_BITS = 32
#: Address bits of the register window (4 KiB).
ADDRESS_BITS = 12
#: The value of ``MAGIC``: "ESB1" in ASCII, most significant byte first.
MAGIC = 0x45534231
#: Bumped whenever a register or field moves (2: CONTROL.abort; 3: the memory window, ERROR_DETAIL, WINDOW_REFUSED).
REGMAP_VERSION = 3

#: Access kinds. The behaviour of each is defined once, here, and built from this table twice: in the hardware
#: (:class:`esb_hw.hw.bus.registers.RegisterFile`) and in :class:`RegisterModel` (the fake board of the tests).
#:
#: - ``RW``: storage; a write replaces the bytes its strobes select. The hardware reads the stored value.
#: - ``RO``: the hardware's value; writes are ignored.
#: - ``W1C``: a flag the hardware sets (``set``); a write of 1 clears it, a write of 0 leaves it.
#: - ``COR``: a flag the hardware sets (``set``); reading the register clears it; writes are ignored.
#: - ``W1S``: a flag a write of 1 sets (a write of 0 leaves it); the hardware clears it (``clear``) when it acts.
#:
#: When a set and a clear come in the same cycle, the set wins: an event is never lost.
ACCESS = {
    "RW": "read-write",
    "RO": "read-only",
    "W1C": "write 1 to clear",
    "COR": "read-only, cleared when read",
    "W1S": "write 1 to set; clears itself",
}
#: Access kinds whose storage the hardware sets by an event, and those it clears by one.
SET_BY_HARDWARE = ("W1C", "COR")
CLEARED_BY_HARDWARE = ("W1S",)

#: The engine's error codes (the ``ERROR`` register and the driver's messages): code -> (name, meaning).
ENGINE_ERRORS = {
    0: ("none", "no error"),
    1: ("zero_size", "a descriptor has a zero size or count"),
    2: ("unsupported_kernel", "a descriptor's kernel is not 1..7 a side or its stride not 1 or 2"),
    3: ("reduction_too_long", "a descriptor's reduction (in_channels x kernel) exceeds max_reduction"),
    4: ("does_not_fit", "a descriptor's tile does not fit the buffers (words per bank, or block > entries)"),
    5: ("inconsistent", "a descriptor's geometry disagrees with its transfers or its channel counts, or it reuses "
                        "weights that no earlier tile loaded"),
    6: ("misaligned", "a descriptor's address or stride is not a multiple of its word size"),
    7: ("read", "the memory returned a read error"),
    8: ("write", "the memory returned a write error"),
    9: ("aborted", "the host aborted the run (CONTROL.abort); TILES_DONE tiles were stored whole"),
    10: ("outside_window", "a transfer would leave the memory window [MEMORY_BASE, MEMORY_BASE + MEMORY_SIZE); "
                           "ERROR_DETAIL names it"),
    11: ("corrupted", "a CRC-32 does not match: bytes changed after the compiler wrote them; ERROR_DETAIL names "
                      "them"),
}

#: ``ERROR_DETAIL`` with error ``corrupted``: which bytes failed their CRC-32.
CORRUPTED_DETAILS = {
    0: ("descriptor", "the descriptor's 128 bytes"),
    1: ("weights", "the parameters and weights the descriptor loads (its weights_crc)"),
}

#: ``ERROR_DETAIL`` with error ``outside_window``: which transfer left the window.
WINDOW_DETAILS = {
    0: ("program", "the program: PROGRAM_ADDRESS + 128 x PROGRAM_LENGTH bytes (or MEMORY_SIZE is 0)"),
    1: ("activations", "the descriptor's activation transfer"),
    2: ("weights", "the descriptor's weight transfer"),
    3: ("params", "the descriptor's parameter transfer"),
    4: ("outputs", "the descriptor's output transfer"),
    5: ("guard_read", "a read request, refused by the bus guard"),
    6: ("guard_write", "a write request, refused by the bus guard"),
}


def engine_error(code: int, detail: int | None = None) -> str:
    """``"name: meaning"`` of an engine error code (an unknown code says so); with ``detail`` (``ERROR_DETAIL``)
    and code ``outside_window``, the transfer it names."""
    name, meaning = ENGINE_ERRORS.get(int(code), ("unknown", f"unknown error code {int(code)}"))
    details = {"outside_window": WINDOW_DETAILS, "corrupted": CORRUPTED_DETAILS}.get(name)
    if details is not None and detail is not None:
        meaning = re.sub("ERROR_DETAIL names (it|them)", f"detail {int(detail)}: "
                         f"{details.get(int(detail), ('', 'unknown detail'))[1]}", meaning)
    return f"{name}: {meaning}"


@dataclass(frozen=True)
class Field:
    """Bits ``lsb .. lsb + width - 1`` of a register."""

    name: str
    lsb: int
    width: int
    access: str
    description: str

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    """One 32-bit register at byte ``offset``; bits outside its fields read 0 and ignore writes."""

    name: str
    offset: int
    description: str
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"register {self.name} has no field {name!r}")


def _whole(name: str, offset: int, access: str, description: str, width: int = 32) -> Register:
    return Register(name, offset, description, (Field("value", 0, width, access, description),))


REGISTERS: tuple[Register, ...] = (
    Register("CONTROL", 0x00, "Start and handshake bits (the HLS/PYNQ control layout)", (
        Field("ap_start", 0, 1, "W1S", "write 1 to start a run; reads 1 until the engine takes it"),
        Field("ap_done", 1, 1, "COR", "a run finished since this register was last read"),
        Field("ap_idle", 2, 1, "RO", "no run is in progress or pending"),
        Field("ap_ready", 3, 1, "RO", "a start would be taken now (same as ap_idle)"),
        Field("abort", 8, 1, "W1S", "write 1 to abort the run: the transfers in flight end, nothing more is "
                                    "loaded or stored, and the run ends with error 9 (aborted); reads 1 until the "
                                    "engine is idle"),
    )),
    _whole("GIE", 0x04, "RW", "global interrupt enable", 1),
    Register("IER", 0x08, "Interrupt enable", (Field("done", 0, 1, "RW", "interrupt when a run ends"),)),
    Register("ISR", 0x0C, "Interrupt status; the interrupt line is GIE and (ISR and IER)", (
        Field("done", 0, 1, "W1C", "a run ended (set only while IER.done is 1)"),)),
    Register("STATUS", 0x10, "Run status (not cleared by reading)", (
        Field("busy", 0, 1, "RO", "a run is in progress"),
        Field("done", 1, 1, "RO", "the last run has finished (cleared by a start)"),
        Field("error", 2, 1, "RO", "the last run ended with an error (ERROR is not 0)"),
    )),
    _whole("ERROR", 0x14, "RO", "the first error of the last run (ENGINE_ERRORS code; 0 none)", 4),
    _whole("FAILED_DESCRIPTOR", 0x18, "RO", "the descriptor the first error concerns", 16),
    _whole("ERROR_DETAIL", 0x1C, "RO", "with ERROR outside_window, the transfer that left the window "
                                        "(WINDOW_DETAILS); with corrupted, the bytes (CORRUPTED_DETAILS); else 0", 3),
    _whole("PROGRAM_ADDRESS", 0x20, "RW", "byte offset of descriptor 0 from MEMORY_BASE (a multiple of 16)"),
    _whole("PROGRAM_LENGTH", 0x24, "RW", "descriptors to run", 16),
    Register("MEMORY_BASE_LO", 0x28, "Low word of the byte address every engine address is relative to", (
        Field("value", 12, 20, "RW", "address bits 31:12 (the base is 4 KiB aligned)"),)),
    _whole("MEMORY_BASE_HI", 0x2C, "RW", "address bits 39:32 of the base", 8),
    _whole("TILES_DONE", 0x30, "RO", "descriptors of the current or last run whose outputs are in memory", 16),
    _whole("CYCLES", 0x34, "RO", "clock cycles from start to done of the current or last run"),
    _whole("BEATS_READ", 0x38, "RO", "128-bit beats read in the current or last run"),
    _whole("BEATS_WRITTEN", 0x3C, "RO", "128-bit beats written in the current or last run"),
    _whole("LAYER_SELECT", 0x40, "RW", "the layer whose compute cycles LAYER_CYCLES shows", 8),
    _whole("LAYER_CYCLES", 0x44, "RO", "compute cycles of layer LAYER_SELECT in the last run"),
    Register("MEMORY_SIZE_LO", 0x48, "Low word of the memory window's size in bytes: the engine reads and writes "
                                     "only [MEMORY_BASE, MEMORY_BASE + MEMORY_SIZE); a run with size 0 is refused", (
        Field("value", 4, 28, "RW", "size bits 31:4 (the size is a multiple of 16 bytes)"),)),
    _whole("MEMORY_SIZE_HI", 0x4C, "RW", "size bits 39:32 (the engine reaches at most 4 GiB past MEMORY_BASE)", 8),
    _whole("MAGIC", 0x50, "RO", f"0x{MAGIC:08X} (\"ESB1\"): this is an esb-hw system"),
    _whole("VERSION", 0x54, "RO", "the register map's version", 16),
    Register("ARRAY", 0x58, "The built array", (
        Field("rows", 0, 8, "RO", "array rows"), Field("cols", 8, 8, "RO", "array columns"))),
    _whole("CONFIG_ID", 0x5C, "RO", "CRC-32 of the config's hardware fields (programs carry the same value)"),
    _whole("WINDOW_REFUSED", 0x60, "RO", "memory requests the bus guard refused since reset (they left the window); "
                                         "sticky: runs and starts do not clear it; stops at 65535", 16),
)


def by_name(name: str) -> Register:
    """The register called ``name``."""
    for register in REGISTERS:
        if register.name == name:
            return register
    raise KeyError(f"no register {name!r}")


def port_name(register: Register, field: Field) -> str:
    """The name of a field's port on the register file and in :class:`RegisterModel`: ``program_address`` for a
    whole register, ``control_ap_start`` for a field."""
    return register.name.lower() if field.name == "value" else f"{register.name.lower()}_{field.name}"


class RegisterModel:
    """The register map's behaviour in Python, built from :data:`REGISTERS` and :data:`ACCESS` (a model of
    :class:`esb_hw.hw.bus.registers.RegisterFile`, one access at a time).

    The bus side is :meth:`read` and :meth:`write`; the hardware side is :meth:`drive` (an ``RO`` field's value),
    :meth:`set` (a ``W1C``/``COR`` flag), :meth:`clear` (a ``W1S`` flag) and ``model[port]`` (any field's value).
    Ports are named by :func:`port_name`.
    """

    def __init__(self, registers: tuple[Register, ...] = REGISTERS):
        self.registers = {register.offset: register for register in registers}
        self.fields = {port_name(register, field): field for register in registers for field in register.fields}
        self.values = dict.fromkeys(self.fields, 0)

    def _field(self, port: str, kinds: tuple[str, ...]) -> Field:
        field = self.fields[port]
        if field.access not in kinds:
            raise KeyError(f"{port} is {field.access}, not {' or '.join(kinds)}")
        return field

    def __getitem__(self, port: str) -> int:
        return self.values[port]

    def drive(self, port: str, value: int) -> None:
        field = self._field(port, ("RO",))
        self.values[port] = value & ((1 << field.width) - 1)

    def set(self, port: str) -> None:
        self._field(port, SET_BY_HARDWARE)
        self.values[port] = 1

    def clear(self, port: str) -> None:
        self._field(port, CLEARED_BY_HARDWARE)
        self.values[port] = 0

    def read(self, offset: int) -> int:
        """The word at byte ``offset`` (0 where no register is); clears its ``COR`` fields."""
        register = self.registers.get(offset & ~3 & ((1 << ADDRESS_BITS) - 1))
        if register is None:
            return 0
        word = 0
        for field in register.fields:
            port = port_name(register, field)
            word |= self.values[port] << field.lsb
            if field.access == "COR":
                self.values[port] = 0
        return word

    def write(self, offset: int, value: int, strobe: int = 0xF) -> None:
        """A bus write of ``value`` with byte ``strobe``s; only the bytes selected count."""
        register = self.registers.get(offset & ~3 & ((1 << ADDRESS_BITS) - 1))
        if register is None:
            return
        byte_mask = sum(0xFF << (8 * lane) for lane in range(DATA_BITS // 8) if strobe >> lane & 1)
        for field in register.fields:
            port = port_name(register, field)
            bits = (1 << field.width) - 1
            written = (value & byte_mask) >> field.lsb & bits
            selected = byte_mask >> field.lsb & bits
            if field.access == "RW":
                self.values[port] = (self.values[port] & ~selected) | written
            elif field.access == "W1C":
                self.values[port] &= ~written & bits
            elif field.access == "W1S":
                self.values[port] |= written


#: Config keys that do not change the hardware a program needs.
_NOT_HARDWARE = ("name", "clock_mhz")


def config_id(config_dict: dict) -> int:
    """CRC-32 of a config's hardware fields (``AcceleratorConfig.to_dict()``; its name and clock left out)."""
    fields = {key: value for key, value in config_dict.items() if key not in _NOT_HARDWARE}
    return zlib.crc32(json.dumps(fields, sort_keys=True).encode())


def regmap_dict(config_dict: dict | None = None) -> dict:
    """The register map as plain data (what ``regmap.json`` holds); with a config, its constants too."""
    result = {
        "name": "esb_system", "version": REGMAP_VERSION, "data_bits": DATA_BITS, "address_bits": ADDRESS_BITS,
        "access": ACCESS,
        "registers": [{"name": register.name, "offset": register.offset, "description": register.description,
                       "fields": [{"name": field.name, "lsb": field.lsb, "width": field.width, "access": field.access,
                                   "description": field.description} for field in register.fields]}
                      for register in REGISTERS],
        "errors": {str(code): {"name": name, "meaning": meaning} for code, (name, meaning) in ENGINE_ERRORS.items()},
        "window_details": {str(detail): {"name": name, "meaning": meaning}
                           for detail, (name, meaning) in WINDOW_DETAILS.items()},
        "corrupted_details": {str(detail): {"name": name, "meaning": meaning}
                              for detail, (name, meaning) in CORRUPTED_DETAILS.items()},
        "constants": {"MAGIC": MAGIC},
    }
    if config_dict is not None:
        result["constants"].update(CONFIG_ID=config_id(config_dict), ROWS=config_dict["array"]["rows"],
                                   COLS=config_dict["array"]["cols"])
        result["config"] = config_dict
    return result


def regmap_json(config_dict: dict | None = None) -> str:
    return json.dumps(regmap_dict(config_dict), indent=2, sort_keys=True) + "\n"


def c_header(config_dict: dict | None = None) -> str:
    """A C header with ``ESB_<REG>_OFFSET`` and ``ESB_<REG>_<FIELD>_SHIFT``/``_MASK``/``_WIDTH`` for every field,
    the error codes as ``ESB_ERROR_<NAME>`` and the constants as ``ESB_<NAME>``."""
    data = regmap_dict(config_dict)
    lines = [f"/* esb-hw system register map, version {REGMAP_VERSION}. Generated by esb_hw/regmap.py; do not edit. */",
             "#ifndef ESB_REGMAP_H", "#define ESB_REGMAP_H", ""]
    for register in REGISTERS:
        lines.append(f"/* {register.name}: {register.description} */")
        lines.append(f"#define ESB_{register.name}_OFFSET 0x{register.offset:02X}u")
        for field in register.fields:
            prefix = f"ESB_{register.name}_{field.name.upper()}"
            lines += [f"#define {prefix}_SHIFT {field.lsb}u", f"#define {prefix}_WIDTH {field.width}u",
                      f"#define {prefix}_MASK 0x{field.mask:08X}u"]
        lines.append("")
    for code, (name, _meaning) in ENGINE_ERRORS.items():
        lines.append(f"#define ESB_ERROR_{name.upper()} {code}u")
    lines.append("")
    for detail, (name, _meaning) in WINDOW_DETAILS.items():
        lines.append(f"#define ESB_WINDOW_DETAIL_{name.upper()} {detail}u")
    for detail, (name, _meaning) in CORRUPTED_DETAILS.items():
        lines.append(f"#define ESB_CORRUPTED_DETAIL_{name.upper()} {detail}u")
    lines.append("")
    for name, value in sorted(data["constants"].items()):
        lines.append(f"#define ESB_{name} 0x{value:08X}u")
    lines += ["", "#endif /* ESB_REGMAP_H */", ""]
    return "\n".join(lines)
