// node-oidc-provider as an independent OpenID provider for tests/interop/test_node_oidc_provider.py:
//   node provider.mjs PORT CLIENT_ID REDIRECT_URI
// One public native client (PKCE, no secret), RS256 ID tokens, the built-in development login and consent
// pages (any username, any password), the default in-memory adapter. Prints "ready" once listening.
import Provider from 'oidc-provider';

const [port, clientId, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [redirectUri],
    post_logout_redirect_uris: ['http://127.0.0.1/bye'],
  }],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email', 'email_verified'] },
  findAccount: (ctx, id) => ({
    accountId: id,
    claims: () => ({ sub: id, preferred_username: id, name: `User ${id}`, email: `${id}@example.com`,
      email_verified: true }),
  }),
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  pkce: { required: () => true },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.listen(Number(port), '127.0.0.1', () => console.log('ready'));
