//! The browser-facing half of a policy as layer configuration: CORS, the CSRF check and the
//! cookie rules.

use std::sync::Arc;

use portcullis_layers::cookies::{self, CookiePolicyLayer, CookieRules};
use portcullis_layers::cors::{CorsError, CorsLayer, CorsPolicy};
use portcullis_layers::csrf::{CsrfConfig, CsrfLayer, CsrfMode, PathExemption};
use portcullis_layers::origin::AllowedOrigins;
use portcullis_policy::cookies::SameSite;
use portcullis_policy::csrf::{CsrfExemption, CsrfMode as PolicyCsrfMode};
use portcullis_policy::origins::OriginEntry;
use portcullis_policy::{Policy, normalize_path};

/// An allow-list from normalised policy entries, as the gateway builds it (`portcullis probe`
/// uses it too, so "allowed" means the same to both). The policy compiler and the layer's
/// parser agree on the canonical form (a test below holds them to it); an entry the layer still
/// refuses is left out, which denies rather than allows.
pub fn allowed_origins(entries: &[OriginEntry]) -> AllowedOrigins {
    entries.iter().fold(AllowedOrigins::new(), |list, entry| {
        match list.clone().allow(entry.as_str()) {
            Ok(list) => list,
            Err(e) => {
                tracing::error!(origin = %entry, error = %e, "origin left out of an allow-list");
                list
            }
        }
    })
}

/// One CORS policy per route (the default route last), `None` where the route has none.
pub(crate) fn cors_layer(policy: &Policy) -> Result<CorsLayer, CorsError> {
    let per_route = policy
        .all_routes()
        .map(|route| {
            let cors = route.cors.as_deref().and_then(|n| policy.cors_policy(n))?;
            let mut layer_policy = CorsPolicy::new(allowed_origins(cors.active_origins()))
                .methods(cors.methods.iter().cloned())
                .allow_headers(cors.allow_headers.iter().cloned())
                .expose_headers(cors.expose_headers.iter().cloned())
                .credentials(cors.credentials);
            if let Some(max_age) = cors.max_age {
                layer_policy = layer_policy.max_age(max_age);
            }
            Some(layer_policy)
        })
        .collect();
    CorsLayer::new(per_route)
}

/// Exempt paths, matched like routes: on the normalised, decoded path.
#[derive(Debug)]
struct Exemptions(Vec<CsrfExemption>);

impl PathExemption for Exemptions {
    fn is_exempt(&self, path: &str) -> bool {
        normalize_path(path).is_ok_and(|n| self.0.iter().any(|e| e.pattern.matches(&n.decoded)))
    }
}

/// The CSRF check, or `None` when the policy turns it off.
pub(crate) fn csrf_layer(policy: &Policy) -> Option<CsrfLayer> {
    csrf_config(policy).map(CsrfLayer::new)
}

/// The CSRF check's configuration (also evaluated by `explain`), or `None` when the policy
/// turns it off.
///
/// Trusted: the policy's `trusted-origins` everywhere, and on each route the origins of its
/// CORS policy when that policy allows credentials. A page allowed to send credentialed
/// requests and read the answers can do anything a form post could; refusing its posts would
/// only break the dashboard the CORS policy was written for.
pub(crate) fn csrf_config(policy: &Policy) -> Option<CsrfConfig> {
    let settings = &policy.csrf;
    let mode = match settings.mode {
        PolicyCsrfMode::Off => return None,
        PolicyCsrfMode::Enforce => CsrfMode::Enforce,
        PolicyCsrfMode::ReportOnly => CsrfMode::ReportOnly,
    };
    let mut config = CsrfConfig::new(mode)
        .trusted(allowed_origins(&settings.trusted_origins.active))
        .session_cookies(settings.session_cookies.clone())
        .exempt(Arc::new(Exemptions(settings.exempt.clone())));
    for header in &settings.api_key_headers {
        config = config.api_key_header(header.clone());
    }
    for (index, route) in policy.all_routes().enumerate() {
        let credentialed = route
            .cors
            .as_deref()
            .and_then(|n| policy.cors_policy(n))
            .filter(|c| c.credentials);
        if let Some(cors) = credentialed {
            config = config.trusted_on_route(index, allowed_origins(cors.active_origins()));
        }
    }
    Some(config)
}

/// The cookie rules, or `None` when the policy has none.
pub(crate) fn cookie_layer(policy: &Policy) -> Option<CookiePolicyLayer> {
    if policy.cookies.is_empty() {
        return None;
    }
    let rules = policy.cookies.iter().fold(CookieRules::new(), |rules, r| {
        let rule = cookies::CookieRule {
            secure: r.secure,
            http_only: r.http_only,
            same_site: r.same_site.map(|s| match s {
                SameSite::Strict => cookies::SameSite::Strict,
                SameSite::Lax => cookies::SameSite::Lax,
                SameSite::None => cookies::SameSite::None,
            }),
            path: r.path.clone(),
        };
        match &r.name {
            Some(name) => rules.cookie(name.clone(), rule),
            None => rules.every_other(rule),
        }
    });
    Some(CookiePolicyLayer::new(rules))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_layers::origin::Origin;
    use portcullis_policy::origins::parse_origin_entry;

    /// Whatever the policy compiler accepts, the layer accepts in the same canonical form.
    #[test]
    fn policy_and_layer_agree_on_origins() {
        for entry in [
            "https://App.Example.com:443",
            "http://localhost:5173",
            "http://127.0.0.1:8080",
            "http://[::1]:3000",
            "https://bücher.example",
            "https://*.Example.com",
            "https://*.example.com:8443",
            "null",
            "*",
        ] {
            let normalised = parse_origin_entry(entry).unwrap();
            let list = AllowedOrigins::new()
                .allow(normalised.as_str())
                .unwrap_or_else(|e| panic!("{entry}: {e}"));
            if let OriginEntry::Exact(s) = &normalised {
                let origin = Origin::parse(s.as_bytes()).unwrap();
                assert_eq!(origin.as_str(), s, "{entry}");
                assert!(list.allows(&origin), "{entry}");
            }
        }
    }
}
