//! The access log's JSON line, formatted by hand.
//!
//! Why by hand: the access log is one line per request, and `tracing-subscriber`'s JSON
//! formatter (a `serde_json` map per event, a span-list walk that re-parses each span's stored
//! JSON, the timestamp formatted from scratch) was the largest user-space cost the load harness
//! found (bench/README.md). This layer writes the same line (same keys, same order, same
//! values) straight into a reused per-thread buffer: the date part of the timestamp is
//! formatted once per second, numbers with `itoa`, strings with `serde_json`'s escaper.
//! Every other event keeps going through `tracing-subscriber`'s formatter.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::batched_stdout::BatchedStdout;
use super::span_fields::SpanFields;

/// The target of the access log's events (`portcullis_layers::access_log`).
pub const TARGET: &str = "portcullis::access";

/// Formats `portcullis::access` events as JSON lines into a [`BatchedStdout`].
///
/// Goes beside the JSON formatter with [`SpanFields`] (as [`super::init`] installs them): the
/// `spans` list is read from the fields that formatter stores in each span, not formatted a
/// second time.
pub struct AccessLineLayer {
    out: BatchedStdout,
}

impl AccessLineLayer {
    pub fn new(out: BatchedStdout) -> Self {
        Self { out }
    }
}

impl<S> Layer<S> for AccessLineLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if meta.target() != TARGET {
            return;
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            line.extend_from_slice(b"{\"timestamp\":");
            push_timestamp(line, SystemTime::now());
            line.extend_from_slice(b",\"level\":");
            push_str(line, meta.level().as_str());
            let mut fields = JsonFields::new(line);
            // The formatter writes the message first, then the other fields in their order.
            event.record(&mut MessageOnly(&mut fields));
            event.record(&mut AllButMessage(&mut fields));
            line.extend_from_slice(b",\"target\":");
            push_str(line, meta.target());
            if let Some(scope) = ctx.event_scope(event) {
                let mut first = true;
                for span in scope.from_root() {
                    // The span's fields as the JSON formatter stored them (`{"k":v,…}`), with
                    // the span's name added last, as the formatter lists spans.
                    let ext = span.extensions();
                    let Some(stored) = ext.get::<FormattedFields<SpanFields>>() else {
                        continue;
                    };
                    let fields = stored.fields.strip_suffix('}').unwrap_or("{");
                    line.extend_from_slice(if first { b",\"spans\":[" } else { b"," });
                    line.extend_from_slice(fields.as_bytes());
                    if fields.len() > 1 {
                        line.push(b',');
                    }
                    line.extend_from_slice(b"\"name\":");
                    push_str(line, span.name());
                    line.push(b'}');
                    first = false;
                }
                if !first {
                    line.push(b']');
                }
            }
            line.extend_from_slice(b"}\n");
            self.out.append(line);
        });
    }
}

/// Another layer (the JSON formatter) with the access events taken out, since
/// [`AccessLineLayer`] writes them.
///
/// Why not a per-layer filter (`with_filter(filter_fn(..))`): `tracing-subscriber` records a
/// per-layer filter's verdict in a thread-local that the next event reads, and a
/// `tracing::enabled!` check (the access log layer makes one per request) sets that verdict
/// without an event to clear it, so the *next* event on the thread (a CSRF warning, an auth
/// refusal) was silently dropped. Skipping the events in `on_event` has no such state.
pub struct WithoutAccessEvents<L> {
    inner: L,
}

impl<L> WithoutAccessEvents<L> {
    pub fn new(inner: L) -> Self {
        Self { inner }
    }
}

impl<S, L> Layer<S> for WithoutAccessEvents<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &tracing::Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, span: &Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        self.inner.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            self.inner.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }
}

thread_local! {
    /// The line being formatted, reused: no allocation per request once warm.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
    /// `"2026-11-23T15:16:09` for the second last formatted on this thread.
    static SECOND: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

/// `"2026-11-23T15:16:09.596483Z"`, as `tracing-subscriber`'s default timer writes it.
fn push_timestamp(line: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            // `humantime` formats `2026-11-23T15:16:09Z`; all but the `Z` is kept.
            let full = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs));
            text.clear();
            text.push(b'"');
            text.extend_from_slice(full.to_string().trim_end_matches('Z').as_bytes());
            *cached = secs;
        }
        line.extend_from_slice(text);
    });
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(since.subsec_micros());
    line.push(b'.');
    line.extend(std::iter::repeat_n(b'0', 6 - digits.len()));
    line.extend_from_slice(digits.as_bytes());
    line.extend_from_slice(b"Z\"");
}

