"""The packages depend one way (router → adapters → signing → schemas), checked by import-linter."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("router", "adapters", "signing", "schemas")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(lint), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(ROOT / "pyproject.toml", tree)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def test_the_tree_keeps_the_dependency_rule(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_rule_and_is_named(tmp_path: Path) -> None:
    # Given the tree, When a schema module imports the router (an upward import)
    tree = _copy(tmp_path)
    limits = tree / "schemas" / "limits.py"
    limits.write_text(limits.read_text(encoding="utf-8") + "\nimport router.config  # noqa: E402,F401\n",
                      encoding="utf-8")
    # Then the contract is broken, and the report names the offending import
    result = _lint(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "schemas.limits -> router.config" in result.stdout


def test_an_adapter_importing_the_router_breaks_the_rule(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    memory = tree / "adapters" / "memory" / "__init__.py"
    memory.write_text(memory.read_text(encoding="utf-8") + "\nfrom router.store import FileStore  # noqa: E402,F401\n",
                      encoding="utf-8")
    result = _lint(tree)
    assert result.returncode != 0 and "adapters.memory -> router.store" in result.stdout
