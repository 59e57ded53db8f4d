"""Brute-force protection across two worker processes: limits trip, answer 429 with Retry-After, recover
after the lock, and X-Forwarded-For counts only from a trusted proxy.

Each worker re-reads the locks once a second (TOKENWARD_RATE_LIMIT_SYNC_SECONDS), so after tripping a
limit the tests wait that long before expecting every worker to refuse.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx2

from tests.support import PASSWORD, ServerProcess, hidden_fields
from tokenward.protocol import pkce

LIMITS = {"TOKENWARD_RATE_LIMITS": "on", "TOKENWARD_RATE_LIMIT_CLIENT": "3/60/3",
          "TOKENWARD_RATE_LIMIT_CLIENT_IP": "6/60/3", "TOKENWARD_RATE_LIMIT_LOGIN_USER": "3/60/3",
          "TOKENWARD_RATE_LIMIT_LOGIN_IP": "100/60/3"}
SYNC = 1.0  # the default TOKENWARD_RATE_LIMIT_SYNC_SECONDS


def cc(server: ServerProcess, client_id: str, secret: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.post(server.base_url + "/token", data={"grant_type": "client_credentials"},
                       auth=(client_id, secret), headers=headers)


def test_failed_client_authentication_locks_client_then_recovers(fresh_server: ServerProcess) -> None:
    server = fresh_server
    # a 6 s first lock: the six checks below must all land inside it, also on a loaded 2-core machine
    server.start(workers=2, env={**LIMITS, "TOKENWARD_RATE_LIMIT_CLIENT": "3/60/6"})
    client = server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    assert client.client_secret
    for _ in range(3):
        assert cc(server, client.client_id, "wrong-secret").status_code == 401
    time.sleep(SYNC + 0.3)
    attempts = [cc(server, client.client_id, client.client_secret) for _ in range(6)]  # both workers answer
    assert [a.status_code for a in attempts] == [429] * 6  # even the right secret waits
    locked = attempts[0]
    assert locked.json()["error"] == "slow_down" and locked.headers["cache-control"] == "no-store"
    assert 1 <= int(locked.headers["retry-after"]) <= 6
    other = server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    assert other.client_secret and cc(server, other.client_id, other.client_secret).status_code == 200
    time.sleep(int(locked.headers["retry-after"]) + 0.5)
    assert cc(server, client.client_id, client.client_secret).status_code == 200
    # the same counters guard revocation and introspection
    for _ in range(3):
        httpx2.post(server.base_url + "/introspect", data={"token": "x"}, auth=(client.client_id, "nope"))
    time.sleep(SYNC + 0.3)
    assert httpx2.post(server.base_url + "/revoke", data={"token": "x"},
                       auth=(client.client_id, client.client_secret)).status_code == 429


def test_forwarded_for_counts_only_behind_trusted_proxy(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start("--trusted-proxy", "127.0.0.1", env=LIMITS)
    client = server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    assert client.client_secret
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    for i in range(6):  # six different unknown clients from one address: the per-IP limit
        assert cc(server, f"nobody-{i}", "x", attacker).status_code == 401
    assert cc(server, client.client_id, client.client_secret, attacker).status_code == 429
    assert cc(server, client.client_id, client.client_secret, {"X-Forwarded-For": "198.51.100.1"}).status_code == 200


def test_forwarded_for_is_ignored_from_untrusted_peers(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start(env=LIMITS)
    client = server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    assert client.client_secret
    for i in range(6):  # rotating the header does not dodge the per-IP limit: the peer is 127.0.0.1
        assert cc(server, f"nobody-{i}", "x", {"X-Forwarded-For": f"203.0.113.{i}"}).status_code == 401
    assert cc(server, client.client_id, client.client_secret).status_code == 429


def open_login_form(server: ServerProcess, client_id: str, local_address: str | None = None
                    ) -> tuple[httpx2.Client, dict[str, str]]:
    """A browser (from ``local_address``) with a pending request and the login form's hidden fields."""
    browser = httpx2.Client(base_url=server.base_url, follow_redirects=False, timeout=60,
                            transport=httpx2.HTTPTransport(local_address=local_address))
    r = browser.get("/authorize", params={
        "response_type": "code", "client_id": client_id, "redirect_uri": "http://127.0.0.1:5/cb",
        "code_challenge": pkce.s256(pkce.new_verifier()), "code_challenge_method": "S256"})
    page = browser.get(r.headers["location"])
    return browser, hidden_fields(page.text)


