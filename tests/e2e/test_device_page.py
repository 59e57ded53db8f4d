"""The device verification page ``/device`` (RFC 8628 §3.3, §5.1, §5.4) driven over HTTP forms against a real
``tokenward serve`` on both backends: code entry (pre-filled, case- and hyphen-insensitive), sign-in with the
login page's field names, the phishing-aware consent page, allow and deny, the errors a user can meet, CSRF
and header protections, and user-code guessing throttled with 429 across two workers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
import pytest

from tests.device import (
    add_device_client,
    decide_over_http,
    device_row,
    page_fields,
    poll,
    start,
)
from tests.e2e.test_token_errors import assert_json_error, assert_ok
from tests.support import PASSWORD, ServerProcess

WARNING = "Only continue if you started this sign-in yourself on a device you own"


def browser_for(server: ServerProcess) -> httpx2.Client:
    return httpx2.Client(base_url=server.base_url, follow_redirects=False, verify=server.verify)


def enter(browser: httpx2.Client, user_code: str) -> httpx2.Response:
    page = browser.get("/device")
    assert page.status_code == 200, page.text
    return browser.post("/device", data={**page_fields(page.text), "user_code": user_code})


@contextmanager
def signed_in_browser(server: ServerProcess, username: str) -> Iterator[httpx2.Client]:
    """A browser that signed in at the device page once (its session is signed in)."""
    client = add_device_client(server)
    with browser_for(server) as browser:
        body = start(server, client)
        decide_over_http(server, body["user_code"], username, browser=browser)
        yield browser


def test_full_flow_over_forms_approves_the_device_which_then_gets_tokens(server: ServerProcess) -> None:
    client = add_device_client(server, scope="profile:read profile:write")
    user = server.add_user()
    body = start(server, client, scope="profile:read", headers={"User-Agent": "kitchen-tv/3.0"})
    with browser_for(server) as browser:
        page = browser.get("/device", params={"user_code": body["user_code"]})
        assert page.status_code == 200
        assert f'name="user_code" type="text" value="{body["user_code"]}"' in page.text  # pre-filled
        signin = browser.post("/device", data={**page_fields(page.text), "user_code": body["user_code"]})
        assert signin.status_code == 200 and 'name="username"' in signin.text and 'name="password"' in signin.text
        assert 'name="csrf_token"' in signin.text
        consent = browser.post("/device", data={**page_fields(signin.text), "username": user, "password": PASSWORD})
        assert consent.status_code == 200
        assert WARNING in consent.text
        assert "Read your profile" in consent.text and "Change your profile" not in consent.text
        assert "127.0.0.1" in consent.text and "kitchen-tv/3.0" in consent.text and " UTC (just now)" in consent.text
        assert 'name="decision" value="allow"' in consent.text and 'name="decision" value="deny"' in consent.text
        for response in (page, signin, consent):
            assert response.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert response.headers["cache-control"] == "no-store"
        assert_json_error(poll(server, client, body["device_code"]), 400, "authorization_pending")
        done = browser.post("/device", data={**page_fields(consent.text), "decision": "allow"})
    assert done.status_code == 200 and "Device signed in" in done.text
    tokens = assert_ok(poll(server, client, body["device_code"]))
    assert tokens["scope"] == "profile:read"


def test_deny_on_the_page_makes_the_poll_access_denied(server: ServerProcess) -> None:
    client = add_device_client(server)
    user = server.add_user()
    body = start(server, client)
    done = decide_over_http(server, body["user_code"], user, decision="deny")
    assert done.status_code == 200 and "Request denied" in done.text
    assert_json_error(poll(server, client, body["device_code"]), 400, "access_denied")


@pytest.mark.parametrize("typed", ["lower", "nohyphen", "spaced"])
def test_code_entry_ignores_case_and_hyphens(server: ServerProcess, typed: str) -> None:
    client = add_device_client(server)
    user = server.add_user()
    body = start(server, client)
    code = body["user_code"]
    entry = {"lower": code.lower(), "nohyphen": code.replace("-", ""), "spaced": code.replace("-", " ")}[typed]
    done = decide_over_http(server, entry, user, via_complete_uri=False)
    assert "Device signed in" in done.text
    assert_ok(poll(server, client, body["device_code"]))


def test_a_signed_in_browser_is_asked_again_for_every_device_request(server: ServerProcess) -> None:
    """Consent is never remembered for device requests (RFC 8628 §5.4)."""
    user = server.add_user()
    with signed_in_browser(server, user) as browser:
        client = add_device_client(server)
        body = start(server, client)
        consent = enter(browser, body["user_code"])  # no sign-in this time, but the consent page again
        assert consent.status_code == 200 and WARNING in consent.text and 'name="password"' not in consent.text
        assert_json_error(poll(server, client, body["device_code"]), 400, "authorization_pending")
        browser.post("/device", data={**page_fields(consent.text), "decision": "allow"})
    assert_ok(poll(server, client, body["device_code"]))


def test_unknown_and_malformed_codes_get_a_clear_message(server: ServerProcess) -> None:
    with browser_for(server) as browser:
        unknown = enter(browser, "BCDF-GHJK")
        assert unknown.status_code == 400 and "This code is not valid" in unknown.text
        malformed = enter(browser, "ABC-123")
        assert malformed.status_code == 400 and "A code has 8 letters" in malformed.text


def test_a_used_code_says_so_and_cannot_be_approved_again(server: ServerProcess) -> None:
    client = add_device_client(server)
    user = server.add_user()
    body = start(server, client)
    decide_over_http(server, body["user_code"], user)
    with browser_for(server) as browser:
        again = enter(browser, body["user_code"])
    assert again.status_code == 400 and "already been used" in again.text


def test_wrong_password_is_401_on_the_device_sign_in_and_the_request_stays_pending(server: ServerProcess) -> None:
    client = add_device_client(server)
    user = server.add_user()
    body = start(server, client)
    with browser_for(server) as browser:
        signin = enter(browser, body["user_code"])
        wrong = browser.post("/device", data={**page_fields(signin.text), "username": user, "password": "nope-nope"})
    assert wrong.status_code == 401 and "The username or password is incorrect." in wrong.text
    assert device_row(server, body["device_code"])["status"] == "pending"


def test_forms_without_the_csrf_token_or_from_another_site_are_refused(server: ServerProcess) -> None:
    client = add_device_client(server)
    user = server.add_user()
    body = start(server, client)
    with browser_for(server) as browser:
        page = browser.get("/device")
        no_csrf = browser.post("/device", data={"user_code": body["user_code"]})
        assert no_csrf.status_code == 403
        cross = browser.post("/device", data={**page_fields(page.text), "user_code": body["user_code"]},
                             headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        consent = browser.post("/device", data={**page_fields(page.text), "user_code": body["user_code"]})
        consent = browser.post("/device", data={**page_fields(consent.text), "username": user, "password": PASSWORD})
        forged = dict(page_fields(consent.text), csrf_token="0" * 64)
        assert browser.post("/device", data={**forged, "decision": "allow"}).status_code == 403
    assert device_row(server, body["device_code"])["status"] == "pending"


def test_another_browser_cannot_decide_a_code_it_did_not_enter(server: ServerProcess) -> None:
    client = add_device_client(server)
    user = server.add_user()
    body = start(server, client)
    with signed_in_browser(server, user) as other, browser_for(server) as victim:
        enter(victim, body["user_code"])  # the code is bound to the victim's session
        page = other.get("/device")
        forged = other.post("/device", data={**page_fields(page.text), "user_code": body["user_code"],
                                              "decision": "allow"})
    assert forged.status_code == 403
    assert device_row(server, body["device_code"])["status"] == "pending"


@pytest.fixture
def short_lived(fresh_server: ServerProcess) -> Iterator[ServerProcess]:
    fresh_server.start(env={"TOKENWARD_DEVICE_CODE_TTL": "2", "TOKENWARD_DEVICE_POLL_INTERVAL": "1"})
    yield fresh_server


def test_an_expired_code_says_start_again_on_your_device(short_lived: ServerProcess) -> None:
    client = add_device_client(short_lived)
    body = start(short_lived, client)
    with browser_for(short_lived) as browser:
        page = browser.get("/device", params={"user_code": body["user_code"]})
        time.sleep(2.2)
        expired = browser.post("/device", data={**page_fields(page.text), "user_code": body["user_code"]})
    assert expired.status_code == 400 and "This code has expired. Start again on your device." in expired.text


# -- user-code guessing ------------------------------------------------------------------------------------


def test_guessing_user_codes_is_throttled_per_address_across_two_workers(fresh_server: ServerProcess) -> None:
    """Every guess from a new session on a new connection (so both workers answer): from the 4th wrong code on
    the page answers 429 with Retry-After, and then even the correct code is refused."""
    fresh_server.start(workers=2, env={"TOKENWARD_RATE_LIMITS": "on", "TOKENWARD_RATE_LIMIT_DEVICE_IP": "4/300/30",
                                       "TOKENWARD_RATE_LIMIT_AUTHORIZE_IP": "1000/60"})
    client = add_device_client(fresh_server)
    body = start(fresh_server, client)
    statuses = []
    for _ in range(7):
        with browser_for(fresh_server) as browser:  # new connection, new session each time
            statuses.append(enter(browser, "BCDF-GHJK" if body["user_code"] != "BCDF-GHJK" else "LMNP-QRST"))
    assert [r.status_code for r in statuses] == [400, 400, 400, 429, 429, 429, 429]
    # 30 s from the 4th; a guess answered by a worker that has not yet re-read the locks is counted too and
    # doubles the lock (the database refuses it all the same)
    assert all(int(r.headers["retry-after"]) >= 1 for r in statuses[3:]), [r.headers["retry-after"] for r in statuses]
    assert "Too many wrong codes" in statuses[3].text
    with browser_for(fresh_server) as browser:
        correct = enter(browser, body["user_code"])
    assert correct.status_code == 429  # the lock is not a way to confirm a guess
    assert '"event": "device.code_guessing_locked"' in fresh_server.log_text()


def test_guessing_in_one_session_locks_it_for_longer_each_time(fresh_server: ServerProcess) -> None:
    fresh_server.start(env={"TOKENWARD_RATE_LIMITS": "on", "TOKENWARD_RATE_LIMIT_DEVICE_SESSION": "3/300/1",
                            "TOKENWARD_RATE_LIMIT_SYNC_SECONDS": "0"})
    with browser_for(fresh_server) as browser:
        page = browser.get("/device")
        guesses = [browser.post("/device", data={**page_fields(page.text), "user_code": "BCDF-GHJK"})
                   for _ in range(3)]
        assert [g.status_code for g in guesses] == [400, 400, 429]
        assert guesses[2].headers["retry-after"] == "1"
        time.sleep(1.2)
        after = browser.post("/device", data={**page_fields(page.text), "user_code": "BCDF-GHJK"})
    assert after.status_code == 429 and after.headers["retry-after"] == "2"  # the lock doubled
