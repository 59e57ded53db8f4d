"""The OpenAPI document matches the routes, and a bounded schemathesis run against the real server finds no
5xx, no undocumented status, no error without an RFC code or ``no-store``, and no echoed input.
``make fuzz`` runs the same with 10,000 cases per operation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx2
from starlette.routing import Route

from tests.support import ServerProcess
from tokenward.server.settings import Settings
from tokenward.server.web.app import create_app

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "response_headers_conformance,tokenward_error_hygiene")
ROOT = Path(__file__).resolve().parents[2]
GET_AND_POST = {"/userinfo"}  # OIDC Core §5.3.1; every other endpoint answering 405 to the rest is POST-only


def test_openapi_document_lists_exactly_the_served_routes(server: ServerProcess) -> None:
    doc = httpx2.get(server.base_url + "/openapi.json").json()
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": server.base_url}]
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for route in create_app(Settings()).routes:
        if isinstance(route, Route):
            methods = {"GET", "POST"} & (route.methods or set())
            if {"PUT", "DELETE"} <= (route.methods or set()):  # POST endpoints that answer 405 to the rest
                methods = {"GET", "POST"} if route.path in GET_AND_POST else {"POST"}
            served |= {(route.path, m) for m in methods}
    assert documented == served


def run_schemathesis(base_url: str, max_examples: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCHEMATHESIS, "run", f"{base_url}/openapi.json", "--checks", CHECKS, "--max-examples", str(max_examples),
         "--seed", "20261126"],
        capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks", "PYTHONPATH": str(ROOT)})


def test_bounded_fuzzing_finds_no_server_error_or_unhygienic_error(server: ServerProcess) -> None:
    out = run_schemathesis(server.base_url, 25)
    summary = re.search(r"(\d+) generated, (\d+) passed", out.stdout)
    assert out.returncode == 0 and summary, out.stdout[-3000:]
    generated, passed = int(summary.group(1)), int(summary.group(2))
    assert generated == passed and generated >= 200
