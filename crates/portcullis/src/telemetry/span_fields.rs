//! How the JSON formatter stores a span's fields: written straight as a JSON object.
//!
//! `tracing-subscriber`'s JSON formatter formats every new span's fields once, keeps the text in
//! the span, and parses it back whenever an event inside the span is written (the `spans` list).
//! Its own field formatter gathers the fields into a map of `serde_json` values and serialises
//! the map through an adapter that checks each piece for UTF-8: about 2 500 instructions for
//! the one `correlation_id` of each request's span (`bench/instructions.sh`), spent on every
//! request although most requests log nothing but their access line (which
//! [`super::access_line`] writes by itself). This formatter writes the same JSON object
//! directly with the access line's field writer; the event formatter reads it back as it read
//! the other, so the lines it writes do not change.

use std::fmt;

use tracing::span::Record;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::Writer;

use super::access_line::JsonFields;

/// A span's fields as a JSON object, for `fmt::layer().json().fmt_fields(SpanFields)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpanFields;

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut json = Vec::with_capacity(64);
        json.push(b'{');
        fields.record(&mut JsonFields::new(&mut json));
        json.push(b'}');
        writer.write_str(std::str::from_utf8(&json).map_err(|_| fmt::Error)?)
    }

    /// Fields recorded after the span was made go inside the same object; a name recorded
    /// twice appears twice, and the last value wins when the object is read back, as it does
    /// with `tracing-subscriber`'s own formatter.
    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        if current.fields.is_empty() {
            return self.format_fields(current.as_writer(), fields);
        }
        let mut json = std::mem::take(&mut current.fields).into_bytes();
        if json.last() == Some(&b'}') {
            json.pop();
        }
        fields.record(&mut JsonFields::new(&mut json));
        json.push(b'}');
        current.fields = String::from_utf8(json).map_err(|_| fmt::Error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::captured::Captured;

    /// Events in spans of every field type, a field recorded after the span was made, a name
    /// recorded twice, nested spans and an event outside any span.
    fn emit() {
        let outer = tracing::info_span!(
            "request",
            correlation_id = %"abc-123",
            quoted = "a \"b\" \\ c\n",
            n = 42u64,
            neg = -7i64,
            yes = true,
            ratio = 1.5f64,
            nan = f64::NAN,
            big = 1u128 << 100,
            r#type = ?"debug",
            later = tracing::field::Empty,
        );
        let _outer = outer.enter();
        tracing::warn!(target: "portcullis::csrf", origin = "https://evil.example", "refused");
        outer.record("later", "set afterwards");
        outer.record("n", 43u64);
        let inner = tracing::info_span!("inner", step = 2u64);
        let _inner = inner.enter();
        tracing::error!(error = %std::io::Error::other("boom"), "failed");
        let empty = tracing::info_span!("empty");
        let _empty = empty.enter();
        tracing::info!("in an empty span");
        drop(_empty);
        drop(_inner);
        drop(_outer);
        tracing::info!(x = 1u64, "no span");
    }

    fn lines<N>(fields: N) -> Vec<serde_json::Value>
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let out = Captured::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(out.clone())
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(true)
                .without_time()
                .fmt_fields(fields),
        );
        tracing::subscriber::with_default(subscriber, emit);
        let text = out.text();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn event_lines_are_those_of_the_json_formatters_own_fields() {
        let reference = lines(tracing_subscriber::fmt::format::JsonFields::new());
        let ours = lines(SpanFields);
        assert_eq!(reference.len(), 4);
        assert_eq!(ours, reference);
        let spans = &ours[1]["spans"];
        assert_eq!(spans[0]["correlation_id"], "abc-123");
        assert_eq!(spans[0]["later"], "set afterwards");
        assert_eq!(spans[0]["n"], 43);
        assert_eq!(spans[1]["step"], 2);
    }
}
