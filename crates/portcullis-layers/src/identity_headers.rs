//! The headers that carry a verified identity upstream: their names, set once by the policy,
//! and their values, made once per identity.
//!
//! An API key's identity is the same on every request the key authenticates. Making a header
//! value checks each string and copies it; a verifier that hands out one [`PreparedIdentity`]
//! per key (the gateway's does, per key record its key store caches) has that done once per key,
//! and each request shares the values at the cost of a reference count.
//!
//! ```
//! use http::HeaderMap;
//! use portcullis_layers::auth::{CredentialKind, Identity, Role};
//! use portcullis_layers::identity_headers::{IdentityHeaderNames, PreparedIdentity};
//!
//! let prepared = PreparedIdentity::new(Identity {
//!     tenant: "acme".into(),
//!     subject: None,
//!     key_id: "k1".into(),
//!     role: Role::Registered,
//!     scopes: vec!["read".into(), "write".into()],
//!     credential: CredentialKind::ApiKey,
//!     token_id: None,
//! });
//! let mut headers = HeaderMap::new();
//! IdentityHeaderNames::default().set(&mut headers, &prepared);
//! assert_eq!(headers["x-portcullis-tenant"], "acme");
//! assert_eq!(headers["x-portcullis-scopes"], "read,write");
//! assert!(!headers.contains_key("x-portcullis-subject"));
//! ```

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use crate::auth::Identity;

/// The header names that carry the verified identity upstream.
#[derive(Debug, Clone)]
pub struct IdentityHeaderNames {
    pub tenant: HeaderName,
    pub subject: HeaderName,
    pub key_id: HeaderName,
    pub role: HeaderName,
    pub scopes: HeaderName,
}

impl Default for IdentityHeaderNames {
    fn default() -> Self {
        Self {
            tenant: HeaderName::from_static("x-portcullis-tenant"),
            subject: HeaderName::from_static("x-portcullis-subject"),
            key_id: HeaderName::from_static("x-portcullis-key-id"),
            role: HeaderName::from_static("x-portcullis-role"),
            scopes: HeaderName::from_static("x-portcullis-scopes"),
        }
    }
}

impl IdentityHeaderNames {
    /// The names, in the order [`PreparedIdentity`] keeps the values.
    fn in_order(&self) -> [&HeaderName; 5] {
        [
            &self.tenant,
            &self.subject,
            &self.key_id,
            &self.role,
            &self.scopes,
        ]
    }

    /// Removes every identity header: only a credential verified by the gateway sets them.
    pub fn strip(&self, headers: &mut HeaderMap) {
        crate::remove_headers::remove_all(headers, &self.in_order());
    }

    /// Sets the headers of `identity`, replacing any value already there. A value that cannot
    /// be a header value (it comes from the key store or a token) is left out, not mangled.
    pub fn set(&self, headers: &mut HeaderMap, identity: &PreparedIdentity) {
        for (name, value) in self.in_order().into_iter().zip(&identity.0.values) {
            if let Some(value) = value {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

/// A verified identity together with its header values, made from it in [`new`](Self::new) so
/// that the two cannot disagree. Cloning shares both.
#[derive(Debug, Clone)]
pub struct PreparedIdentity(Arc<Prepared>);

#[derive(Debug)]
struct Prepared {
    identity: Identity,
    /// Tenant, subject, key ID, role and scopes, as [`IdentityHeaderNames::in_order`] names
    /// them. `None`: there is no subject, or the value cannot be a header value.
    values: [Option<HeaderValue>; 5],
}

impl PreparedIdentity {
    pub fn new(identity: Identity) -> Self {
        let value = |s: &str| HeaderValue::from_str(s).ok();
        let values = [
            value(&identity.tenant),
            identity.subject.as_deref().and_then(value),
            value(&identity.key_id),
            Some(HeaderValue::from_static(identity.role.as_str())),
            // The joined string becomes the value as it is, not copied again.
            HeaderValue::from_maybe_shared(Bytes::from(identity.scopes.join(","))).ok(),
        ];
        Self(Arc::new(Prepared { identity, values }))
    }

    pub fn identity(&self) -> &Identity {
        &self.0.identity
    }

    /// Whether `a` and `b` are clones of one preparation (not merely equal identities).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// The identity, moved out when nothing else shares it and copied otherwise.
    pub fn into_identity(self) -> Identity {
        match Arc::try_unwrap(self.0) {
            Ok(prepared) => prepared.identity,
            Err(shared) => shared.identity.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{CredentialKind, Role};

    fn identity(tenant: &str, subject: Option<&str>, scopes: &[&str]) -> Identity {
        Identity {
            tenant: tenant.into(),
            subject: subject.map(Into::into),
            key_id: "k1".into(),
            role: Role::Guest,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            credential: CredentialKind::Jwt,
            token_id: None,
        }
    }

    fn set(identity: Identity, headers: &mut HeaderMap) {
        IdentityHeaderNames::default().set(headers, &PreparedIdentity::new(identity));
    }

    #[test]
    fn sets_every_header_of_the_identity_replacing_what_was_there() {
        let mut headers = HeaderMap::new();
        headers.append("x-portcullis-tenant", HeaderValue::from_static("forged"));
        headers.append(
            "x-portcullis-tenant",
            HeaderValue::from_static("forged-too"),
        );
        set(
            identity("acme", Some("ci-bot"), &["read", "write"]),
            &mut headers,
        );
        let all = |name: &str| headers.get_all(name).iter().cloned().collect::<Vec<_>>();
        assert_eq!(all("x-portcullis-tenant"), ["acme"]);
        assert_eq!(all("x-portcullis-subject"), ["ci-bot"]);
        assert_eq!(all("x-portcullis-key-id"), ["k1"]);
        assert_eq!(all("x-portcullis-role"), ["guest"]);
        assert_eq!(all("x-portcullis-scopes"), ["read,write"]);
        assert_eq!(headers.len(), 5);
    }

    #[test]
    fn a_value_that_cannot_be_a_header_value_is_left_out() {
        let mut headers = HeaderMap::new();
        set(
            identity("acme\nX-Evil: 1", Some("bob\r"), &["a\0"]),
            &mut headers,
        );
        assert!(!headers.contains_key("x-portcullis-tenant"));
        assert!(!headers.contains_key("x-portcullis-subject"));
        assert!(!headers.contains_key("x-portcullis-scopes"));
        assert_eq!(headers["x-portcullis-key-id"], "k1");
        assert_eq!(headers["x-portcullis-role"], "guest");
    }

    #[test]
    fn strip_removes_every_identity_header_and_nothing_else() {
        let mut headers = HeaderMap::new();
        set(identity("acme", Some("s"), &["read"]), &mut headers);
        headers.insert("x-other", HeaderValue::from_static("1"));
        IdentityHeaderNames::default().strip(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-other"));
    }

    #[test]
    fn clones_share_one_preparation_and_the_identity_comes_back_whole() {
        let original = identity("acme", None, &[]);
        let prepared = PreparedIdentity::new(original.clone());
        let shared = prepared.clone();
        assert!(PreparedIdentity::ptr_eq(&prepared, &shared));
        assert!(!PreparedIdentity::ptr_eq(
            &prepared,
            &PreparedIdentity::new(original.clone())
        ));
        assert_eq!(prepared.into_identity(), original);
        assert_eq!(shared.into_identity(), original);
    }
}
