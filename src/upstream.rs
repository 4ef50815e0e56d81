//! Phantom tokens (`--upstream-jwt`): a live opaque token's validation answers, besides
//! the identity headers, a short-lived JWT signed with ES256 that the application behind
//! the gateway verifies offline with the keys of `GET /.well-known/jwks.json`.
//!
//! The keys live in the record store (`tokencache_signing_key`), so a fleet agrees on
//! them; each instance reads them every `reload` (10 s by default) and keeps the last
//! list it read when the database is down. A key is published from its `published_at`,
//! signs from its `signs_from` (`tokencache keys rotate` puts that one JWKS cache
//! lifetime and one reload after the publication, so that every verifier can have it
//! before it sees a JWT it signed), signs until a later key's `signs_from`, and stays
//! published `MAX_TTL_SECS` (and a minute) after that, past the expiry of every JWT it
//! signed.
//!
//! A JWT is minted once per token and key and reused until shortly before its expiry
//! (`reuse_margin`), but only after the token was found live: the cache saves signing,
//! never the validation, so a revoked token never gets its cached JWT.
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use hyper::header::HeaderValue;
use p256::ecdsa::SigningKey;
use rand::RngCore;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::check_token::TokenInfo;
use crate::store::{StoredKey, TokenHash};

/// The one algorithm: ECDSA P-256 with SHA-256, which Envoy's `jwt_authn`, PyJWT,
/// `jose`, Go's and Java's JOSE libraries all verify, with small keys and signatures.
pub const ALGORITHM: &str = "ES256";

/// The longest `--upstream-jwt-ttl-secs`: a retired key stays published this long (and a
/// minute) after it stopped signing, whatever the instances' settings.
pub const MAX_TTL_SECS: u64 = 3600;

/// How long a retired key stays in the JWKS after its last signature.
pub const RETIRED_PUBLISHED_SECS: i64 = MAX_TTL_SECS as i64 + 60;

pub const DEFAULT_TTL_SECS: u64 = 300;
pub const DEFAULT_JWKS_MAX_AGE_SECS: u64 = 300;
pub const DEFAULT_RELOAD_SECS: u64 = 10;

/// What `--upstream-jwt` and its settings ask for.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// `iss` of every JWT, and the issuer of the discovery document.
    pub issuer: String,
    /// `aud`, when set.
    pub audience: Option<String>,
    /// A JWT's lifetime at most (never past the opaque token's expiry).
    pub ttl_secs: u64,
    /// `Cache-Control: max-age` of the JWKS.
    pub jwks_max_age_secs: u64,
    /// How often an instance reads the keys.
    pub reload: Duration,
    /// Bound on the minted JWTs kept for reuse.
    pub cache_entries: usize,
}

/// One key as an instance uses it.
struct Key {
    kid: Arc<str>,
    /// The same key in `ring`, which signs about five times faster than `p256` (which
    /// makes and reads the keys: `ring` cannot derive a public key from a scalar).
    signing: EcdsaKeyPair,
    jwk: Jwk,
    published_at: i64,
    signs_from: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
struct Jwk {
    kty: &'static str,
    crv: &'static str,
    x: String,
    y: String,
    kid: String,
    alg: &'static str,
    #[serde(rename = "use")]
    usage: &'static str,
}

/// Why a stored key was not used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key {kid}: algorithm {algorithm} is not {ALGORITHM}")]
    Algorithm { kid: String, algorithm: String },
    #[error("signing key {kid}: the private key is not a P-256 scalar in base64")]
    Unreadable { kid: String },
}

fn public_jwk(signing: &SigningKey) -> (String, String) {
    let point = signing.verifying_key().to_encoded_point(false);
    let x = URL_SAFE_NO_PAD.encode(point.x().map(|x| x.as_slice()).unwrap_or_default());
    let y = URL_SAFE_NO_PAD.encode(point.y().map(|y| y.as_slice()).unwrap_or_default());
    (x, y)
}

/// RFC 7638: the SHA-256 thumbprint of the public key, base64url: the key id.
fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

