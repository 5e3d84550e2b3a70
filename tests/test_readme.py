"""The README's Python examples run as written.

Every ```python block of README.md is executed on its own: in a fresh namespace (so each block must be
self-contained, as a reader would paste it), in a temporary working directory, with warnings as errors (the
project's pytest setting). A block fails the test if it raises, and its asserts are the checks.
"""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """``(line, source)`` of every ```python block of ``markdown``; ``line`` is the 1-based line of its first
    code line."""
    return [(markdown.count("\n", 0, found.start(1)) + 1, found.group(1)) for found in _PYTHON_BLOCK.finditer(markdown)]


def run_block(source: str, line: int, name: str = "README.md") -> dict:
    """Execute ``source`` in a fresh namespace and return it.

    The code is compiled with its position in ``name``, so a traceback points at the README line. Any
    exception becomes an ``AssertionError`` that starts with ``name:line`` of the failing statement.
    """
    namespace = {"__name__": "__readme__"}
    code = compile("\n" * (line - 1) + source, name, "exec")
    try:
        exec(code, namespace)
    except Exception as error:
        frames = [frame for frame in _traceback_frames(error.__traceback__) if frame[0] == name]
        where = frames[-1][1] if frames else line
        raise AssertionError(f"{name}:{where}: {type(error).__name__}: {error}") from error
    return namespace


def _traceback_frames(traceback) -> list[tuple[str, int]]:
    frames = []
    while traceback is not None:
        frames.append((traceback.tb_frame.f_code.co_filename, traceback.tb_lineno))
        traceback = traceback.tb_next
    return frames


README_BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_readme_has_python_examples():
    assert len(README_BLOCKS) >= 2, "expected the ESB format and golden model examples"


@pytest.mark.parametrize(("line", "source"), README_BLOCKS, ids=[f"README.md:{line}" for line, _ in README_BLOCKS])
def test_readme_example_runs(line, source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_block(source, line)


# ---- the extractor and the runner can fail --------------------------------------------------------------------
SAMPLE = """\
# Title

```python
x = 1
assert x == 1
```

```sh
python -c 'raise SystemExit(1)'
```

```
not code
```

```python
y = x + 1
```
"""


def test_extractor_finds_only_python_blocks_with_their_lines():
    assert python_blocks(SAMPLE) == [(4, "x = 1\nassert x == 1\n"), (17, "y = x + 1\n")]


def test_passing_block_runs():
    assert run_block("x = 1\nassert x == 1\n", 4)["x"] == 1


def test_raising_block_is_reported_with_its_line():
    # Each block runs in a fresh namespace: the second block of SAMPLE cannot see the first block's x.
    line, source = python_blocks(SAMPLE)[1]
    with pytest.raises(AssertionError, match=r"^README\.md:17: NameError: name 'x' is not defined"):
        run_block(source, line)


def test_failing_assert_is_reported_with_its_line():
    with pytest.raises(AssertionError, match=r"^README\.md:11: AssertionError: levels differ"):
        run_block("a = 1\nb = 2\nassert a == b, 'levels differ'\n", 9)


def test_error_inside_a_called_function_points_at_the_readme_line():
    source = "import numpy as np\nnp.zeros(2).reshape(3)\n"
    with pytest.raises(AssertionError, match=r"^README\.md:6: ValueError: cannot reshape"):
        run_block(source, 5)
