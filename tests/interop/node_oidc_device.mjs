// node-oidc-provider with its RFC 8628 deviceFlow feature and its own development login and consent pages, for
// tests/interop/test_device_node_oidc.py (an independent server for the client's device flow). Installed by
// bench/token_bench.py's install_oidc_provider; this file is copied next to its node_modules and run as
//   node node_oidc_device.mjs PORT CLIENT_ID        (prints "poll <ms>" on stdout for every device-code poll)
import Provider from 'oidc-provider';

const port = Number(process.argv[2] || 3000);
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: process.argv[3],
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'none',
  }],
  features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true } },
  ttl: { DeviceCode: Number(process.env.DEVICE_TTL || 60) },
  scopes: ['openid', 'offline_access', 'profile'],
});
provider.use(async (ctx, next) => {
  if (ctx.path === '/token' && ctx.method === 'POST') console.log(`poll ${Date.now()}`);
  await next();
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.listen(port, '127.0.0.1', () => console.log(`listening ${issuer}`));