impl Key {
    fn from_stored(stored: &StoredKey) -> Result<Self, KeyError> {
        if stored.algorithm != ALGORITHM {
            return Err(KeyError::Algorithm {
                kid: stored.kid.clone(),
                algorithm: stored.algorithm.clone(),
            });
        }
        let unreadable = || KeyError::Unreadable {
            kid: stored.kid.clone(),
        };
        let bytes = STANDARD
            .decode(stored.private_key.expose())
            .map_err(|_| unreadable())?;
        let scalar: [u8; 32] = bytes.try_into().map_err(|_| unreadable())?;
        let key = SigningKey::from_bytes(&scalar.into()).map_err(|_| unreadable())?;
        let (x, y) = public_jwk(&key);
        let point = key.verifying_key().to_encoded_point(false);
        let signing = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &scalar,
            point.as_bytes(),
            &SystemRandom::new(),
        )
        .map_err(|_| unreadable())?;
        Ok(Self {
            kid: stored.kid.as_str().into(),
            jwk: Jwk {
                kty: "EC",
                crv: "P-256",
                x,
                y,
                kid: stored.kid.clone(),
                alg: ALGORITHM,
                usage: "sig",
            },
            signing,
            published_at: stored.published_at,
            signs_from: stored.signs_from,
        })
    }
}

/// A new key: published now, signing `lead_secs` later.
pub fn new_key(now: i64, lead_secs: i64) -> StoredKey {
    let mut rng = rand::rng();
    let signing = loop {
        let mut scalar = [0u8; 32];
        rng.fill_bytes(&mut scalar);
        // Out of range (zero, or past the group order) about once in 2^32 draws.
        if let Ok(key) = SigningKey::from_bytes(&scalar.into()) {
            break key;
        }
    };
    let (x, y) = public_jwk(&signing);
    StoredKey {
        kid: thumbprint(&x, &y),
        algorithm: ALGORITHM.to_owned(),
        private_key: crate::secret::Secret::new(STANDARD.encode(signing.to_bytes())),
        published_at: now,
        signs_from: now + lead_secs.max(0),
    }
}

/// Orders keys by when they sign (then by kid, so every instance picks the same one).
fn signing_order(a: (i64, &str), b: (i64, &str)) -> std::cmp::Ordering {
    a.cmp(&b)
}

/// When each key stopped signing at `now` (`None`: it signs, or has not begun): the
/// `signs_from` of the first later key that has begun.
fn retired_since(keys: &[(i64, &str)], key: (i64, &str), now: i64) -> Option<i64> {
    keys.iter()
        .filter(|k| signing_order(**k, key).is_gt() && k.0 <= now)
        .map(|k| k.0)
        .min()
}

/// The keys no longer worth keeping at `now`: retired long enough ago that every JWT they
/// signed has expired (and a minute more).
pub fn expired(stored: &[StoredKey], now: i64) -> Vec<String> {
    let order: Vec<(i64, &str)> = stored
        .iter()
        .map(|k| (k.signs_from, k.kid.as_str()))
        .collect();
    stored
        .iter()
        .filter(|k| {
            retired_since(&order, (k.signs_from, &k.kid), now)
                .is_some_and(|since| now >= since + RETIRED_PUBLISHED_SECS)
        })
        .map(|k| k.kid.clone())
        .collect()
}

/// The keys an instance uses at one moment: the one that signs, and those published.
pub struct KeySet {
    signer: Option<Arc<Key>>,
    /// The JWKS document, rendered once.
    jwks: Bytes,
    /// The kids published.
    published: Vec<String>,
}

