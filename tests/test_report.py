"""The quantization report (esb_hw/quant/report.py) and the README table it generates."""

from pathlib import Path

import pytest

from esb_hw.quant import ESBFormat, lambda_for
from esb_hw.quant.report import README_BEGIN, README_END, main, markdown_table, report_rows, update_readme

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_table() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index(README_BEGIN) + len(README_BEGIN) + 1: text.index(README_END)]


def test_readme_table_is_the_generated_one():
    assert readme_table() == markdown_table(report_rows()), "README table is stale: run `make report`"


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
