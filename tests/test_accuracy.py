"""esb_hw/frontend/accuracy.py: the digits accuracy rows (the README's are regenerated and compared), the
fine-tuned rows, the Pareto front (fed a dominated point), the table text and the command's errors."""

import re
from pathlib import Path

import pytest

from esb_hw.frontend import accuracy
from esb_hw.frontend.accuracy import (
    BEGIN,
    END,
    EXAMPLES,
    AccuracyRow,
    accuracy_rows,
    accuracy_table,
    load_costs,
    load_digits_model,
    pareto_rows,
    pareto_table,
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


def point(name, bits, accuracy_value, luts):
    return AccuracyRow(bits, name, False, {"dda": accuracy_value}), {
        "weights": name, "lut_per_mac": luts, "array_gops_per_klut": 1.0, "system_gops_per_klut_model": 1.0,
        "mapping": "shift", "competent": True}


def test_pareto_front_drops_dominated_formats():
    from esb_hw.frontend.quantize import WeightQuantizer
    from esb_hw.quant import ESBFormat

    rows, costs = [], {}
    for name, accuracy_value, luts in (("esb:4:0", 0.90, 20.0), ("esb:4:1", 0.95, 30.0), ("esb:4:2", 0.94, 25.0),
                                       ("apot:4", 0.99, 1.0)):
        row, cost = point(name, 4, accuracy_value, luts)
        rows.append(row)
        fmt = WeightQuantizer(name).fmt
        if fmt is not None:
            costs[(str(fmt), str(ESBFormat(4, 4, signed=False)))] = cost
    points = {p["weights"]: p["pareto"] for p in pareto_rows(rows, costs)}
    assert points == {"esb:4:0": True, "esb:4:2": True, "esb:4:1": True}  # APoT has no hardware, no point
    # a format both cheaper and more accurate than another removes it from the front
    row, cost = point("esb:4:1", 4, 0.96, 19.0)
    costs[("ESB(4,1)", "ESB(4,4,unsigned)")] = cost
    points = {p["weights"]: p["pareto"] for p in pareto_rows(rows[:1] + [row] + rows[2:], costs)}
    assert points == {"esb:4:0": False, "esb:4:1": True, "esb:4:2": False}
    text = pareto_table(pareto_rows(rows[:1] + [row] + rows[2:], costs))
    assert "Pareto front (no format is both more accurate and cheaper): ESB(4,1), e=2 at 4/4." in text


def test_readme_pareto_table_matches_the_committed_costs():
    costs = load_costs(EXAMPLES / "format_cost.json")
    checked = 0
    for line in readme_rows("| "):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 8 and re.fullmatch(r"\d+\.\d\d", cells[3]):  # a Pareto row: LUT/MAC in the 4th cell
            bits = int(cells[1].split("/")[0])
            name = re.search(r"ESB\(\d+,\d+\)", cells[0])[0]
            assert costs[(name, f"ESB({bits},{bits},unsigned)")]["lut_per_mac"] == float(cells[3]), line
            checked += 1
    measured = sum(1 for cost in costs.values() if cost["lut_per_mac"] is not None)
    assert checked == measured > 0


@pytest.mark.parametrize("args, message", [
    (["--bits", "6"], "--bits takes widths among 3, 4, 5, 8"),
    (["--bits", "x"], "--bits takes comma-separated widths"),
    (["--costs", "/nonexistent/costs.json"], "costs.json: no such file"),
    (["--model", "resnet9"], "--model takes digits or resnet_mnist, got 'resnet9'"),
    (["--model", "resnet_mnist", "--bits", "4", "--no-costs"],
     "--bits, --no-costs apply to the digits tables only, not to --model resnet_mnist"),
])
def test_command_errors_are_one_line(args, message, capsys):
    assert accuracy.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_bad_cost_files(tmp_path):
    from esb_hw.errors import InputError

    (tmp_path / "costs.json").write_text("{}")
    with pytest.raises(InputError, match="not a format-cost file"):
        load_costs(tmp_path / "costs.json")
    (tmp_path / "partial.json").write_text('{"complete": false, "rows": []}')
    with pytest.raises(InputError, match="incomplete .*--resume"):
        load_costs(tmp_path / "partial.json")


def test_findings_compare_esb_with_uniform_and_dda_with_max():
    rows = [AccuracyRow(4, "esb:4:1", False, {"dda": 0.95, "max": 0.97}),
            AccuracyRow(4, "uniform:4", False, {"dda": 0.96, "max": 0.96}),
            AccuracyRow(8, "esb:8:4", False, {"dda": 0.99, "max": 0.99})]
    text = accuracy.findings(rows)
    assert "4/4 all layers: ESB(4,1), e=2 95.0 % against 96.0 % (-1.0 points)" in text
    assert "ESB(4,1), e=2 4/4 -2.0; uniform = ESB(4,2) 4/4 ±0.0." in text
    assert "ESB(8,4)" not in text  # 8 bits: outside both comparisons


def test_plot_writes_a_png_and_never_overwrites(tmp_path):
    from esb_hw.errors import InputError
    from esb_hw.frontend.accuracy import plot_frontier

    points = [{"bits": 4, "label": "ESB(4,1), e=2", "accuracy": 0.95, "lut_per_mac": 22.0, "pareto": True},
              {"bits": 4, "label": "uniform = ESB(4,2)", "accuracy": 0.96, "lut_per_mac": 16.5, "pareto": True}]
    path = tmp_path / "frontier.png"
    plot_frontier(points, path, force=False)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="exists; pass --force"):
        plot_frontier(points, path, force=False)


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
    result = accuracy.graph_accuracy("resnet_mnist", costs=load_costs(EXAMPLES / "format_cost.json"))
    assert block.strip() == accuracy.graph_accuracy_table(result).strip()
