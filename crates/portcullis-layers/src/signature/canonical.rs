//! The canonical string a request signature covers, and the HMAC-SHA256 over it.
//!
//! ```text
//! PORTCULLIS-HMAC-SHA256\n<timestamp>\n<METHOD>\n<path-and-query>\n<hex sha256 of the body>
//! ```
//!
//! (no trailing newline). The module docs of [`signature`](super) describe each field; this
//! module is the one implementation of them, shared by the gateway, the tests, the docs and
//! Rust clients.
//!
//! ```
//! use portcullis_layers::signature::{canonical_string, sign, verify};
//!
//! let canonical = canonical_string("1700000000", "POST", "/v1/orders?dry-run=1", br#"{"sku":"A-1","qty":2}"#);
//! let signature = sign(b"acme_sig_Q2xpZW50U2VjcmV0", &canonical);
//! assert_eq!(signature, "591284d3b0f331a211c390f5e90797dd8c569616ae53c785437060b04b328190");
//! assert!(verify(b"acme_sig_Q2xpZW50U2VjcmV0", &canonical, &signature));
//! assert!(!verify(b"another secret", &canonical, &signature));
//! ```

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The canonical string's first line. Naming the scheme means a MAC computed with the same
/// secret for any other purpose can never pass for a request signature (and a later version
/// of the scheme gets a new name).
pub const SCHEME: &str = "PORTCULLIS-HMAC-SHA256";

/// At most this many digits in a timestamp: enough for any date (12 digits of seconds reach
/// year 33658), and a bound that keeps the value far from overflowing a `u64`.
pub const MAX_TIMESTAMP_DIGITS: usize = 12;

type HmacSha256 = Hmac<Sha256>;

/// The canonical string of a request.
///
/// - `timestamp`: the timestamp header's value exactly as sent (see [`parse_timestamp`]);
/// - `method`: the method as sent (`POST`);
/// - `path_and_query`: the request target as sent on the wire, before any normalisation
///   (`/v1/orders?dry-run=1`); `/` when empty;
/// - `body`: the exact body bytes (empty for no body).
pub fn canonical_string(
    timestamp: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let target = if path_and_query.is_empty() {
        "/"
    } else {
        path_and_query
    };
    let body_hash = lower_hex(&Sha256::digest(body));
    let mut out = String::with_capacity(
        SCHEME.len() + timestamp.len() + method.len() + target.len() + body_hash.len() + 4,
    );
    for (i, part) in [SCHEME, timestamp, method, target, &body_hash]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(part);
    }
    out
}

/// The signature of a canonical string: lowercase hex of HMAC-SHA256 keyed with `secret`
/// (64 characters).
pub fn sign(secret: &[u8], canonical: &str) -> String {
    let mut mac = keyed(secret);
    mac.update(canonical.as_bytes());
    lower_hex(&mac.finalize().into_bytes())
}

/// Whether `presented` is the signature of `canonical` under `secret`, compared in constant
/// time. Anything that is not 64 hex digits is simply not the signature.
pub fn verify(secret: &[u8], canonical: &str, presented: &str) -> bool {
    decode_signature(presented).is_some_and(|tag| verify_tag(secret, canonical, &tag))
}

/// The timestamp header's value as Unix seconds: 1 to [`MAX_TIMESTAMP_DIGITS`] ASCII digits,
/// nothing else (no sign, no spaces, no fraction). `None` when malformed.
pub fn parse_timestamp(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > MAX_TIMESTAMP_DIGITS {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// The 32 bytes of a hex signature (either case), or `None` when it is not 64 hex digits.
pub(crate) fn decode_signature(presented: &str) -> Option<[u8; 32]> {
    let bytes = presented.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut tag = [0u8; 32];
    for (out, pair) in tag.iter_mut().zip(bytes.chunks_exact(2)) {
        *out = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(tag)
}

/// Constant-time check of a decoded tag (`Mac::verify_slice`).
pub(crate) fn verify_tag(secret: &[u8], canonical: &str, tag: &[u8; 32]) -> bool {
    let mut mac = keyed(secret);
    mac.update(canonical.as_bytes());
    mac.verify_slice(tag).is_ok()
}

fn keyed(secret: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes keys of any length (a long one is hashed first): this never fails.
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"acme_sig_Q2xpZW50U2VjcmV0";
    const BODY: &[u8] = br#"{"sku":"A-1","qty":2}"#;

    #[test]
    fn known_vector() {
        let canonical = canonical_string("1700000000", "POST", "/v1/orders?dry-run=1", BODY);
        // printf '%s' '{"sku":"A-1","qty":2}' | openssl dgst -sha256
        assert_eq!(
            canonical,
            "PORTCULLIS-HMAC-SHA256\n1700000000\nPOST\n/v1/orders?dry-run=1\n\
             d3c95de2d66db9a042603637d7c75dcdb810c4f4a5e5530d450ffd344b022636"
        );
        // printf 'PORTCULLIS-HMAC-SHA256\n1700000000\nPOST\n/v1/orders?dry-run=1\nd3c95de2d66db9a042603637d7c75dcdb810c4f4a5e5530d450ffd344b022636' \
        //   | openssl dgst -sha256 -hmac 'acme_sig_Q2xpZW50U2VjcmV0'
        let expected = "591284d3b0f331a211c390f5e90797dd8c569616ae53c785437060b04b328190";
        assert_eq!(sign(SECRET, &canonical), expected);
        assert!(verify(SECRET, &canonical, expected));
        assert!(verify(SECRET, &canonical, &expected.to_ascii_uppercase()));
    }

    #[test]
    fn empty_body_and_empty_target() {
        let canonical = canonical_string("1700000000", "GET", "", b"");
        // The SHA-256 of nothing; the empty target is `/`.
        assert_eq!(
            canonical,
            "PORTCULLIS-HMAC-SHA256\n1700000000\nGET\n/\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // printf 'PORTCULLIS-HMAC-SHA256\n1700000000\nGET\n/v1/things\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' \
        //   | openssl dgst -sha256 -hmac 'acme_sig_Q2xpZW50U2VjcmV0'
        assert_eq!(
            sign(
                SECRET,
                &canonical_string("1700000000", "GET", "/v1/things", b"")
            ),
            "f5cf5025ad43c03e2284e10991d424f5ff39a906d51c5df9eebc3266b93de773"
        );
    }

    #[test]
    fn anything_but_the_signature_does_not_verify() {
        let canonical = canonical_string("1700000000", "POST", "/v1/orders", BODY);
        let good = sign(SECRET, &canonical);
        let mut flipped = good.clone().into_bytes();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            "",
            &good[..63],
            &good[..62],
            &format!("{good}0"),
            &format!("{good}00"),
            &format!("{}zz", &good[..62]),
            &format!(" {}", &good[..63]),
            &flipped,
        ] {
            assert!(!verify(SECRET, &canonical, bad), "{bad:?}");
        }
        assert!(!verify(b"", &canonical, &good));
        assert!(!verify(SECRET, &canonical.replace("POST", "PUT"), &good));
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp(b"1700000000"), Some(1_700_000_000));
        assert_eq!(parse_timestamp(b"0"), Some(0));
        assert_eq!(parse_timestamp(b"999999999999"), Some(999_999_999_999));
        for bad in [
            &b""[..],
            b"1234567890123",
            b"-1",
            b"+1700000000",
            b" 1700000000",
            b"1700000000 ",
            b"1700000000.5",
            b"1e9",
            b"0x10",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }
}
