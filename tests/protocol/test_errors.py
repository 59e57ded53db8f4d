"""OAuth error responses (RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3; security.md §2): codes, statuses, wire shape,
and the §5.2 character set of every ``error`` and ``error_description`` the codebase can produce."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import TypeVar

import pytest

from tokenward.protocol import bearer, form
from tokenward.protocol.errors import (
    AccessDeniedError,
    AuthorizationPendingError,
    ConsentRequiredError,
    DeviceDeniedError,
    ExpiredTokenError,
    InteractionRequiredError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    MethodNotAllowedError,
    OAuthError,
    PollTooFastError,
    RequestNotSupportedError,
    RequestTimeoutError,
    RequestTooLargeError,
    RequestUriNotSupportedError,
    ReuseDetectedError,
    ServerError,
    SignInRequiredError,
    SlowDownError,
    TemporarilyUnavailableError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
    UnsupportedResponseTypeError,
)

E = TypeVar("E", bound=Exception)
SRC = Path(__file__).resolve().parents[2] / "src" / "tokenward"
# RFC 6749 §5.2 / App. A.7, A.8: error and error_description are %x20-21 / %x23-5B / %x5D-7E
WIRE_CHARS = re.compile(r"[\x20-\x21\x23-\x5B\x5D-\x7E]*")
# error is additionally 1*NQSCHAR and by registry convention lower-case words joined by "_"
ERROR_CODE = re.compile(r"[a-z]+(_[a-z]+)*")


def subclasses(base: type[E]) -> set[type[E]]:
    found: set[type[E]] = set()
    for cls in base.__subclasses__():
        found |= {cls, *subclasses(cls)}
    return found


ERROR_CLASSES: list[type[OAuthError]] = sorted({OAuthError} | subclasses(OAuthError), key=lambda c: c.__name__)
BEARER_CLASSES: list[type[bearer.BearerError]] = sorted(
    {bearer.BearerError} | subclasses(bearer.BearerError), key=lambda c: c.__name__)


def make(cls: type[OAuthError], description: str = "") -> OAuthError:
    if cls is SlowDownError:
        return SlowDownError(description, retry_after=1)
    if cls is form.DuplicateParameterError:
        return form.DuplicateParameterError("scope")
    return cls(description)


@pytest.mark.parametrize(("cls", "error", "status"), [
    (InvalidRequestError, "invalid_request", 400),
    (InvalidClientError, "invalid_client", 401),
    (InvalidGrantError, "invalid_grant", 400),
    (ReuseDetectedError, "invalid_grant", 400),
    (UnauthorizedClientError, "unauthorized_client", 400),
    (UnsupportedGrantTypeError, "unsupported_grant_type", 400),
    (UnsupportedResponseTypeError, "unsupported_response_type", 400),
    (InvalidScopeError, "invalid_scope", 400),
    (InvalidTargetError, "invalid_target", 400),
    (form.DuplicateParameterError, "invalid_request", 400),
    (AccessDeniedError, "access_denied", 403),
    (ServerError, "server_error", 500),
    (TemporarilyUnavailableError, "temporarily_unavailable", 503),
    (MethodNotAllowedError, "invalid_request", 405),
    (RequestTimeoutError, "invalid_request", 408),
    (RequestTooLargeError, "invalid_request", 413),
    (SlowDownError, "slow_down", 429),
    (OAuthError, "server_error", 400),
    (AuthorizationPendingError, "authorization_pending", 400),  # RFC 8628 §3.5: all four are §5.2 errors
    (PollTooFastError, "slow_down", 400),
    (DeviceDeniedError, "access_denied", 400),
    (ExpiredTokenError, "expired_token", 400),
    (SignInRequiredError, "login_required", 400),  # OIDC Core §3.1.2.6: redirected authorization errors
    (ConsentRequiredError, "consent_required", 400),
    (InteractionRequiredError, "interaction_required", 400),
    (RequestNotSupportedError, "request_not_supported", 400),
    (RequestUriNotSupportedError, "request_uri_not_supported", 400),
])
def test_error_has_rfc_code_and_http_status_when_raised(cls: type[OAuthError], error: str, status: int) -> None:
    instance = make(cls)
    assert instance.error == error
    assert instance.status == status


def test_status_table_covers_every_error_class_when_new_classes_are_added() -> None:
    tabled = {InvalidRequestError, InvalidClientError, InvalidGrantError, ReuseDetectedError, UnauthorizedClientError,
              UnsupportedGrantTypeError, UnsupportedResponseTypeError, InvalidScopeError, InvalidTargetError,
              form.DuplicateParameterError, AccessDeniedError, ServerError, TemporarilyUnavailableError,
              MethodNotAllowedError, RequestTimeoutError, RequestTooLargeError, SlowDownError, OAuthError,
              AuthorizationPendingError, PollTooFastError, DeviceDeniedError, ExpiredTokenError,
              SignInRequiredError, ConsentRequiredError, InteractionRequiredError, RequestNotSupportedError,
              RequestUriNotSupportedError}
    assert set(ERROR_CLASSES) == tabled


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_to_wire_is_just_the_error_code_when_description_is_empty(cls: type[OAuthError]) -> None:
    if cls is form.DuplicateParameterError:
        assert make(cls).to_wire() == {"error": "invalid_request",
                                       "error_description": "A parameter was sent more than once."}
        return
    assert make(cls).to_wire() == {"error": cls.error}


@pytest.mark.parametrize("cls", [c for c in ERROR_CLASSES if c is not form.DuplicateParameterError],
                         ids=lambda c: c.__name__)
def test_to_wire_has_description_but_never_debug_when_both_are_set(cls: type[OAuthError]) -> None:
    if cls is SlowDownError:
        error: OAuthError = SlowDownError("Try again later.", retry_after=3, debug="client app: 12 failures")
    else:
        error = cls("Try again later.", debug="client app: 12 failures")
    assert error.to_wire() == {"error": cls.error, "error_description": "Try again later."}
    assert error.debug == "client app: 12 failures"
    assert "12 failures" not in repr(error)
    assert "12 failures" not in str(error)


def test_duplicate_parameter_error_names_the_parameter_only_in_debug_when_raised() -> None:
    error = form.DuplicateParameterError("client_secret")
    assert error.name == "client_secret"
    assert "client_secret" in error.debug
    assert "client_secret" not in error.description
    assert "client_secret" not in str(error.to_wire())


def test_duplicate_parameter_error_truncates_the_name_in_debug_when_name_is_long() -> None:
    error = form.DuplicateParameterError("x" * 1000)
    assert len(error.debug) < 100


def test_reuse_detected_error_is_invalid_grant_when_raised() -> None:
    error = ReuseDetectedError("The refresh token was already used.")
    assert isinstance(error, InvalidGrantError)
    assert error.to_wire() == {"error": "invalid_grant", "error_description": "The refresh token was already used."}



@pytest.mark.parametrize(("retry_after", "expected"), [(30, 30), (1, 1), (0, 1), (-5, 1)])
def test_slow_down_retry_after_is_at_least_one_second_when_given(retry_after: int, expected: int) -> None:
    assert SlowDownError(retry_after=retry_after).retry_after == expected


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_error_code_is_a_wire_safe_lower_case_code_when_rendered(cls: type[OAuthError]) -> None:
    assert ERROR_CODE.fullmatch(cls.error)


@pytest.mark.parametrize("cls", [c for c in BEARER_CLASSES if c.error is not None], ids=lambda c: c.__name__)
def test_bearer_error_code_is_a_wire_safe_lower_case_code_when_rendered(cls: type[bearer.BearerError]) -> None:
    assert cls.error is not None
    assert ERROR_CODE.fullmatch(cls.error)


def test_bearer_default_body_is_wire_safe_when_no_credentials_were_sent() -> None:
    body = bearer.MissingTokenError().to_wire()
    assert all(WIRE_CHARS.fullmatch(v) for v in body.values())


# --- every description the codebase can construct -----------------------------------------------------------

ERROR_NAMES = {c.__name__ for c in ERROR_CLASSES} | {c.__name__ for c in BEARER_CLASSES}


def module_constants(tree: ast.Module) -> dict[str, str]:
    """``NAME = "literal"`` at module level, and such names imported from another tokenward module
    (``from tokenward.x import NAME``): descriptions may be named constants."""
    constants = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                 and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                 for target in node.targets if isinstance(target, ast.Name)}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tokenward."):
            source = SRC.parent.joinpath(*node.module.split(".")).with_suffix(".py")
            if source.is_file():
                theirs = module_constants(ast.parse(source.read_text(encoding="utf-8")))
                constants.update({a.asname or a.name: theirs[a.name] for a in node.names if a.name in theirs})
    return constants


def constructed_errors() -> list[tuple[str, ast.Call, dict[str, str]]]:
    """Every call ``SomeOAuthOrBearerError(...)`` in src/tokenward, with its location and the module's constants."""
    calls = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        constants = module_constants(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else (
                node.func.attr if isinstance(node.func, ast.Attribute) else None)
            if name in ERROR_NAMES:
                calls.append((f"{path.relative_to(SRC.parent)}:{node.lineno} {name}", node, constants))
    return calls


CONSTRUCTED = constructed_errors()


def description_node(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    return next((k.value for k in call.keywords if k.arg == "description"), None)


def test_codebase_constructs_many_errors_when_scanned() -> None:
    assert len(CONSTRUCTED) > 50


@pytest.mark.parametrize(("where", "call", "constants"), CONSTRUCTED, ids=[w for w, _, _ in CONSTRUCTED])
def test_description_is_a_fixed_wire_safe_string_when_an_error_is_constructed(
        where: str, call: ast.Call, constants: dict[str, str]) -> None:
    name = where.rsplit(" ", 1)[1]
    node = description_node(call)
    if name == "DuplicateParameterError":  # its argument is the parameter name; the description is fixed
        description = form.DuplicateParameterError("x").description
    elif node is None:
        description = ""
    elif isinstance(node, ast.Name) and node.id in constants:
        description = constants[node.id]
    else:
        assert isinstance(node, ast.Constant) and isinstance(node.value, str), (
            f"{where}: description must be a literal or a module constant, never formatted from input")
        description = node.value
    assert WIRE_CHARS.fullmatch(description), f"{where}: {description!r}"