impl KeySet {
    /// The set of `stored` at `now`, and the keys that could not be read.
    pub fn at(stored: &[StoredKey], now: i64) -> (Self, Vec<KeyError>) {
        let mut problems = Vec::new();
        let keys: Vec<Arc<Key>> = stored
            .iter()
            .filter_map(|s| {
                Key::from_stored(s)
                    .map_err(|e| problems.push(e))
                    .ok()
                    .map(Arc::new)
            })
            .collect();
        let order: Vec<(i64, &str)> = keys.iter().map(|k| (k.signs_from, &*k.kid)).collect();
        let signer = keys
            .iter()
            .filter(|k| k.signs_from <= now)
            .max_by(|a, b| signing_order((a.signs_from, &a.kid), (b.signs_from, &b.kid)))
            .cloned();
        let published: Vec<&Arc<Key>> = keys
            .iter()
            .filter(|k| k.published_at <= now)
            .filter(|k| {
                retired_since(&order, (k.signs_from, &k.kid), now)
                    .is_none_or(|since| now < since + RETIRED_PUBLISHED_SECS)
            })
            .collect();
        #[derive(Serialize)]
        struct Jwks<'a> {
            keys: Vec<&'a Jwk>,
        }
        let jwks = serde_json::to_vec(&Jwks {
            keys: published.iter().map(|k| &k.jwk).collect(),
        })
        .unwrap_or_default();
        (
            Self {
                signer,
                jwks: Bytes::from(jwks),
                published: published.iter().map(|k| k.jwk.kid.clone()).collect(),
            },
            problems,
        )
    }

    pub fn empty() -> Self {
        Self::at(&[], 0).0
    }

    /// The kid of the key that signs, if any.
    pub fn signer(&self) -> Option<&str> {
        self.signer.as_deref().map(|k| &*k.kid)
    }

    pub fn published(&self) -> &[String] {
        &self.published
    }
}

/// The claims of an identity JWT.
#[derive(Serialize)]
struct Identity<'a> {
    iss: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    client_id: &'a str,
    token_type: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'a str,
    kid: &'a str,
}

/// A minted JWT kept for reuse.
#[derive(Clone)]
struct Minted {
    kid: Arc<str>,
    /// `Bearer <jwt>`, made once: reused as it is, a clone is a reference count.
    bearer: HeaderValue,
    exp: i64,
}

/// Mints and serves: the keys in use, the JWKS, the minted JWTs kept for reuse.
pub struct Upstream {
    pub settings: UpstreamSettings,
    keys: RwLock<Arc<KeySet>>,
    minted: quick_cache::sync::Cache<TokenHash, Minted>,
}

impl Upstream {
    pub fn new(settings: UpstreamSettings) -> Self {
        Self {
            minted: quick_cache::sync::Cache::new(settings.cache_entries.max(1)),
            settings,
            keys: RwLock::new(Arc::new(KeySet::empty())),
        }
    }

    /// The keys in use.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Puts `set` in use.
    pub fn replace(&self, set: KeySet) {
        let set = Arc::new(set);
        match self.keys.write() {
            Ok(mut k) => *k = set,
            Err(p) => *p.into_inner() = set,
        }
    }

    /// The JWKS document (`application/jwk-set+json`).
    pub fn jwks(&self) -> Bytes {
        self.keys().jwks.clone()
    }

    /// How long a minted JWT is reused: until this many seconds before its expiry.
    fn reuse_margin(&self) -> i64 {
        (self.settings.ttl_secs as i64 / 4).clamp(1, 30)
    }

    /// The identity JWT of a token just found live (`info`), minted or reused; `None`
    /// when no key signs yet.
    pub fn identity(&self, token: &str, info: &TokenInfo, now: i64) -> Option<UpstreamJwt> {
        let keys = self.keys();
        let signer = keys.signer.as_ref()?;
        let hash = TokenHash::of(token);
        if let Some(m) = self.minted.get(&hash) {
            if m.kid == signer.kid && m.exp - now > self.reuse_margin() {
                return Some(UpstreamJwt {
                    bearer: m.bearer,
                    exp: m.exp,
                });
            }
        }
        let ttl = i64::try_from(self.settings.ttl_secs).unwrap_or(i64::MAX);
        let exp = now + ttl.min(info.seconds_left.max(0));
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        let claims = Identity {
            iss: &self.settings.issuer,
            sub: &info.username,
            aud: self.settings.audience.as_deref(),
            client_id: &info.app_key,
            token_type: &info.token_type,
            iat: now,
            exp,
            jti: URL_SAFE_NO_PAD.encode(jti),
        };
        let jwt = sign(signer, "JWT", &claims)?;
        // Base64url and dots only: always a valid header value.
        let bearer = HeaderValue::from_str(&format!("Bearer {jwt}")).ok()?;
        crate::telemetry::upstream_jwt_minted("identity");
        self.minted.insert(
            hash,
            Minted {
                kid: signer.kid.clone(),
                bearer: bearer.clone(),
                exp,
            },
        );
        Some(UpstreamJwt { bearer, exp })
    }

