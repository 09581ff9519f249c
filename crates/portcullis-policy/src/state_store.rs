//! Where shared gateway state lives: `"memory"`, or a Redis every instance shares.
//!
//! Used by `[auth.api-keys.signing] replay` (accepted signatures) and `[rate-limit] store`
//! (rate-limit buckets). One parser, so both keys accept the same spellings and refuse the
//! same mistakes (a Redis URL with its password written in the file).

use crate::auth::{SecretRef, secret_ref};
use crate::compile::Cx;
use crate::diagnostic::Diagnostic;
use crate::key_path::KeyPath;
use crate::raw::RawSecret;

/// What requests get while the shared store cannot be reached (`on-store-error`); each section
/// says what "open" means for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    FailOpen,
    FailClosed,
}

/// `on-store-error = "fail-open" | "fail-closed"`; absent: fail-open. Written beside an
/// in-memory `store`, which cannot be unreachable, it is a warning: it does nothing.
pub(crate) fn on_store_error(
    cx: &mut Cx,
    at: &KeyPath,
    raw: Option<&str>,
    store: &StateStore,
) -> OnStoreError {
    if raw.is_some() && !store.is_shared() {
        cx.diags.push(
            Diagnostic::warning(
                at.clone(),
                "the state is in memory, which cannot be unreachable: this does nothing",
            )
            .with_help("it applies with `store = { env = \"REDIS_URL\" }`"),
        );
    }
    match raw {
        None | Some("fail-open") => OnStoreError::FailOpen,
        Some("fail-closed") => OnStoreError::FailClosed,
        Some(other) => {
            cx.error(
                at.clone(),
                format!("`{other}`: expected \"fail-open\" or \"fail-closed\""),
            );
            OnStoreError::FailOpen
        }
    }
}

/// How many entries an in-memory store holds at most (`max-buckets`, `max-entries`): 1000 to
/// 100000000; absent: `default`.
pub(crate) fn capacity(cx: &mut Cx, at: &KeyPath, raw: Option<i64>, default: usize) -> usize {
    match raw {
        None => default,
        Some(n) if (1_000..=100_000_000).contains(&n) => n as usize,
        Some(n) => {
            cx.error(
                at.clone(),
                format!("{n} is out of range (1000 to 100000000)"),
            );
            default
        }
    }
}

/// Where a piece of shared state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateStore {
    /// In this process: right for one instance. Several instances behind a load balancer each
    /// see only their own traffic.
    Memory,
    /// A Redis server shared by every instance (`redis://…`, resolved at start-up).
    Redis(SecretRef),
}

impl StateStore {
    /// Whether the state is shared by every instance that uses the same Redis.
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Redis(_))
    }
}

/// `key = "memory" | "redis://…" | { env = "REDIS_URL" } | { file = "…" }`; absent: memory.
pub(crate) fn build(cx: &mut Cx, at: &KeyPath, raw: Option<RawSecret>) -> StateStore {
    let key = match at.segments().last() {
        Some(crate::key_path::Segment::Key(k)) => k.clone(),
        _ => "store".to_owned(),
    };
    match raw {
        None => StateStore::Memory,
        Some(RawSecret::Literal(text)) if text == "memory" => StateStore::Memory,
        Some(RawSecret::Literal(url))
            if url.starts_with("redis://") || url.starts_with("rediss://") =>
        {
            if url.contains('@') {
                cx.diags.push(
                    Diagnostic::error(
                        at.clone(),
                        "this Redis URL carries credentials: reference it instead",
                    )
                    .with_help(format!("write `{key} = {{ env = \"REDIS_URL\" }}`")),
                );
            }
            StateStore::Redis(SecretRef::Literal(url))
        }
        Some(RawSecret::Literal(other)) => {
            cx.error(
                at.clone(),
                format!(
                    "`{other}`: expected \"memory\", a `redis://` URL, or `{{ env = \"REDIS_URL\" }}`"
                ),
            );
            StateStore::Memory
        }
        Some(reference) => {
            secret_ref(cx, at, reference).map_or(StateStore::Memory, StateStore::Redis)
        }
    }
}
