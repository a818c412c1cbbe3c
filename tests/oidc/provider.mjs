// A local OpenID provider for tests/test_oidc_e2e.py and tests/server/test_oauth_relay.py:
// oidc-provider issuing JWT access tokens by the client-credentials grant, and by the
// authorization-code grant with refresh tokens to clients registered as a ChatGPT action is (its
// callback URL; the secret sent in the body or in a Basic header), on 127.0.0.1 only. Its
// development login and consent pages stand in for a person signing in. Never deployed.
//
//   node provider.mjs [PORT]   (PORT 0, the default, lets the kernel pick a free one)
//
// Prints one line of JSON, {"issuer": "http://127.0.0.1:PORT"}, once it is listening. The
// clients' secret comes from OIDC_CLIENT_SECRET. It exits when its standard input closes (so it
// dies with the test process, however that ends), on SIGTERM, or after MAX_LIFETIME_MS.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { once } from 'node:events';

import { Provider, errors } from 'oidc-provider';

const MAX_LIFETIME_MS = 15 * 60 * 1000;

// Resource indicators (RFC 8707) double as the tokens' audience; the test names the same ones.
const API = 'https://athenaeum.test/api';
const OTHER_API = 'https://other.test/api';
const RESOURCES = {
  [API]: 'library.read library.write',
  [OTHER_API]: 'library.read',
};
// Each client gets its tokens signed with one algorithm, and one of them gets short-lived ones.
const CLIENTS = {
  'athenaeum-rs256': { alg: 'RS256', ttl: 300 },
  'athenaeum-es256': { alg: 'ES256', ttl: 300 },
  'athenaeum-short': { alg: 'RS256', ttl: 2 },
};
// Clients standing for people in groups (tests/server/test_access.py): their access tokens carry
// a `groups` claim, as Okta's or Entra ID's do once configured to (an access policy reads it).
export const GROUP_CLIENTS = {
  'member-hr': ['hr-staff'],
  'member-eng': ['engineering', 'all-staff'],
  'member-none': [],
};
// ChatGPT's callback for a GPT action has this shape (OpenAI's GPT action authentication docs).
export const CHATGPT_CALLBACK =
  'https://chatgpt.com/aip/g-3f1b2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d/oauth/callback';
// The two "Token Exchange Method"s of the GPT editor: client credentials in the POST body
// (its default) or in a Basic authorization header.
const CHATGPT_CLIENTS = {
  'chatgpt-post': 'client_secret_post',
  'chatgpt-basic': 'client_secret_basic',
};

const secret = process.env.OIDC_CLIENT_SECRET;
if (!secret) {
  console.error('OIDC_CLIENT_SECRET must be set');
  process.exit(2);
}
const port = Number(process.argv[2] ?? process.env.OIDC_PORT ?? 0);

function signingKey(type, options) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), use: 'sig' };
}

// Fresh keys every run: nothing secret is committed, and a token never outlives its provider.
const jwks = {
  keys: [
    signingKey('rsa', { modulusLength: 2048 }),
    signingKey('ec', { namedCurve: 'P-256' }),
  ],
};

const server = createServer();
server.listen(port, '127.0.0.1');
await once(server, 'listening');
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  jwks,
  clients: [
    ...[...Object.keys(CLIENTS), ...Object.keys(GROUP_CLIENTS)].map((clientId) => ({
      client_id: clientId,
      client_secret: secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    ...Object.entries(CHATGPT_CLIENTS).map(([clientId, method]) => ({
      client_id: clientId,
      client_secret: secret,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [CHATGPT_CALLBACK],
      token_endpoint_auth_method: method,
    })),
  ],
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  // Refresh tokens for clients allowed the grant, as providers with rotation enabled issue them
  // (without asking for offline_access, which needs a consent prompt here).
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  // A group client's tokens name its groups (none: no claim at all, as for a person in none).
  extraTokenClaims: async (ctx, token) => {
    const groups = GROUP_CLIENTS[token.clientId];
    return groups && groups.length ? { groups } : undefined;
  },
  features: {
    // The provider's own login and consent pages, which the tests fill in as a person would.
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => API,
      // A code or refresh token is exchanged for a token to the API it was granted for.
      useGrantedResource: () => true,
      // Without a resource server whose format is 'jwt', access tokens would be opaque.
      getResourceServerInfo: (ctx, resource, client) => {
        if (!(resource in RESOURCES)) throw new errors.InvalidTarget();
        const { alg, ttl } = CLIENTS[client.clientId] ?? { alg: 'RS256', ttl: 300 };
        return {
          audience: resource,
          scope: RESOURCES[resource],
          accessTokenFormat: 'jwt',
          accessTokenTTL: ttl,
          jwt: { sign: { alg } },
        };
      },
    },
  },
});
server.on('request', provider.callback());

function stop() {
  server.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('close', stop);
process.stdin.resume();
setTimeout(stop, MAX_LIFETIME_MS).unref();

process.stdout.write(`${JSON.stringify({ issuer })}\n`);