    /// Signs any claims with the key in use (RFC 9701 introspection answers), with the
    /// header's `typ`; `None` when no key signs yet.
    pub fn sign_claims(&self, typ: &str, claims: &impl Serialize) -> Option<String> {
        let keys = self.keys();
        let jwt = sign(keys.signer.as_ref()?, typ, claims)?;
        crate::telemetry::upstream_jwt_minted("introspection");
        Some(jwt)
    }
}

/// `--upstream-jwt` is on but no key signs yet (the database unreadable since start).
#[derive(Debug)]
pub struct NoSigningKey;

/// The JWT a check of a live token (`info`) hands the upstream, on every validation path:
/// `None` with `--upstream-jwt` off.
pub fn for_check(
    up: Option<&Upstream>,
    token: Option<&str>,
    info: &TokenInfo,
) -> Result<Option<UpstreamJwt>, NoSigningKey> {
    let (Some(up), Some(token)) = (up, token) else {
        return Ok(None);
    };
    up.identity(token, info, crate::clock::unix_now())
        .map(Some)
        .ok_or(NoSigningKey)
}

/// A JWT handed out, and its expiry (Unix seconds).
pub struct UpstreamJwt {
    /// `Bearer <jwt>`: the `Authorization` value for the upstream.
    pub bearer: HeaderValue,
    pub exp: i64,
}

impl UpstreamJwt {
    /// The JWT itself.
    pub fn jwt(&self) -> &str {
        self.bearer
            .to_str()
            .unwrap_or_default()
            .trim_start_matches("Bearer ")
    }
}

