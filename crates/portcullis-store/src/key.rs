//! API key material: generation, the strict parser for presented keys, and the stored hash.
//!
//! A key reads `<prefix>_<id>_<secret>`:
//! - **prefix**: `[a-z0-9]{2,16}`, chosen by policy. It makes a leaked key recognisable (secret
//!   scanners match on it) and carries no security.
//! - **id**: 16 characters of lowercase base32 (`a-z2-7`), 80 random bits. Public: the lookup key,
//!   shown in listings, logs and audit records.
//! - **secret**: 43 characters of unpadded base64url, 32 random bytes (256 bits). Shown once, at
//!   creation; never stored, logged or printed by `Debug`.
//!
//! Only SHA-256 of the secret's 32 bytes is stored ([`SecretHash`]). A slow password hash (argon2,
//! bcrypt) protects guessable secrets from offline search; a 256-bit random secret cannot be
//! guessed, so a slow hash would only spend CPU on every request.
//!
//! Randomness comes straight from the operating system through `getrandom`: a key needs 42 bytes
//! and is made rarely, and the OS generator leaves no user-space generator state to seed, fork or
//! snapshot (getrandom is already in the build through uuid).

use std::fmt;
use std::str::FromStr;

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

const ID_BYTES: usize = 10;
const ID_LEN: usize = 16;
const SECRET_BYTES: usize = 32;
const SECRET_LEN: usize = 43;
const PREFIX_MIN: usize = 2;
const PREFIX_MAX: usize = 16;
/// The longest well-formed key; anything longer is refused before any other work.
const KEY_MAX_LEN: usize = PREFIX_MAX + 1 + ID_LEN + 1 + SECRET_LEN;

/// Whether `prefix` is a valid key prefix: 2 to 16 of `a-z0-9`.
pub fn is_valid_prefix(prefix: &str) -> bool {
    (PREFIX_MIN..=PREFIX_MAX).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The public part of a key that names it: 16 characters of lowercase base32.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_valid(s: &str) -> bool {
        s.len() == ID_LEN && s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for KeyId {
    type Err = InvalidKeyId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if Self::is_valid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidKeyId)
        }
    }
}

impl AsRef<str> for KeyId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A string that is not a key id (16 characters of `a-z2-7`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a key id is 16 characters of a-z and 2-7")]
pub struct InvalidKeyId;

/// SHA-256 of a key's secret: what a store keeps instead of the secret.
///
/// Equality is constant-time, and `Debug` prints nothing of the hash: with it, an attacker who
/// can read logs could confirm a guessed secret offline.
#[derive(Clone, Copy)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// Wraps stored hash bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The hash bytes, for a backend to store.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn of_secret(secret: &[u8]) -> Self {
        Self(Sha256::digest(secret).into())
    }
}

