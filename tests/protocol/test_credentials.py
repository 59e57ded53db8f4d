"""Client credentials from the Authorization header or the body (RFC 6749 §2.3, §2.3.1, App. B;
security.md §2.2)."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenward.protocol.credentials import ClientCredentials, parse_basic, parse_client_credentials
from tokenward.protocol.errors import InvalidClientError, InvalidRequestError
from tokenward.protocol.types import ClientAuthMethod


def basic(raw: str, scheme: str = "Basic") -> str:
    return f"{scheme} {base64.b64encode(raw.encode()).decode()}"


def encoded_basic(client_id: str, secret: str, scheme: str = "Basic") -> str:
    """RFC 6749 §2.3.1: each part form-urlencoded, then ``id:secret`` base64-encoded."""
    return basic(f"{quote_plus(client_id)}:{quote_plus(secret)}", scheme)


# RFC 6749 Appendix B example values, as node-oidc-provider tests them ("appendix-b").
APPENDIX_B_ID = "an:identifier"
APPENDIX_B_SECRET = " %&+"


def test_basic_credentials_are_form_decoded_when_encoded_as_rfc_6749_appendix_b() -> None:
    header = "Basic " + base64.b64encode(b"an%3Aidentifier:+%25%26%2B").decode()
    assert header == encoded_basic(APPENDIX_B_ID, APPENDIX_B_SECRET)
    credentials = parse_client_credentials(header, {})
    assert credentials == ClientCredentials(APPENDIX_B_ID, ClientAuthMethod.CLIENT_SECRET_BASIC, APPENDIX_B_SECRET)


@pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC", "bAsIc"])
def test_basic_credentials_are_accepted_when_scheme_is_in_any_case(scheme: str) -> None:
    credentials = parse_client_credentials(encoded_basic("app", "s3cret", scheme), {})
    assert credentials == ClientCredentials("app", ClientAuthMethod.CLIENT_SECRET_BASIC, "s3cret")


def test_basic_credentials_are_accepted_when_body_repeats_the_same_client_id() -> None:
    credentials = parse_client_credentials(encoded_basic("app", "s3cret"), {"client_id": "app"})
    assert credentials == ClientCredentials("app", ClientAuthMethod.CLIENT_SECRET_BASIC, "s3cret")


def test_basic_credentials_are_accepted_when_header_has_surrounding_spaces() -> None:
    credentials = parse_client_credentials(f"  {encoded_basic('app', 's3cret')}  ", {})
    assert credentials == ClientCredentials("app", ClientAuthMethod.CLIENT_SECRET_BASIC, "s3cret")


def test_basic_credentials_keep_colons_in_secret_when_secret_contains_a_raw_colon() -> None:
    assert parse_basic(basic("app:pa:ss")) == ("app", "pa:ss")


@pytest.mark.parametrize("header", [
    "Basic " + base64.b64encode(b"app:secret").decode() + "!",
    "Basic !!!!",
    "Basic YXBwOnNlY3JldA",
    "Basic YXBw OnNlY3JldA==",
    "Basic " + base64.urlsafe_b64encode(b"app:se\xfb\xffet").decode(),
    "Basic " + base64.b64encode(b"app:\xff\xfe").decode(),
    "Basic",
    "Basic ",
    "Basic    ",
    "Basic Zm9v",
    basic("app"),
    basic("app:"),
    basic(":secret"),
    basic(":"),
    basic("foo with %:foo with $"),
    basic("%zz:secret"),
    basic("app:%"),
    basic("app:%4"),
    basic("%C3%28:secret"),
    basic("app:%00"),
    basic("app%0A:secret"),
    basic("app:secret%0A"),
    basic("app:secret%7F"),
    basic("app:caf%C3%A9"),
    basic("app:café"),
    basic("app\t:secret"),
], ids=["trailing-bang", "not-base64", "missing-padding", "space-inside", "urlsafe-alphabet", "not-utf8",
        "scheme-only", "scheme-space", "scheme-spaces", "no-colon", "id-only",
        "empty-secret", "empty-id", "colon-only", "raw-percent", "bad-escape", "lone-percent", "short-escape",
        "escape-not-utf8", "nul", "id-newline", "secret-newline", "secret-del", "secret-non-ascii-escaped",
        "secret-non-ascii-raw", "id-tab"])
def test_basic_credentials_are_invalid_request_when_header_is_malformed(header: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_client_credentials(header, {})
    assert info.value.error == "invalid_request"
    assert info.value.status == 400


@pytest.mark.parametrize("header", [
    "Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln",
    "Digest username=app",
    "Negotiate YIIB",
], ids=["bearer", "digest", "negotiate"])
def test_client_credentials_are_invalid_client_when_header_uses_another_scheme(header: str) -> None:
    """RFC 6749 §5.2: an unsupported authentication method is invalid_client (401 with a Basic challenge)."""
    with pytest.raises(InvalidClientError) as info:
        parse_client_credentials(header, {"client_id": "app"})
    assert info.value.status == 401


@pytest.mark.parametrize("header", [
    "Basic" + base64.b64encode(b"app:secret").decode(),
    "Basic\t" + base64.b64encode(b"app:secret").decode(),
    "",
    "   ",
    "YXBwOnNlY3JldA==",
], ids=["no-space", "tab", "empty", "blank", "no-scheme"])
def test_client_credentials_are_invalid_request_when_header_is_not_a_scheme_and_credentials(header: str) -> None:
    with pytest.raises(InvalidRequestError):
        parse_client_credentials(header, {"client_id": "app"})


def test_client_credentials_are_invalid_request_when_basic_and_body_secret_are_both_sent() -> None:
    with pytest.raises(InvalidRequestError, match="only one method"):
        parse_client_credentials(encoded_basic("app", "s3cret"), {"client_id": "app", "client_secret": "s3cret"})


def test_client_credentials_are_invalid_request_when_basic_and_body_secret_are_sent_without_body_id() -> None:
    with pytest.raises(InvalidRequestError, match="only one method"):
        parse_client_credentials(encoded_basic("app", "s3cret"), {"client_secret": "s3cret"})


@pytest.mark.parametrize("body_id", ["other", "App", "app ", "an%3Aidentifier"])
def test_client_credentials_are_invalid_request_when_basic_id_differs_from_body_client_id(body_id: str) -> None:
    header = encoded_basic("app" if body_id != "an%3Aidentifier" else APPENDIX_B_ID, "s3cret")
    with pytest.raises(InvalidRequestError, match="does not match"):
        parse_client_credentials(header, {"client_id": body_id})


def test_client_credentials_are_client_secret_post_when_body_has_id_and_secret() -> None:
    credentials = parse_client_credentials(None, {"client_id": "app", "client_secret": "s3cret", "scope": "a"})
    assert credentials == ClientCredentials("app", ClientAuthMethod.CLIENT_SECRET_POST, "s3cret")


def test_client_credentials_are_method_none_when_body_has_only_client_id() -> None:
    credentials = parse_client_credentials(None, {"client_id": "public-app", "grant_type": "authorization_code"})
    assert credentials == ClientCredentials("public-app", ClientAuthMethod.NONE, None)


def test_client_credentials_are_none_when_request_carries_no_client_identification() -> None:
    assert parse_client_credentials(None, {}) is None
    assert parse_client_credentials(None, {"grant_type": "client_credentials"}) is None


def test_client_credentials_are_invalid_request_when_body_has_secret_without_client_id() -> None:
    with pytest.raises(InvalidRequestError):
        parse_client_credentials(None, {"client_secret": "s3cret"})


@pytest.mark.parametrize("credentials", [
    ClientCredentials("app", ClientAuthMethod.CLIENT_SECRET_BASIC, "hunter2-very-secret"),
    ClientCredentials("app", ClientAuthMethod.CLIENT_SECRET_POST, "hunter2-very-secret"),
])
def test_secret_is_absent_from_repr_and_str_when_credentials_are_printed(credentials: ClientCredentials) -> None:
    assert "hunter2" not in repr(credentials)
    assert "hunter2" not in str(credentials)
    assert "app" in repr(credentials)


def test_secret_is_absent_from_repr_when_parsed_from_a_basic_header() -> None:
    credentials = parse_client_credentials(encoded_basic("app", "hunter2-very-secret"), {})
    assert credentials is not None
    assert credentials.secret == "hunter2-very-secret"
    assert "hunter2" not in repr(credentials)


# --- properties -------------------------------------------------------------------------------------------

vschar_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)


@given(st.text(max_size=80))
def test_client_credentials_raise_only_rfc_errors_when_header_is_arbitrary_text(header: str) -> None:
    """Any text: Basic credentials, invalid_request (malformed), or invalid_client (another scheme)."""
    try:
        result = parse_client_credentials(header, {})
    except InvalidRequestError:
        return
    except InvalidClientError:
        assert header.strip().partition(" ")[0].lower() != "basic"
        return
    assert result is not None
    assert result.method is ClientAuthMethod.CLIENT_SECRET_BASIC


@given(st.one_of(st.binary(max_size=60), vschar_text.map(str.encode)), st.sampled_from(["Basic ", "basic  "]))
def test_client_credentials_raise_only_invalid_request_when_basic_payload_is_arbitrary(
        payload: bytes, scheme: str) -> None:
    try:
        result = parse_client_credentials(scheme + base64.b64encode(payload).decode(), {})
    except InvalidRequestError:
        return
    assert result is not None
    assert result.client_id
    assert result.secret


@given(vschar_text, vschar_text)
def test_basic_credentials_round_trip_when_vschar_id_and_secret_are_form_encoded(client_id: str, secret: str) -> None:
    credentials = parse_client_credentials(encoded_basic(client_id, secret), {})
    assert credentials == ClientCredentials(client_id, ClientAuthMethod.CLIENT_SECRET_BASIC, secret)
