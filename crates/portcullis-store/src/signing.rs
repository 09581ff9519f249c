//! Request-signing secrets for API keys, and the key-encryption key (KEK) that seals them.
//!
//! A key that "requires signing" comes with a second secret, a [`SigningSecret`]: its holder
//! signs each request with HMAC-SHA256 under it, and the gateway checks the signature. Unlike
//! the API key's own secret, of which a hash is enough, the gateway must recover this one to
//! compute the same HMAC, so it cannot be hashed: it is stored encrypted ([`SealedSecret`]) under
//! a [`Kek`] that comes from the environment and never from the store. A copy of the database
//! alone then gives no signing secret away.
//!
//! Sealing is ChaCha20-Poly1305 with a random 96-bit nonce. The associated data binds a sealed
//! secret to its key's id, so a sealed value copied onto another key's row does not open. Random
//! nonces are safe for far more seals under one KEK (about 2^32) than keys will ever be made.
//!
//! Like everything secret in this crate, a KEK and a signing secret are wiped from memory when
//! dropped and print nothing of themselves in `Debug`; errors never repeat what they parsed.
//!
//! ```
//! use portcullis_store::{Kek, KeyStore, MemoryStore, NewKey};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // In the gateway: `Kek::from_encoded(&value_from_the_environment)?`.
//! let kek = Kek::generate()?;
//! let store = MemoryStore::new();
//! let (_record, key, secret) = store
//!     .create_signed(NewKey::new("acme", "tenant-a"), &kek)
//!     .await?;
//! // `key` and `secret` are shown to the client once; the store keeps the secret sealed.
//! let verified = store.verify(key.expose_secret()).await?;
//! if let Some(sealed) = &verified.signing_secret {
//!     let opened = kek.open(&verified.id, sealed)?;
//!     assert_eq!(opened.as_bytes(), secret.as_bytes()); // the HMAC key
//! }
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! ```

use std::fmt;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use data_encoding::{
    BASE64, BASE64_NOPAD, BASE64URL, BASE64URL_NOPAD, Encoding, HEXLOWER, HEXLOWER_PERMISSIVE,
};
use zeroize::{Zeroize, Zeroizing};

use crate::error::StoreError;
use crate::key::{KeyId, is_valid_prefix};

const KEK_LEN: usize = 32;
const KEK_HEX_LEN: usize = 2 * KEK_LEN;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const SECRET_BYTES: usize = 32;
const SECRET_LEN: usize = 43;
const SECRET_MARK: &str = "_sig_";
/// Versioned, so a later scheme cannot open (or be confused with) this one's values; the NUL
/// ends it, so no key id can extend it into another domain string.
const AD_DOMAIN: &[u8] = b"portcullis-signing-v1\0";

/// The 32-byte key-encryption key that seals signing secrets.
///
/// Read from the environment at startup ([`from_encoded`](Self::from_encoded)); made with
/// [`generate`](Self::generate) and printed once with [`to_hex`](Self::to_hex). Wiped from
/// memory when dropped; `Debug` prints `Kek(..)`.
pub struct Kek(Zeroizing<[u8; KEK_LEN]>);

impl Kek {
    /// Parses a KEK written as 64 hex digits (either case) or as base64 of exactly 32 bytes
    /// (standard or URL-safe alphabet, with or without padding). Surrounding whitespace, such as
    /// the newline of a file, is ignored.
    pub fn from_encoded(text: &str) -> Result<Self, KekError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KekError("it is empty"));
        }
        let mut key = Zeroizing::new([0u8; KEK_LEN]);
        if text.len() == KEK_HEX_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            HEXLOWER_PERMISSIVE
                .decode_mut(text.as_bytes(), key.as_mut())
                .map_err(|_| KekError(NEITHER))?;
            return Ok(Self(key));
        }
        for encoding in [&BASE64, &BASE64_NOPAD, &BASE64URL, &BASE64URL_NOPAD] {
            if decode_exactly(encoding, text, &mut key) {
                return Ok(Self(key));
            }
        }
        Err(KekError(NEITHER))
    }

    /// A new random KEK from the operating system's generator.
    pub fn generate() -> Result<Self, StoreError> {
        let mut key = Zeroizing::new([0u8; KEK_LEN]);
        getrandom::fill(key.as_mut())?;
        Ok(Self(key))
    }

    /// The KEK as 64 lowercase hex digits, for an operator to put in the environment.
    pub fn to_hex(&self) -> Zeroizing<String> {
        // Sized once, so no reallocation leaves an unwiped copy behind.
        let mut hex = Zeroizing::new(String::with_capacity(KEK_HEX_LEN));
        HEXLOWER.encode_append(self.0.as_ref(), &mut hex);
        hex
    }

    /// Encrypts `secret` for the key `key_id`, under a fresh random nonce.
    pub fn seal(&self, key_id: &KeyId, secret: &SigningSecret) -> Result<SealedSecret, StoreError> {
        let plaintext = secret.as_bytes();
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)?;
        // Sized once, and wiped unless it ends up holding only ciphertext.
        let mut sealed = Zeroizing::new(Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN));
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = self
            .cipher()
            .encrypt_inout_detached(
                <&Nonce>::from(&nonce),
                &associated_data(key_id),
                (&mut sealed[NONCE_LEN..]).into(),
            )
            .map_err(|_| StoreError::invalid("signing_secret", "too long to seal"))?;
        sealed.extend_from_slice(&tag);
        Ok(SealedSecret(std::mem::take(&mut *sealed)))
    }

    /// Decrypts the signing secret sealed for the key `key_id`.
    pub fn open(&self, key_id: &KeyId, sealed: &SealedSecret) -> Result<SigningSecret, OpenError> {
        let (nonce, rest) = sealed.0.split_first_chunk::<NONCE_LEN>().ok_or(OpenError)?;
        let (ciphertext, tag) = rest.split_last_chunk::<TAG_LEN>().ok_or(OpenError)?;
        let mut plaintext = Zeroizing::new(ciphertext.to_vec());
        // The tag is checked before anything is decrypted.
        self.cipher()
            .decrypt_inout_detached(
                <&Nonce>::from(nonce),
                &associated_data(key_id),
                plaintext.as_mut_slice().into(),
                <&Tag>::from(tag),
            )
            .map_err(|_| OpenError)?;
        // Authentic, so written by `seal`; UTF-8 is checked all the same, as nothing may panic.
        let text = String::from_utf8(std::mem::take(&mut *plaintext)).map_err(|err| {
            err.into_bytes().zeroize();
            OpenError
        })?;
        Ok(SigningSecret(Zeroizing::new(text)))
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        // The cipher's copy of the key is wiped when it drops (the `zeroize` feature).
        ChaCha20Poly1305::new(<&Key>::from(&*self.0))
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(..)")
    }
}

const NEITHER: &str = "it is neither 64 hex digits nor base64 of exactly 32 bytes";

/// Decodes `text` into `key` if it is `encoding` of exactly 32 bytes.
fn decode_exactly(encoding: &Encoding, text: &str, key: &mut [u8; KEK_LEN]) -> bool {
    // `decode_mut` wants a buffer of exactly `decode_len`, which is 33 for 44 padded characters.
    let mut buffer = Zeroizing::new([0u8; KEK_LEN + 1]);
    let Ok(len) = encoding.decode_len(text.len()) else {
        return false;
    };
    let Some(buffer) = buffer.get_mut(..len) else {
        return false;
    };
    // The predefined encodings refuse non-canonical trailing bits and misplaced padding.
    match encoding.decode_mut(text.as_bytes(), buffer) {
        Ok(KEK_LEN) => {
            key.copy_from_slice(&buffer[..KEK_LEN]);
            true
        }
        _ => false,
    }
}

fn associated_data(key_id: &KeyId) -> Vec<u8> {
    let mut data = Vec::with_capacity(AD_DOMAIN.len() + key_id.as_str().len());
    data.extend_from_slice(AD_DOMAIN);
    data.extend_from_slice(key_id.as_str().as_bytes());
    data
}

/// A KEK that does not parse. Says what is expected, never what was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid key-encryption key (KEK): {0}; expected 32 bytes written as 64 hex digits, or as \
     base64 (standard or URL-safe alphabet, with or without padding)"
)]
pub struct KekError(&'static str);

/// A sealed signing secret that does not open: the wrong KEK, or a value that was altered,
/// truncated or moved from another key. Which one is not said: the distinction would only help
/// someone trying to forge one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the signing secret does not open: wrong key-encryption key (KEK), or the stored value was \
     altered, truncated or moved from another key"
)]
pub struct OpenError;

/// The secret a client signs requests with: `<prefix>_sig_<43 characters of base64url>` (32
/// random bytes), where the prefix is its API key's.
///
/// The HMAC key is the UTF-8 bytes of the whole string ([`as_bytes`](Self::as_bytes)), so a
/// client can sign with `openssl dgst -sha256 -hmac "$SECRET"` as it is. Wiped from memory when
/// dropped; `Debug` prints nothing of it, and there is no `Display`.
pub struct SigningSecret(Zeroizing<String>);

impl SigningSecret {
    /// A new random secret for a key with `prefix`.
    pub fn generate(prefix: &str) -> Result<Self, StoreError> {
        if !is_valid_prefix(prefix) {
            return Err(StoreError::invalid("prefix", "must be 2 to 16 of a-z 0-9"));
        }
        let mut random = Zeroizing::new([0u8; SECRET_BYTES]);
        getrandom::fill(random.as_mut())?;
        let mut encoded = Zeroizing::new([0u8; SECRET_LEN]);
        BASE64URL_NOPAD.encode_mut(random.as_ref(), encoded.as_mut());
        // Sized once, so no reallocation leaves an unwiped copy behind.
        let mut text = Zeroizing::new(String::with_capacity(
            prefix.len() + SECRET_MARK.len() + SECRET_LEN,
        ));
        text.push_str(prefix);
        text.push_str(SECRET_MARK);
        text.extend(encoded.iter().copied().map(char::from));
        Ok(Self(text))
    }

    /// The secret, to hand to the key's holder once.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The HMAC key: the secret's UTF-8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// A signing secret as stored: a 12-byte nonce, then the ChaCha20-Poly1305 ciphertext and tag.
///
/// Opaque without the [`Kek`]; `Debug` shows only its length. Equality is plain: the bytes are
/// ciphertext, and comparing them tells nothing about the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(Vec<u8>);

impl SealedSecret {
    /// Wraps stored bytes (checked only when opened).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes, for a backend to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedSecret({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> KeyId {
        text.parse().unwrap()
    }

    fn fixture() -> (Kek, KeyId, SigningSecret) {
        (
            Kek::generate().unwrap(),
            id("abcdefgh234567zz"),
            SigningSecret::generate("acme").unwrap(),
        )
    }

    #[test]
    fn a_sealed_secret_opens_to_itself() {
        let (kek, id, secret) = fixture();
        let sealed = kek.seal(&id, &secret).unwrap();
        assert_eq!(
            sealed.as_bytes().len(),
            NONCE_LEN + secret.as_bytes().len() + TAG_LEN
        );
        let opened = kek.open(&id, &sealed).unwrap();
        assert_eq!(opened.expose_secret(), secret.expose_secret());
        // And through the stored form.
        let stored = SealedSecret::from_bytes(sealed.as_bytes().to_vec());
        assert_eq!(
            kek.open(&id, &stored).unwrap().expose_secret(),
            secret.expose_secret()
        );
    }

    #[test]
    fn another_kek_does_not_open_it() {
        let (kek, id, secret) = fixture();
        let sealed = kek.seal(&id, &secret).unwrap();
        let other = Kek::generate().unwrap();
        assert_eq!(other.open(&id, &sealed).unwrap_err(), OpenError);
    }

    #[test]
    fn a_secret_moved_to_another_key_does_not_open() {
        let (kek, id, secret) = fixture();
        let sealed = kek.seal(&id, &secret).unwrap();
        let elsewhere = self::id("zzzzzzzzzzzzzzzz");
        assert_eq!(kek.open(&elsewhere, &sealed).unwrap_err(), OpenError);
    }

    #[test]
    fn any_altered_byte_is_refused() {
        let (kek, id, secret) = fixture();
        let sealed = kek.seal(&id, &secret).unwrap();
        for i in 0..sealed.as_bytes().len() {
            let mut bytes = sealed.as_bytes().to_vec();
            bytes[i] ^= 0x01;
            let tampered = SealedSecret::from_bytes(bytes);
            assert_eq!(kek.open(&id, &tampered).unwrap_err(), OpenError, "byte {i}");
        }
    }

    #[test]
    fn truncated_or_extended_values_are_refused() {
        let (kek, id, secret) = fixture();
        let sealed = kek.seal(&id, &secret).unwrap();
        let bytes = sealed.as_bytes();
        for len in [
            0,
            1,
            NONCE_LEN,
            NONCE_LEN + TAG_LEN - 1,
            NONCE_LEN + TAG_LEN,
            bytes.len() - 1,
        ] {
            let truncated = SealedSecret::from_bytes(bytes[..len].to_vec());
            assert_eq!(kek.open(&id, &truncated).unwrap_err(), OpenError, "{len}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(kek.open(&id, &SealedSecret::from_bytes(longer)).is_err());
    }

    #[test]
    fn two_seals_of_one_secret_differ() {
        let (kek, id, secret) = fixture();
        let a = kek.seal(&id, &secret).unwrap();
        let b = kek.seal(&id, &secret).unwrap();
        assert_ne!(a, b);
        assert_ne!(a.as_bytes()[..NONCE_LEN], b.as_bytes()[..NONCE_LEN]);
        for sealed in [a, b] {
            assert_eq!(
                kek.open(&id, &sealed).unwrap().expose_secret(),
                secret.expose_secret()
            );
        }
    }

    #[test]
    fn keks_parse_from_hex_and_base64() {
        let bytes: Vec<u8> = (0u8..32)
            .map(|b| b.wrapping_mul(37).wrapping_add(250))
            .collect();
        // Both base64 alphabets' special characters occur in these bytes' encodings.
        let std_padded = BASE64.encode(&bytes);
        let url_padded = BASE64URL.encode(&bytes);
        assert!(std_padded.contains(['+', '/']) && url_padded.contains(['-', '_']));
        let accepted = [
            HEXLOWER.encode(&bytes),
            HEXLOWER.encode(&bytes).to_uppercase(),
            std_padded.clone(),
            BASE64_NOPAD.encode(&bytes),
            url_padded,
            BASE64URL_NOPAD.encode(&bytes),
            format!("  {std_padded}\n"),
            format!("\t{}\r\n", HEXLOWER.encode(&bytes)),
        ];
        for text in &accepted {
            let kek = Kek::from_encoded(text).unwrap_or_else(|err| panic!("{text:?}: {err}"));
            assert_eq!(kek.to_hex().as_str(), HEXLOWER.encode(&bytes), "{text:?}");
        }
    }

    #[test]
    fn malformed_keks_are_refused_without_being_echoed() {
        let b31 = [0xa5u8; 31];
        let b33 = [0xa5u8; 33];
        let hex = HEXLOWER.encode(&[0x5au8; 32]);
        let refused = [
            String::new(),
            "   \n".to_owned(),
            HEXLOWER.encode(&b31),
            HEXLOWER.encode(&b33),
            BASE64.encode(&b31),
            BASE64.encode(&b33),
            BASE64URL_NOPAD.encode(&b31),
            BASE64URL_NOPAD.encode(&b33),
            format!("{}g", &hex[1..]),
            format!("{}zz", &hex[2..]),
            format!("0x{}", &hex[2..]),
            format!("{} {}", &hex[..32], &hex[32..]),
            // Mixed alphabets, padding on the unpadded length, a non-canonical last character.
            format!("+{}", &BASE64URL_NOPAD.encode(&[0xfbu8; 32])[1..]),
            format!("{}==", BASE64_NOPAD.encode(&[0x5au8; 32])),
            format!("{}B", &"A".repeat(42)),
            "x".repeat(10_000),
        ];
        for text in &refused {
            let err = Kek::from_encoded(text).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(shown.contains("64 hex digits"), "{shown}");
            let trimmed = text.trim();
            if trimmed.len() >= 8 {
                assert!(!shown.contains(&trimmed[..8]), "echoed {text:?}: {shown}");
            }
        }
        // The canonical spelling of the last one is fine.
        assert!(Kek::from_encoded(&"A".repeat(43)).is_ok());
    }

    #[test]
    fn generated_keks_differ_and_round_trip_through_hex() {
        let a = Kek::generate().unwrap();
        let b = Kek::generate().unwrap();
        assert_ne!(a.to_hex().as_str(), b.to_hex().as_str());
        assert_eq!(a.to_hex().len(), 64);
        let again = Kek::from_encoded(&a.to_hex()).unwrap();
        assert_eq!(again.to_hex().as_str(), a.to_hex().as_str());
    }

    #[test]
    fn signing_secrets_have_the_documented_shape() {
        let secret = SigningSecret::generate("acme").unwrap();
        let text = secret.expose_secret();
        let body = text.strip_prefix("acme_sig_").unwrap();
        assert_eq!(body.len(), 43);
        let mut decoded = [0u8; 32];
        assert_eq!(
            BASE64URL_NOPAD.decode_mut(body.as_bytes(), &mut decoded),
            Ok(32)
        );
        assert_eq!(secret.as_bytes(), text.as_bytes());
        let other = SigningSecret::generate("acme").unwrap();
        assert_ne!(other.expose_secret(), text);
        for bad in ["", "A", "ac_me", "abcdefghijklmnopq"] {
            assert!(matches!(
                SigningSecret::generate(bad),
                Err(StoreError::InvalidInput {
                    field: "prefix",
                    ..
                })
            ));
        }
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let (kek, id, secret) = fixture();
        let sealed = kek.seal(&id, &secret).unwrap();
        let body = &secret.expose_secret()["acme_sig_".len()..];
        let hex = kek.to_hex();
        let shown = format!("{kek:?} {secret:?} {sealed:?} {:?}", OpenError);
        assert_eq!(
            format!("{kek:?} {secret:?} {sealed:?}"),
            format!(
                "Kek(..) SigningSecret(<redacted>) SealedSecret({} bytes)",
                sealed.as_bytes().len()
            )
        );
        assert!(!shown.contains(body), "{shown}");
        assert!(!shown.contains(&hex[..16]), "{shown}");
    }
}
