"""Fixtures for the guard's unit tests: the issuer's JWKS on a real 127.0.0.1 HTTP server, fake clocks and a
verifier factory (each verifier has its own JWKS cache, so ``fetch_count`` starts at 0)."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tokenward.resource.jwks as jwks_module
from tests.resource.jwt_kit import AUDIENCE, ISSUER, FakeClock, HttpServer, KeyRing, keyring
from tokenward.resource import JwtVerifier

VerifierFactory = Callable[..., JwtVerifier]


@pytest.fixture(scope="session")
def keys() -> KeyRing:
    return keyring()


@pytest.fixture(scope="session")
def jwks_server_session(keys: KeyRing) -> Iterator[HttpServer]:
    server = HttpServer(keys.jwks())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def jwks_server(jwks_server_session: HttpServer, keys: KeyRing) -> HttpServer:
    """The issuer's JWKS endpoint, reset to the published key set with an empty request log."""
    jwks_server_session.reset(keys.jwks())
    return jwks_server_session


@pytest.fixture
def clock() -> FakeClock:
    """The verifier's wall clock (``clock=``)."""
    return FakeClock()


@pytest.fixture
def mono(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The JWKS cache's monotonic clock, so refetch intervals are tested without sleeping."""
    fake = FakeClock(1000.0)
    monkeypatch.setattr(jwks_module, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


@pytest.fixture
def make_verifier(jwks_server: HttpServer, clock: FakeClock, mono: FakeClock) -> VerifierFactory:
    def make(**options: Any) -> JwtVerifier:
        settings: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE,
                                    "jwks_uri": jwks_server.url + "/jwks.json", "clock": clock}
        settings.update(options)
        return JwtVerifier(**settings)

    return make


@pytest.fixture
def verifier(make_verifier: VerifierFactory) -> JwtVerifier:
    return make_verifier()
