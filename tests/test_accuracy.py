"""esb_hw/frontend/accuracy.py: the digits accuracy rows (the README's are regenerated and compared), the
fine-tuned rows, the format costs read from the formats sweep, the table text and the command's errors."""

from pathlib import Path

import pytest

from esb_hw.frontend import accuracy
from esb_hw.frontend.accuracy import (
    BEGIN,
    END,
    EXAMPLES,
    FORMAT_COSTS,
    AccuracyRow,
    accuracy_rows,
    accuracy_table,
    load_costs,
    load_digits_model,
)
from esb_hw.frontend.datasets import load_split

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def three_bit_rows():
    return accuracy_rows(load_digits_model(), load_split(), bit_widths=(3,), qat_folder=EXAMPLES)


def readme_rows(prefix: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    block = text[text.index(BEGIN):text.index(END)]
    return [line for line in block.splitlines() if line.startswith(prefix)]


def test_readme_three_bit_rows_are_what_the_command_makes(three_bit_rows):
    """The README's generated table holds: its 3/3 rows are regenerated here (same on every machine)."""
    split = load_split()
    float_accuracy = float((load_digits_model().predict(split.test_images) == split.test_labels).mean())
    table = accuracy_table(three_bit_rows, float_accuracy, len(split.test_labels))
    generated = [line for line in table.splitlines() if line.startswith("| 3/3 ") or line.startswith("| 32/32 ")]
    assert len(generated) == 1 + 2 * 3
    assert readme_rows("| 3/3 ") + readme_rows("| 32/32 ") == generated[1:] + generated[:1]


def test_fine_tuned_rows_cover_every_shipped_file(three_bit_rows):
    tuned = {(row.weights, row.ends_8bit): row.fine_tuned for row in three_bit_rows}
    # ESB(3,0) (esb3_a3) and ESB(3,1), the uniform format (uniform3_a3), both have fine-tuned weights
    assert tuned[("esb:3:0", True)] is not None and tuned[("esb:3:1", True)] is not None
    assert tuned[("esb:3:0", False)] is None and tuned[("apot:3", True)] is None
    assert all(0.9 < value <= 1 for value in tuned.values() if value is not None)


def test_every_qat_file_is_shipped():
    for tag in accuracy.QAT_FILES:
        assert (EXAMPLES / f"digits_qat_{tag}.npz").is_file(), tag


def test_costs_come_from_the_formats_sweep():
    """The committed formats sweep (``make frontier``) gives each measured format's LUT/MAC, and the README's
    frontier table shows the same figures."""
    import json

    document = json.loads(FORMAT_COSTS.read_text(encoding="utf-8"))
    assert document["sweep"] == "formats" and document["measures"] == ["resources", "accuracy"]
    costs = load_costs()
    assert len(costs) == len(document["records"]) == 13
    assert costs[("ESB(4,2)", "ESB(4,4,unsigned)")]["lut_per_mac"] == \
        document["records"][4]["measures"]["resources"]["values"]["lut_per_mac"]
    measured = {key: cost["lut_per_mac"] for key, cost in costs.items() if cost["lut_per_mac"] is not None}
    assert len(measured) >= 10
    text = README.read_text(encoding="utf-8")
    block = text[text.index("<!-- explore:formats:begin -->"):text.index("<!-- explore:formats:end -->")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in block.splitlines()
            if line.startswith("|")]
    column = rows[0].index("LUT/MAC")
    checked = 0
    for cells in rows[2:]:
        values = document["records"][int(cells[0])]["measures"]["resources"].get("values")
        assert cells[column] == ("—" if values is None else f"{values['lut_per_mac']:.2f}"), cells
        checked += 1
    assert checked == 13


@pytest.mark.parametrize("args, message", [
    (["--bits", "6"], "--bits takes widths among 3, 4, 5, 8"),
    (["--bits", "x"], "--bits takes comma-separated widths"),
    (["--model", "resnet9"], "--model takes digits or resnet_mnist, got 'resnet9'"),
    (["--model", "resnet_mnist", "--bits", "4"], "--bits applies to the digits tables only, not to --model "
                                                 "resnet_mnist"),
])
def test_command_errors_are_one_line(args, message, capsys):
    assert accuracy.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_bad_cost_files(tmp_path):
    from esb_hw.errors import InputError

    (tmp_path / "costs.json").write_text("{}")
    with pytest.raises(InputError, match="not an esb-hw explore result"):
        load_costs(tmp_path / "costs.json")
    (tmp_path / "other.json").write_text('{"measures": ["throughput"], "records": []}')
    with pytest.raises(InputError, match="an explore result without the resources measure"):
        load_costs(tmp_path / "other.json")
    with pytest.raises(InputError, match="no such file"):
        load_costs(tmp_path / "none.json")
    assert load_costs(None) == {}


def test_findings_compare_esb_with_uniform_and_dda_with_max():
    rows = [AccuracyRow(4, "esb:4:1", False, {"dda": 0.95, "max": 0.97}),
            AccuracyRow(4, "uniform:4", False, {"dda": 0.96, "max": 0.96}),
            AccuracyRow(8, "esb:8:4", False, {"dda": 0.99, "max": 0.99})]
    text = accuracy.findings(rows)
    assert "4/4 all layers: ESB(4,1), e=2 95.0 % against 96.0 % (-1.0 points)" in text
    assert "ESB(4,1), e=2 4/4 -2.0; uniform = ESB(4,2) 4/4 ±0.0." in text
    assert "ESB(8,4)" not in text  # 8 bits: outside both comparisons


def test_the_residual_table_renders_each_row():
    result = {"model": "resnet_mnist", "dataset": "mnist5k", "test_images": 1000, "float": 0.987,
              "rows": [{"weights": "esb:4:1", "activations": 4, "ends_8bit": False, "accuracy": 0.804, "qat": 0.976,
                        "lut_per_mac": 21.98},
                       {"weights": "uniform:4", "activations": 4, "ends_8bit": False, "accuracy": 0.935, "qat": 0.97,
                        "lut_per_mac": 16.48},
                       {"weights": "pot:4", "activations": 4, "ends_8bit": True, "accuracy": 0.71, "qat": None,
                        "lut_per_mac": None},
                       {"weights": "esb:4:1", "activations": 8, "ends_8bit": False, "accuracy": 0.972, "qat": None,
                        "lut_per_mac": None}]}
    text = accuracy.graph_accuracy_table(result)
    lines = text.splitlines()
    assert lines[2:7] == ["| float (NumPy) | float | float | 98.7 | | |",
                          "| ESB(4,1), e=2 | 4-bit | 4/4 | 80.4 | 97.6 | 21.98 |",
                          "| uniform = ESB(4,2) | 4-bit | 4/4 | 93.5 | 97.0 | 16.48 |",
                          "| power-of-two = ESB(4,0) | 4-bit | 8/8 | 71.0 |  |  |",
                          "| ESB(4,1), e=2 | 8-bit | 4/8 | 97.2 |  |  |"]
    # the most accuracy per LUT/MAC: uniform's 97.0 / 16.48 beats ESB(4,1)'s 97.6 / 21.98
    assert ("uniform = ESB(4,2) at 4/4 gives `resnet_mnist` the most accuracy per LUT/MAC: 97.0 % (QAT) at 16.48 "
            "LUT/MAC.") in text


@pytest.mark.slow
def test_readme_residual_table_is_what_the_command_makes():
    """The README's resnet_mnist table, regenerated (about two minutes)."""
    text = README.read_text(encoding="utf-8")
    block = text[text.index(accuracy.GRAPH_BEGIN) + len(accuracy.GRAPH_BEGIN):text.index(accuracy.GRAPH_END)]
    result = accuracy.graph_accuracy("resnet_mnist", costs=load_costs())
    assert block.strip() == accuracy.graph_accuracy_table(result).strip()
