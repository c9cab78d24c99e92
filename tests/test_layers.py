"""Each folder is one layer and imports point down; docs/architecture.md names every module of the tree."""

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# bottom to top; a unit imports only from units of lower layers (docs/architecture.md draws them)
LAYERS = [
    {"tipr/config.py", "tipr/hub.py", "tipr/losses.py", "tipr/metrics.py", "tipr/_torchvision_compat.py"},
    {"tipr/data"},
    {"tipr/ecca", "tipr/gea"},
    {"tipr/models"},
    {"tipr/generation", "tipr/objectives.py"},
    {"tipr/evaluate.py", "tipr/generate.py", "tipr/index", "tipr/attribute_oracle.py"},
    {"tipr/training", "tipr/app"},
    {"tipr/study"},  # runs train/run.py and reads its flags to know what a run trains
]
LAYER = {unit: level for level, units in enumerate(LAYERS) for unit in units}
LOCAL = {"train", "tests", "benchmarks", "assets", "tools", "app"}  # repo folders and scripts that are not packages


def _unit(module: str) -> str:
    """tipr.ecca.hsng -> tipr/ecca; tipr.objectives -> tipr/objectives.py."""
    parts = module.split(".")
    return f"tipr/{parts[1]}" if (REPO / "tipr" / parts[1]).is_dir() else f"tipr/{parts[1]}.py"


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return found


def _package_files() -> list[Path]:
    return sorted(p for p in (REPO / "tipr").rglob("*.py") if p != REPO / "tipr" / "__init__.py")


@pytest.mark.parametrize("path", _package_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_imports_point_down(path):
    rel = path.relative_to(REPO)
    unit = f"tipr/{rel.parts[1]}" if len(rel.parts) > 2 else rel.as_posix()
    assert unit in LAYER, f"{unit} is in no layer: add it to LAYERS here and to docs/architecture.md"
    upward = [m for m in _imports(path) if m.startswith("tipr.") and _unit(m) != unit
              and LAYER.get(_unit(m), len(LAYERS)) >= LAYER[unit]]
    assert not upward, f"{rel} imports {upward}: a layer imports only from the layers below it"


@pytest.mark.parametrize("script", sorted((REPO / "train").glob("*.py")), ids=lambda p: p.name)
def test_training_scripts_import_only_tipr(script):
    local = [m for m in _imports(script) if m.split(".")[0] in LOCAL]
    assert not local, f"{script.name} imports {local}; scripts keep their logic in the tipr package"


def _documented_paths() -> set[str]:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("## Modules", 1)[1].split("```", 2)[1]
    stack: list[tuple[int, str]] = []
    paths = set()
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+)", line)
        if not match or not re.match(r"^[\w.*/-]+$", match.group(2)) or not match.group(2).endswith((".py", "/")):
            continue
        depth, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        path = "".join(n for _, n in stack) + name
        if name.endswith("/"):
            stack.append((depth, name))
        else:
            paths.add(path)
    return paths


def test_architecture_page_names_every_module_and_no_other():
    actual = {p.relative_to(REPO).as_posix() for p in _package_files() if p.name != "__init__.py"}
    actual |= {p.relative_to(REPO).as_posix() for p in (REPO / "train").glob("*.py")}
    documented = _documented_paths() - {"tipr/__init__.py"}
    assert sorted(actual - documented) == [], "modules missing from docs/architecture.md"
    assert sorted(documented - actual) == [], "docs/architecture.md names modules that do not exist"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
