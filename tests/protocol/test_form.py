"""Form bodies and queries (RFC 6749 §3.1, §3.2, App. B; security.md §2.1): strict UTF-8, no parameter twice,
empty values omitted."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenward.protocol.errors import InvalidRequestError
from tokenward.protocol.form import MAX_FIELDS, DuplicateParameterError, is_form_content_type, parse_form, parse_query


@pytest.mark.parametrize(("body", "expected"), [
    (b"", {}),
    (b"grant_type=client_credentials", {"grant_type": "client_credentials"}),
    (b"grant_type=authorization_code&code=abc&code_verifier=x",
     {"grant_type": "authorization_code", "code": "abc", "code_verifier": "x"}),
    (b"scope=read+write", {"scope": "read write"}),
    (b"scope=read%20write", {"scope": "read write"}),
    (b"client_secret=%2B%25%26+", {"client_secret": "+%& "}),
    (b"redirect_uri=https%3A%2F%2Fapp.example%2Fcb%3Fa%3D1", {"redirect_uri": "https://app.example/cb?a=1"}),
    (b"name=caf%C3%A9", {"name": "café"}),
    (b"a=1&&b=2", {"a": "1", "b": "2"}),
    (b"a=x=y", {"a": "x=y"}),
], ids=["empty", "one", "several", "plus-is-space", "percent-space", "escaped-specials", "escaped-uri",
        "utf8-escape", "empty-pair", "equals-in-value"])
def test_parse_form_decodes_parameters_when_body_is_well_formed(body: bytes, expected: dict[str, str]) -> None:
    assert parse_form(body) == expected


@pytest.mark.parametrize(("body", "expected"), [
    (b"scope=", {}),
    (b"grant_type=client_credentials&scope=", {"grant_type": "client_credentials"}),
    (b"scope", {}),
    (b"grant_type=refresh_token&client_secret=&refresh_token=r", {"grant_type": "refresh_token", "refresh_token": "r"}),
], ids=["only-empty", "empty-scope", "no-equals", "empty-secret"])
def test_parse_form_omits_parameter_when_value_is_empty(body: bytes, expected: dict[str, str]) -> None:
    assert parse_form(body) == expected


@pytest.mark.parametrize(("body", "name"), [
    (b"grant_type=client_credentials&grant_type=client_credentials", "grant_type"),
    (b"code=a&code=b", "code"),
    (b"refresh_token=a&scope=x&refresh_token=a", "refresh_token"),
    (b"code_verifier=a&code_verifier=", "code_verifier"),
    (b"scope=&scope=", "scope"),
    (b"client_id=a&client_id=a", "client_id"),
    (b"foo=1&foo=2", "foo"),
    (b"scope=a&sc%6Fpe=b", "scope"),
], ids=["grant_type", "code", "refresh_token", "second-empty", "both-empty", "client_id", "unknown-parameter",
        "escaped-name"])
def test_parse_form_raises_duplicate_parameter_when_a_parameter_is_sent_twice(body: bytes, name: str) -> None:
    with pytest.raises(DuplicateParameterError) as info:
        parse_form(body)
    assert isinstance(info.value, InvalidRequestError)
    assert info.value.error == "invalid_request"
    assert info.value.status == 400
    assert info.value.name == name
    assert name not in info.value.description


@pytest.mark.parametrize("body", [
    b"grant_type=client_credentials&scope=%C3%28",
    b"grant_type=client_credentials&foo=%C3%28",
    b"grant_type=client_credentials%C3%28",
    b"foo=%FF",
    b"%FF=x",
    b"foo=%ED%A0%80",
    "foo=café".encode(),
    "foo=café".encode("latin-1"),
    b"foo=\xff",
    b"\x80",
    b"foo=%zz",
    b"foo=%",
    b"foo=%4",
    b"foo=%4g",
    b"%zz=x",
    b"&".join(b"f%d=x" % i for i in range(MAX_FIELDS + 1)),
], ids=["bad-utf8-scope", "bad-utf8-unknown", "bad-utf8-name", "latin1-escape", "latin1-escape-name",
        "surrogate-escape", "raw-utf8", "raw-latin1", "raw-high-byte", "raw-continuation-byte", "escape-zz",
        "lone-percent", "short-escape", "bad-hex", "escape-zz-name", "too-many-fields"])
def test_parse_form_is_invalid_request_when_body_is_not_valid_form_encoding(body: bytes) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_form(body)
    assert info.value.error == "invalid_request"


def test_parse_form_accepts_body_when_it_has_exactly_the_field_limit() -> None:
    body = b"&".join(b"f%d=x" % i for i in range(MAX_FIELDS))
    assert len(parse_form(body)) == MAX_FIELDS


@pytest.mark.parametrize("content_type", [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=UTF-8",
    "application/x-www-form-urlencoded;charset=utf-8",
    "Application/X-WWW-Form-Urlencoded",
    " application/x-www-form-urlencoded ; charset=UTF-8",
])
def test_is_form_content_type_is_true_when_content_type_is_form_urlencoded(content_type: str) -> None:
    assert is_form_content_type(content_type) is True


@pytest.mark.parametrize("content_type", [
    None,
    "",
    "application/json",
    "application/json; charset=UTF-8",
    "multipart/form-data; boundary=xyz",
    "text/plain",
    "application/x-www-form-urlencoded-extra",
    "application/x-www-form",
    "application/xml, application/x-www-form-urlencoded",
])
def test_is_form_content_type_is_false_when_content_type_is_anything_else(content_type: str | None) -> None:
    assert is_form_content_type(content_type) is False


@pytest.mark.parametrize(("query", "first", "duplicates"), [
    ("", {}, frozenset()),
    ("response_type=code&client_id=app", {"response_type": "code", "client_id": "app"}, frozenset()),
    ("scope=a&scope=b", {"scope": "a"}, frozenset({"scope"})),
    ("client_id=app&state=1&client_id=evil&state=2", {"client_id": "app", "state": "1"},
     frozenset({"client_id", "state"})),
    ("state=&state=x", {}, frozenset({"state"})),
    ("scope=&client_id=app", {"client_id": "app"}, frozenset()),
    ("redirect_uri=https%3A%2F%2Fapp.example%2Fcb", {"redirect_uri": "https://app.example/cb"}, frozenset()),
    ("scope=read+write", {"scope": "read write"}, frozenset()),
], ids=["empty", "plain", "duplicate-scope", "two-duplicates", "empty-first-value", "empty-omitted",
        "escaped-uri", "plus-is-space"])
def test_parse_query_returns_first_values_and_duplicate_names_when_query_is_decodable(
        query: str, first: dict[str, str], duplicates: frozenset[str]) -> None:
    assert parse_query(query) == (first, duplicates)


@pytest.mark.parametrize("query", [
    "state=%C3%28",
    "client_id=%FF",
    "&".join(f"f{i}=x" for i in range(MAX_FIELDS + 1)),
], ids=["bad-utf8", "latin1-escape", "too-many-fields"])
def test_parse_query_is_invalid_request_when_query_is_not_decodable(query: str) -> None:
    with pytest.raises(InvalidRequestError):
        parse_query(query)


# --- properties -------------------------------------------------------------------------------------------

form_like = st.lists(
    st.sampled_from([b"a", b"=", b"&", b"%", b"%2", b"%C3", b"%28", b"%zz", b"+", b";", b"\xff", b"\xc3", b"x=",
                     b"grant_type", b"scope"]),
    max_size=30,
).map(b"".join)


@given(st.one_of(st.binary(max_size=200), form_like))
def test_parse_form_raises_only_invalid_request_when_body_is_arbitrary_bytes(body: bytes) -> None:
    try:
        result = parse_form(body)
    except InvalidRequestError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in result.items())


@given(st.text(max_size=200))
def test_parse_query_raises_only_invalid_request_when_query_is_arbitrary_text(query: str) -> None:
    try:
        first, duplicates = parse_query(query)
    except InvalidRequestError:
        return
    assert all(v for v in first.values())
    assert isinstance(duplicates, frozenset)


unicode_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=20)


@given(st.dictionaries(unicode_text, unicode_text, max_size=10))
def test_parse_form_round_trips_when_body_is_encoded_with_urlencode(params: dict[str, str]) -> None:
    assert parse_form(urlencode(params).encode("ascii")) == params
