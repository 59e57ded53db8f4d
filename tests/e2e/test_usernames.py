# ruff: noqa: RUF001, RUF002  (full-width look-alikes are what these tests are about)
"""A username is one account and one lock under every spelling that looks the same (issue #12 §2.8).

Before: ``ALICE`` and the full-width ``ａｌｉｃｅ`` were strangers to the lookup (the real user typing ``Alice``
could not sign in), ``users add ALICE`` created a second, look-alike account, and the full-width spelling had
a failed-login counter of its own, so guesses spread over spellings were never locked.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid

from tests.e2e.test_rate_limits import LIMITS, SYNC, login_attempt
from tests.support import PASSWORD, TOKENWARD, ServerProcess, authorize, exchange_code


def full_width(name: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in name)  # ASCII ! to ~ have full-width forms at +0xFEE0


def subject(access_token: str) -> str:
    payload = access_token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


def test_a_user_signs_in_under_any_case_or_width_and_gets_their_own_subject(server: ServerProcess) -> None:
    client = server.add_client()
    name = f"Alice-{uuid.uuid4().hex[:6]}"
    server.add_user(name)
    subjects = set()
    for typed in (name, name.upper(), name.lower(), full_width(name)):
        auth = authorize(server, client, typed)
        assert auth.code, f"{typed!r} did not sign in"
        subjects.add(subject(exchange_code(server, client, auth).json()["access_token"]))
    assert len(subjects) == 1


def test_users_add_refuses_a_name_that_only_differs_by_case_or_width(server: ServerProcess) -> None:
    name = f"bob-{uuid.uuid4().hex[:6]}"
    server.add_user(name)
    for look_alike in (name.upper(), name.capitalize(), full_width(name)):
        run = subprocess.run([TOKENWARD, "users", "add", look_alike, "--password-stdin", "--db", server.db_url],
                             input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
        assert run.returncode != 0 and f"the user {look_alike} already exists (as {name})" in run.stderr, run.stderr
    zero_width = subprocess.run([TOKENWARD, "users", "add", name[:2] + "\u200d" + name[2:], "--password-stdin",
                                 "--db", server.db_url], input=PASSWORD + "\n", capture_output=True, text=True,
                                timeout=60)
    assert zero_width.returncode != 0 and "invisible or control characters" in zero_width.stderr


def test_guesses_spread_over_spellings_count_against_one_lock(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start(workers=2, env=LIMITS)  # 3 failures per username lock it
    client = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    user = server.add_user("carol")
    for typed in ("CAROL", "ｃａｒｏｌ", "Carol"):
        assert login_attempt(server, client.client_id, typed, "wrong password").status_code == 401
    time.sleep(SYNC + 0.3)
    locked = login_attempt(server, client.client_id, user, PASSWORD)
    assert locked.status_code == 429 and "Too many failed sign-in attempts" in locked.text
