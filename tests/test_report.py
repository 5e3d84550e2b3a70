"""The quantization report (esb_hw/quant/report.py) and the README table it generates."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from esb_hw.quant import ESBFormat, lambda_for
from esb_hw.quant.report import README_BEGIN, README_END, main, markdown_table, report_rows, update_readme

README = Path(__file__).resolve().parents[1] / "README.md"
NOISE_SEEDS = range(16)
NOISE_ULPS = 4


@pytest.fixture(scope="module")
def rows():
    return report_rows()


def readme_table() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index(README_BEGIN) + len(README_BEGIN) + 1: text.index(README_END)]


def test_readme_table_is_the_generated_one(rows):
    assert readme_table() == markdown_table(rows), "README table is stale: run `make report`"


def nudge(value: float, rng: np.random.Generator, max_ulps: int = NOISE_ULPS) -> float:
    """``value`` moved by a random number of ulp in ``-max_ulps..max_ulps`` (what another machine may compute)."""
    steps = int(rng.integers(-max_ulps, max_ulps + 1))
    for _ in range(abs(steps)):
        value = np.nextafter(value, np.inf if steps > 0 else -np.inf)
    return float(value)


def with_last_bit_noise(rows, seed: int):
    rng = np.random.default_rng(seed)
    return [dataclasses.replace(row, gaussian_mse=nudge(row.gaussian_mse, rng), laplace_mse=nudge(row.laplace_mse, rng))
            for row in rows]


def assert_table_stable(rows, reference: str) -> None:
    """The checker: ``markdown_table`` of ``rows`` with every MSE moved in its last bits equals ``reference``."""
    for seed in NOISE_SEEDS:
        assert markdown_table(with_last_bit_noise(rows, seed)) == reference, f"table changed under noise seed {seed}"


def bold_cells(table: str) -> set[tuple[str, str, int]]:
    """``(bits, quantizer, column)`` of every bold cell."""
    cells = set()
    for line in table.splitlines():
        fields = [field.strip() for field in line.strip("|").split("|")]
        cells |= {(fields[0], fields[1], column) for column, field in enumerate(fields)
                  if re.fullmatch(r"\*\*.*\*\*", field)}
    return cells


def raw_float_best(rows) -> set[tuple[int, str, str]]:
    """The rows ``min`` on the raw floats would mark (the old rule, which is not stable)."""
    best = set()
    for bits in {row.bits for row in rows}:
        group = [row for row in rows if row.bits == bits]
        for column in ("gaussian_mse", "laplace_mse"):
            smallest = min(getattr(row, column) for row in group)
            best |= {(bits, row.quantizer, column) for row in group if getattr(row, column) == smallest}
    return best


def test_table_is_identical_under_last_bit_noise(rows):
    assert_table_stable(rows, markdown_table(rows))


def test_last_bit_noise_moves_raw_float_minima(rows):
    # The noise is strong enough to matter: it changes which rows min() on raw floats picks (the 3-bit ties),
    # so the test above would fail for a table that chose its marks that way.
    assert any(raw_float_best(with_last_bit_noise(rows, seed)) != raw_float_best(rows) for seed in NOISE_SEEDS)


def test_stability_checker_catches_a_real_difference(rows):
    reference = markdown_table(rows)
    marks = bold_cells(reference)
    assert ("3", "ESB k=1 (e=1)", 3) in marks and ("4", "APoT", 3) not in marks
    changed = []
    for row in rows:
        if (row.bits, row.quantizer) == (3, "ESB k=1 (e=1)"):  # a tied best, now worse in the 4th digit
            row = dataclasses.replace(row, gaussian_mse=row.gaussian_mse * 1.002)
        if (row.bits, row.quantizer) == (4, "APoT"):  # now best by 0.1 %
            best = min(other.gaussian_mse for other in rows if other.bits == 4)
            row = dataclasses.replace(row, gaussian_mse=best * 0.999)
        changed.append(row)
    changed_marks = bold_cells(markdown_table(changed))
    assert marks - changed_marks == {("3", "ESB k=1 (e=1)", 3), ("4", "ESB k=1 (e=2)", 3)}
    assert changed_marks - marks == {("4", "APoT", 3)}
    with pytest.raises(AssertionError, match="table changed under noise seed 0"):
        assert_table_stable(changed, reference)


def test_stale_table_is_detected(tmp_path):
    copy = tmp_path / "README.md"
    copy.write_text(f"intro\n{README_BEGIN}\n| stale |\n{README_END}\nrest\n", encoding="utf-8")
    update_readme(copy, "| fresh |\n")
    assert copy.read_text(encoding="utf-8") == f"intro\n{README_BEGIN}\n| fresh |\n{README_END}\nrest\n"


def test_rows_cover_every_esb_k_and_the_baselines():
    rows = report_rows(range(5, 6))
    names = [row.quantizer for row in rows]
    assert names == ["ESB k=0 (e=4)", "ESB k=1 (e=3)", "ESB k=2 (e=2)", "ESB k=3 (e=1)", "ESB k=4 (e=0)",
                     "uniform", "power-of-two", "APoT"]
    esb_k2 = rows[2]
    assert esb_k2.gaussian_scale == pytest.approx(lambda_for(ESBFormat(5, 2)) * ESBFormat(5, 2).max_value)
    # Uniform and e = 0/1 ESB are the same level set.
    assert rows[3].gaussian_mse == pytest.approx(rows[5].gaussian_mse, rel=1e-9)


def test_esb_beats_uniform_and_pot_from_4_bits_on_gaussians():
    for bits in range(4, 9):
        rows = report_rows(range(bits, bits + 1))
        best_esb = min(row.gaussian_mse for row in rows if row.quantizer.startswith("ESB"))
        baselines = {row.quantizer: row.gaussian_mse for row in rows if not row.quantizer.startswith("ESB")}
        assert best_esb < baselines["uniform"] and best_esb < baselines["power-of-two"]


def test_cli_prints_table(capsys):
    assert main(["--bits", "3"]) == 0
    assert capsys.readouterr().out.startswith("| bits | quantizer |")


def test_cli_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    target = tmp_path / "levels.png"
    assert main(["--bits", "3", "--plot", str(target)]) == 0
    assert target.read_bytes().startswith(b"\x89PNG")
    assert main(["--bits", "3", "--plot", str(target)]) == 2  # never overwrite silently
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["--bits", "3", "--plot", str(target), "--force"]) == 0


def test_cli_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert main(["--bits", "3", "--plot", str(tmp_path / "x.png")]) == 2
    assert "--plot needs matplotlib: pip install 'esb-hw[plot]'" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--bits", "2"], "bits must lie in 3..10"),
    (["--bits", "8..11"], "bits must lie in 3..10"),
    (["--bits", "x"], "expected N or N..M"),
])
def test_cli_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_readme_without_markers(tmp_path, capsys):
    target = tmp_path / "R.md"
    target.write_text("no markers\n", encoding="utf-8")
    assert main(["--bits", "3", "--update-readme", str(target)]) == 2
    assert "has no" in capsys.readouterr().err


def test_bad_files_exit_2_with_one_line(tmp_path, capsys):
    binary = tmp_path / "README.md"
    binary.write_bytes(b"\xff\xfe not utf-8")
    assert main(["--bits", "3", "--update-readme", str(binary)]) == 2
    assert capsys.readouterr().err == f"error: cannot read {binary}: not UTF-8 text\n"
    assert main(["--bits", "3", "--plot", str(tmp_path / "missing" / "levels.png")]) == 2
    captured = capsys.readouterr()
    assert "folder" in captured.err and "does not exist" in captured.err and captured.out == ""
