"""docs/architecture.md names every module of the package, and nothing that no longer exists.

A newcomer reads the architecture page to find where a concept lives; a page that lags the tree sends them
to the wrong file (issue #12 §4).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "tokenward"
DOC = ROOT / "docs" / "architecture.md"


def package_modules() -> set[str]:
    """Every module path relative to ``src/tokenward``, except package ``__init__`` files and Alembic revisions."""
    modules = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if path.name == "__init__.py" or "/migrations/versions/" in f"/{relative}":
            continue
        modules.add(relative)
    return modules


def documented_paths() -> set[str]:
    return set(re.findall(r"`([\w/]+\.py)`", DOC.read_text(encoding="utf-8")))


def test_every_module_is_named_in_the_architecture_page() -> None:
    missing = sorted(package_modules() - documented_paths())
    assert not missing, f"docs/architecture.md does not name: {missing}"


def test_the_architecture_page_names_no_module_that_is_gone() -> None:
    gone = sorted(p for p in documented_paths() if not p.startswith("tests/") and not (PACKAGE / p).is_file())
    assert not gone, f"docs/architecture.md names modules that do not exist: {gone}"


def test_the_checks_see_the_tree() -> None:
    """Guards the two tests above against a path mistake that would make both vacuous."""
    assert "server/endpoints/token.py" in package_modules()
    assert len(documented_paths()) >= 50
