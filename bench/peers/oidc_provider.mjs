// node-oidc-provider peer for bench/token_bench.py: client credentials with JWT access tokens (RFC 9068
// "at+jwt", ES256), the default in-memory adapter, one process. The benchmark installs oidc-provider from npm
// into .bench-cache/ and copies this file next to its node_modules before running it:
//   node oidc_provider.mjs PORT        (env OIDC_BENCH_CLIENT_ID, OIDC_BENCH_CLIENT_SECRET)
import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.argv[2] || 3000);
const issuer = `http://127.0.0.1:${port}`;
const audience = 'urn:tokenward:api';
const scope = 'profile:read';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'oidc-es256', alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.OIDC_BENCH_CLIENT_ID,
    client_secret: process.env.OIDC_BENCH_CLIENT_SECRET,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
    scope,
  }],
  jwks: { keys: [jwk] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope,
        audience,
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
  scopes: [scope],
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
