//! Authentication: the credentials the policy accepts, which route accepts which, and what each
//! refusal returns.

use portcullis::policy::Policy;
use portcullis::policy::auth::{
    ApiKeySettings, AuthMode, Credential, JwtKeyKind, JwtKeySource, JwtSettings, RouteAuth,
};

use super::caching::{route_label, routes};
use super::refusal_table;
use crate::security_page::model::{Line, Section, Table, code, code_list, strong, text};
use crate::security_page::refusals::{self, Refusal};
use crate::security_page::wording::{duration, secret_source, store};

fn credential_name(c: Credential) -> &'static str {
    match c {
        Credential::ApiKey => "API key",
        Credential::Jwt => "JWT",
        Credential::SignedKey => "signed request (API key)",
    }
}

fn accepts(auth: &RouteAuth) -> Line {
    if auth.mode == AuthMode::None {
        return vec![text("none (no credential is read)")];
    }
    let names: Vec<String> = auth
        .credentials
        .iter()
        .map(|c| credential_name(*c).to_owned())
        .collect();
    vec![text(names.join(" or "))]
}

fn requirements(auth: &RouteAuth) -> Line {
    let mut parts: Vec<Line> = Vec::new();
    if !auth.scopes.is_empty() {
        let mut part = vec![text("scopes ")];
        part.extend(code_list(auth.scopes.iter().cloned(), ""));
        parts.push(part);
    }
    if auth.require_registered {
        parts.push(vec![text("a registered caller (guests refused)")]);
    }
    if let Some(param) = &auth.query_token {
        parts.push(vec![
            text("JWT may come in the query parameter "),
            code(param.clone()),
            text(" (WebSocket handshake)"),
        ]);
    }
    let mut line = Vec::new();
    for part in parts {
        if !line.is_empty() {
            line.push(text("; "));
        }
        line.extend(part);
    }
    if line.is_empty() {
        line.push(text("none"));
    }
    line
}

fn api_keys(s: &mut Section, keys: &ApiKeySettings) {
    s.subheading(vec![text("API keys")]);
    let mut store_line = vec![text("Key store: ")];
    store_line.extend(secret_source(&keys.store));
    store_line.push(text(
        ". Keys are stored hashed; revocations, suspensions and tenants' rate-limit plans are re-read from it every second.",
    ));
    s.list(vec![
        vec![
            text("Sent as "),
            code("X-API-Key: <key>"),
            text(" or "),
            code(format!("Authorization: Bearer {}_<id>_<secret>", keys.prefix)),
            text("; prefix "),
            code(keys.prefix.clone()),
            text("."),
        ],
        store_line,
        vec![text(format!(
            "A rotated key keeps working for {} by default; a key lookup is cached for at most {} (a revocation takes at most that long to be seen).",
            duration(keys.rotation_grace),
            duration(keys.cache_ttl)
        ))],
    ]);
    match &keys.signing {
        None => s.paragraph(vec![text(
            "Request signing is not configured: keys cannot sign, and a key with a signing secret cannot be used.",
        )]),
        Some(signing) => {
            s.subheading(vec![text("Signed requests")]);
            let mut replay = vec![text("Accepted signatures are remembered (no replay) in: ")];
            replay.extend(store(&signing.replay));
            replay.push(text("."));
            let mut kek = vec![text("Signing secrets are stored encrypted; key-encryption key from ")];
            kek.extend(secret_source(&signing.key_encryption_key));
            kek.push(text("."));
            s.list(vec![
                vec![
                    text("A key with a signing secret must sign every request: HMAC-SHA256 over method, path and query, timestamp and body hash, in "),
                    code(signing.signature_header.as_str()),
                    text(", with the timestamp in "),
                    code(signing.timestamp_header.as_str()),
                    text("."),
                ],
                vec![text(format!(
                    "The timestamp may be at most {} from the gateway's clock; a signed body at most {} bytes.",
                    duration(signing.max_skew),
                    signing.max_body
                ))],
                replay,
                kek,
            ]);
        }
    }
}

fn jwt_key(source: &JwtKeySource) -> Line {
    match &source.kind {
        JwtKeyKind::Secret(secret) => {
            let mut line = vec![text("shared HMAC secret from ")];
            line.extend(secret_source(secret));
            line
        }
        JwtKeyKind::Jwks(path) => vec![text("JWKS file "), code(path.display().to_string())],
        // The URL's query may carry a token: only its scheme and host are shown.
        JwtKeyKind::JwksUrl(uri) => vec![
            text("JWKS fetched from "),
            code(format!(
                "{}://{}",
                uri.scheme_str().unwrap_or("https"),
                uri.host().unwrap_or("?")
            )),
        ],
    }
}

