"""Server settings and policies, each with a documented default (one place to read them all)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tokenward.protocol.types import SigningAlg
from tokenward.server.rate_limit import RateLimitPolicies, RateLimitPolicy

DEFAULT_DB_URL = "sqlite:///./tokenward.db"
# Fields whose value is a credential: ``repr``/``str`` never show them (add new secret settings here, or
# declare them with ``field(repr=False)``).
SECRET_FIELDS = frozenset({"kek"})


def redact_url(url: str) -> str:
    """``url`` with the password in its userinfo and any ``password`` query parameter replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = userinfo.split(":", 1)[0] + ":***@" + host
    query = parts.query
    if "password" in query.lower():
        query = urlencode([(k, "***" if k.lower() == "password" else v)
                           for k, v in parse_qsl(query, keep_blank_values=True)], safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # unchanged (urlunsplit would also turn ``sqlite:///x`` into ``sqlite:/x``)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``tokenward serve`` can be told; read from ``TOKENWARD_*`` variables by ``from_env``.

    Worker processes get their settings through the environment, so ``serve --workers N`` and a
    hand-run ``uvicorn --factory tokenward.server.web.app:create_app_from_env`` behave the same.
    """

    issuer: str = "http://127.0.0.1:8000"
    db_url: str = DEFAULT_DB_URL
    # Lifetimes in seconds.
    access_token_ttl: int = 600  # RFC 9700 §4.14 short-lived access tokens
    refresh_token_ttl: int = 30 * 86400  # absolute lifetime of a grant's refresh tokens
    code_ttl: int = 60  # RFC 6749 §4.1.2 says at most 10 min; FAPI uses 60 s
    authorization_request_ttl: int = 900  # how long a user may take on the login and consent pages
    session_ttl: int = 8 * 3600  # login session at the authorization server
    id_token_ttl: int = 3600  # OIDC Core §2 exp: how long a relying party may accept the ID token
    # OIDC Core §15.1: every relying party supports RS256; a client may choose another (clients add
    # --id-token-signing-alg). An RS256 key is always kept (signing_algs).
    id_token_signing_alg: SigningAlg = SigningAlg.RS256
    # Device authorization grant (RFC 8628): how long a device code and its user code live (§3.2
    # ``expires_in``; short, because a user code is only ~34.6 bits), and the poll interval it starts with
    # (§3.2 ``interval``; each ``slow_down`` adds 5 s for that code).
    device_code_ttl: int = 600
    device_poll_interval: int = 5
    # Refresh grace window (seconds): a retry of the previous refresh token this soon after its rotation
    # gets the same successor pair once (a response lost in transit). Public clients: 0, pure rotation.
    refresh_grace_public: int = 0
    refresh_grace_confidential: int = 30
    # Signing: the default algorithm and every algorithm a key is kept (and published) for.
    signing_alg: SigningAlg = SigningAlg.ES256
    signing_algs: tuple[SigningAlg, ...] = (SigningAlg.ES256, SigningAlg.RS256, SigningAlg.EDDSA)
    # How long a worker may serve the key set it read before it reads the database again.
    key_cache_seconds: float = 5.0
    # How long a worker trusts a client record it read (0: read it on every request). Removing a client or
    # rotating its secret takes effect on every worker within this time; the token endpoint's hot path
    # then needs no database round trip (client credentials: none at all).
    client_cache_seconds: float = 5.0
    # A rotated-in key is published this long before it signs (pre-publication), so every resource server
    # that caches the JWKS has it before the first token signed with it arrives.
    key_prepublish_seconds: int = 86400
    # Signing keys are rotated automatically this often (by the maintenance task of ``serve``).
    key_rotation_seconds: int = 30 * 86400
    # How often each ``serve`` process runs maintenance (automatic key rotation, purge of expired rows).
    maintenance_seconds: int = 600
    # Audience of access tokens for clients that have none configured.
    default_audience: str = "urn:tokenward:api"
    # Key-encryption key for private signing keys: raw 32 bytes, or None to use ``kek_file``.
    kek: bytes | None = field(default=None, repr=False)
    kek_file: str = "tokenward.kek"
    # Largest form body accepted on POST endpoints (RFC 9110 §15.5.14: 413 beyond it).
    max_body_bytes: int = 64 * 1024
    # HTTP layer (web/http_limits.py). Largest request head, request line and header fields together
    # (RFC 6585 §5: 431 beyond it); time a connection gets to send each complete request head (RFC 9110
    # §15.5.9: 408), from the moment it opens or its previous response ends; idle time between requests on a
    # keep-alive connection; open connections per client address and worker (IPv6 by /64; 0: no cap) --
    # above the 128 connections the benches open from 127.0.0.1, and raise it behind a proxy, whose
    # connections all come from one address.
    max_header_bytes: int = 16 * 1024
    header_timeout_seconds: float = 10.0
    keep_alive_seconds: int = 5
    max_connections_per_ip: int = 256
    # HTTP/1.1 parser under uvicorn: ``auto`` (httptools when installed), ``httptools`` or ``h11``.
    http_parser: str = "auto"
    # Prometheus /metrics (needs the ``metrics`` extra).
    metrics: bool = False
    # PostgreSQL behind pgbouncer in transaction mode: no prepared statements, no startup options.
    pgbouncer: bool = False
    # Brute-force protection (rate_limit.py): on by default.
    rate_limits: bool = True
    rate_limit_policies: RateLimitPolicies = field(default_factory=RateLimitPolicies)
    # Each worker re-reads the locked rate-limit keys this often (0: ask the database on every request), so
    # a lock set by one worker holds on the others within this time.
    rate_limit_sync_seconds: float = 1.0
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated IPs or CIDRs).
    trusted_proxies: str = ""

    def __repr__(self) -> str:
        """Every field, with the database URL's password and every secret field redacted (a repr ends up in
        logs and tracebacks)."""
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "db_url":
                text = repr(redact_url(value))
            elif f.name in SECRET_FIELDS or (not f.repr and value is not None):
                text = "<redacted>" if value is not None else "None"
            else:
                text = repr(value)
            shown.append(f"{f.name}={text}")
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__

    def refresh_grace(self, public: bool) -> int:
        return self.refresh_grace_public if public else self.refresh_grace_confidential

    @property
    def secure_cookies(self) -> bool:
        """Cookies are ``Secure`` whenever the issuer is https."""
        return self.issuer.startswith("https://")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        s = cls()
        ints = {
            "ACCESS_TOKEN_TTL": "access_token_ttl",
            "REFRESH_TOKEN_TTL": "refresh_token_ttl",
            "CODE_TTL": "code_ttl",
            "SESSION_TTL": "session_ttl",
            "DEVICE_CODE_TTL": "device_code_ttl",
            "DEVICE_POLL_INTERVAL": "device_poll_interval",
            "AUTHORIZATION_REQUEST_TTL": "authorization_request_ttl",
            "ID_TOKEN_TTL": "id_token_ttl",
            "REFRESH_GRACE_PUBLIC": "refresh_grace_public",
            "REFRESH_GRACE_CONFIDENTIAL": "refresh_grace_confidential",
            "KEY_PREPUBLISH_SECONDS": "key_prepublish_seconds",
            "MAX_BODY_BYTES": "max_body_bytes",
            "KEY_ROTATION_SECONDS": "key_rotation_seconds",
            "MAINTENANCE_SECONDS": "maintenance_seconds",
            "MAX_HEADER_BYTES": "max_header_bytes",
            "MAX_CONNECTIONS_PER_IP": "max_connections_per_ip",
            "KEEP_ALIVE_SECONDS": "keep_alive_seconds",
        }
        changes: dict[str, object] = {}
        for var, attr in ints.items():
            if f"TOKENWARD_{var}" in env:
                changes[attr] = int(env[f"TOKENWARD_{var}"])
        if env.get("TOKENWARD_METRICS", "").lower() in ("1", "true", "yes"):
            changes["metrics"] = True
        if env.get("TOKENWARD_PGBOUNCER", "").lower() in ("1", "true", "yes"):
            changes["pgbouncer"] = True
        if env.get("TOKENWARD_RATE_LIMITS", "").lower() in ("0", "off", "false", "no"):
            changes["rate_limits"] = False
        policies = RateLimitPolicies()
        for var, attr in (("CLIENT", "client"), ("CLIENT_GLOBAL", "client_global"), ("CLIENT_IP", "client_ip"),
                          ("LOGIN_USER", "login_user"), ("LOGIN_USER_GLOBAL", "login_user_global"),
                          ("LOGIN_IP", "login_ip"),
                          ("AUTHORIZE_IP", "authorize_ip"), ("DEVICE_IP", "device_ip"),
                          ("DEVICE_SESSION", "device_session"),
                          ("DEVICE_AUTHORIZATION_IP", "device_authorization_ip")):
            if f"TOKENWARD_RATE_LIMIT_{var}" in env:
                base = getattr(policies, attr)
                policies = replace(policies, **{attr: RateLimitPolicy.parse(
                    env[f"TOKENWARD_RATE_LIMIT_{var}"], base.lock, base.max_lock)})
        changes["rate_limit_policies"] = policies
        if "TOKENWARD_TRUSTED_PROXIES" in env:
            changes["trusted_proxies"] = env["TOKENWARD_TRUSTED_PROXIES"]
        if "TOKENWARD_ISSUER" in env:
            changes["issuer"] = env["TOKENWARD_ISSUER"]
        if "TOKENWARD_DB" in env:
            changes["db_url"] = env["TOKENWARD_DB"]
        if "TOKENWARD_SIGNING_ALG" in env:
            changes["signing_alg"] = SigningAlg(env["TOKENWARD_SIGNING_ALG"])
        if "TOKENWARD_ID_TOKEN_SIGNING_ALG" in env:
            changes["id_token_signing_alg"] = SigningAlg(env["TOKENWARD_ID_TOKEN_SIGNING_ALG"])
        if "TOKENWARD_KEY_CACHE_SECONDS" in env:
            changes["key_cache_seconds"] = float(env["TOKENWARD_KEY_CACHE_SECONDS"])
        if "TOKENWARD_CLIENT_CACHE_SECONDS" in env:
            changes["client_cache_seconds"] = float(env["TOKENWARD_CLIENT_CACHE_SECONDS"])
        if "TOKENWARD_RATE_LIMIT_SYNC_SECONDS" in env:
            changes["rate_limit_sync_seconds"] = float(env["TOKENWARD_RATE_LIMIT_SYNC_SECONDS"])
        if env.get("TOKENWARD_HTTP_PARSER", "auto") not in ("auto", "httptools", "h11"):
            raise ValueError("TOKENWARD_HTTP_PARSER must be auto, httptools or h11")
        if "TOKENWARD_HTTP_PARSER" in env:
            changes["http_parser"] = env["TOKENWARD_HTTP_PARSER"]
        if "TOKENWARD_HEADER_TIMEOUT_SECONDS" in env:
            changes["header_timeout_seconds"] = float(env["TOKENWARD_HEADER_TIMEOUT_SECONDS"])
        if "TOKENWARD_DEFAULT_AUDIENCE" in env:
            changes["default_audience"] = env["TOKENWARD_DEFAULT_AUDIENCE"]
        if "TOKENWARD_KEK_FILE" in env:
            changes["kek_file"] = env["TOKENWARD_KEK_FILE"]
        if env.get("TOKENWARD_KEK"):
            from tokenward.server.crypto import decode_kek

            changes["kek"] = decode_kek(env["TOKENWARD_KEK"])
        return replace(s, **changes)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The inverse of ``from_env`` for the fields the CLI sets (used to hand settings to workers)."""
        env = {
            "TOKENWARD_ISSUER": self.issuer,
            "TOKENWARD_DB": self.db_url,
            "TOKENWARD_ACCESS_TOKEN_TTL": str(self.access_token_ttl),
            "TOKENWARD_REFRESH_TOKEN_TTL": str(self.refresh_token_ttl),
            "TOKENWARD_CODE_TTL": str(self.code_ttl),
            "TOKENWARD_DEVICE_CODE_TTL": str(self.device_code_ttl),
            "TOKENWARD_DEVICE_POLL_INTERVAL": str(self.device_poll_interval),
            "TOKENWARD_SIGNING_ALG": self.signing_alg.value,
            "TOKENWARD_KEK_FILE": self.kek_file,
            "TOKENWARD_DEFAULT_AUDIENCE": self.default_audience,
            "TOKENWARD_METRICS": "1" if self.metrics else "0",
        }
        return env
