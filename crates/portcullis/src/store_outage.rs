//! How a failover in front of a shared store (Redis) tracks an outage: after a failure the
//! shared store is left alone for a second, so an outage does not add a failed round trip to
//! every request, then tried again, so the gateway goes back to it by itself. The edges of an
//! outage are reported once each, for the caller to log.
//!
//! Used by the rate-limit and the lockout failovers ([`crate::rate_limits`],
//! [`crate::lockouts`]), which differ only in what they do meanwhile.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How long a failed shared store is left alone before it is tried again.
pub(crate) const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Outage {
    started: Instant,
    /// Nanoseconds after `started` before which the shared store is not tried; 0: healthy.
    skip_until: AtomicU64,
    /// Whether an outage is in progress.
    down: AtomicBool,
}

impl Outage {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            skip_until: AtomicU64::new(0),
            down: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether the shared store is being left alone after a recent failure.
    pub(crate) fn skipping(&self) -> bool {
        let until = self.skip_until.load(Ordering::Relaxed);
        until != 0 && self.now() < until
    }

    /// Records a failure of the shared store; `true` when it starts an outage.
    pub(crate) fn failed(&self) -> bool {
        let until = self
            .now()
            .saturating_add(u64::try_from(RETRY_AFTER_FAILURE.as_nanos()).unwrap_or(u64::MAX));
        self.skip_until.store(until.max(1), Ordering::Relaxed);
        !self.down.swap(true, Ordering::Relaxed)
    }

    /// Records an answer of the shared store; `true` when it ends an outage.
    pub(crate) fn answered(&self) -> bool {
        if self.skip_until.load(Ordering::Relaxed) != 0 {
            self.skip_until.store(0, Ordering::Relaxed);
        }
        self.down.swap(false, Ordering::Relaxed)
    }

    /// Whether an outage is in progress.
    #[cfg(test)]
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Paused: the pause after a failure passes on Tokio's clock, without waiting.
    #[tokio::test(start_paused = true)]
    async fn an_outage_has_two_edges_and_a_pause() {
        let outage = Outage::new();
        assert!(!outage.skipping());
        assert!(outage.failed(), "the first failure starts the outage");
        assert!(!outage.failed(), "a second one does not");
        assert!(outage.skipping());
        tokio::time::sleep(RETRY_AFTER_FAILURE + Duration::from_millis(1)).await;
        assert!(!outage.skipping(), "tried again after the pause");
        assert!(outage.answered(), "the first answer ends it");
        assert!(!outage.answered());
        assert!(!outage.is_down());
    }
}
