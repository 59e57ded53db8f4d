"""Double-clicking Allow (issue #12 §2.13): concurrent consent POSTs never answer 5xx, one pending request
yields exactly one authorization code, and saving the same consent twice at once is idempotent.

Every POST has its own thread and TCP connection, released together by a barrier, and carries the same
session cookie and form, as a browser's repeated submissions do.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx2

from tests.support import PASSWORD, ServerProcess, hidden_fields, query_of

CLICKS = 10


def _logged_in(server: ServerProcess) -> tuple[httpx2.Client, str, str]:
    """A browser logged in (its first pending request is left unanswered); returns it, the client's redirect
    URI and client id. The caller closes it."""
    client, user = server.add_client(), server.add_user()
    assert client.redirect_uri is not None
    browser = httpx2.Client(base_url=server.base_url, follow_redirects=False)
    r = browser.get("/authorize", params=_params(client.client_id, client.redirect_uri))
    page = browser.get(r.headers["location"])
    r = browser.post("/login", data={**hidden_fields(page.text), "username": user, "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"].startswith("/consent"), r.text
    return browser, client.redirect_uri, client.client_id


def _params(client_id: str, redirect_uri: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": "s",
            "scope": "profile:read", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256"}


def _fire(server: ServerProcess, cookies: httpx2.Cookies, forms: list[dict[str, str]]) -> list[httpx2.Response]:
    """POST every form to /consent at once, each on its own connection."""
    barrier = threading.Barrier(len(forms))

    def post(form: dict[str, str]) -> httpx2.Response:
        with httpx2.Client(base_url=server.base_url, follow_redirects=False, cookies=cookies, timeout=30) as c:
            barrier.wait()
            return c.post("/consent", data={**form, "decision": "allow"})

    with ThreadPoolExecutor(len(forms)) as pool:
        return list(pool.map(post, forms))


def _codes(answers: list[httpx2.Response], redirect_uri: str) -> list[str]:
    return [query_of(a.headers["location"])["code"] for a in answers
            if a.status_code == 303 and a.headers["location"].startswith(redirect_uri + "?code=")]


def test_concurrent_allows_of_one_pending_request_issue_exactly_one_code(server: ServerProcess) -> None:
    browser, redirect_uri, client_id = _logged_in(server)
    try:
        page = browser.get(browser.get("/authorize", params=_params(client_id, redirect_uri)).headers["location"])
        assert page.status_code == 200 and 'value="allow"' in page.text
        answers = _fire(server, browser.cookies, [hidden_fields(page.text)] * CLICKS)
    finally:
        browser.close()
    statuses = Counter(a.status_code for a in answers)
    assert not [s for s in statuses if s >= 500], statuses
    codes = _codes(answers, redirect_uri)
    assert len(codes) == 1, (len(codes), statuses)
    assert statuses == Counter({303: 1, 400: CLICKS - 1}), statuses
    losers = [a for a in answers if a.status_code == 400]
    # a loser either finds the request gone (it read after the winner committed) or loses the delete
    assert all("expired or belongs to another browser" in a.text or "already been answered" in a.text
               for a in losers), [a.text[:200] for a in losers]
    rows = server.query(f"SELECT count(*) FROM authorization_codes WHERE client_id = '{client_id}'")
    assert rows == [(1,)], rows


def test_concurrent_allows_of_many_pending_requests_save_one_consent_without_error(server: ServerProcess) -> None:
    """Ten tabs of one browser, each with its own pending request, all allowed at once: ten codes, no 5xx,
    one consent row (the insert is idempotent: ON CONFLICT DO NOTHING)."""
    browser, redirect_uri, client_id = _logged_in(server)
    try:
        forms = []
        for _ in range(CLICKS):
            page = browser.get(browser.get("/authorize", params=_params(client_id, redirect_uri)).headers["location"])
            assert page.status_code == 200
            forms.append(hidden_fields(page.text))
        answers = _fire(server, browser.cookies, forms)
    finally:
        browser.close()
    statuses = Counter(a.status_code for a in answers)
    assert statuses == Counter({303: CLICKS}), statuses
    assert len(set(_codes(answers, redirect_uri))) == CLICKS
    assert server.query(f"SELECT count(*) FROM consents WHERE client_id = '{client_id}'") == [(1,)]
