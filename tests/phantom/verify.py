"""Verifies an upstream JWT as an application behind the gateway would, with PyJWT:
the keys from the JWKS URL (`jwt.PyJWKClient`), ES256 only, the issuer and audience
checked, exp, iat, sub and iss required, no leeway.

    python3 verify.py JWKS_URL ISSUER AUDIENCE JWT

Prints one JSON object: {"claims": {...}} when the JWT verifies, else
{"error": "<exception class>", "message": "..."}. Exits 0 either way.
"""
import json
import sys

import jwt


def main():
    jwks_url, issuer, audience, token = sys.argv[1:5]
    try:
        client = jwt.PyJWKClient(jwks_url, cache_keys=False)
        key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["ES256"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
        print(json.dumps({"claims": claims}))
    except Exception as e:  # noqa: BLE001 - the class name is the answer
        print(json.dumps({"error": type(e).__name__, "message": str(e)}))


if __name__ == "__main__":
    main()
