"""The import rules of the package (docs/architecture.md, "The layers"), checked by parsing every module's imports.

- the hardware (``esb_hw.hw``) imports neither the compiler, the golden model, the front end nor the driver;
- the compiler (``esb_hw.compiler``) does not import the hardware;
- the driver (``esb_hw.driver``, and the board's ``esb_hw/deploy`` files) imports nothing from Amaranth and nothing
  of the package beyond what ``deploy/`` carries;
- the contract (``esb_hw.contract``, ``esb_hw.layouts``, ``esb_hw.regmap``) imports neither the hardware nor the
  compiler;
- nothing in the package imports the checkout's ``sim``, ``tests``, ``bench`` or ``build``, or reaches above the
  package folder with ``Path(__file__)``.

Imports inside functions count as much as those at the top: a lazy import is still an edge.
"""

import ast
from pathlib import Path

import pytest

from esb_hw.build import DEPLOY_PACKAGE

PACKAGE = Path(__file__).resolve().parents[1] / "esb_hw"

#: (importer prefix, forbidden imported prefixes, why).
RULES = [
    ("esb_hw.hw", ("esb_hw.compiler", "esb_hw.quant.golden", "esb_hw.frontend", "esb_hw.driver", "esb_hw.infer"),
     "the hardware reads only the contract"),
    ("esb_hw.compiler", ("esb_hw.hw", "esb_hw.estimate", "esb_hw.sim", "amaranth.hdl", "amaranth.lib.wiring",
                         "amaranth.sim", "amaranth.back", "amaranth.build"), "the compiler reads only the contract"),
    ("esb_hw.contract", ("esb_hw.hw", "esb_hw.compiler", "esb_hw.frontend", "esb_hw.sim"), "the contract is a leaf"),
    ("esb_hw.layouts", ("esb_hw.hw", "esb_hw.compiler", "esb_hw.frontend", "esb_hw.sim"), "the contract is a leaf"),
    ("esb_hw.regmap", ("esb_hw.hw", "esb_hw.compiler", "esb_hw.frontend", "esb_hw.sim", "amaranth"),
     "the register map is pure Python"),
    ("esb_hw.driver", ("amaranth", "esb_hw.hw", "esb_hw.compiler", "esb_hw.sim", "esb_hw.config", "esb_hw.quant"),
     "the driver runs on the board with NumPy only"),
    ("esb_hw.deploy", ("amaranth", "esb_hw.hw", "esb_hw.compiler", "esb_hw.sim", "esb_hw.config", "esb_hw.quant"),
     "deploy/ carries the driver only"),
    ("esb_hw", ("sim", "tests", "bench", "build"), "the package ships alone"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Every module ``path`` imports (relative imports resolved), at any depth of the file."""
    tree = ast.parse(source if source is not None else path.read_text(), str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module
            found.add(stem)
            found.update(f"{stem}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


#: What the board's files may import from the package: exactly what deploy/ carries (esb_hw.build.DEPLOY_PACKAGE).
DEPLOYED = {path.removesuffix(".py").replace("/", ".").removesuffix(".__init__") for path in DEPLOY_PACKAGE}


def imported_names(imported: str) -> str:
    """``esb_hw.regmap.MAGIC`` -> ``esb_hw.regmap`` (a name imported from a module), modules as they are."""
    return imported if imported in DEPLOYED or imported.count(".") < 2 else imported.rsplit(".", 1)[0]


def violations(files: dict[str, tuple[Path, str | None]]) -> list[str]:
    """``importer imports imported (why)`` for every broken rule among ``files`` (name -> (path, source))."""
    found = []
    for name, (path, source) in sorted(files.items()):
        imports = imported_modules(path, source)
        if name == "esb_hw.compiler" or name.startswith("esb_hw.compiler."):
            found += [f"{name} imports {imported} (the compiler uses Amaranth's data layouts only)"
                      for imported in sorted(imports) if imported == "amaranth" or imported.startswith("amaranth.")
                      and imported.split(".")[1] not in ("lib",)]
        if name.startswith(("esb_hw.driver", "esb_hw.deploy")):
            found += [f"{name} imports {imported} (deploy/ does not carry it)" for imported in sorted(imports)
                      if imported.startswith("esb_hw") and imported_names(imported) not in DEPLOYED
                      and not imported_names(imported).startswith("esb_hw.driver.")]
        for importer, forbidden, why in RULES:
            if not (name == importer or name.startswith(importer + ".")):
                continue
            for imported in sorted(imported_modules(path, source)):
                if any(imported == bad or imported.startswith(bad + ".") for bad in forbidden):
                    found.append(f"{name} imports {imported} ({why})")
    return found


def package_files() -> dict[str, tuple[Path, str | None]]:
    files = {module_name(path): (path, None) for path in PACKAGE.rglob("*.py")}
    files.update({f"esb_hw.deploy.{path.stem}": (path, None) for path in (PACKAGE / "deploy").glob("*.py")})
    return files


def test_the_package_keeps_its_layers():
    assert violations(package_files()) == []


def test_a_planted_wrong_way_import_is_caught():
    """The checker itself: the hardware importing the compiler, lazily inside a function, is caught."""
    path = PACKAGE / "hw" / "core" / "array.py"
    planted = path.read_text() + "\n\ndef _planted():\n    from ...compiler.lowering import CoreTimeline\n"
    files = {"esb_hw.hw.core.array": (path, planted)}
    assert violations(files) == ["esb_hw.hw.core.array imports esb_hw.compiler.lowering (the hardware reads only "
                                 "the contract)", "esb_hw.hw.core.array imports esb_hw.compiler.lowering.CoreTimeline "
                                 "(the hardware reads only the contract)"]


@pytest.mark.parametrize(("name", "source", "expected"), [
    ("esb_hw.compiler.lowering", "from ..hw.core.array import OUTPUT_DEPTH\n", "esb_hw.hw.core.array"),
    ("esb_hw.driver.pynq_bus", "import amaranth\n", "amaranth"),
    ("esb_hw.infer", "from sim.system import run_system_rtl\n", "sim.system"),
    ("esb_hw.compiler.program", "from amaranth import Module\n", "amaranth"),
    ("esb_hw.compiler.timeline", "import amaranth.sim\n", "amaranth.sim"),
    ("esb_hw.driver.batch", "from ..layouts import pack\n", "esb_hw.layouts"),
    ("esb_hw.regmap", "from amaranth.lib import data\n", "amaranth.lib"),
])
def test_each_rule_catches_its_edge(name, source, expected):
    path = PACKAGE / (name.removeprefix("esb_hw.").replace(".", "/") + ".py")
    assert any(f"imports {expected} " in line for line in violations({name: (path, source)}))


def reaches_above(path: Path, source: str | None = None) -> list[int]:
    """Lines of ``path`` with ``...parents[n]`` that leave esb_hw/ (``n`` past the file's depth in the package)."""
    depth = len(path.relative_to(PACKAGE).parts) - 1  # parents[depth] is esb_hw/ itself
    tree = ast.parse(source if source is not None else path.read_text())
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "parents" and isinstance(node.slice, ast.Constant) and node.slice.value > depth]


def test_no_module_reaches_above_the_package():
    """The installed package has no checkout around it: no module reads ``configs/``, ``examples/`` or the like
    through ``Path(__file__).parents``."""
    assert [f"{path.relative_to(PACKAGE)}:{line}" for path in PACKAGE.rglob("*.py") for line in reaches_above(path)
            ] == []


def test_reaching_above_is_caught():
    path = PACKAGE / "frontend" / "accuracy.py"
    assert reaches_above(path, 'ROOT = Path(__file__).resolve().parents[1]\n') == []  # esb_hw/ itself
    assert reaches_above(path, 'ROOT = Path(__file__).resolve().parents[2] / "examples"\n') == [1]