fn jwt(s: &mut Section, jwt: &JwtSettings) {
    s.subheading(vec![text("JWT bearer tokens")]);
    let algorithms: Vec<String> = jwt
        .algorithms
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    let mut items = vec![{
        let mut line = vec![
            text("Sent as "),
            code("Authorization: Bearer <token>"),
            text("; algorithms pinned to "),
        ];
        line.extend(code_list(algorithms, "none"));
        line.push(text(" (unsigned tokens are never accepted)."));
        line
    }];
    if let Some(key) = &jwt.key {
        let mut line = vec![text("Verified with: ")];
        line.extend(jwt_key(key));
        line.push(text("."));
        items.push(line);
    }
    for (tenant, key) in &jwt.tenants {
        let mut line = vec![
            text("Tenant "),
            code(tenant.clone()),
            text(": tokens naming it verify only with "),
        ];
        line.extend(jwt_key(key));
        line.push(text("."));
        items.push(line);
    }
    items.push(match &jwt.issuer {
        Some(iss) => vec![
            text("Issuer ("),
            code("iss"),
            text(") must be "),
            code(iss.clone()),
            text("."),
        ],
        None => vec![text("The issuer ("), code("iss"), text(") is not checked.")],
    });
    items.push(if jwt.audience.is_empty() {
        vec![
            text("The audience ("),
            code("aud"),
            text(") is not checked."),
        ]
    } else {
        let mut line = vec![
            text("Audience ("),
            code("aud"),
            text(") must contain one of "),
        ];
        line.extend(code_list(jwt.audience.iter().cloned(), ""));
        line.push(text("."));
        line
    });
    items.push(vec![text(format!(
        "Clock leeway on exp and nbf: {}.{}",
        duration(jwt.leeway),
        jwt.max_lifetime
            .map(|d| format!(" Tokens may live at most {} (iat required).", duration(d)))
            .unwrap_or_default()
    ))]);
    let claims = &jwt.claims;
    let mut claim_line = vec![
        text("Claims: subject "),
        code(claims.subject.clone()),
        text(", tenant "),
        code(claims.tenant.clone()),
        text(" (required), role "),
        code(claims.role.clone()),
        text(", scopes "),
        code(claims.scopes.clone()),
        text("; registered roles: "),
    ];
    claim_line.extend(code_list(
        claims.registered_roles.iter().cloned(),
        "none (every caller is a guest)",
    ));
    claim_line.push(text("."));
    items.push(claim_line);
    if jwt
        .key_sources()
        .any(|k| matches!(k.kind, JwtKeyKind::JwksUrl(_)))
    {
        items.push(vec![text(format!(
            "A JWKS fetched from a URL is fetched again every {}.",
            duration(jwt.jwks_refresh)
        ))]);
    }
    s.list(items);
}

/// The refusals this policy's authentication can produce.
fn applicable_refusals(policy: &Policy) -> Vec<Refusal> {
    let auth = &policy.auth;
    let route_auths: Vec<&RouteAuth> = routes(policy).map(|(r, _)| &r.auth).collect();
    let mut out = Vec::new();
    if route_auths.iter().any(|a| a.mode == AuthMode::Required) {
        out.push(refusals::AUTHENTICATION_REQUIRED);
    }
    if route_auths.iter().any(|a| a.mode != AuthMode::None) {
        out.push(refusals::INVALID_CREDENTIALS);
    }
    let signing = auth.api_keys.as_ref().is_some_and(|k| k.signing.is_some());
    if signing {
        out.extend([
            refusals::SIGNATURE_REQUIRED,
            refusals::INVALID_SIGNATURE,
            refusals::SIGNATURE_EXPIRED,
            refusals::SIGNATURE_REPLAYED,
            refusals::SIGNED_BODY_TOO_LARGE,
        ]);
    } else if route_auths
        .iter()
        .any(|a| a.credentials.contains(&Credential::SignedKey))
    {
        out.push(refusals::SIGNATURE_REQUIRED);
    }
    if auth.tenant_header.is_some() {
        out.push(refusals::TENANT_MISMATCH);
    }
    if route_auths.iter().any(|a| !a.scopes.is_empty()) {
        out.push(refusals::INSUFFICIENT_SCOPE);
    }
    if route_auths.iter().any(|a| a.require_registered) {
        out.push(refusals::REGISTRATION_REQUIRED);
    }
    if auth.api_keys.is_some() {
        out.push(refusals::SUBJECT_SUSPENDED);
        out.push(refusals::AUTH_UNAVAILABLE);
    } else if signing {
        out.push(refusals::AUTH_UNAVAILABLE);
    }
    out
}

pub fn section(policy: &Policy) -> Section {
    let auth = &policy.auth;
    let mut s = Section::new("authentication", "Authentication");
    if !auth.configured {
        s.paragraph(vec![text(
            "No authentication: the policy has no [auth] table, so the gateway reads no credential and every route is open to anyone who can reach it.",
        )]);
        return s;
    }
    s.paragraph(vec![text(
        "Deny by default: every route requires a credential unless it says otherwise below.",
    )]);
    let mut table = Table::new(&["Route", "Mode", "Accepts", "Also requires"]);
    for (route, is_default) in routes(policy) {
        table.row(vec![
            vec![strong(route_label(route, is_default))],
            vec![code(route.auth.mode.as_str())],
            accepts(&route.auth),
            requirements(&route.auth),
        ]);
    }
    s.table(table);
    s.paragraph(vec![
        text("Modes: "),
        code("required"),
        text(": a valid credential is needed; "),
        code("optional"),
        text(": none is fine, an invalid one is refused; "),
        code("none"),
        text(": no credential is read."),
    ]);
    if let Some(keys) = &auth.api_keys {
        api_keys(&mut s, keys);
    }
    if let Some(settings) = &auth.jwt {
        jwt(&mut s, settings);
    }
    s.subheading(vec![text("Identity sent to the upstream")]);
    let mut identity = vec![text(
        "The gateway removes these headers from every request, then sets them from the verified credential only, so the upstream can trust them: ",
    )];
    identity.extend(code_list(
        auth.identity_headers
            .all()
            .iter()
            .map(|h| h.as_str().to_owned()),
        "",
    ));
    identity.push(text(". The presented credential itself is removed."));
    s.paragraph(identity);
    if let Some(header) = &auth.tenant_header {
        s.paragraph(vec![
            text("The tenant comes only from the credential: a request whose "),
            code(header.as_str()),
            text(" names another tenant is refused."),
        ]);
    }
    s.subheading(vec![text("Refusals")]);
    s.paragraph(vec![
        text("Every 401 below carries "),
        code("WWW-Authenticate: Bearer realm=\"api\""),
        text("."),
    ]);
    s.table(refusal_table(&applicable_refusals(policy)));
    s
}
