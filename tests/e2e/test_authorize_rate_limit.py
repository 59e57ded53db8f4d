"""The per-IP limit on pending authorization requests (issue #12 §2.6): each valid ``GET /authorize``
stores a row for 15 minutes, so one address may create only so many; past that the page answers 429."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx2

from tests.support import ServerProcess
from tokenward.protocol import pkce


def test_authorize_answers_429_with_retry_after_and_stores_nothing_past_the_per_ip_limit(
        fresh_server: ServerProcess) -> None:
    fresh_server.start(env={"TOKENWARD_RATE_LIMITS": "on", "TOKENWARD_RATE_LIMIT_AUTHORIZE_IP": "5/60"})
    client = fresh_server.add_client()
    query = urlencode({"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
                       "code_challenge": pkce.s256(pkce.new_verifier()), "code_challenge_method": "S256"})
    statuses = [httpx2.get(fresh_server.base_url + "/authorize?" + query).status_code for _ in range(5)]
    assert statuses == [303] * 5
    stored = fresh_server.query("SELECT count(*) FROM authorization_requests")[0][0]
    refused = httpx2.get(fresh_server.base_url + "/authorize?" + query)
    assert refused.status_code == 429, refused.text[:300]
    assert int(refused.headers["retry-after"]) > 0
    assert "location" not in refused.headers
    assert "no-store" in refused.headers["cache-control"]
    assert fresh_server.query("SELECT count(*) FROM authorization_requests")[0][0] == stored == 5
