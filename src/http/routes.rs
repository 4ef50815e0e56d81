//! The route table: every path the server answers, with what it is. The router and the
//! method check both read it (`Route::of`), and so do the metrics (the path is the
//! label) and `deploy/openapi-check.sh` (every path must be in openapi.yaml).
use hyper::Method;

/// A route that takes a JSON or form body by POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostRoute {
    Authorize,
    AuthorizeNopwd,
    CheckToken,
    RefreshToken,
    Logout,
    OAuthToken,
    OAuthIntrospect,
    OAuthRevoke,
    GetVerify,
    CheckUser,
    Doaction,
    GetUserinfo,
    UpdateUserinfo,
}

/// A route operators read with GET (or HEAD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetRoute {
    Metrics,
    Healthz,
    Readyz,
    /// The public keys of the upstream JWTs.
    Jwks,
    /// RFC 8414 metadata (also at the OpenID Connect discovery path).
    Discovery,
}

/// A known route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Post(PostRoute),
    Get(GetRoute),
    /// Forward-auth: any method, no body (gateways forward the original request's method).
    Auth,
}

/// The routes that take a JSON or form body.
const POST_ROUTES: [(&str, PostRoute); 13] = [
    ("/api/v1/authorize", PostRoute::Authorize),
    ("/api/v1/authorize_nopwd", PostRoute::AuthorizeNopwd),
    ("/api/v1/check_token", PostRoute::CheckToken),
    ("/api/v1/refresh_token", PostRoute::RefreshToken),
    ("/api/v1/logout", PostRoute::Logout),
    ("/oauth2/token", PostRoute::OAuthToken),
    ("/oauth2/introspect", PostRoute::OAuthIntrospect),
    ("/oauth2/revoke", PostRoute::OAuthRevoke),
    ("/api/v1/get_verify", PostRoute::GetVerify),
    ("/api/v1/check_user", PostRoute::CheckUser),
    ("/api/v1/doaction", PostRoute::Doaction),
    ("/api/v1/get_userinfo", PostRoute::GetUserinfo),
    ("/api/v1/update_userinfo", PostRoute::UpdateUserinfo),
];

/// The routes operators use.
const GET_ROUTES: [(&str, GetRoute); 6] = [
    ("/metrics", GetRoute::Metrics),
    ("/healthz", GetRoute::Healthz),
    ("/readyz", GetRoute::Readyz),
    ("/.well-known/jwks.json", GetRoute::Jwks),
    (
        "/.well-known/oauth-authorization-server",
        GetRoute::Discovery,
    ),
    ("/.well-known/openid-configuration", GetRoute::Discovery),
];

/// Forward-auth. Paths below it are the same route: Envoy's `ext_authz` appends the
/// original path.
const AUTH_ROUTE: &str = "/api/v1/auth";

impl Route {
    /// The route of a path (the legacy prefix `/oauth2/api/v1/…` folded onto `/api/v1/…`)
    /// and its template, the metrics label; `None` and "other" for an unknown path.
    pub fn of(path: &str) -> (Option<Route>, &'static str) {
        let path = canonical(path);
        if let Some((p, r)) = POST_ROUTES.iter().find(|(p, _)| *p == path) {
            return (Some(Route::Post(*r)), p);
        }
        if let Some((p, r)) = GET_ROUTES.iter().find(|(p, _)| *p == path) {
            return (Some(Route::Get(*r)), p);
        }
        match path.strip_prefix(AUTH_ROUTE) {
            Some("") => (Some(Route::Auth), AUTH_ROUTE),
            Some(rest) if rest.starts_with('/') => (Some(Route::Auth), AUTH_ROUTE),
            _ => (None, "other"),
        }
    }

    /// Whether the route takes `method`; otherwise the one method it takes (405 `Allow`).
    pub fn allows(self, method: &Method) -> Result<(), &'static str> {
        match self {
            Route::Post(_) if method == Method::POST => Ok(()),
            Route::Post(_) => Err("POST"),
            Route::Get(_) if method == Method::GET || method == Method::HEAD => Ok(()),
            Route::Get(_) => Err("GET"),
            Route::Auth => Ok(()),
        }
    }
}

/// Maps the legacy prefix `/oauth2/api/v1/…` onto `/api/v1/…`.
fn canonical(path: &str) -> &str {
    match path.strip_prefix("/oauth2") {
        Some(rest) if rest.starts_with("/api/v1/") => rest,
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_found_by_its_path_and_under_the_legacy_prefix() {
        for (path, route) in POST_ROUTES {
            assert_eq!(Route::of(path), (Some(Route::Post(route)), path));
            if let Some(rest) = path.strip_prefix("/api/v1/") {
                let legacy = format!("/oauth2/api/v1/{rest}");
                assert_eq!(Route::of(&legacy), (Some(Route::Post(route)), path));
            }
        }
        for (path, route) in GET_ROUTES {
            assert_eq!(Route::of(path), (Some(Route::Get(route)), path));
        }
        assert_eq!(Route::of("/api/v1/auth"), (Some(Route::Auth), AUTH_ROUTE));
        assert_eq!(
            Route::of("/api/v1/auth/x/y"),
            (Some(Route::Auth), AUTH_ROUTE)
        );
        assert_eq!(Route::of("/api/v1/authx"), (None, "other"));
        assert_eq!(Route::of("/nope"), (None, "other"));
    }

    #[test]
    fn each_kind_of_route_takes_its_methods() {
        let post = Route::Post(PostRoute::CheckToken);
        assert_eq!(post.allows(&Method::POST), Ok(()));
        assert_eq!(post.allows(&Method::GET), Err("POST"));
        let get = Route::Get(GetRoute::Healthz);
        assert_eq!(get.allows(&Method::HEAD), Ok(()));
        assert_eq!(get.allows(&Method::POST), Err("GET"));
        assert_eq!(Route::Auth.allows(&Method::DELETE), Ok(()));
    }
}
