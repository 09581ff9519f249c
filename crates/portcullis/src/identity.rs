//! The policy's `[auth]` and `[route.auth]` as the authentication layer's configuration.

use std::sync::Arc;

use portcullis_layers::auth::{
    ApiKeyVerifier, AuthLayer, AuthMode, IdentityHeaderNames, RouteRequirement,
};
use portcullis_layers::jwt::JwtVerifier;
use portcullis_layers::lockout::LockoutGuard;
use portcullis_layers::rate_limit::RateLimiter;
use portcullis_layers::revocation::RevocationList;
use portcullis_policy::Policy;
use portcullis_policy::auth::{AuthMode as PolicyMode, Credential};

/// One requirement per route (the default route last).
pub(crate) fn auth_layer(
    policy: &Policy,
    verifier: Option<Arc<dyn ApiKeyVerifier>>,
    jwt: Option<Arc<JwtVerifier>>,
    revocations: Option<Arc<dyn RevocationList>>,
    rate_limits: Arc<RateLimiter>,
    lockout: Option<Arc<LockoutGuard>>,
) -> AuthLayer {
    let per_route = policy
        .all_routes()
        .map(|route| RouteRequirement {
            mode: match route.auth.mode {
                PolicyMode::None => AuthMode::None,
                PolicyMode::Optional => AuthMode::Optional,
                PolicyMode::Required => AuthMode::Required,
            },
            api_key: route.auth.credentials.contains(&Credential::ApiKey),
            // Listed without `api-key`: API keys only on signed requests.
            signed_only: route.auth.credentials.contains(&Credential::SignedKey)
                && !route.auth.credentials.contains(&Credential::ApiKey),
            jwt: route.auth.credentials.contains(&Credential::Jwt),
            scopes: route.auth.scopes.clone(),
            require_registered: route.auth.require_registered,
            query_token: route.auth.query_token.clone(),
        })
        .collect();
    let auth = &policy.auth;
    let names = &auth.identity_headers;
    let prefix = auth.api_keys.as_ref().map_or("pcl", |k| k.prefix.as_str());
    AuthLayer::new(per_route, verifier, prefix)
        .identity_headers(IdentityHeaderNames {
            tenant: names.tenant.clone(),
            subject: names.subject.clone(),
            key_id: names.key_id.clone(),
            role: names.role.clone(),
            scopes: names.scopes.clone(),
        })
        .tenant_header(auth.tenant_header.clone())
        .jwt(jwt)
        .revocations(revocations)
        .rate_limits(Some(rate_limits))
        .lockout(lockout)
}