/// Appends `s` as a JSON string literal.
fn push_str(line: &mut Vec<u8>, s: &str) {
    line.push(b'"');
    push_escaped(line, s);
    line.push(b'"');
}

/// Appends `s` escaped for the inside of a JSON string, as `serde_json` escapes: `"`, `\\` and
/// control characters; everything else (non-ASCII included) as it is.
fn push_escaped(line: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Nearly every value (paths, IDs, route names, timestamps) needs no escape: one pass that
    // looks at every byte without an early exit compiles to vector code, then one copy.
    let plain = !bytes.iter().fold(false, |found, &b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        line.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                line.extend_from_slice(&bytes[start..i]);
                line.extend_from_slice(b"\\u00");
                line.push(HEX[usize::from(b >> 4)]);
                line.push(HEX[usize::from(b & 0xf)]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        line.extend_from_slice(&bytes[start..i]);
        line.extend_from_slice(escape);
        start = i + 1;
    }
    line.extend_from_slice(&bytes[start..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Escapes what `Debug`/`Display` writes (the event's message) straight into the line.
struct Escaper<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.0, s);
        Ok(())
    }
}

/// Writes each recorded field as `,"name":value`.
pub(super) struct JsonFields<'a> {
    line: &'a mut Vec<u8>,
    /// The next field is the first of an object (no leading comma).
    first: bool,
}

impl<'a> JsonFields<'a> {
    pub(super) fn new(line: &'a mut Vec<u8>) -> Self {
        let first = line.ends_with(b"{");
        Self { line, first }
    }

    fn key(&mut self, field: &Field) {
        self.key_named(field.name());
    }

    fn key_named(&mut self, name: &str) {
        if !self.first {
            self.line.push(b',');
        }
        self.first = false;
        push_str(self.line, name);
        self.line.push(b':');
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_str(self.line, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        self.line
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        self.line
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.line
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        // As `serde_json` writes it (`null` for NaN and the infinities).
        let _ = serde_json::to_writer(&mut *self.line, &serde_json::Value::from(value));
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.key(field);
        // An array of numbers, as `tracing-subscriber`'s JSON visitor writes bytes.
        let _ = serde_json::to_writer(&mut *self.line, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // As `tracing-subscriber`'s JSON visitor: `log.*` fields are the `log` crate's metadata,
        // already in the line; a raw identifier is written without its `r#`.
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        self.key_named(name.strip_prefix("r#").unwrap_or(name));
        self.line.push(b'"');
        let _ = write!(Escaper(self.line), "{value:?}");
        self.line.push(b'"');
    }
}

/// Visits only the `message` field.
struct MessageOnly<'a, 'b>(&'a mut JsonFields<'b>);

impl Visit for MessageOnly<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.record_str(field, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0.record_debug(field, value);
        }
    }
}

/// Visits every field but `message`.
struct AllButMessage<'a, 'b>(&'a mut JsonFields<'b>);

impl Visit for AllButMessage<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() != "message" {
            self.0.record_str(field, value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.record_u64(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.record_i64(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.record_bool(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.record_f64(field, value);
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.0.record_bytes(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() != "message" {
            self.0.record_debug(field, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::captured::Captured;

    /// Emits one access event, inside a `request` span, with `path` and `route`.
    fn emit(path: &str, route: Option<&str>, correlation_id: &str) {
        let span = tracing::info_span!("request", correlation_id = %correlation_id);
        let _entered = span.enter();
        tracing::info!(
            target: "portcullis::access",
            method = %http::Method::POST,
            path = %path,
            status = 403u16,
            route,
            refused = Some("csrf_refused"),
            duration_us = 1234u64,
            // Not an access-log field today; here so every field type is compared.
            share = 0.25f64,
            "request"
        );
    }

    /// The line without its timestamp, which differs between two formatters by a few µs.
    fn without_timestamp(line: &str) -> String {
        let start = line.find("\"timestamp\":\"").unwrap();
        let end = start + line[start..].find("\",").unwrap() + 2;
        format!("{}{}", &line[..start], &line[end..])
    }

    #[test]
    fn the_line_is_what_the_json_formatter_writes() {
        let reference = Captured::default();
        let fast = Captured::default();
        let out = BatchedStdout::start_with(Box::new(fast.clone())).unwrap();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(reference.clone())
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true),
            )
            // As `init` installs them: the access lines' spans come from this formatter's
            // stored fields.
            .with(WithoutAccessEvents::new(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::sink)
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true)
                    .fmt_fields(SpanFields),
            ))
            .with(AccessLineLayer::new(out.clone()));
        let paths = [
            "/v1/users/42",
            "/a\"quote\\back\\slash",
            "/ctl\u{1}\u{1f}\n\t\r\u{8}\u{c}",
            "/üñí/😀",
        ];
        tracing::subscriber::with_default(subscriber, || {
            for path in paths {
                emit(path, Some("default"), "abc-123");
            }
            emit("/no/route", None, "x\"y");
            // A field recorded on the span after it was made is listed too.
            let span = tracing::info_span!(
                "request",
                correlation_id = "id-9",
                tenant = tracing::field::Empty
            );
            span.record("tenant", "acme");
            span.in_scope(
                || tracing::info!(target: "portcullis::access", status = 204u16, "request"),
            );
            // Outside any span: no `spans` key.
            tracing::info!(target: "portcullis::access", status = 200u16, "request");
            // Other targets are not this layer's.
            tracing::info!(target: "portcullis::server", "not an access line");
        });
        out.flush();
        let reference = reference.text();
        let fast = fast.text();
        let reference: Vec<&str> = reference
            .lines()
            .filter(|l| l.contains("portcullis::access"))
            .collect();
        let fast: Vec<&str> = fast.lines().collect();
        assert_eq!(fast.len(), 7, "{fast:?}");
        assert!(
            fast[5].contains(
                r#""spans":[{"correlation_id":"id-9","tenant":"acme","name":"request"}]"#
            ),
            "{}",
            fast[5]
        );
        for (fast, reference) in fast.iter().zip(&reference) {
            assert_eq!(without_timestamp(fast), without_timestamp(reference));
            serde_json::from_str::<serde_json::Value>(fast).unwrap();
        }
    }

    #[test]
    fn the_formatter_gets_every_event_but_the_access_lines() {
        let formatter = Captured::default();
        let fast = Captured::default();
        let out = BatchedStdout::start_with(Box::new(fast.clone())).unwrap();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("info"))
            .with(WithoutAccessEvents::new(
                tracing_subscriber::fmt::layer()
                    .with_writer(formatter.clone())
                    .json()
                    .fmt_fields(SpanFields),
            ))
            .with(AccessLineLayer::new(out.clone()));
        tracing::subscriber::with_default(subscriber, || {
            // What the access log layer asks before each request; with a per-layer filter
            // this made the next event on the thread vanish.
            assert!(tracing::enabled!(target: "portcullis::access", tracing::Level::INFO));
            tracing::warn!(target: "portcullis::csrf", origin = "https://evil.example", "cross-site");
            emit("/x", Some("default"), "id-1");
            tracing::info!(target: "portcullis::auth", "credential refused");
        });
        out.flush();
        let formatter = formatter.text();
        let fast = fast.text();
        assert!(formatter.contains("https://evil.example"), "{formatter}");
        assert!(formatter.contains("credential refused"), "{formatter}");
        assert!(!formatter.contains("portcullis::access"), "{formatter}");
        assert_eq!(fast.lines().count(), 1, "{fast}");
        assert!(fast.contains("\"path\":\"/x\""), "{fast}");
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let mut line = Vec::new();
        push_timestamp(
            &mut line,
            UNIX_EPOCH + Duration::from_micros(1_795_000_000_000_042),
        );
        // `date -u -d @1795000000` = 2026-11-18T11:06:40
        assert_eq!(line, b"\"2026-11-18T11:06:40.000042Z\"");
        line.clear();
        // The cached second is reused, the fraction is not.
        push_timestamp(
            &mut line,
            UNIX_EPOCH + Duration::from_micros(1_795_000_000_999_999),
        );
        assert_eq!(line, b"\"2026-11-18T11:06:40.999999Z\"");
    }
}
