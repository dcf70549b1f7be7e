"""The package's shape (CONTRIBUTING.md#how-the-code-is-laid-out): formats know one
format, the hook's line knows no command; and the tests' own: none imports conftest."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "fpga_crihook"


def _imported_modules(path: Path) -> set[str]:
    """Every ``fpga_crihook`` module *path* imports, at any depth of the file."""
    return {name for name in _imports(path) if name.startswith("fpga_crihook")}


def _imports(path: Path) -> set[str]:
    """Every module *path* imports, and every name it imports from one, at any depth."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_gbs_and_aocx_know_neither_each_other_nor_the_store() -> None:
    for name, others in (("gbs", ("aocx", "bitstream")), ("aocx", ("gbs", "bitstream"))):
        imported = _imported_modules(PACKAGE / f"{name}.py")
        assert not {f"fpga_crihook.{other}" for other in others} & imported, name


def test_the_hooks_own_modules_import_no_operator_command() -> None:
    for path in PACKAGE.glob("*.py"):
        if path.name == "cli.py":
            continue
        imported = _imported_modules(path)
        assert not any(name.startswith("fpga_crihook.commands") for name in imported), path.name


def test_no_test_imports_conftest() -> None:
    """pytest finds the fixtures in conftest.py by itself; what a test imports by name is
    in helpers.py, a module like any other."""
    for path in TESTS.glob("*.py"):
        assert "conftest" not in _imports(path), path.name
