// An independent relying party (panva's openid-client, certified by the OpenID Foundation) configured from
// discovery alone, with non-repudiation checks on (ID token signatures verified against the JWKS).
// Driven by tests/interop/test_openid_client.py in two steps, because a person signs in between them:
//   node openid_client_rp.mjs start  ISSUER CLIENT_ID SECRET REDIRECT_URI SCOPE   -> JSON {url, verifier, nonce, state}
//   node openid_client_rp.mjs finish ISSUER CLIENT_ID SECRET CALLBACK_URL VERIFIER NONCE STATE
//        -> JSON {claims, userinfo, refreshed_claims, scope}
import * as client from "openid-client";

const [mode, issuer, clientId, secret, ...rest] = process.argv.slice(2);

async function configure() {
  const options = issuer.startsWith("http://") ? { execute: [client.allowInsecureRequests] } : {};
  const config = await client.discovery(new URL(issuer), clientId, secret, undefined, options);
  client.enableNonRepudiationChecks(config);
  return config;
}

async function main() {
  const config = await configure();
  if (mode === "start") {
    const [redirectUri, scope] = rest;
    const verifier = client.randomPKCECodeVerifier();
    const nonce = client.randomNonce();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri, scope, nonce, state,
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256",
    });
    process.stdout.write(JSON.stringify({ url: url.href, verifier, nonce, state }) + "\n");
    return;
  }
  const [callback, verifier, nonce, state] = rest;
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  const refreshedClaims = refreshed.claims();
  const endSession = config.serverMetadata().end_session_endpoint
    ? client.buildEndSessionUrl(config, { id_token_hint: refreshed.id_token, state: "bye" }).href : null;
  process.stdout.write(JSON.stringify({
    claims, userinfo, refreshed_claims: refreshedClaims, scope: tokens.scope, end_session_url: endSession,
  }) + "\n");
}

main().catch((error) => {
  process.stderr.write(`${error.name}: ${error.message} ${error.code ?? ""}\n`);
  process.exit(1);
});
