"""Authlib peer for ``bench/token_bench.py``: a Flask + SQLAlchemy (SQLite) token server, the way Authlib's
documentation builds one. It runs in its own virtualenv (``.bench-cache/authlib-venv``, installed from PyPI
by the benchmark) under gunicorn with 2 sync workers, one per core.

- client credentials: client_secret_basic, RFC 9068 JWT access token signed ES256, token row saved;
- refresh_token with rotation: look the token up, issue a new pair, revoke the old one (Authlib's
  ``RefreshTokenGrant`` with ``INCLUDE_NEW_REFRESH_TOKEN``), for a public client (``none``), like Tokenward's run.

Commands (environment ``AUTHLIB_BENCH_DB`` = SQLite file, ``AUTHLIB_BENCH_ISSUER`` = issuer URL):
    python authlib_app.py init         create the schema, a user and two clients; print them as JSON
    python authlib_app.py seed N FILE  insert N active refresh tokens for the public client, one per line in FILE
    gunicorn -w 2 authlib_app:app      serve POST /token (ES256 access tokens valid 600 s, as Tokenward's)
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from typing import Any

from authlib.common.security import generate_token
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.sqla_oauth2 import (
    OAuth2ClientMixin,
    OAuth2TokenMixin,
    create_query_client_func,
    create_save_token_func,
)
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from flask import Flask, Response
from joserfc.jwk import ECKey
from sqlalchemy import Integer, String, create_engine, event, insert
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, scoped_session, sessionmaker

DB_FILE = os.environ.get("AUTHLIB_BENCH_DB", "authlib.db")
ISSUER = os.environ.get("AUTHLIB_BENCH_ISSUER", "http://127.0.0.1:5000")
KEY_FILE = DB_FILE + ".es256.json"
SCOPE = "profile:read"

engine = create_engine(f"sqlite:///{DB_FILE}", connect_args={"check_same_thread": False})


@event.listens_for(engine, "connect")
def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


db = scoped_session(sessionmaker(bind=engine))


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "user"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)

    def get_user_id(self) -> int:
        return self.id


class Client(Base, OAuth2ClientMixin):
    __tablename__ = "oauth2_client"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


class Token(Base, OAuth2TokenMixin):
    __tablename__ = "oauth2_token"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    INCLUDE_NEW_REFRESH_TOKEN = True
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        item = db.query(Token).filter_by(refresh_token=refresh_token).first()
        if item is not None and not item.is_revoked():
            return item
        return None

    def authenticate_user(self, refresh_token: Token) -> User | None:
        return db.get(User, refresh_token.user_id)

    def revoke_old_credential(self, refresh_token: Token) -> None:
        refresh_token.refresh_token_revoked_at = int(time.time())
        refresh_token.access_token_revoked_at = int(time.time())
        db.add(refresh_token)
        db.commit()


class TokenGenerator(JWTBearerTokenGenerator):
    def __init__(self, key: ECKey) -> None:
        super().__init__(ISSUER, alg="ES256", refresh_token_generator=lambda *args, **kwargs: generate_token(48),
                         expires_generator=lambda client, grant_type: 600)
        self.key = key

    def get_jwks(self) -> ECKey:
        return self.key

    def get_audiences(self, client: Any, user: Any, scope: Any) -> str:
        return "urn:tokenward:api"


def load_key() -> ECKey:
    with open(KEY_FILE) as f:
        return ECKey.import_key(json.load(f))


def create_app() -> Flask:
    app = Flask(__name__)
    server = AuthorizationServer(app, query_client=create_query_client_func(db, Client),
                                 save_token=create_save_token_func(db, Token))
    server.register_token_generator("default", TokenGenerator(load_key()))
    server.register_grant(grants.ClientCredentialsGrant)
    server.register_grant(RefreshTokenGrant)

    @app.teardown_appcontext
    def remove_session(_exc: BaseException | None) -> None:
        db.remove()

    @app.route("/token", methods=["POST"])
    def issue_token() -> Response:
        response: Response = server.create_token_response()
        return response

    @app.route("/health")
    def health() -> str:
        return "ok"

    return app


def init() -> None:
    Base.metadata.create_all(engine)
    key = ECKey.generate_key("P-256", parameters={"kid": "authlib-es256", "alg": "ES256"}, private=True)
    with open(KEY_FILE, "w") as f:
        json.dump(key.as_dict(private=True), f)
    user = User(username="bench")
    db.add(user)
    db.flush()
    confidential = Client(client_id=generate_token(22), client_secret=secrets.token_urlsafe(32),
                          client_id_issued_at=int(time.time()))
    confidential.set_client_metadata({"grant_types": ["client_credentials"], "scope": SCOPE,
                                      "token_endpoint_auth_method": "client_secret_basic"})
    public = Client(client_id=generate_token(22), client_secret="", client_id_issued_at=int(time.time()))
    public.set_client_metadata({"grant_types": ["refresh_token"], "scope": SCOPE,
                                "token_endpoint_auth_method": "none"})
    db.add_all([confidential, public])
    db.commit()
    print(json.dumps({"client_id": confidential.client_id, "client_secret": confidential.client_secret,
                      "public_client_id": public.client_id, "user_id": user.id}))


def seed(count: int, out: str) -> None:
    """Active refresh tokens as Authlib itself would have saved them after a code exchange."""
    public = db.query(Client).filter(Client.client_secret == "").one()
    user = db.query(User).one()
    now = int(time.time())
    tokens = [generate_token(48) for _ in range(count)]
    rows = [{"client_id": public.client_id, "token_type": "Bearer", "access_token": generate_token(42),
             "refresh_token": token, "scope": SCOPE, "issued_at": now, "expires_in": 600, "user_id": user.id,
             "access_token_revoked_at": 0, "refresh_token_revoked_at": 0} for token in tokens]
    db.execute(insert(Token), rows)
    db.commit()
    with open(out, "w") as f:
        f.write("\n".join(tokens) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["init"]:
        init()
    elif sys.argv[1:2] == ["seed"]:
        seed(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(__doc__)
else:
    app = create_app()
