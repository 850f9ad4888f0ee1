"""The engine stays GUI-free: no module under engine/ imports Qt, pyqtgraph or the app."""
import ast
import pathlib
import subprocess
import sys

ENGINE = pathlib.Path(__file__).resolve().parent.parent / "engine"
FORBIDDEN = ("PySide6", "pyqtgraph", "combiner_app", "PyQt5", "PyQt6")


def test_no_gui_imports_in_engine_sources():
    bad = []
    for f in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{f.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not bad, bad
    assert len(list(ENGINE.rglob("*.py"))) > 5


def test_importing_the_engine_loads_no_gui_module():
    code = ("import sys, engine.cli, engine.codec, engine.learn; "
            "print([m for m in sys.modules if m.split('.')[0] in %r])" % (FORBIDDEN,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ENGINE.parent)
    assert out.stdout.strip() == "[]"


def test_import_linter_contract():
    """The same rule through import-linter (declared in pyproject.toml)."""
    r = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                        "lint_imports_command()"], capture_output=True, text=True, cwd=ENGINE.parent)
    assert "KEPT" in r.stdout and "BROKEN" not in r.stdout, r.stdout + r.stderr