def login_attempt(server: ServerProcess, client_id: str, username: str, password: str) -> httpx2.Response:
    with httpx2.Client(base_url=server.base_url, follow_redirects=False) as browser:
        r = browser.get("/authorize", params={
            "response_type": "code", "client_id": client_id, "redirect_uri": "http://127.0.0.1:5/cb",
            "code_challenge": pkce.s256(pkce.new_verifier()), "code_challenge_method": "S256"})
        page = browser.get(r.headers["location"])
        return browser.post("/login", data={**hidden_fields(page.text), "username": username, "password": password})


def test_failed_logins_lock_username_without_revealing_whether_it_exists(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start(workers=2, env=LIMITS)
    client = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    user = server.add_user()
    for name in (user, "no-such-user"):
        for _ in range(3):
            assert login_attempt(server, client.client_id, name, "wrong password").status_code == 401
        time.sleep(SYNC + 0.3)
        locked = login_attempt(server, client.client_id, name, PASSWORD)
        assert locked.status_code == 429 and "Too many failed sign-in attempts" in locked.text
        assert int(locked.headers["retry-after"]) >= 1
    time.sleep(3.5)
    assert login_attempt(server, client.client_id, user, PASSWORD).status_code == 303


CONCURRENT = {"TOKENWARD_RATE_LIMITS": "on", "TOKENWARD_RATE_LIMIT_LOGIN_USER": "5/300/30",
              "TOKENWARD_RATE_LIMIT_LOGIN_IP": "1000/300", "TOKENWARD_RATE_LIMIT_CLIENT": "10/60",
              "TOKENWARD_RATE_LIMIT_CLIENT_IP": "1000/60"}


def test_concurrent_wrong_passwords_get_at_most_the_limit_checked(fresh_server: ServerProcess) -> None:
    """60 wrong passwords at once on 2 workers: the attempt is reserved (counted) before argon2 runs, so at
    most 5 are checked (401) and the rest answered 429 without a verification (issue #12 §2.4)."""
    server = fresh_server
    server.start(workers=2, env=CONCURRENT)
    client = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    user = server.add_user()
    forms = [open_login_form(server, client.client_id) for _ in range(60)]

    def wrong(browser_form: tuple[httpx2.Client, dict[str, str]]) -> int:
        browser, form = browser_form
        return browser.post("/login", data={**form, "username": user, "password": "wrong password"}).status_code

    with ThreadPoolExecutor(60) as pool:
        statuses = list(pool.map(wrong, forms))
    for browser, _ in forms:
        browser.close()
    assert statuses.count(401) <= 5 and statuses.count(401) + statuses.count(429) == 60, statuses


def test_concurrent_wrong_secrets_get_at_most_the_limit_answered_401(fresh_server: ServerProcess) -> None:
    """60 wrong client secrets at once on 2 workers: each failure is counted atomically and a failure past
    the limit is answered 429, however the requests interleave."""
    server = fresh_server
    server.start(workers=2, env=CONCURRENT)
    client = server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    with ThreadPoolExecutor(60) as pool:
        statuses = [r.status_code for r in pool.map(lambda _: cc(server, client.client_id, "wrong"), range(60))]
    assert statuses.count(401) <= 10 and statuses.count(401) + statuses.count(429) == 60, statuses


def test_ipv6_addresses_of_one_64_share_the_per_ip_limit(fresh_server: ServerProcess) -> None:
    """One host owns a whole /64 (RFC 4291 §2.5.4 interface identifiers, SLAAC privacy addresses): counting each
    address separately would give it 2^64 fresh budgets. Another /64 keeps its own."""
    server = fresh_server
    server.start("--trusted-proxy", "127.0.0.1", env=LIMITS)
    client = server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    assert client.client_secret
    for i in range(6):  # six unknown clients from six addresses of one /64: one per-IP budget
        assert cc(server, f"nobody-{i}", "x", {"X-Forwarded-For": f"2001:db8:1:2::{i + 1:x}"}).status_code == 401
    same_64 = {"X-Forwarded-For": "2001:db8:1:2:ffff:ffff:ffff:fffe"}
    assert cc(server, client.client_id, client.client_secret, same_64).status_code == 429
    other_64 = {"X-Forwarded-For": "2001:db8:1:3::1"}
    assert cc(server, client.client_id, client.client_secret, other_64).status_code == 200


STRANGERS = {"TOKENWARD_RATE_LIMITS": "on", "TOKENWARD_RATE_LIMIT_SYNC_SECONDS": "0",
             "TOKENWARD_RATE_LIMIT_CLIENT": "3/60/60", "TOKENWARD_RATE_LIMIT_CLIENT_GLOBAL": "8/60/60",
             "TOKENWARD_RATE_LIMIT_CLIENT_IP": "1000/60", "TOKENWARD_RATE_LIMIT_LOGIN_USER": "3/300/60",
             "TOKENWARD_RATE_LIMIT_LOGIN_USER_GLOBAL": "8/300/60", "TOKENWARD_RATE_LIMIT_LOGIN_IP": "1000/300"}


def cc_from(server: ServerProcess, address: str, client_id: str, secret: str | None,
            form: dict[str, str] | None = None) -> httpx2.Response:
    with httpx2.Client(transport=httpx2.HTTPTransport(local_address=address), timeout=30) as c:
        return c.post(server.base_url + "/token", data={"grant_type": "client_credentials", **(form or {})},
                      auth=(client_id, secret) if secret is not None else None)


def test_a_stranger_cannot_lock_a_client_out_and_a_distributed_run_still_hits_the_ceiling(
        fresh_server: ServerProcess) -> None:
    """Issue #12 §2.5: the lock is per (client, address); the per-client ceiling (8 here) counts every address."""
    server = fresh_server
    server.start(env=STRANGERS)
    client = server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    assert client.client_secret
    for _ in range(3):
        assert cc_from(server, "127.0.0.2", client.client_id, "wrong").status_code == 401
    assert cc_from(server, "127.0.0.2", client.client_id, client.client_secret).status_code == 429
    assert cc_from(server, "127.0.0.3", client.client_id, client.client_secret).status_code == 200
    for address in ("127.0.0.4", "127.0.0.5"):  # 3 + 3 + 2 = 8 failures from three addresses: the ceiling
        for _ in range(3 if address == "127.0.0.4" else 2):
            assert cc_from(server, address, client.client_id, "wrong").status_code == 401
    assert cc_from(server, "127.0.0.6", client.client_id, client.client_secret).status_code == 429


def test_a_public_client_is_never_locked_by_failed_authentication(fresh_server: ServerProcess) -> None:
    """A public client has no secret to guess: a secret sent in its name fails, but counts only on the address."""
    server = fresh_server
    server.start(env=STRANGERS)
    public = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    for i in range(12):  # past both the pair limit (3) and the client ceiling (8)
        assert cc_from(server, f"127.0.0.{10 + i % 2}", public.client_id, "guess").status_code == 401
    bogus_code = {"grant_type": "authorization_code", "code": "tw_ac_nope", "code_verifier": "v" * 43,
                  "redirect_uri": "http://127.0.0.1/cb", "client_id": public.client_id}
    r = cc_from(server, "127.0.0.12", public.client_id, None, bogus_code)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    assert server.query("SELECT count(*) FROM rate_limits WHERE key LIKE 'client%'") == [(0,)]


def test_a_stranger_cannot_lock_a_user_out_from_another_address(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start(env=STRANGERS)
    client = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    user = server.add_user()

    def attempt(address: str, password: str) -> httpx2.Response:
        browser, fields = open_login_form(server, client.client_id, address)
        try:
            return browser.post("/login", data={**fields, "username": user, "password": password})
        finally:
            browser.close()

    for _ in range(3):
        assert attempt("127.0.0.2", "wrong password").status_code == 401
    assert attempt("127.0.0.2", PASSWORD).status_code == 429
    assert attempt("127.0.0.3", PASSWORD).status_code == 303  # the real user, elsewhere, signs in
    for address, failures in (("127.0.0.4", 3), ("127.0.0.5", 2)):  # 3 + 3 + 2 = 8: the per-name ceiling
        for _ in range(failures):
            assert attempt(address, "wrong password").status_code == 401
    locked = attempt("127.0.0.6", PASSWORD)
    assert locked.status_code == 429 and "Too many failed sign-in attempts" in locked.text
