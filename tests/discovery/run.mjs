// A standard client library, the npm `openid-client` (v6, or v5), against the server at
// argv[2]: discovery (RFC 8414 and OpenID Connect's path), the password,
// client_credentials and refresh_token grants, introspection (RFC 7662) and revocation
// (RFC 7009), each with the endpoints and client authentication the library took from the
// discovered metadata. Prints one JSON summary on stdout; a step that fails is recorded
// with the library's own error (message, code, cause) and the later steps that need it are
// left out. Used by tests/discovery.rs; node_modules beside it is installed by that test.
//
//   node run.mjs <base-url> <client-id> <client-secret> <username> <password>
import { readFileSync } from 'node:fs';

const [base, clientId, clientSecret, username, password] = process.argv.slice(2);
if (!password) {
  console.error('usage: node run.mjs <base-url> <client-id> <client-secret> <username> <password>');
  process.exit(2);
}

const version = JSON.parse(
  readFileSync(new URL('./node_modules/openid-client/package.json', import.meta.url), 'utf8'),
).version;
const lib = await import('openid-client');

/** The library's error, with what it says about the server's answer. */
function failure(e) {
  const out = { ok: false, error: String(e?.message ?? e) };
  if (e?.code) out.code = e.code;
  if (e?.error) out.oauth_error = e.error;
  if (e?.status) out.status = e.status;
  if (e?.cause !== undefined) {
    try {
      out.cause = JSON.parse(JSON.stringify(e.cause));
    } catch {
      out.cause = String(e.cause);
    }
  }
  return out;
}

/** Runs one step; its answer (an object) gets `ok: true`, a throw becomes `failure`. */
async function step(f) {
  try {
    return { ok: true, ...(await f()) };
  } catch (e) {
    return failure(e);
  }
}

const summary = { library: 'openid-client', version, base };

if (typeof lib.discovery === 'function') {
  // v6: Configuration objects, one function per operation.
  summary.api = 'v6';
  const client = lib;
  const options = (extra = {}) => ({ execute: [client.allowInsecureRequests], ...extra });
  const server = new URL(base);
  let oidc;
  let oauth2;
  let basic;
  summary.discovery_oidc = await step(async () => {
    oidc = await client.discovery(server, clientId, clientSecret, undefined, options());
    return { issuer: oidc.serverMetadata().issuer, metadata: oidc.serverMetadata() };
  });
  summary.discovery_oauth2 = await step(async () => {
    oauth2 = await client.discovery(server, clientId, clientSecret, undefined, options({ algorithm: 'oauth2' }));
    return { issuer: oauth2.serverMetadata().issuer, metadata: oauth2.serverMetadata() };
  });
  // The same metadata, the client authenticating with HTTP Basic instead of the body.
  summary.discovery_basic = await step(async () => {
    basic = await client.discovery(
      server,
      clientId,
      undefined,
      client.ClientSecretBasic(clientSecret),
      options({ algorithm: 'oauth2' }),
    );
    return { issuer: basic.serverMetadata().issuer };
  });
  const config = oauth2 ?? oidc;
  if (config) {
    const tokens = (t) => ({
      access_token: t.access_token,
      refresh_token: t.refresh_token,
      token_type: t.token_type,
      expires_in: t.expiresIn?.(),
    });
    let granted;
    summary.password = await step(async () => {
      granted = await client.genericGrantRequest(config, 'password', { username, password });
      return tokens(granted);
    });
    summary.client_credentials = await step(async () => tokens(await client.clientCredentialsGrant(config)));
    let refreshed;
    if (granted?.refresh_token) {
      summary.refresh = await step(async () => {
        refreshed = await client.refreshTokenGrant(config, granted.refresh_token);
        return tokens(refreshed);
      });
    }
    const live = refreshed?.access_token ?? granted?.access_token;
    if (live) {
      summary.introspect_live = await step(async () => ({ answer: await client.tokenIntrospection(config, live) }));
      if (basic) {
        summary.introspect_basic = await step(async () => ({ answer: await client.tokenIntrospection(basic, live) }));
      }
      summary.revoke = await step(async () => {
        await client.tokenRevocation(config, live);
        return {};
      });
      summary.introspect_revoked = await step(async () => ({ answer: await client.tokenIntrospection(config, live) }));
    }
  }
} else {
  // v5: Issuer and Client classes.
  summary.api = 'v5';
  const { Issuer } = lib.Issuer ? lib : lib.default;
  let issuer;
  summary.discovery_oidc = await step(async () => {
    const found = await Issuer.discover(`${base}/.well-known/openid-configuration`);
    return { issuer: found.issuer, metadata: found.metadata };
  });
  summary.discovery_oauth2 = await step(async () => {
    issuer = await Issuer.discover(`${base}/.well-known/oauth-authorization-server`);
    return { issuer: issuer.issuer, metadata: issuer.metadata };
  });
  if (issuer) {
    const post = new issuer.Client({
      client_id: clientId,
      client_secret: clientSecret,
      token_endpoint_auth_method: 'client_secret_post',
      introspection_endpoint_auth_method: 'client_secret_post',
      revocation_endpoint_auth_method: 'client_secret_post',
      response_types: [],
    });
    const basic = new issuer.Client({ client_id: clientId, client_secret: clientSecret, response_types: [] });
    summary.discovery_basic = { ok: true, issuer: issuer.issuer };
    const tokens = (t) => ({
      access_token: t.access_token,
      refresh_token: t.refresh_token,
      token_type: t.token_type,
      expires_in: t.expires_in,
    });
    let granted;
    summary.password = await step(async () => {
      granted = await post.grant({ grant_type: 'password', username, password });
      return tokens(granted);
    });
    summary.client_credentials = await step(async () => tokens(await post.grant({ grant_type: 'client_credentials' })));
    let refreshed;
    if (granted?.refresh_token) {
      summary.refresh = await step(async () => {
        refreshed = await post.refresh(granted.refresh_token);
        return tokens(refreshed);
      });
    }
    const live = refreshed?.access_token ?? granted?.access_token;
    if (live) {
      summary.introspect_live = await step(async () => ({ answer: await post.introspect(live) }));
      summary.introspect_basic = await step(async () => ({ answer: await basic.introspect(live) }));
      summary.revoke = await step(async () => {
        await post.revoke(live);
        return {};
      });
      summary.introspect_revoked = await step(async () => ({ answer: await post.introspect(live) }));
    }
  }
}

console.log(JSON.stringify(summary));
