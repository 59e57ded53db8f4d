"""requests-oauth2client (an independent client, on jwskate, written by no one here) runs the device flow
(RFC 8628) against a real ``tokenward serve``: discovery, the device authorization request, polling with its
own ``authorization_pending``/``slow_down`` handling, and the tokens after the user approves on the page; a
denial surfaces as its ``AccessDenied``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from requests_oauth2client import AccessDenied, DeviceAuthorizationPollingJob, OAuth2Client

from tests.device import add_device_client, decide_over_http, device_row
from tests.support import ServerProcess


@pytest.fixture
def quick_server(fresh_server: ServerProcess) -> Iterator[ServerProcess]:
    fresh_server.start(env={"TOKENWARD_DEVICE_POLL_INTERVAL": "1"})
    yield fresh_server


def client_for(server: ServerProcess) -> tuple[OAuth2Client, str]:
    device_client = add_device_client(server, scope="profile:read")
    # RFC 8414 metadata; testing: http on 127.0.0.1. Its discovery (1.8.0) does not read
    # device_authorization_endpoint, so that one is handed over from our metadata document.
    oauth = OAuth2Client.from_discovery_endpoint(
        server.base_url + "/.well-known/oauth-authorization-server", issuer=server.base_url,
        client_id=device_client.client_id, testing=True,
        device_authorization_endpoint=server.metadata()["device_authorization_endpoint"])
    return oauth, server.add_user()


def test_requests_oauth2client_completes_the_device_flow_after_approval(quick_server: ServerProcess) -> None:
    oauth, user = client_for(quick_server)
    assert oauth.device_authorization_endpoint == quick_server.base_url + "/device_authorization"
    response = oauth.authorize_device(scope="profile:read")
    assert response.verification_uri == quick_server.base_url + "/device" and response.interval == 1
    job = DeviceAuthorizationPollingJob(oauth, response)
    assert job() is None  # authorization_pending, handled by the library
    decide_over_http(quick_server, response.user_code, user)
    token = None
    for _ in range(5):
        token = job()
        if token is not None:
            break
    assert token is not None and token.scope == "profile:read" and token.refresh_token is not None
    assert device_row(quick_server, response.device_code)["status"] == "redeemed"


def test_requests_oauth2client_reports_a_denial(quick_server: ServerProcess) -> None:
    oauth, user = client_for(quick_server)
    response = oauth.authorize_device(scope="profile:read")
    decide_over_http(quick_server, response.user_code, user, decision="deny")
    job = DeviceAuthorizationPollingJob(oauth, response)
    with pytest.raises(AccessDenied):
        job()
