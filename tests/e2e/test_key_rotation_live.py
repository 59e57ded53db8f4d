"""Key rotation with pre-publication while a 2-worker server issues tokens and a guard validates every one
of them: not a single validation failure, and the guard switches to the new key."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import Counter

from tests.support import TOKENWARD, ServerProcess
from tokenward.protocol.bearer import BearerError
from tokenward.resource import JwtVerifier


def kid_of(token: str) -> str:
    import base64

    return str(json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "==="))["kid"])


def test_rotation_under_load_causes_no_validation_failure(fresh_server: ServerProcess) -> None:
    server = fresh_server
    server.start(workers=2, env={"TOKENWARD_KEY_CACHE_SECONDS": "1"})
    client = server.add_client(grant_types=("client_credentials",), redirect_uri=None)
    guard = JwtVerifier(issuer=server.base_url, audience="urn:tokenward:api")
    outcomes: Counter[str] = Counter()
    kids: list[str] = []
    stop = threading.Event()

    def issue_and_validate() -> None:
        while not stop.is_set():
            r = server.token(client, {"grant_type": "client_credentials"})
            if r.status_code != 200:
                outcomes[f"token {r.status_code}"] += 1
                continue
            token = r.json()["access_token"]
            kids.append(kid_of(token))
            try:
                guard.verify_sync(token)
                outcomes["valid"] += 1
            except BearerError as error:
                outcomes[f"rejected {error.description}"] += 1

    workers = [threading.Thread(target=issue_and_validate) for _ in range(4)]
    for w in workers:
        w.start()
    time.sleep(2)
    rotated = subprocess.run([TOKENWARD, "keys", "rotate", "--prepublish", "3", "--db", server.db_url, "--json"],
                             capture_output=True, text=True, timeout=60, check=False,
                             env={**os.environ, "TOKENWARD_KEK_FILE": str(server.workdir / "tokenward.kek")})
    assert rotated.returncode == 0, rotated.stderr
    new_es256 = next(k["kid"] for k in json.loads(rotated.stdout) if k["alg"] == "ES256")
    time.sleep(7)
    stop.set()
    for w in workers:
        w.join()

    assert set(outcomes) == {"valid"}, outcomes
    assert outcomes["valid"] > 50
    assert kids[0] != new_es256 and kids[-1] == new_es256  # signing switched after pre-publication
    assert guard.jwks.fetch_count <= 3  # initial fetch, plus at most a stale/unknown-kid refetch
