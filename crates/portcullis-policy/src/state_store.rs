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
