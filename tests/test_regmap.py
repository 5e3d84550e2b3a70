"""esb_hw/regmap.py: the register map is consistent, regmap.json and the C header say the same as the Python source
(the header compiled by the system C compiler), and the comparison catches a wrong value."""

import json
import shutil
import subprocess

import pytest

from esb_hw.data import shipped_config
from esb_hw.regmap import (
    ENGINE_ERRORS,
    MAGIC,
    REGISTERS,
    by_name,
    c_header,
    config_id,
    engine_error,
    regmap_dict,
    regmap_json,
)

CONFIG = shipped_config("default")


def test_registers_are_word_aligned_unique_and_fields_do_not_overlap():
    offsets = [register.offset for register in REGISTERS]
    assert len(set(offsets)) == len(offsets) and all(offset % 4 == 0 and offset < 4096 for offset in offsets)
    for register in REGISTERS:
        used = 0
        for field in register.fields:
            assert field.lsb + field.width <= 32, (register.name, field.name)
            assert not used & field.mask, (register.name, field.name)
            used |= field.mask


def test_pynq_control_layout_at_zero():
    control = by_name("CONTROL")
    assert control.offset == 0
    assert [(field.name, field.lsb) for field in control.fields] == [("ap_start", 0), ("ap_done", 1), ("ap_idle", 2),
                                                                     ("ap_ready", 3), ("abort", 8)]
    assert (by_name("GIE").offset, by_name("IER").offset, by_name("ISR").offset) == (0x04, 0x08, 0x0C)


def test_config_id_ignores_name_and_clock_only():
    base = CONFIG.to_dict()
    assert config_id(base) == config_id({**base, "name": "other", "clock_mhz": 100.0})
    changed = {**base, "engine": {**base["engine"], "entries": base["engine"]["entries"] * 2}}
    assert config_id(changed) != config_id(base)


def test_engine_error_names_known_and_unknown_codes():
    assert engine_error(7) == f"read: {ENGINE_ERRORS[7][1]}"
    assert engine_error(15).startswith("unknown: unknown error code 15")
    assert engine_error(10, 4).endswith("; detail 4: the descriptor's output transfer")
    assert engine_error(10, 7).endswith("; detail 7: unknown detail")
    assert engine_error(7, 4) == engine_error(7), "a detail only qualifies outside_window and corrupted"
    assert engine_error(11, 1).endswith("; detail 1: the parameters and weights the descriptor loads (its weights_crc)")


def header_values(tmp_path, header: str) -> dict:
    """Compile a C program that prints every macro of the header; return name -> value."""
    data = regmap_dict(CONFIG.to_dict())
    names = []
    for register in data["registers"]:
        names.append(f"ESB_{register['name']}_OFFSET")
        for field in register["fields"]:
            prefix = f"ESB_{register['name']}_{field['name'].upper()}"
            names += [f"{prefix}_SHIFT", f"{prefix}_WIDTH", f"{prefix}_MASK"]
    names += [f"ESB_ERROR_{error['name'].upper()}" for error in data["errors"].values()]
    names += [f"ESB_WINDOW_DETAIL_{detail['name'].upper()}" for detail in data["window_details"].values()]
    names += [f"ESB_CORRUPTED_DETAIL_{detail['name'].upper()}" for detail in data["corrupted_details"].values()]
    names += [f"ESB_{name}" for name in data["constants"]]
    (tmp_path / "esb_regmap.h").write_text(header)
    body = "\n".join(f'  printf("{name} %lu\\n", (unsigned long)({name}));' for name in names)
    (tmp_path / "main.c").write_text(f'#include <stdio.h>\n#include "esb_regmap.h"\nint main(void) {{\n{body}\n'
                                     "  return 0;\n}\n")
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "no C compiler (the README's machine has gcc)"
    subprocess.run([compiler, "-std=c99", "-Wall", "-Werror", "-o", str(tmp_path / "main"), str(tmp_path / "main.c")],
                   check=True, capture_output=True)
    output = subprocess.run([str(tmp_path / "main")], check=True, capture_output=True, text=True).stdout
    return {name: int(value) for name, value in (line.split() for line in output.splitlines())}


def expected_values(data: dict) -> dict:
    """What the header must say, written from regmap.json's data."""
    values = {}
    for register in data["registers"]:
        values[f"ESB_{register['name']}_OFFSET"] = register["offset"]
        for field in register["fields"]:
            prefix = f"ESB_{register['name']}_{field['name'].upper()}"
            values[f"{prefix}_SHIFT"] = field["lsb"]
            values[f"{prefix}_WIDTH"] = field["width"]
            values[f"{prefix}_MASK"] = ((1 << field["width"]) - 1) << field["lsb"]
    values.update({f"ESB_ERROR_{error['name'].upper()}": int(code) for code, error in data["errors"].items()})
    values.update({f"ESB_WINDOW_DETAIL_{detail['name'].upper()}": int(code)
                   for code, detail in data["window_details"].items()})
    values.update({f"ESB_CORRUPTED_DETAIL_{detail['name'].upper()}": int(code)
                   for code, detail in data["corrupted_details"].items()})
    values.update({f"ESB_{name}": value for name, value in data["constants"].items()})
    return values


def test_c_header_compiles_and_equals_regmap_json(tmp_path):
    data = json.loads(regmap_json(CONFIG.to_dict()))
    assert data["constants"]["MAGIC"] == MAGIC and data["constants"]["CONFIG_ID"] == config_id(CONFIG.to_dict())
    assert header_values(tmp_path, c_header(CONFIG.to_dict())) == expected_values(data)


def test_the_comparison_catches_a_wrong_header(tmp_path):
    data = json.loads(regmap_json(CONFIG.to_dict()))
    wrong = c_header(CONFIG.to_dict()).replace("#define ESB_STATUS_OFFSET 0x10u", "#define ESB_STATUS_OFFSET 0x14u")
    assert wrong != c_header(CONFIG.to_dict())
    with pytest.raises(AssertionError):
        assert header_values(tmp_path, wrong) == expected_values(data)


def test_docs_register_table_matches_the_map():
    """docs/system.md's register table is REGISTERS, field by field."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "system.md").read_text()
    documented = re.findall(r"^\| 0x([0-9A-F]{2}) \| `(\w+)` \| `(\w+)` \| ([\d:]+) \| (\w+) \|", text, re.M)
    expected = []
    for register in REGISTERS:
        for field in register.fields:
            bits = f"{field.lsb}" if field.width == 1 else f"{field.lsb + field.width - 1}:{field.lsb}"
            expected.append((f"{register.offset:02X}", register.name, field.name, bits, field.access))
    assert documented == expected
