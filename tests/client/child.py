"""A client process for the cross-process and crash tests (``python -m tests.client.child ...``).

``call``: load the shared encrypted file store, print ``ready``, wait for the go-file, then GET the URL from
``--threads`` threads and print one JSON line of statuses. ``--crash-after-refresh`` SIGKILLs the process
from the ``on_refresh`` hook, which runs right after the new tokens were persisted and before they are used.

``store-crash``: save token A, then save token B with ``os.replace`` patched to SIGKILL the process, i.e. a
crash after the temp file was written and fsynced but before it replaced the old file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import httpx2

from tokenward.client import BearerAuth, EncryptedFileTokenStore, KeyFileKey, Token


def die(*_: object) -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def call(args: argparse.Namespace) -> None:
    store = EncryptedFileTokenStore(args.store, key=KeyFileKey(Path(args.key)))
    auth = BearerAuth(args.token_endpoint, args.client_id, store=store,
                      on_refresh=die if args.crash_after_refresh else None)
    auth.manager.current()  # hold the (stale) token in memory, as a long-running process would
    print("ready", flush=True)
    if args.go:
        deadline = time.monotonic() + 30
        while not Path(args.go).exists():
            if time.monotonic() > deadline:
                raise SystemExit("no go signal")
            time.sleep(0.002)
    statuses: list[int] = []
    lock = threading.Lock()

    def one(http: httpx2.Client) -> None:
        status = http.get(args.url).status_code
        with lock:
            statuses.append(status)

    with httpx2.Client(auth=auth, timeout=30) as http:
        threads = [threading.Thread(target=one, args=(http,)) for _ in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    print(json.dumps({"statuses": statuses}), flush=True)


def store_crash(args: argparse.Namespace) -> None:
    store = EncryptedFileTokenStore(args.store, key=KeyFileKey(Path(args.key)))
    store.save(Token("access-A", refresh_token="refresh-A", expires_at=time.time() + 600, obtained_at=time.time()))
    print("saved A", flush=True)
    os.replace = die  # type: ignore[assignment]
    store.save(Token("access-B", refresh_token="refresh-B", expires_at=time.time() + 600, obtained_at=time.time()))
    print("saved B", flush=True)  # never reached


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("call")
    c.add_argument("--token-endpoint", required=True)
    c.add_argument("--client-id", required=True)
    c.add_argument("--store", required=True)
    c.add_argument("--key", required=True)
    c.add_argument("--url", required=True)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--go")
    c.add_argument("--crash-after-refresh", action="store_true")
    s = sub.add_parser("store-crash")
    s.add_argument("--store", required=True)
    s.add_argument("--key", required=True)
    args = parser.parse_args()
    {"call": call, "store-crash": store_crash}[args.command](args)


if __name__ == "__main__":
    main()
