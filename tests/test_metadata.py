"""Install metadata tells the truth: every package bert2 and bert2_tui import is declared in pyproject.toml, and
the Python floor matches what the code uses."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_level() -> dict[str, str]:
    """Top-level module -> first file importing it, for every absolute import in the two packages."""
    found: dict[str, str] = {}
    for pkg in ("bert2", "bert2_tui"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_norm(re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0]) for req in project["dependencies"]}
    distributions = packages_distributions()
    undeclared = []
    for module, where in _imported_top_level().items():
        if module in sys.stdlib_module_names or module in ("bert2", "bert2_tui"):
            continue
        dists = {_norm(d) for d in distributions.get(module, [module])}
        if not dists & declared:
            undeclared.append(f"{module} (imported in {where}; distribution {', '.join(sorted(dists))})")
    assert not undeclared, "imported but not in [project] dependencies: " + "; ".join(undeclared)


def test_python_floor_matches_the_code():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "tomllib" in _imported_top_level()  # 3.11+
    assert project["requires-python"].startswith(">=3.11")