impl PartialEq for SecretHash {
    fn eq(&self, other: &Self) -> bool {
        // Constant time, so response timing says nothing about how much of a hash matched.
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretHash {}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

/// A whole key as the holder presents it, returned once by `create` and `rotate`.
///
/// The text is wiped from memory when the value is dropped. `Debug` shows the id and never the
/// secret, and there is no `Display`: printing the key takes an explicit
/// [`expose_secret`](Self::expose_secret).
pub struct PlaintextKey {
    text: String,
    id: KeyId,
}

impl PlaintextKey {
    /// The full key, `<prefix>_<id>_<secret>`, to hand to its holder once.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// The key's public id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }
}

impl Drop for PlaintextKey {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

impl fmt::Debug for PlaintextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaintextKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Freshly generated id and secret, before the prefix is known (a rotation takes the prefix of
/// the key it replaces, which only the backend's transaction reads).
pub(crate) struct KeyMaterial {
    id: KeyId,
    secret: Zeroizing<[u8; SECRET_LEN]>,
    hash: SecretHash,
}

impl KeyMaterial {
    /// New random id and secret from the operating system's CSPRNG.
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        let mut id_bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut id_bytes)?;
        let mut id = [0u8; ID_LEN];
        BASE32_NOPAD.encode_mut(&id_bytes, &mut id);
        let id = KeyId(
            id.iter()
                .map(|b| char::from(b.to_ascii_lowercase()))
                .collect(),
        );

        let mut secret_bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        getrandom::fill(secret_bytes.as_mut())?;
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        BASE64URL_NOPAD.encode_mut(secret_bytes.as_ref(), secret.as_mut());
        let hash = SecretHash::of_secret(secret_bytes.as_ref());
        Ok(Self { id, secret, hash })
    }

    pub(crate) fn id(&self) -> &KeyId {
        &self.id
    }

    pub(crate) fn hash(&self) -> SecretHash {
        self.hash
    }

    /// The key as its holder will present it.
    pub(crate) fn into_plaintext(self, prefix: &str) -> PlaintextKey {
        // Sized once, so no reallocation leaves an unwiped copy of the secret behind.
        let mut text = String::with_capacity(prefix.len() + 2 + ID_LEN + SECRET_LEN);
        text.push_str(prefix);
        text.push('_');
        text.push_str(self.id.as_str());
        text.push('_');
        text.extend(self.secret.iter().copied().map(char::from));
        PlaintextKey { text, id: self.id }
    }
}

/// A presented key that is well-formed, with its secret already hashed.
#[derive(Debug)]
pub(crate) struct PresentedKey<'a> {
    prefix: &'a str,
    id: KeyId,
    hash: SecretHash,
}

impl<'a> PresentedKey<'a> {
    /// Parses `<prefix>_<id>_<secret>` strictly: exact lengths, exact alphabets, and a canonical
    /// secret encoding (so one secret has exactly one spelling).
    pub(crate) fn parse(presented: &'a str) -> Result<Self, MalformedKey> {
        if presented.len() > KEY_MAX_LEN {
            return Err(MalformedKey("too long"));
        }
        let (prefix, rest) = presented
            .split_once('_')
            .ok_or(MalformedKey("no separator"))?;
        if !is_valid_prefix(prefix) {
            return Err(MalformedKey("prefix is not 2-16 of a-z 0-9"));
        }
        // The id has no '_', so the next one ends it; the secret's alphabet may contain '_'.
        let (id, secret) = rest
            .split_once('_')
            .ok_or(MalformedKey("no separator after the id"))?;
        if !KeyId::is_valid(id) {
            return Err(MalformedKey("id is not 16 of a-z 2-7"));
        }
        if secret.len() != SECRET_LEN {
            return Err(MalformedKey("secret is not 43 characters"));
        }
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        if BASE64URL_NOPAD.decode_len(SECRET_LEN) != Ok(SECRET_BYTES) {
            return Err(MalformedKey("secret length"));
        }
        // The predefined encoding checks trailing bits, so non-canonical spellings fail here.
        BASE64URL_NOPAD
            .decode_mut(secret.as_bytes(), bytes.as_mut())
            .map_err(|_| MalformedKey("secret is not canonical base64url"))?;
        Ok(Self {
            prefix,
            id: KeyId(id.to_owned()),
            hash: SecretHash::of_secret(bytes.as_ref()),
        })
    }

    pub(crate) fn prefix(&self) -> &str {
        self.prefix
    }

    pub(crate) fn id(&self) -> &KeyId {
        &self.id
    }

