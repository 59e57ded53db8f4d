"""The device flow's sans-IO rules (RFC 8628), from tables: the §3.2 answer, the §3.5 poll answers, and the
§3.1 request with each client authentication."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import pytest

from tokenward.client.device import (
    DEVICE_GRANT,
    DeviceAccessDeniedError,
    DeviceCodeExpiredError,
    Pending,
    device_authorization_request,
    device_token_request,
    parse_device_authorization_response,
    parse_poll_response,
)
from tokenward.client.errors import LoginRequiredError, TokenEndpointError
from tokenward.client.flow import ClientConfig, HttpResponse, Token

GOOD = {"device_code": "dc-" + "x" * 40, "user_code": "BCDF-GHJK", "verification_uri": "https://as.example/device",
        "verification_uri_complete": "https://as.example/device?user_code=BCDF-GHJK", "expires_in": 600,
        "interval": 7}


def answer(status: int, body: object) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps(body).encode())


def test_device_authorization_response_keeps_codes_and_hides_device_code_from_repr_and_public() -> None:
    device = parse_device_authorization_response(answer(200, GOOD), now=1000.0)
    assert (device.interval, device.expires_in, device.expires_at) == (7, 600, 1600.0)
    assert str(GOOD["device_code"]) not in repr(device)
    assert "device_code" not in device.public() and device.public()["user_code"] == "BCDF-GHJK"


@pytest.mark.parametrize(("change", "interval"), [({"interval": None}, 5), ({"interval": "3"}, 3),
                                                  ({"interval": 0}, 5), ({"interval": True}, 5)])
def test_interval_defaults_to_5_seconds_when_absent_or_not_positive(change: dict[str, object], interval: int) -> None:
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    assert parse_device_authorization_response(answer(200, body)).interval == interval


@pytest.mark.parametrize("missing", ["device_code", "user_code", "verification_uri", "expires_in"])
def test_device_authorization_response_without_required_member_is_refused(missing: str) -> None:
    with pytest.raises(TokenEndpointError, match=missing):
        parse_device_authorization_response(answer(200, {k: v for k, v in GOOD.items() if k != missing}))


def test_device_authorization_error_is_typed_and_5xx_transient() -> None:
    with pytest.raises(TokenEndpointError) as refused:
        parse_device_authorization_response(answer(400, {"error": "unauthorized_client"}))
    assert refused.value.error == "unauthorized_client" and not refused.value.transient
    with pytest.raises(TokenEndpointError) as failed:
        parse_device_authorization_response(HttpResponse(503, {}, b"busy"))
    assert failed.value.transient


@pytest.mark.parametrize(("body", "expected"), [
    ({"error": "authorization_pending"}, Pending(7)),
    ({"error": "slow_down"}, Pending(12, slow_down=True)),
])
def test_pending_answers_keep_or_grow_the_interval_by_5(body: dict[str, str], expected: Pending) -> None:
    assert parse_poll_response(answer(400, body), 7) == expected


@pytest.mark.parametrize(("body", "error"), [
    ({"error": "access_denied"}, DeviceAccessDeniedError), ({"error": "expired_token"}, DeviceCodeExpiredError),
    ({"error": "invalid_grant"}, LoginRequiredError), ({"error": "invalid_client"}, TokenEndpointError),
])
def test_final_poll_errors_are_typed(body: dict[str, str], error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_poll_response(answer(400, body), 5)


def test_successful_poll_is_a_token_with_the_requested_scope_when_the_server_names_none() -> None:
    token = parse_poll_response(answer(200, {"access_token": "at", "token_type": "Bearer", "expires_in": 60}), 5,
                                now=10.0, scope="profile:read")
    assert isinstance(token, Token) and token.scope == "profile:read" and token.expires_at == 70.0


def test_requests_authenticate_public_and_confidential_clients_as_at_the_token_endpoint() -> None:
    public = device_authorization_request("https://as.example/device_authorization", ClientConfig("tv"), "a b")
    assert parse_qs(public.body.decode()) == {"client_id": ["tv"], "scope": ["a b"]}
    secret = device_token_request("https://as.example/token", ClientConfig("ci", "s3cret"), "dc")
    assert secret.headers["Authorization"] == "Basic " + base64.b64encode(b"ci:s3cret").decode()
    assert parse_qs(secret.body.decode()) == {"grant_type": [DEVICE_GRANT], "device_code": ["dc"]}
    assert "s3cret" not in repr(secret) and "dc" not in repr(secret).replace("https://as.example", "")
