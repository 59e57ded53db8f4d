"""The last-line-of-defence redaction in server logs: every secret shape, in one pass."""

from __future__ import annotations

import pytest

from tokenward.server.logs import redact

JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"


@pytest.mark.parametrize(("line", "expected"), [
    ("refresh with tw_rt_abcDEF-_123 failed", "refresh with [redacted] failed"),
    ("secret tw_cs_xyz and code tw_ac_q", "secret [redacted] and code [redacted]"),
    (f"bearer {JWT} rejected", "bearer [redacted] rejected"),
    ("GET /cb?code=abc&state=s", "GET /cb?code=[redacted]&state=s"),
    ("form PASSWORD=hunter2 client_secret=s3 code_verifier=v", "form PASSWORD=[redacted] client_secret=[redacted] "
     "code_verifier=[redacted]"),
    ("Header AuThOrIzAtIoN: Basic dXNlcjpwYXNz end", "Header AuThOrIzAtIoN: Basic [redacted] end"),
    ("refresh_token=tw_rt_abc", "refresh_token=[redacted]"),
    ('{"event": "token.issued", "path": "/token", "status": 200}', '{"event": "token.issued", "path": "/token", '
     '"status": 200}'),
])
def test_redact_hides_every_secret_shape_and_leaves_plain_lines_alone(line: str, expected: str) -> None:
    assert redact(line) == expected
