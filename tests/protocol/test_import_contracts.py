"""Import contracts from the design notes, checked on the source tree's AST (every import, including those
inside functions and ``if TYPE_CHECKING:`` blocks, and ``importlib.import_module("...")`` literals):

- ``tokenward.protocol`` imports only the standard library and itself;
- ``tokenward.resource`` and ``tokenward.client`` never import ``tokenward.server``;
- ``starlette`` / ``jinja2`` only under ``tokenward.server.web``;
- ``sqlalchemy`` / ``alembic`` only under ``tokenward.server.store``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "tokenward"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of everything ``path`` imports; ``from m import n`` gives ``m.n``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            found += [(node.lineno, base if alias.name == "*" else f"{base}.{alias.name}") for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            found.append((node.lineno, node.args[0].value))
    return found


def modules_under(*parts: str) -> list[Path]:
    root = PACKAGE.joinpath(*parts)
    return sorted(root.rglob("*.py")) if root.is_dir() else []


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(SRC)) for p in paths]


def is_within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def under(path: Path, *parts: str) -> bool:
    return PACKAGE.joinpath(*parts) in path.parents


PROTOCOL = modules_under("protocol")
GUARD_AND_CLIENT = modules_under("resource") + modules_under("client")
ALL = modules_under()


def test_import_helper_resolves_relative_and_from_imports_when_given_a_protocol_module() -> None:
    names = {name for _, name in imports_of(PACKAGE / "protocol" / "credentials.py")}
    assert "tokenward.protocol.errors.InvalidRequestError" in names
    assert "base64" in names


def test_trees_exist_when_contracts_are_checked() -> None:
    assert len(PROTOCOL) >= 8
    assert PACKAGE.joinpath("protocol", "__init__.py") in PROTOCOL
    assert GUARD_AND_CLIENT


@pytest.mark.parametrize("path", PROTOCOL, ids=ids(PROTOCOL))
def test_protocol_module_imports_only_stdlib_and_protocol_when_parsed(path: Path) -> None:
    offending = [f"line {line}: {name}" for line, name in imports_of(path)
                 if not (name.split(".")[0] in sys.stdlib_module_names or is_within(name, "tokenward.protocol"))]
    assert offending == []


@pytest.mark.parametrize("path", GUARD_AND_CLIENT, ids=ids(GUARD_AND_CLIENT))
def test_resource_and_client_module_never_imports_server_when_parsed(path: Path) -> None:
    offending = [f"line {line}: {name}" for line, name in imports_of(path) if is_within(name, "tokenward.server")]
    assert offending == []


OUTSIDE_WEB = [p for p in ALL if not under(p, "server", "web")]
OUTSIDE_STORE = [p for p in ALL if not under(p, "server", "store")]


def web_framework_imports(path: Path) -> list[str]:
    return [f"line {line}: {name}" for line, name in imports_of(path) if name.split(".")[0] in ("starlette", "jinja2")]


def database_imports(path: Path) -> list[str]:
    return [f"line {line}: {name}" for line, name in imports_of(path)
            if name.split(".")[0] in ("sqlalchemy", "alembic")]


def test_the_excluded_packages_are_exactly_where_the_frameworks_are_when_parsed() -> None:
    """The exemptions below are not vacuous: server/web does import starlette and server/store sqlalchemy, so
    the checks that skip them would catch the same imports anywhere else."""
    web = [p for p in ALL if under(p, "server", "web")]
    store = [p for p in ALL if under(p, "server", "store")]
    assert web and store and len(OUTSIDE_WEB) + len(web) == len(ALL) == len(OUTSIDE_STORE) + len(store)
    assert any(web_framework_imports(p) for p in web)
    assert any(database_imports(p) for p in store)


@pytest.mark.parametrize("path", OUTSIDE_WEB, ids=ids(OUTSIDE_WEB))
def test_web_frameworks_are_imported_only_under_server_web_when_parsed(path: Path) -> None:
    assert web_framework_imports(path) == []


@pytest.mark.parametrize("path", OUTSIDE_STORE, ids=ids(OUTSIDE_STORE))
def test_database_libraries_are_imported_only_under_server_store_when_parsed(path: Path) -> None:
    assert database_imports(path) == []
