"""The package's layering: which part may import which (so the one-concept-per-module map stays true)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "course_utils"

# part -> the parts it may import (besides itself). Lower parts never import higher ones.
BASE = {"checks", "config", "device", "report", "locations", "exercises"}
ALLOWED: dict[str, set[str]] = {
    **{name: BASE for name in BASE},
    "data": BASE,
    "checkpoint": BASE,
    "augmentation": BASE | {"data"},
    "models": BASE | {"data"},
    "losses": BASE | {"data", "models"},
    "inference": BASE | {"data", "models"},
    "metrics": BASE | {"data", "models", "inference"},
    "training": BASE | {"data", "checkpoint", "augmentation", "models", "losses", "inference"},
    "protocols": BASE | {"data", "checkpoint", "augmentation", "models", "losses", "inference", "metrics", "training"},
    "viz": BASE | {"data"},
    "widgets": BASE | {"data", "inference", "viz"},
    "offline_html": BASE,
    "runner": BASE | {"offline_html"},
    "runs": BASE | {"data", "checkpoint"},
}


def _part(module: str) -> str:
    """'course_utils.training.steps' -> 'training'; 'course_utils.viz' -> 'viz'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> set[str]:
    """Every course_utils module that `path` imports, at any depth (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "course_utils":
                found |= {f"course_utils.{alias.name}" for alias in node.names}
            elif node.module.startswith("course_utils."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("course_utils.")}
    return found


def test_every_part_is_known():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert parts <= set(ALLOWED), f"add these parts to the layering map: {sorted(parts - set(ALLOWED))}"


def test_no_part_imports_a_higher_one():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        own = _part(module) if path.name != "__init__.py" or path.parent != PACKAGE else ""
        if not own:
            continue
        for imported in _imports(path):
            other = _part(imported)
            if other and other != own and other not in ALLOWED[own]:
                violations.append(f"{module} imports {imported} ({own} may not import {other})")
    assert not violations, "\n".join(violations)


def test_the_layering_check_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from course_utils.training.loop import train_gan\n")
    assert "course_utils.training.loop" in _imports(bad)
    assert "training" not in ALLOWED["data"] and "metrics" not in ALLOWED["models"]
