"""Prometheus metrics: off by default, aggregated across two workers when on."""

from __future__ import annotations

import re

import httpx2

from tests.support import ServerProcess, authorize, exchange_code


def sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_are_off_by_default(server: ServerProcess) -> None:
    assert httpx2.get(server.base_url + "/metrics").status_code == 404


def test_metrics_count_requests_grants_reuse_and_keys_across_workers(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start("--metrics", workers=2)
    service = server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    for _ in range(10):
        assert server.token(service, {"grant_type": "client_credentials"}).status_code == 200
    app = server.add_client(public=True, redirect_uri="http://127.0.0.1/cb")
    tokens = exchange_code(server, app, authorize(server, app, server.add_user(),
                                                  redirect_uri="http://127.0.0.1:3/cb")).json()
    for _ in range(2):  # rotation, then reuse
        server.token(app, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})

    text = httpx2.get(server.base_url + "/metrics").text
    assert sample(text, "tokenward_events_total", event="token.issued", grant_type="client_credentials") == 10
    assert sample(text, "tokenward_events_total", event="token.refreshed", grant_type="refresh_token") == 1
    assert sample(text, "tokenward_refresh_reuse_detected_total") == 1
    assert sample(text, "tokenward_http_requests_total", endpoint="/token", status="200") == 12
    assert sample(text, "tokenward_http_requests_total", endpoint="/token", status="400") == 1
    assert sample(text, "tokenward_signing_keys", state="active") == 3
    # the latency histogram of /token, summed over both workers: 13 observations (12 of 200, 1 of 400), each
    # bucket cumulative (never fewer than the one below it), the last one holding all 13
    buckets = {le: sample(text, "tokenward_http_request_duration_seconds_bucket", endpoint="/token", le=le)
               for le in re.findall(r'tokenward_http_request_duration_seconds_bucket\{endpoint="/token",le="([^"]+)"\}',
                                    text)}
    bounds = sorted(buckets, key=float)
    assert bounds[-1] == "+Inf" and len(bounds) == 12
    assert [buckets[b] for b in bounds] == sorted(buckets[b] for b in bounds)
    assert buckets["+Inf"] == 13
    assert sample(text, "tokenward_http_request_duration_seconds_count", endpoint="/token") == 13
    assert buckets["2.5"] >= 10  # the local token requests took well under 2.5 s
    assert 0 < sample(text, "tokenward_http_request_duration_seconds_sum", endpoint="/token") < 13 * 2.5


def test_metrics_count_device_authorizations_decisions_and_device_tokens(fresh_server: ServerProcess) -> None:
    from tests.device import DEVICE_GRANT, add_device_client, decide_over_http, poll, start

    server = fresh_server
    server.start("--metrics", workers=2)
    client = add_device_client(server)
    user = server.add_user()
    approved, denied = start(server, client), start(server, client)
    decide_over_http(server, approved["user_code"], user)
    decide_over_http(server, denied["user_code"], user, decision="deny")
    assert poll(server, client, approved["device_code"]).status_code == 200
    text = httpx2.get(server.base_url + "/metrics").text
    assert sample(text, "tokenward_events_total", event="device.authorization_created") == 2
    assert sample(text, "tokenward_events_total", event="device.approved") == 1
    assert sample(text, "tokenward_events_total", event="device.denied") == 1
    assert sample(text, "tokenward_events_total", event="token.issued", grant_type=DEVICE_GRANT) == 1
    assert sample(text, "tokenward_http_requests_total", endpoint="/device_authorization", status="200") == 2
    assert sample(text, "tokenward_http_requests_total", endpoint="/device", status="200") >= 6
