"""requirements.lock, from which ``make run``/``make test`` build the ``.venv``, must agree with pyproject.toml.

Every requirement of the package, of each extra the Makefile installs and of the build system must be pinned in
the lock at a version its range admits, with hashes (pip's ``--require-hashes`` refuses anything else); a lock
that drifted from the ranges (a range tightened, a dependency added without ``make lock``) fails here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def parse_lock(text: str) -> tuple[dict[str, Version], set[str]]:
    """Pinned versions by canonical name, and the names that carry at least one ``--hash``."""
    pins: dict[str, Version] = {}
    hashed: set[str] = set()
    entry: str | None = None
    for line in text.splitlines():
        if m := PIN.match(line):
            entry = canonicalize_name(m.group(1))
            pins[entry] = Version(m.group(2))
        elif entry and line.strip().startswith("--hash=sha256:"):
            hashed.add(entry)
    return pins, hashed


def lock_problems(project: dict[str, Any], extras: list[str], lock_text: str) -> list[str]:
    """Every way the lock disagrees with the project's requirements (empty: they agree)."""
    pins, hashed = parse_lock(lock_text)
    problems = [f"{name}: pinned without a hash" for name in sorted(set(pins) - hashed)]
    optional = project["project"].get("optional-dependencies", {})
    reqs = [("build-system", r) for r in project["build-system"]["requires"]]
    reqs += [("dependencies", r) for r in project["project"]["dependencies"]]
    for extra in extras:
        if extra not in optional:
            problems.append(f"[{extra}]: the Makefile installs an extra pyproject.toml lacks")
        reqs += [(f"[{extra}]", r) for r in optional.get(extra, [])]
    for where, text in reqs:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{where} {req}: not in requirements.lock (run make lock)")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{where} {req}: the lock pins {pins[name]} (run make lock)")
    return problems


def _makefile_extras() -> list[str]:
    m = re.search(r"^EXTRAS := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert m, "the Makefile names the extras it installs in EXTRAS"
    return m.group(1).strip().split(",")


def test_the_makefile_installs_every_extra_so_the_lock_covers_them_all() -> None:
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert sorted(_makefile_extras()) == sorted(optional)


def test_every_requirement_of_pyproject_is_pinned_in_the_lock_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lock = (ROOT / "requirements.lock").read_text()
    assert len(parse_lock(lock)[0]) > 50
    assert lock_problems(project, _makefile_extras(), lock) == []


def test_a_lock_that_drifted_from_pyproject_is_reported() -> None:
    project = {"build-system": {"requires": ["setuptools>=69"]},
               "project": {"dependencies": ["uvicorn[standard]>=0.54,<1", "click>=8"],
                           "optional-dependencies": {"dev": ["pytest>=9"]}}}
    lock = ("setuptools==84.2.1 \\\n    --hash=sha256:aa\n"
            "uvicorn==1.0.0 \\\n    --hash=sha256:bb\n"
            "pytest==9.2.0\n")
    assert lock_problems(project, ["dev", "ghost"], lock) == [
        "pytest: pinned without a hash",
        "[ghost]: the Makefile installs an extra pyproject.toml lacks",
        "dependencies uvicorn[standard]<1,>=0.54: the lock pins 1.0.0 (run make lock)",
        "dependencies click>=8: not in requirements.lock (run make lock)",
    ]
