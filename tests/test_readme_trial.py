"""bench/readme_trial.py: it finds every README shell command (continuations joined, comments and the quick start's
own commands left out) and fails a command that exits wrongly or prints a traceback."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("readme_trial", ROOT / "bench" / "readme_trial.py")
trial = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trial)

SAMPLE = """\
```sh
make build   # quick start
source .venv/bin/activate
esb-hw infer --golden-only      # a comment
esb-hw infer --model a.onnx \\
    --json
# a comment line
```

```python
print("not shell")
```

```sh
esb-hw build --board zcu102 --vivado   # then the bitstream (needs Vivado)
```
"""


def test_commands_are_found_joined_and_commented():
    assert trial.commands(SAMPLE) == [("esb-hw infer --golden-only", "a comment"),
                                      ("esb-hw infer --model a.onnx --json", ""),
                                      ("esb-hw build --board zcu102 --vivado", "then the bitstream (needs Vivado)")]
    readme = trial.commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert any(command.startswith("esb-hw infer --model mine/model.onnx") for command, _ in readme)


def test_a_wrong_exit_code_or_a_traceback_fails():
    assert trial.run("true", "", 30)["ok"]
    assert not trial.run("exit 3", "", 30)["ok"]
    assert trial.run("echo 'error: no vivado' >&2; exit 2", "needs Vivado", 30)["ok"]
    traced = trial.run("python3 -c 'raise ValueError(1)'", "", 30)
    assert traced["traceback"] and not traced["ok"] and traced["last_line"] == "ValueError: 1"
