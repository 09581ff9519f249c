//! The signing secret of an API key, and the request extension that hands it to the signature
//! layer.
//!
//! ```
//! use portcullis_layers::signature::SigningSecret;
//!
//! let secret = SigningSecret::new(b"acme_sig_Q2xpZW50U2VjcmV0".to_vec());
//! assert_eq!(secret.expose(), b"acme_sig_Q2xpZW50U2VjcmV0");
//! assert_eq!(format!("{secret:?}"), "SigningSecret([redacted])");
//! ```

use std::fmt;

use zeroize::Zeroizing;

/// The HMAC key of a key that signs its requests: the UTF-8 bytes of the whole secret string
/// the client holds (`acme_sig_...`). Zeroized when dropped (every clone too); its `Debug` shows
/// nothing; it has no `PartialEq`, so it is never compared except by the HMAC check.
#[derive(Clone)]
pub struct SigningSecret(Zeroizing<Vec<u8>>);

impl SigningSecret {
    /// Takes the bytes over without copying them (the caller's `Vec` is moved, not left behind).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key bytes, for computing the HMAC. Never log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<Zeroizing<Vec<u8>>> for SigningSecret {
    fn from(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

/// Request extension: this request must be signed, with this secret.
///
/// [`AuthLayer`](crate::auth::AuthLayer) inserts it when a verified API key has a signing
/// secret, or when the route accepts API keys only on signed requests; the
/// [`SignatureLayer`](super::SignatureLayer) right inside it takes it out (so the secret goes no
/// further down the stack) and verifies the request. Extensions exist only in the process, so a
/// client can neither forge nor remove it. Its `Debug` shows no secret.
#[derive(Clone)]
pub struct SignatureRequired(SigningSecret);

impl SignatureRequired {
    pub fn new(secret: SigningSecret) -> Self {
        Self(secret)
    }

    pub(crate) fn secret(&self) -> &SigningSecret {
        &self.0
    }
}

impl fmt::Debug for SignatureRequired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignatureRequired([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = SigningSecret::new(b"acme_sig_topsecret".to_vec());
        let required = SignatureRequired::new(secret.clone());
        for text in [format!("{secret:?}"), format!("{required:?}")] {
            assert!(!text.contains("topsecret"), "{text}");
            assert!(text.contains("[redacted]"), "{text}");
        }
        assert_eq!(required.secret().expose(), b"acme_sig_topsecret");
    }
}
