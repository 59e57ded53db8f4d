"""pyoidc (PyPI ``oic``, the OpenID Foundation-listed Python RP library) against a real ``tokenward serve``:
provider configuration from discovery, code flow with PKCE and nonce, the ID token verified with the provider's
JWKS (oic's own checks), userinfo, and refresh (issue #13 "Interop and conformance")."""

from __future__ import annotations

from urllib.parse import urlsplit

from oic import rndstr
from oic.oic import Client
from oic.oic.message import AccessTokenResponse, AuthorizationResponse, OpenIDSchema, RegistrationResponse
from oic.utils.authn.client import CLIENT_AUTHN_METHOD

from tests.e2e.test_oidc_tokens import set_claims
from tests.interop.test_openid_client import REDIRECT, sign_in
from tests.support import ServerProcess


def test_oic_completes_code_flow_id_token_userinfo_and_refresh_from_discovery(server: ServerProcess) -> None:
    registered = server.add_client(public=False, redirect_uri=REDIRECT, scope="openid email offline_access")
    user = server.add_user()
    set_claims(server, user, {"email": "oic@example.com", "email_verified": False})
    rp = Client(client_id=registered.client_id, client_authn_method=CLIENT_AUTHN_METHOD)
    rp.provider_config(server.base_url)  # fetches the discovery document and the JWKS, checks the issuer
    rp.store_registration_info(RegistrationResponse(
        client_id=registered.client_id, client_secret=registered.client_secret, redirect_uris=[REDIRECT]))
    pkce, verifier = rp.add_code_challenge()
    state, nonce = rndstr(32), rndstr(32)
    request = rp.construct_AuthorizationRequest(request_args={
        "client_id": registered.client_id, "response_type": "code", "scope": ["openid", "email", "offline_access"],
        "nonce": nonce, "redirect_uri": REDIRECT, "state": state, **pkce})
    callback = sign_in(server, request.request(rp.authorization_endpoint), user)

    answer = rp.parse_response(AuthorizationResponse, info=urlsplit(callback).query, sformat="urlencoded")
    assert isinstance(answer, AuthorizationResponse) and answer["state"] == state
    tokens = rp.do_access_token_request(state=state, authn_method="client_secret_basic", request_args={
        "code": answer["code"], "code_verifier": verifier, "redirect_uri": REDIRECT})
    assert isinstance(tokens, AccessTokenResponse), tokens
    id_token = tokens["id_token"]  # oic verified its signature (by kid, from the JWKS), iss, aud, exp and nonce
    assert id_token["nonce"] == nonce and id_token["iss"] == server.base_url
    assert id_token["aud"] == [registered.client_id]

    info = rp.do_user_info_request(state=state, method="GET")
    assert isinstance(info, OpenIDSchema), info
    assert info.to_dict() == {"sub": id_token["sub"], "email": "oic@example.com", "email_verified": False}

    refreshed = rp.do_access_token_refresh(state=state, authn_method="client_secret_post")
    assert isinstance(refreshed, AccessTokenResponse), refreshed
    assert refreshed["id_token"]["sub"] == id_token["sub"]
    assert refreshed["id_token"]["auth_time"] == id_token["auth_time"]
