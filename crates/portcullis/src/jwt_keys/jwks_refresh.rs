//! Keeping a JWKS fetched from a URL current: a background task per URL that fetches it again
//! every `jwks-refresh`, and sooner when a token names a `kid` the set does not have (the
//! provider rotated its keys).
//!
//! The `kid`-triggered fetches are rate-limited to one per [`KID_REFRESH_EVERY`] per URL:
//! tokens with made-up `kid`s cost anyone nothing to send, and must not turn every instance of
//! the gateway into a load on the identity provider. A request within the limit is deferred,
//! not dropped, so a rotation right after a fetch is still picked up within the limit.
//!
//! A failed fetch, or a document that breaks the start-up rules, leaves the last good set in
//! force: refusing every token because the provider blinked would turn its outage into the
//! gateway's. Failures are counted (`portcullis_jwks_refresh_failures_total`) and logged once
//! per streak.

use std::time::Duration;

use http::Uri;
use portcullis_layers::jwt::SharedJwks;
use tokio::time::{Instant, MissedTickBehavior};

use super::jwks_fetch::JwksClient;

/// At most one `kid`-triggered fetch per URL this often.
pub const KID_REFRESH_EVERY: Duration = Duration::from_secs(30);

/// One URL to keep current: the key path that names it and its set.
#[derive(Debug)]
pub struct Refresher {
    pub at: String,
    pub url: Uri,
    pub set: SharedJwks,
}

impl Refresher {
    /// Runs in the background on the current Tokio runtime until every verifier using the set
    /// is dropped.
    pub fn spawn(self, client: JwksClient, every: Duration) {
        let Self { at, url, set } = self;
        let requests = set.refresh_requests();
        let weak = set.downgrade();
        // Only the weak handle from here on: the task must not keep the set alive.
        drop(set);
        tokio::spawn(async move {
            let host = host(&url);
            let mut tick = tokio::time::interval_at(Instant::now() + every, every);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut last_requested: Option<Instant> = None;
            let mut failing = false;
            loop {
                let trigger = tokio::select! {
                    _ = tick.tick() => "schedule",
                    () = requests.requested() => {
                        if let Some(last) = last_requested {
                            tokio::time::sleep_until(last + KID_REFRESH_EVERY).await;
                        }
                        last_requested = Some(Instant::now());
                        "unknown kid"
                    }
                };
                let Some(set) = weak.upgrade() else { break };
                let before = set.kids();
                let outcome = match client.fetch(&url).await {
                    Ok(body) => set.replace(&body).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Ok(_) => {
                        let kids = set.kids();
                        if kids != before {
                            tracing::info!(
                                target: "portcullis::auth",
                                key = %at, %host, ?kids, trigger,
                                "JWKS refreshed with other keys"
                            );
                        }
                        if failing {
                            tracing::info!(
                                target: "portcullis::auth",
                                key = %at, %host,
                                "the JWKS is being refreshed again"
                            );
                            failing = false;
                        }
                    }
                    Err(error) => {
                        metrics::counter!("portcullis_jwks_refresh_failures_total", "key" => at.clone())
                            .increment(1);
                        // Once per streak: a provider down for an hour is one line, not 12.
                        if !failing {
                            tracing::warn!(
                                target: "portcullis::auth",
                                key = %at, %host, %error, trigger,
                                "cannot refresh the JWKS; the last good set stays in force"
                            );
                            failing = true;
                        }
                    }
                }
            }
        });
    }
}

/// The URL's host (and port) for messages: never its path or query, which may carry a token.
pub fn host(url: &Uri) -> String {
    // The policy refuses credentials in the URL; should some get here, they stay out too.
    url.authority().map_or_else(
        || "?".to_owned(),
        |a| a.as_str().rsplit('@').next().unwrap_or_default().to_owned(),
    )
}
