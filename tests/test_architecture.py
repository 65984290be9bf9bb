"""The layout is the architecture: capability packages may import only the layers below them.

Reads every module's imports (top-level and lazy ones inside functions) with `ast`, so a new upward import,
a Gradio import outside `playground/ui/`, an import cycle between packages or a file over the size
budget fails here rather than in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

PLAYGROUND = Path(__file__).resolve().parent.parent / "playground"

# package -> the playground packages it may import (its own package is always allowed)
ALLOWED: dict[str, set[str]] = {
    "fsutil": set(),
    "model": {"fsutil"},
    "data": {"fsutil"},
    "adapters": {"fsutil", "model"},
    "decode": {"fsutil", "model", "adapters"},
    "train": {"fsutil", "model", "data", "adapters"},
    "compare": {"fsutil", "model", "data", "adapters", "decode"},
    "inside": {"fsutil", "model", "adapters", "decode"},
    "classroom": {"fsutil", "model", "adapters", "decode", "compare"},
    "services": {"fsutil", "model", "data", "adapters", "decode", "train", "compare", "inside", "classroom"},
    "ui": {"fsutil", "model", "data", "adapters", "decode", "train", "compare", "inside", "classroom", "services"},
}
MAX_LINES = 300


def _package(path: Path) -> str:
    rel = path.relative_to(PLAYGROUND)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
    return names


def _modules() -> list[Path]:
    return sorted(p for p in PLAYGROUND.rglob("*.py") if p.name != "__init__.py")


def test_every_module_belongs_to_a_known_layer():
    unknown = {_package(p) for p in _modules()} - set(ALLOWED)
    assert not unknown, f"add these packages to ALLOWED (and ARCHITECTURE.md): {unknown}"


def test_no_upward_imports():
    bad = []
    for path in _modules():
        own = _package(path)
        for name in _imports(path):
            if not name.startswith("playground."):
                continue
            target = name.split(".")[1]
            if target != own and target not in ALLOWED[own]:
                bad.append(f"{path.relative_to(PLAYGROUND)} imports {name}")
    assert not bad, "\n".join(bad)


def test_gradio_only_in_ui():
    bad = [str(p.relative_to(PLAYGROUND)) for p in _modules()
           if _package(p) != "ui" and any(n == "gradio" or n.startswith("gradio.") for n in _imports(p))]
    assert not bad, f"Gradio imported outside playground/ui/: {bad}"


def test_allowed_layers_have_no_cycle():
    seen: dict[str, int] = {}

    def visit(pkg: str, stack: tuple[str, ...]) -> None:
        assert pkg not in stack, f"cycle: {' -> '.join(stack + (pkg,))}"
        for dep in ALLOWED[pkg]:
            visit(dep, stack + (pkg,))
        seen[pkg] = 1

    for pkg in ALLOWED:
        visit(pkg, ())


def test_files_stay_small():
    """Every Python file of the project, not only the packages: app.py, the benches, the tests, the dataset
    builders."""
    root = PLAYGROUND.parent
    files = [*_modules(), root / "app.py", *(root / "bench").glob("*.py"), *(root / "tests").glob("*.py"),
             *(root / "assets").rglob("*.py")]
    assert len(files) > 100 and root / "bench" / "classroom.py" in files
    big = {str(p.relative_to(root)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"split these files (over {MAX_LINES} lines): {big}"
