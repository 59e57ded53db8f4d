"""One spelling per account: the key a username is looked up, kept unique and rate-limited under.

People type ``Alice`` for ``alice``, and Unicode has many strings that render alike (full-width forms,
ligatures, the Kelvin sign, precomposed and combining accents). Comparing the raw strings made those
different accounts and different failed-login counters (issue #12 §2.8), so every comparison uses
:func:`username_key`: NFKC, full case folding, NFKC again — Unicode's caseless identifier match
(Unicode §3.13, D145), which RFC 8265 §3.3's UsernameCaseMapped profile approximates. The second NFKC
makes the key idempotent, so re-keying stored keys never splits an account. The name as typed at
``users add`` is kept for display. Pure: no framework, no I/O.
"""

from __future__ import annotations

import unicodedata

MAX_LENGTH = 150  # characters, of the name as typed and of its key (NFKC can expand one character 18-fold)


class UsernameError(ValueError):
    """A proposed username that ``users add`` refuses; the message says why."""


def username_key(username: str) -> str:
    """The caseless, compatibility-normalised form two spellings of one name share."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())


def check_new_username(username: str) -> str:
    """The key of an acceptable new name, or :class:`UsernameError`.

    Refused: empty or over-long names and keys, whitespace, and control, format, private-use, surrogate or
    unassigned characters (general category C*) — zero-width joiners and direction overrides make two
    names that look identical (RFC 8265 §3.2 disallows them too).
    """
    key = username_key(username)
    if not 0 < len(username) <= MAX_LENGTH or len(key) > MAX_LENGTH:
        raise UsernameError(f"a username is 1-{MAX_LENGTH} characters without spaces")
    if any(c.isspace() for c in username + key):
        raise UsernameError(f"a username is 1-{MAX_LENGTH} characters without spaces")
    if any(unicodedata.category(c).startswith("C") for c in username):
        raise UsernameError("a username cannot contain invisible or control characters")
    return key
