// Verifies an upstream JWT as an application behind the gateway would, with the npm
// `jose` library: the keys from the JWKS URL (`createRemoteJWKSet`), ES256 only, the
// issuer and audience checked (jose checks exp and nbf itself, no clock tolerance).
//
//     node verify.mjs JWKS_URL ISSUER AUDIENCE JWT
//
// Prints one JSON object: {"claims": {...}} when the JWT verifies, else
// {"error": "<jose error code or class>", "message": "..."}. Exits 0 either way.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [jwksUrl, issuer, audience, token] = process.argv.slice(2);
try {
  const jwks = createRemoteJWKSet(new URL(jwksUrl));
  const { payload } = await jwtVerify(token, jwks, {
    issuer,
    audience,
    algorithms: ['ES256'],
    requiredClaims: ['exp', 'iat', 'sub', 'iss'],
  });
  console.log(JSON.stringify({ claims: payload }));
} catch (e) {
  console.log(JSON.stringify({ error: e.code ?? e.constructor.name, message: String(e.message) }));
}
