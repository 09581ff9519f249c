//! `[auth.api-keys.signing]`: API keys whose every request is signed (seed 002's
//! `X-…-Timestamp` + `X-…-Signature`).
//!
//! A key made with a signing secret must sign every request it sends (HMAC-SHA256 over method,
//! path and query, timestamp and body hash; the scheme is documented in
//! `portcullis_layers::signature`). This table says which headers carry the timestamp and the
//! signature, how far a timestamp may be from the gateway's clock, how large a signed body may
//! be (signed bodies are read whole before anything is forwarded), where accepted signatures are
//! remembered so none is accepted twice, and where the key-encryption key comes from: signing
//! secrets are stored encrypted with it, since the gateway must recover them to verify.

use std::time::Duration;

use http::HeaderName;

use crate::auth::{SecretRef, secret_ref};
use crate::compile::Cx;
use crate::diagnostic::Diagnostic;
use crate::key_path::KeyPath;
use crate::raw::{RawSecret, RawSigning};
use crate::state_store::{self, StateStore};

/// `[auth.api-keys.signing]`, compiled.
#[derive(Debug, Clone)]
pub struct SigningSettings {
    pub timestamp_header: HeaderName,
    pub signature_header: HeaderName,
    /// How far a request's timestamp may be from the gateway's clock, either way.
    pub max_skew: Duration,
    /// The largest signed body, in bytes (413 beyond).
    pub max_body: u64,
    /// Where accepted signatures are remembered for `2 × max_skew`.
    pub replay: ReplayStore,
    /// The key-encryption key of the signing secrets: an environment variable or a file.
    pub key_encryption_key: SecretRef,
}

/// Where accepted signatures are remembered. In memory, several instances behind a load
/// balancer each remember only what they saw, so a signature replayed to another instance would
/// pass: use Redis for more than one instance.
pub type ReplayStore = StateStore;

const DEFAULT_SKEW: Duration = Duration::from_secs(300);
/// A wider window keeps replayable signatures (and the replay store) around longer for no gain:
/// a client whose clock is this far off should fix its clock.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
/// Signed bodies are held in memory while they are checked.
const MAX_MAX_BODY: u64 = 64 * 1024 * 1024;

pub(crate) fn build(cx: &mut Cx, at: &KeyPath, raw: RawSigning) -> SigningSettings {
    let header = |cx: &mut Cx, key: &str, value: Option<String>, default: &'static str| {
        value
            .and_then(|v| cx.header_name(&at.key(key), &v))
            .unwrap_or_else(|| HeaderName::from_static(default))
    };
    let timestamp_header = header(
        cx,
        "timestamp-header",
        raw.timestamp_header,
        "x-portcullis-timestamp",
    );
    let signature_header = header(
        cx,
        "signature-header",
        raw.signature_header,
        "x-portcullis-signature",
    );
    if timestamp_header == signature_header {
        cx.error(
            at.key("signature-header"),
            "the timestamp and the signature need two different headers",
        );
    }
    let max_skew = cx.duration(at.key("max-skew"), raw.max_skew.as_deref(), DEFAULT_SKEW);
    if max_skew > MAX_SKEW {
        cx.error(
            at.key("max-skew"),
            format!(
                "at most {} minutes: a wider window only keeps signatures replayable for longer",
                MAX_SKEW.as_secs() / 60
            ),
        );
    }
    let max_body = match raw.max_body.as_deref() {
        None => DEFAULT_MAX_BODY,
        Some(text) => cx
            .parse(&at.key("max-body"), text, parse_size)
            .unwrap_or(DEFAULT_MAX_BODY),
    };
    if max_body > MAX_MAX_BODY {
        cx.error(
            at.key("max-body"),
            "at most 64 MiB: a signed body is held in memory until its signature is checked",
        );
    }
    let replay = state_store::build(cx, &at.key("replay"), raw.replay);
    let key_encryption_key = match raw.key_encryption_key {
        None => {
            cx.missing(
                at.key("key-encryption-key"),
                "missing key `key-encryption-key`: signing secrets are stored encrypted with it",
            );
            SecretRef::Env(String::new())
        }
        Some(RawSecret::Literal(_)) => {
            cx.diags.push(
                Diagnostic::error(
                    at.key("key-encryption-key"),
                    "a key-encryption key is a secret: reference it, never write it here",
                )
                .with_help(
                    "write `key-encryption-key = { env = \"PORTCULLIS_SIGNING_KEK\" }`; \
                     `portcullis keys kek` prints a fresh one",
                ),
            );
            SecretRef::Env(String::new())
        }
        Some(reference) => secret_ref(cx, &at.key("key-encryption-key"), reference)
            .unwrap_or(SecretRef::Env(String::new())),
    };
    SigningSettings {
        timestamp_header,
        signature_header,
        max_skew,
        max_body,
        replay,
        key_encryption_key,
    }
}

/// `"1 MiB"`, `"512 KiB"`, `"65536"`, `"100 B"`: binary units only, so a size means one thing.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "`{text}` is not a size: write e.g. \"1 MiB\", \"512 KiB\" or \"65536\" (B, KiB, MiB, GiB)"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{text}` is not a size greater than zero"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1 MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size(" 10 B "), Ok(10));
        for bad in [
            "",
            "0",
            "1 MB",
            "1.5 MiB",
            "-1",
            "MiB",
            "99999999999999999999 GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
