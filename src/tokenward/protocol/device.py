"""User codes of the device authorization grant (RFC 8628 §6.1).

Eight characters from the 20 consonants ``BCDFGHJKLMNPQRSTVWXZ`` (no vowels, so no words; no look-alikes such as
0/O or 1/I): 20^8 ≈ 2^34.6 codes, safe only with a short lifetime and a limit on wrong guesses (§5.1). Shown as
``XXXX-XXXX``; entry ignores case, hyphens and spaces (§6.1: "the server SHOULD ignore characters ... like
punctuation"), so ``bcdf ghjk`` and ``BCDF-GHJK`` are the same code.
"""

from __future__ import annotations

import secrets

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
_ALLOWED = frozenset(USER_CODE_ALPHABET)
_IGNORED = frozenset("- \t")
MAX_USER_CODE_INPUT = 64  # longer input is malformed without being looked at


def new_user_code() -> str:
    """A fresh user code, normalised (no hyphen): what is hashed and stored."""
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def normalize_user_code(text: str) -> str | None:
    """The code the user meant, or None when ``text`` cannot be a user code (a wrong letter, a wrong length)."""
    if len(text) > MAX_USER_CODE_INPUT:
        return None
    code = "".join(c for c in text.upper() if c not in _IGNORED)
    if len(code) != USER_CODE_LENGTH or not set(code) <= _ALLOWED:
        return None
    return code


def display_user_code(code: str) -> str:
    """``BCDFGHJK`` → ``BCDF-GHJK``: two groups of four are easier to read and type (§6.1)."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"