    pub(crate) fn hash(&self) -> &SecretHash {
        &self.hash
    }
}

/// Why a presented key is not well-formed. Names a rule, never any of the presented text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed API key: {0}")]
pub struct MalformedKey(&'static str);

impl MalformedKey {
    /// Which rule the key broke.
    pub fn reason(&self) -> &'static str {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(prefix: &str) -> (KeyMaterial, String) {
        let material = KeyMaterial::generate().unwrap();
        let expected_hash = material.hash();
        let plain = KeyMaterial {
            id: material.id.clone(),
            secret: material.secret.clone(),
            hash: expected_hash,
        }
        .into_plaintext(prefix);
        let text = plain.expose_secret().to_owned();
        (material, text)
    }

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let (material, text) = fresh("acme");
        let (prefix, rest) = text.split_once('_').unwrap();
        let (id, secret) = rest.split_once('_').unwrap();
        assert_eq!(prefix, "acme");
        assert_eq!(id, material.id().as_str());
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7')));
        assert_eq!(secret.len(), 43);
        assert!(
            secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn generated_keys_differ() {
        let (a, ta) = fresh("acme");
        let (b, tb) = fresh("acme");
        assert_ne!(a.id(), b.id());
        assert_ne!(ta, tb);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn a_generated_key_parses_to_its_own_id_and_hash() {
        let (material, text) = fresh("ak9");
        let parsed = PresentedKey::parse(&text).unwrap();
        assert_eq!(parsed.prefix(), "ak9");
        assert_eq!(parsed.id(), material.id());
        assert_eq!(*parsed.hash(), material.hash());
    }

    #[test]
    fn every_generated_key_parses_back() {
        // Secrets often contain '_' and '-': the parser must split on the first two '_' only.
        for _ in 0..2000 {
            let material = KeyMaterial::generate().unwrap();
            let (id, hash) = (material.id().clone(), material.hash());
            let plain = material.into_plaintext("acme");
            let parsed = PresentedKey::parse(plain.expose_secret()).unwrap();
            assert_eq!((parsed.id(), parsed.hash()), (&id, &hash));
        }
    }

    #[test]
    fn parsing_is_strict() {
        let (_, good) = fresh("acme");
        let (prefix, rest) = good.split_once('_').unwrap();
        let (id, secret) = rest.split_once('_').unwrap();
        let bad = [
            String::new(),
            "acme".to_owned(),
            format!("{prefix}{id}{secret}"),
            format!("A{prefix}_{id}_{secret}"),
            format!("a_{id}_{secret}"),
            format!("abcdefghijklmnopq_{id}_{secret}"),
            format!("{prefix}_{}_{secret}", id.to_uppercase()),
            format!("{prefix}_{}_{secret}", &id[1..]),
            format!("{prefix}_{id}8_{secret}"),
            format!("{prefix}_{id}_{}", &secret[1..]),
            format!("{prefix}_{id}_{secret}A"),
            format!("{prefix}_{id}_{}=", &secret[1..]),
            format!("{prefix}_{id}_{}+", &secret[1..]),
            format!(" {good}"),
            format!("{good}\n"),
            "x".repeat(10_000),
        ];
        for key in &bad {
            assert!(PresentedKey::parse(key).is_err(), "accepted {key:?}");
        }
        assert!(PresentedKey::parse(&good).is_ok());
    }

    #[test]
    fn a_noncanonical_secret_spelling_is_refused() {
        // 'A' is 0b000000, 'B' 0b000001: the same 256 bits, one set trailing bit.
        let key = format!("acme_{}_{}", "a".repeat(16), "A".repeat(43));
        assert!(PresentedKey::parse(&key).is_ok());
        let key = format!("acme_{}_{}B", "a".repeat(16), "A".repeat(42));
        assert_eq!(
            PresentedKey::parse(&key).unwrap_err().reason(),
            "secret is not canonical base64url"
        );
    }

    #[test]
    fn errors_and_debug_never_show_the_secret() {
        let (material, text) = fresh("acme");
        // The last 43 characters (the secret's alphabet includes '_').
        let secret = &text[text.len() - SECRET_LEN..];
        let plain = material.into_plaintext("acme");
        let shown = format!("{plain:?} {:?}", plain.id());
        assert!(!shown.contains(secret), "{shown}");
        let broken = format!("{}X", plain.expose_secret());
        let err = PresentedKey::parse(&broken).unwrap_err();
        assert!(!format!("{err} {err:?}").contains(&secret[..8]));
        let parsed = PresentedKey::parse(plain.expose_secret()).unwrap();
        assert!(!format!("{parsed:?}").contains(secret));
    }

    #[test]
    fn prefixes() {
        for ok in ["ak", "acme", "a1b2c3", "abcdefghijklmnop"] {
            assert!(is_valid_prefix(ok), "{ok}");
        }
        for bad in ["", "a", "Acme", "ac_me", "ac-me", "abcdefghijklmnopq", "äk"] {
            assert!(!is_valid_prefix(bad), "{bad}");
        }
    }

    #[test]
    fn key_ids_parse_strictly() {
        assert!("abcdefgh234567zz".parse::<KeyId>().is_ok());
        for bad in [
            "",
            "abcdefgh234567z",
            "abcdefgh234567zzz",
            "ABCDEFGH234567ZZ",
            "abcdefgh2345678z",
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
    }
}