fn sign(key: &Key, typ: &str, claims: &impl Serialize) -> Option<String> {
    let header = serde_json::to_vec(&Header {
        alg: ALGORITHM,
        typ,
        kid: &key.kid,
    })
    .ok()?;
    let payload = serde_json::to_vec(claims).ok()?;
    let mut jwt = URL_SAFE_NO_PAD.encode(header);
    jwt.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut jwt);
    // The fixed encoding: r and s, 32 bytes each, as JWS asks.
    let signature = key
        .signing
        .sign(&SystemRandom::new(), jwt.as_bytes())
        .ok()?;
    jwt.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut jwt);
    Some(jwt)
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::{Signature, VerifyingKey};

    use super::*;

    fn settings() -> UpstreamSettings {
        UpstreamSettings {
            issuer: "https://auth.example".into(),
            audience: Some("api".into()),
            ttl_secs: 300,
            jwks_max_age_secs: 300,
            reload: Duration::from_secs(10),
            cache_entries: 100,
        }
    }

    fn info(seconds_left: i64) -> TokenInfo {
        TokenInfo {
            username: "alice".into(),
            app_key: "app".into(),
            token_type: "web".into(),
            seconds_left,
        }
    }

    fn parts(jwt: &str) -> (serde_json::Value, serde_json::Value, Vec<u8>, String) {
        let mut it = jwt.split('.');
        let (h, p, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        assert!(it.next().is_none());
        let json = |part: &str| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        (
            json(h),
            json(p),
            URL_SAFE_NO_PAD.decode(s).unwrap(),
            format!("{h}.{p}"),
        )
    }

    #[test]
    fn a_minted_jwt_verifies_with_its_published_key_and_carries_the_claims() {
        let stored = new_key(1000, 0);
        let up = Upstream::new(settings());
        let (set, problems) = KeySet::at(std::slice::from_ref(&stored), 1000);
        assert!(problems.is_empty());
        up.replace(set);
        let minted = up.identity("tok", &info(3600), 2000).unwrap();
        let (header, claims, signature, input) = parts(minted.jwt());
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], stored.kid.as_str());
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["client_id"], "app");
        assert_eq!(claims["aud"], "api");
        assert_eq!(claims["iss"], "https://auth.example");
        assert_eq!(
            (claims["iat"].as_i64(), claims["exp"].as_i64()),
            (Some(2000), Some(2300))
        );
        // Verified with the public key as the JWKS publishes it.
        let jwks: serde_json::Value = serde_json::from_slice(&up.jwks()).unwrap();
        let jwk = &jwks["keys"][0];
        assert_eq!(jwk["kid"], stored.kid.as_str());
        assert!(jwk.get("d").is_none(), "no private part: {jwk}");
        let mut point = vec![4u8];
        point.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap());
        point.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap());
        let key = VerifyingKey::from_sec1_bytes(&point).unwrap();
        let signature = Signature::from_slice(&signature).unwrap();
        assert!(key.verify(input.as_bytes(), &signature).is_ok());
        assert!(key.verify(b"other", &signature).is_err());
    }

    #[test]
    fn a_jwt_never_outlives_its_token_and_is_reused_until_shortly_before_it_expires() {
        let up = Upstream::new(settings());
        up.replace(KeySet::at(&[new_key(0, 0)], 0).0);
        let short = up.identity("short", &info(42), 100).unwrap();
        assert_eq!(short.exp, 142);
        let first = up.identity("tok", &info(3600), 100).unwrap();
        let again = up.identity("tok", &info(3500), 200).unwrap();
        assert_eq!(first.jwt(), again.jwt());
        // Within the margin (30 s of a 300 s JWT): a new one.
        let late = up.identity("tok", &info(3300), 371).unwrap();
        assert_ne!(first.jwt(), late.jwt());
        assert_eq!(late.exp, 671);
    }

    #[test]
    fn no_key_no_jwt() {
        let up = Upstream::new(settings());
        assert!(up.identity("tok", &info(3600), 0).is_none());
        // A key published but not yet signing.
        up.replace(KeySet::at(&[new_key(0, 100)], 50).0);
        assert!(up.identity("tok", &info(3600), 50).is_none());
        assert_eq!(up.keys().published().len(), 1);
    }

    #[test]
    fn rotation_publishes_ahead_switches_at_signs_from_and_keeps_the_old_key_published() {
        let old = new_key(0, 0);
        let new = new_key(1000, 310);
        let both = [old.clone(), new.clone()];
        let at = |now| KeySet::at(&both, now).0;
        // Published at once, signing only at 1310.
        let before = at(1000);
        assert_eq!(before.signer(), Some(old.kid.as_str()));
        assert_eq!(before.published(), [old.kid.clone(), new.kid.clone()]);
        assert_eq!(at(1309).signer(), Some(old.kid.as_str()));
        assert_eq!(at(1310).signer(), Some(new.kid.as_str()));
        // The old key, retired at 1310, stays until every JWT it signed has expired.
        let last = 1310 + RETIRED_PUBLISHED_SECS;
        assert_eq!(at(last - 1).published().len(), 2);
        assert_eq!(at(last).published(), std::slice::from_ref(&new.kid));
        assert!(expired(&both, last - 1).is_empty());
        assert_eq!(expired(&both, last), std::slice::from_ref(&old.kid));
        // A minted JWT of the old key is not reused once the new one signs.
        let up = Upstream::new(settings());
        up.replace(at(1300));
        let a = up.identity("tok", &info(3600), 1300).unwrap();
        up.replace(at(1310));
        let b = up.identity("tok", &info(3600), 1310).unwrap();
        assert_eq!(parts(a.jwt()).0["kid"], old.kid.as_str());
        assert_eq!(parts(b.jwt()).0["kid"], new.kid.as_str());
    }

    #[test]
    fn an_unreadable_or_foreign_key_is_skipped_and_named_without_its_secret() {
        let mut bad = new_key(0, 0);
        bad.private_key = crate::secret::Secret::new("not base64!");
        let mut rsa = new_key(0, 0);
        rsa.algorithm = "RS256".into();
        let (set, problems) = KeySet::at(&[bad.clone(), rsa], 0);
        assert!(set.signer().is_none());
        assert_eq!(problems.len(), 2);
        let good = new_key(0, 0);
        for p in &problems {
            assert!(!p.to_string().contains(good.private_key.expose()));
        }
        assert!(!format!("{bad:?}").contains("not base64"));
    }
}
