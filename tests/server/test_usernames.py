# ruff: noqa: RUF001, RUF002  (full-width look-alikes are what these tests are about)
"""Usernames compare after one normalisation, so look-alike spellings are one account and one lock.

Without it ``ALICE``, ``Alice`` and the full-width ``ａｌｉｃｅ`` were different names to the user lookup and to
``users add``, and each had its own failed-login counter (issue #12 §2.8).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenward.server.usernames import UsernameError, check_new_username, username_key


@pytest.mark.parametrize(("typed", "key"), [
    ("alice", "alice"),
    ("ALICE", "alice"),
    ("Alice", "alice"),
    ("ａｌｉｃｅ", "alice"),            # full-width forms (NFKC)
    ("ＡＬＩＣＥ", "alice"),            # full-width capitals: width and case at once
    ("Straße", "strasse"),             # full case folding, not lower()
    ("\u212aelvin", "kelvin"),         # KELVIN SIGN folds to k
    ("\ufb01le", "file"),              # the fi ligature
    ("e\u0301mile", "\u00e9mile"),     # combining acute composes, so both spellings of é agree
    ("\u00c9mile", "\u00e9mile"),
    ("ǅemal", "džemal"),               # title-case digraph
])
def test_spellings_that_look_alike_have_one_key(typed: str, key: str) -> None:
    assert username_key(typed) == key


def test_different_names_keep_different_keys() -> None:
    assert len({username_key(n) for n in ("alice", "alicE2", "bob", "al1ce", "alíce")}) == 5


@given(st.text(max_size=40))
def test_the_key_is_stable_under_itself(name: str) -> None:
    """NFKC after casefold: a key is already a key, so re-keying stored keys can never split an account."""
    assert username_key(username_key(name)) == username_key(name)


@pytest.mark.parametrize("name", ["alice", "Alice.Smith", "jörg", "user-1_b@example.com", "a" * 150])
def test_ordinary_names_are_accepted(name: str) -> None:
    check_new_username(name)


@pytest.mark.parametrize(("name", "why"), [
    ("", "1-150"),
    ("a" * 151, "1-150"),
    ("al ice", "spaces"),
    ("alice\t", "spaces"),
    ("ali\u200dce", "invisible"),        # zero-width joiner: two names that look the same
    ("alice\u202e", "invisible"),        # right-to-left override
    ("ali\x00ce", "invisible"),
    ("ali\x1bce", "invisible"),
    ("\ufdfa" * 10, "1-150"),            # one character that NFKC expands 18-fold: the key is bounded too
])
def test_names_that_would_mislead_or_overflow_are_refused(name: str, why: str) -> None:
    with pytest.raises(UsernameError, match=why):
        check_new_username(name)
