"""The device authorization grant (RFC 8628) against a real ``tokenward serve`` on both backends: client
registration, ``POST /device_authorization``, and every answer of the token endpoint's device-code poll.

The user's decision comes from ``tests.device.decide_in_store`` here (these tests are about the device's side);
tests/e2e/test_device_page.py drives the verification page itself.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.device import (
    DEVICE_GRANT,
    add_device_client,
    decide_in_store,
    device_authorization,
    device_row,
    poll,
    start,
)
from tests.e2e.test_token_errors import assert_json_error, assert_ok
from tests.races import CONCURRENCY, Racer
from tests.support import TOKENWARD, ServerProcess

USER_CODE = re.compile(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}")


def claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return payload




@pytest.fixture
def short_lived(fresh_server: ServerProcess) -> Iterator[ServerProcess]:
    """A server whose device codes live 4 s and start with a 1 s poll interval."""
    fresh_server.start(env={"TOKENWARD_DEVICE_CODE_TTL": "4", "TOKENWARD_DEVICE_POLL_INTERVAL": "1"})
    yield fresh_server


# -- registration ------------------------------------------------------------------------------------------


def test_clients_add_registers_a_public_device_client_and_list_and_show_name_the_grant(
        server: ServerProcess) -> None:
    def cli(*args: str) -> Any:
        out = subprocess.run([TOKENWARD, "clients", *args, "--db", server.db_url, "--json"], capture_output=True,
                             text=True, timeout=60, check=True)
        return json.loads(out.stdout)

    created = cli("add", "living-room-tv", "--grant-type", DEVICE_GRANT, "--public", "--scope", "profile:read")
    assert created["public"] is True and created["grant_types"] == [DEVICE_GRANT]
    assert "client_secret" not in created and created["redirect_uris"] == []
    assert cli("show", created["client_id"])["grant_types"] == [DEVICE_GRANT]
    listed = {c["client_id"]: c for c in cli("list")}
    assert listed[created["client_id"]]["grant_types"] == [DEVICE_GRANT]
    # and it works: the device endpoint answers it
    r = httpx2.post(server.base_url + "/device_authorization", data={"client_id": created["client_id"]})
    assert r.status_code == 200, r.text


def test_clients_add_registers_a_confidential_device_client_with_a_secret(server: ServerProcess) -> None:
    out = subprocess.run([TOKENWARD, "clients", "add", "ci-runner", "--grant-type", DEVICE_GRANT, "--scope",
                          "profile:read", "--db", server.db_url, "--json"], capture_output=True, text=True,
                         timeout=60, check=True)
    created = json.loads(out.stdout)
    assert created["public"] is False and created["client_secret"].startswith("tw_cs_")
    r = httpx2.post(server.base_url + "/device_authorization", data={"scope": "profile:read"},
                    auth=httpx2.BasicAuth(created["client_id"], created["client_secret"]))
    assert r.status_code == 200, r.text


def test_client_without_the_device_grant_is_unauthorized_client_at_both_endpoints(server: ServerProcess) -> None:
    client = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")  # code + refresh only
    assert_json_error(device_authorization(server, client), 400, "unauthorized_client")
    assert_json_error(poll(server, client, "tw_dc_whatever"), 400, "unauthorized_client")


# -- the device authorization endpoint --------------------------------------------------------------------


def test_device_authorization_answers_codes_uris_lifetime_and_interval(server: ServerProcess) -> None:
    client = add_device_client(server)
    r = device_authorization(server, client, {"scope": "profile:read"})
    assert r.status_code == 200 and "no-store" in r.headers["cache-control"]
    body = r.json()
    assert set(body) == {"device_code", "user_code", "verification_uri", "verification_uri_complete",
                         "expires_in", "interval"}
    assert body["device_code"].startswith("tw_dc_")
    assert len(base64.urlsafe_b64decode(body["device_code"][6:] + "=")) == 32  # 256 bits
    assert USER_CODE.fullmatch(body["user_code"])
    assert body["verification_uri"] == server.base_url + "/device"
    assert body["verification_uri_complete"] == f"{server.base_url}/device?user_code={body['user_code']}"
    assert (body["expires_in"], body["interval"]) == (600, 5)
    meta = server.metadata()
    assert meta["device_authorization_endpoint"] == server.base_url + "/device_authorization"
    assert DEVICE_GRANT in meta["grant_types_supported"]


def test_device_and_user_codes_are_stored_only_as_hashes_with_the_devices_ip_and_user_agent(
        server: ServerProcess) -> None:
    client = add_device_client(server)
    body = start(server, client, headers={"User-Agent": "living-room-tv/2.1"})
    dump = repr(server.query("SELECT * FROM device_authorizations"))
    assert body["device_code"] not in dump and body["user_code"] not in dump
    assert body["user_code"].replace("-", "") not in dump
    row = device_row(server, body["device_code"])
    assert row["status"] == "pending" and row["ip"] == "127.0.0.1" and row["user_agent"] == "living-room-tv/2.1"


def test_user_codes_of_live_requests_are_all_different(server: ServerProcess) -> None:
    client = add_device_client(server)
    codes = [start(server, client)["user_code"] for _ in range(40)]
    assert len(set(codes)) == len(codes)


def test_device_authorization_is_invalid_request_when_no_client_id_is_sent(server: ServerProcess) -> None:
    assert_json_error(device_authorization(server, None, {"scope": "profile:read"}), 400, "invalid_request")


def test_device_authorization_is_invalid_client_for_a_wrong_secret_or_an_unknown_client(
        server: ServerProcess) -> None:
    client = add_device_client(server, public=False)
    r = httpx2.post(server.base_url + "/device_authorization", data={"scope": "profile:read"},
                    auth=httpx2.BasicAuth(client.client_id, "tw_cs_no"))
    assert_json_error(r, 401, "invalid_client")
    assert r.headers["www-authenticate"].startswith("Basic")
    assert_json_error(httpx2.post(server.base_url + "/device_authorization", data={"client_id": "nobody"}),
                      401, "invalid_client")


def test_device_authorization_is_invalid_scope_beyond_the_clients_scope(server: ServerProcess) -> None:
    client = add_device_client(server, scope="profile:read")
    assert_json_error(device_authorization(server, client, {"scope": "profile:read profile:write"}),
                      400, "invalid_scope")
    assert_json_error(device_authorization(server, client, {"scope": "bad\\scope"}), 400, "invalid_scope")


def test_device_authorization_is_invalid_target_for_a_resource_the_client_may_not_get(server: ServerProcess) -> None:
    client = add_device_client(server)
    assert_json_error(device_authorization(server, client, {"resource": "https://elsewhere.example"}),
                      400, "invalid_target")


def test_device_authorization_is_405_for_get(server: ServerProcess) -> None:
    assert_json_error(httpx2.get(server.base_url + "/device_authorization"), 405, "invalid_request")


# -- polling -----------------------------------------------------------------------------------------------


def test_poll_is_authorization_pending_then_tokens_after_approval_then_invalid_grant(server: ServerProcess) -> None:
    client = add_device_client(server)
    user = server.add_user()
    body = start(server, client, scope="profile:read")
    assert_json_error(poll(server, client, body["device_code"]), 400, "authorization_pending")
    decide_in_store(server, body["user_code"], user)
    tokens = assert_ok(poll(server, client, body["device_code"]))  # collection is never throttled
    assert tokens["scope"] == "profile:read" and tokens["refresh_token"].startswith("tw_rt_")
    access = claims(tokens["access_token"])
    assert access["client_id"] == client.client_id and access["scope"] == "profile:read"
    assert access["sub"] == device_row(server, body["device_code"])["user_id"]
    assert device_row(server, body["device_code"])["status"] == "redeemed"
    assert_json_error(poll(server, client, body["device_code"]), 400, "invalid_grant")
    # the refresh token works like one from the code flow
    assert_ok(server.token(client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}))


def test_poll_issues_no_refresh_token_to_a_client_without_the_refresh_grant(server: ServerProcess) -> None:
    client = add_device_client(server, refresh=False)
    user = server.add_user()
    body = start(server, client)
    decide_in_store(server, body["user_code"], user)
    assert "refresh_token" not in assert_ok(poll(server, client, body["device_code"]))


def test_confidential_client_polls_with_its_secret(server: ServerProcess) -> None:
    client = add_device_client(server, public=False)
    user = server.add_user()
    body = start(server, client)
    decide_in_store(server, body["user_code"], user)
    assert_ok(poll(server, client, body["device_code"]))


def test_poll_is_access_denied_after_the_user_denies(server: ServerProcess) -> None:
    client = add_device_client(server)
    user = server.add_user()
    body = start(server, client)
    decide_in_store(server, body["user_code"], user, approve=False)
    assert_json_error(poll(server, client, body["device_code"]), 400, "access_denied")
    assert_json_error(poll(server, client, body["device_code"]), 400, "access_denied")


@pytest.mark.parametrize("code", ["tw_dc_unknown", "x" * 300, "tw_dc_\u00e9"])
def test_poll_is_invalid_grant_for_an_unknown_device_code(server: ServerProcess, code: str) -> None:
    client = add_device_client(server)
    assert_json_error(poll(server, client, code), 400, "invalid_grant")


def test_poll_is_invalid_request_when_device_code_is_missing(server: ServerProcess) -> None:
    client = add_device_client(server)
    assert_json_error(server.token(client, {"grant_type": DEVICE_GRANT}), 400, "invalid_request")


def test_poll_is_invalid_request_when_a_public_client_sends_no_client_id(server: ServerProcess) -> None:
    client = add_device_client(server)
    body = start(server, client)
    r = server.token(None, {"grant_type": DEVICE_GRANT, "device_code": body["device_code"]})
    assert_json_error(r, 400, "invalid_request")


def test_polls_from_another_client_are_invalid_grant_and_leave_the_request_usable(server: ServerProcess) -> None:
    owner, other = add_device_client(server), add_device_client(server)
    user = server.add_user()
    body = start(server, owner)
    decide_in_store(server, body["user_code"], user)
    assert_json_error(poll(server, other, body["device_code"]), 400, "invalid_grant")
    assert_ok(poll(server, owner, body["device_code"]))


def test_sixteen_concurrent_polls_after_approval_get_exactly_one_token_response(server: ServerProcess) -> None:
    client = add_device_client(server)
    user = server.add_user()
    body = start(server, client)
    decide_in_store(server, body["user_code"], user)
    racer = Racer(CONCURRENCY)
    try:
        burst = racer.fire(server.base_url + "/token", {"grant_type": DEVICE_GRANT, "device_code": body["device_code"],
                                                        "client_id": client.client_id})
    finally:
        racer.close()
    assert burst.outcomes == {"ok": 1, "400:invalid_grant": CONCURRENCY - 1}, burst.outcomes
    grants = server.query(f"SELECT count(*) FROM grants WHERE client_id = '{client.client_id}'")
    assert grants == [(1,)]


# -- slow_down and expiry, on a server with short settings -----------------------------------------------


def test_polling_faster_than_the_interval_is_slow_down_and_grows_the_interval_by_five_seconds(
        short_lived: ServerProcess) -> None:
    server = short_lived
    client = add_device_client(server)
    body = start(server, client)
    assert body["interval"] == 1 and body["expires_in"] == 4
    assert_json_error(poll(server, client, body["device_code"]), 400, "authorization_pending")
    assert_json_error(poll(server, client, body["device_code"]), 400, "slow_down")  # at once: too early
    assert device_row(server, body["device_code"])["interval"] == 6
    time.sleep(1.5)  # on time for the old interval, too early for the new one
    assert_json_error(poll(server, client, body["device_code"]), 400, "slow_down")
    assert device_row(server, body["device_code"])["interval"] == 11


def test_a_client_polling_at_its_interval_never_gets_slow_down(short_lived: ServerProcess) -> None:
    server = short_lived
    client = add_device_client(server)
    body = start(server, client)
    for i in range(3):
        if i:
            time.sleep(body["interval"])
        assert_json_error(poll(server, client, body["device_code"]), 400, "authorization_pending")
    assert device_row(server, body["device_code"])["interval"] == 1


def test_poll_is_expired_token_after_the_lifetime_even_when_approved(short_lived: ServerProcess) -> None:
    server = short_lived
    client = add_device_client(server)
    user = server.add_user()
    pending, approved = start(server, client), start(server, client)
    decide_in_store(server, approved["user_code"], user)
    time.sleep(4.2)
    assert_json_error(poll(server, client, pending["device_code"]), 400, "expired_token")
    assert_json_error(poll(server, client, approved["device_code"]), 400, "expired_token")


def test_slow_down_holds_across_workers(fresh_server: ServerProcess) -> None:
    """The interval is in the database: a second poll answered by the other worker is slow_down too."""
    fresh_server.start(workers=2, env={"TOKENWARD_DEVICE_POLL_INTERVAL": "5"})
    client = add_device_client(fresh_server)
    body = start(fresh_server, client)
    answers = []
    for _ in range(6):  # fresh connections: both workers answer some
        with httpx2.Client() as http:
            answers.append(http.post(fresh_server.base_url + "/token", data={
                "grant_type": DEVICE_GRANT, "device_code": body["device_code"], "client_id": client.client_id}))
    assert [r.json()["error"] for r in answers] == ["authorization_pending"] + ["slow_down"] * 5
    assert device_row(fresh_server, body["device_code"])["interval"] == 30
