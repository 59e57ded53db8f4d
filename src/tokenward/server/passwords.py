"""User passwords with argon2id (OWASP profile m=19456 KiB, t=2, p=1: ~20 ms here instead of ~140 ms).

A hash costs ~20 ms of CPU, so the async functions run it in a thread pool sized to the cores (argon2-cffi
releases the GIL while hashing): on the event loop, 20 concurrent logins stalled every other request of the
worker for ~0.5 s. A semaphore admits at most as many hashes as there are threads, so waiting logins queue
on the loop, where a request whose client went away is cancelled before it costs any CPU, rather than in the
executor's queue, where it would still be hashed.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified for unknown users so that timing does not tell whether a username exists.
_DUMMY_HASH = _HASHER.hash("tokenward-dummy-password")

HASH_THREADS = os.cpu_count() or 1
_POOL = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="tokenward-argon2")
# One semaphore per event loop (a Semaphore belongs to the loop that first waits on it).
_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; always costs one argon2 verification, even for unknown users."""
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def _slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _SLOTS.get(loop)
    if slots is None:
        slots = _SLOTS[loop] = asyncio.Semaphore(HASH_THREADS)
    return slots


async def hash_password_async(password: str) -> str:
    """``hash_password`` off the event loop. Used by: the admin layer (users add, users set-password)."""
    async with _slots():
        return await asyncio.get_running_loop().run_in_executor(_POOL, hash_password, password)


async def verify_password_async(stored_hash: str | None, password: str) -> bool:
    """``verify_password`` off the event loop. Used by: the login page."""
    async with _slots():
        return await asyncio.get_running_loop().run_in_executor(_POOL, verify_password, stored_hash, password)
