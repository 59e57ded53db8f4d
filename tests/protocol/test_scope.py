"""Scopes (RFC 6749 §3.3): scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), space-separated, a set."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenward.protocol.errors import InvalidScopeError
from tokenward.protocol.scope import Scope

SCOPE_TOKEN_CHARS = "".join(chr(c) for c in [0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F)])


@pytest.mark.parametrize(("value", "tokens", "wire"), [
    (None, set(), ""),
    ("", set(), ""),
    ("read", {"read"}, "read"),
    ("write read", {"read", "write"}, "read write"),
    ("read write read", {"read", "write"}, "read write"),
    ("b a c", {"a", "b", "c"}, "a b c"),
    ("Read read", {"Read", "read"}, "Read read"),
    ("https://api.example/read profile:write!", {"https://api.example/read", "profile:write!"},
     "https://api.example/read profile:write!"),
    ("!#$%&'()*+,-./:;<=>?@[]^_`{|}~", {"!#$%&'()*+,-./:;<=>?@[]^_`{|}~"}, "!#$%&'()*+,-./:;<=>?@[]^_`{|}~"),
], ids=["missing", "empty", "one", "two-unsorted", "repeated", "three", "case-sensitive", "uri-like",
        "all-punctuation"])
def test_parse_gives_the_token_set_and_canonical_sorted_str_when_value_is_valid(
        value: str | None, tokens: set[str], wire: str) -> None:
    scope = Scope.parse(value)
    assert set(scope) == tokens
    assert str(scope) == wire
    assert repr(scope) == f"Scope({wire!r})"


@pytest.mark.parametrize("value", [" ", "  read  ", "read  write"], ids=["space", "padded", "double-space"])
def test_parse_ignores_extra_spaces_when_value_has_them(value: str) -> None:
    assert str(Scope.parse(value)) == " ".join(sorted(value.split()))


@pytest.mark.parametrize("value", [
    'read "write"', "read\\write", "read\x00", "read\twrite", "read\nwrite", "read\n", "\nread", "read\r",
    "read\x7f", "read\x1f", "café", "read écrire", "read\u00a0write", "read\u2028", "emoji\U0001f600",
], ids=["double-quote", "backslash", "nul", "tab", "newline", "trailing-newline", "leading-newline",
        "carriage-return", "del", "unit-separator", "non-ascii", "non-ascii-token", "nbsp", "line-separator",
        "emoji"])
def test_parse_is_invalid_scope_when_a_token_has_chars_outside_rfc_6749_3_3(value: str) -> None:
    with pytest.raises(InvalidScopeError) as info:
        Scope.parse(value)
    assert info.value.error == "invalid_scope"
    assert info.value.status == 400


@pytest.mark.parametrize(("requested", "granted", "expected"), [
    ("", "read write", True),
    ("read", "read write", True),
    ("write read", "read write", True),
    ("read write", "read write", True),
    ("read admin", "read write", False),
    ("admin", "", False),
    ("READ", "read", False),
    ("rea", "read", False),
], ids=["empty", "one-of-two", "same-other-order", "equal", "one-extra", "nothing-granted", "case-differs",
        "prefix"])
def test_issubset_follows_set_semantics_when_comparing_scopes(requested: str, granted: str, expected: bool) -> None:
    assert Scope.parse(requested).issubset(Scope.parse(granted)) is expected
    assert (Scope.parse(requested) <= Scope.parse(granted)) is expected


def test_scope_is_hashable_and_immutable_when_used_as_a_set() -> None:
    scope = Scope.parse("read write")
    assert {scope: 1}[Scope.parse("write read")] == 1
    assert isinstance(scope, frozenset)
    assert not hasattr(scope, "add")


# --- properties -------------------------------------------------------------------------------------------

scope_tokens = st.text(alphabet=SCOPE_TOKEN_CHARS, min_size=1, max_size=12)


@given(st.lists(scope_tokens, max_size=8), st.sampled_from([" ", "  "]))
def test_parse_round_trips_when_str_of_a_parsed_scope_is_parsed_again(tokens: list[str], sep: str) -> None:
    scope = Scope.parse(sep.join(tokens))
    assert set(scope) == set(tokens)
    again = Scope.parse(str(scope))
    assert again == scope
    assert str(again) == str(scope)
    assert str(scope) == " ".join(sorted(set(tokens)))


@given(st.text(max_size=30))
def test_parse_raises_only_invalid_scope_and_keeps_only_valid_tokens_when_value_is_arbitrary(value: str) -> None:
    try:
        scope = Scope.parse(value)
    except InvalidScopeError:
        return
    assert all(token and set(token) <= set(SCOPE_TOKEN_CHARS) for token in scope)
