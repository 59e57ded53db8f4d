"""Client records cached per worker for a few seconds.

Clients change rarely (the CLI adds, removes and rotates them) but are read on every token, revocation
and introspection request; caching them takes the database off the client-credentials path entirely.
Unknown ids are cached too, so guessing ids costs one read per id and TTL, in a bounded table.
"""

from __future__ import annotations

import time

from tokenward.server.model import Client
from tokenward.server.store.protocols import Store

MAX_ENTRIES = 10_000


class ClientCache:
    """Used by: client authentication at the token, revocation and introspection endpoints."""

    def __init__(self, store: Store, ttl: float, max_entries: int = MAX_ENTRIES) -> None:
        self.store = store
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Client | None]] = {}

    async def get_client(self, client_id: str) -> Client | None:
        now = time.monotonic()
        entry = self._entries.get(client_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        async with self.store.transaction() as tx:
            client = await tx.get_client(client_id)
        if self.ttl > 0:
            if len(self._entries) >= self.max_entries:
                self._evict(now)
            self._entries[client_id] = (now + self.ttl, client)
        return client

    def _evict(self, now: float) -> None:
        """Drop expired entries; if none are, the oldest half (dicts keep insertion order)."""
        live = {k: v for k, v in self._entries.items() if v[0] > now}
        if len(live) >= self.max_entries:
            live = dict(list(live.items())[len(live) // 2:])
        self._entries = live
