//! Logging for the commands that log (`proxy`, `emulator`): today's text lines, or one JSON object per line in the
//! shape Cloud Logging reads from a container's stderr (`--log-format json`).
//!
//! Cloud Run, GKE and the other managed runtimes parse each JSON line on stdout/stderr as a structured entry and
//! lift Google's "special fields" into the LogEntry: `severity`, `message`, `time` (RFC 3339),
//! `logging.googleapis.com/sourceLocation` and `httpRequest`. Everything else lands in `jsonPayload`, so numbers
//! and booleans are kept as JSON numbers and booleans, and can be queried as such.
//!
//! `httpRequest` is built from fields carried by the event or by any span enclosing it, named with the
//! OpenTelemetry semantic conventions (see [`HTTP_REQUEST_FIELDS`]). Every string goes through `serde_json`: a
//! hostile header value with quotes or newlines stays inside its own string, on its own line.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// How the log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines (tracing-subscriber's default format).
    #[default]
    Text,
    /// One JSON object per line with Cloud Logging's special fields (severity, message, time, httpRequest).
    Json,
}

/// The OpenTelemetry-named fields read into Cloud Logging's `httpRequest`, and the `HttpRequest` key each fills.
///
/// `http.server.request.duration` is in seconds (f64) and becomes `latency` as a protobuf Duration string
/// ("0.012s"); `http.response.status_code` becomes the number `status`; `network.protocol.version` ("1.1", "2")
/// becomes `protocol` ("HTTP/1.1", "HTTP/2"); `url.path` becomes `requestUrl`, cut at any `?` or `#` so that a
/// query string never reaches the logs.
pub(crate) const HTTP_REQUEST_FIELDS: [(&str, &str); 7] = [
    ("http.request.method", "requestMethod"),
    ("url.path", "requestUrl"),
    ("http.response.status_code", "status"),
    ("client.address", "remoteIp"),
    ("user_agent.original", "userAgent"),
    ("network.protocol.version", "protocol"),
    ("http.server.request.duration", "latency"),
];

/// Keys this formatter writes itself; an event or span field of the same name is written as `fields.NAME`, so that
/// no field can stand in for a special field (or write a key twice).
const RESERVED: [&str; 10] = [
    "severity",
    "message",
    "time",
    "timestamp",
    "timestampSeconds",
    "timestampNanos",
    "target",
    "httpRequest",
    "spanId",
    "traceSampled",
];

/// The fields a span recorded so far, kept in its extensions for the events inside it.
#[derive(Debug, Default)]
struct SpanFields(BTreeMap<&'static str, Value>);

/// A tracing-subscriber [`Layer`](tracing_subscriber::Layer) writing each event as one Cloud Logging JSON line.
pub(crate) struct CloudLoggingLayer<W> {
    make_writer: W,
}

impl<W> fmt::Debug for CloudLoggingLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudLoggingLayer").finish_non_exhaustive()
    }
}

impl<W> CloudLoggingLayer<W> {
    /// Writes each line to a writer from `make_writer` (stderr in the binary), one `write_all` per line.
    pub(crate) fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

impl<S, W> tracing_subscriber::Layer<S> for CloudLoggingLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut JsonVisitor(&mut fields.0));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor(&mut fields.0));
        } else {
            let mut fields = SpanFields::default();
            values.record(&mut JsonVisitor(&mut fields.0));
            extensions.insert(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // Outermost span first, so that inner spans, then the event itself, win on a shared name.
        let mut fields = BTreeMap::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                    fields.extend(span_fields.0.iter().map(|(k, v)| (*k, v.clone())));
                }
            }
        }
        event.record(&mut JsonVisitor(&mut fields));
        let line = format_line(event.metadata(), time::OffsetDateTime::now_utc(), fields);
        // One write per line: concurrent events never interleave inside a line. A logging failure has nowhere
        // to be reported, so it is dropped.
        let _ = self
            .make_writer
            .make_writer_for(event.metadata())
            .write_all(&line);
    }
}

/// Cloud Logging's severity for a tracing level (there is no TRACE: it is DEBUG).
fn severity(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

/// One JSON object and a newline (keys in name order: Cloud Logging does not care, and a person can find them).
fn format_line(
    metadata: &tracing::Metadata<'_>,
    now: time::OffsetDateTime,
    mut fields: BTreeMap<&'static str, Value>,
) -> Vec<u8> {
    let message = match fields.remove("message") {
        Some(Value::String(text)) => Value::String(text),
        Some(Value::Null) | None => Value::String(String::new()),
        Some(other) => Value::String(other.to_string()),
    };
    let time = now
        .format(&time::format_description::well_known::Rfc3339)
        .map_or(Value::Null, Value::String);
    let http_request = http_request(&mut fields);

    let origin = Origin::of(metadata, &mut fields);

    let mut object = serde_json::Map::new();
    object.insert("severity".into(), severity(*metadata.level()).into());
    object.insert("message".into(), message);
    object.insert("time".into(), time);
    object.insert("target".into(), origin.target);
    if !http_request.is_empty() {
        object.insert("httpRequest".into(), Value::Object(http_request));
    }
    if let (Some(file), Some(line)) = (origin.file, origin.line) {
        let mut location = serde_json::Map::new();
        location.insert("file".into(), file);
        // LogEntrySourceLocation.line is an int64, which proto3's JSON mapping writes as a string.
        location.insert("line".into(), line.into());
        if let Some(module) = origin.module {
            location.insert("function".into(), module);
        }
        object.insert(
            "logging.googleapis.com/sourceLocation".into(),
            Value::Object(location),
        );
    }
    for (name, value) in fields {
        if RESERVED.contains(&name) || name.starts_with("logging.googleapis.com/") {
            object.insert(format!("fields.{name}"), value);
        } else {
            object.insert(name.to_owned(), value);
        }
    }
    // serde_json escapes every control character, quote and backslash: the line cannot be broken or extended.
    let mut line = serde_json::to_vec(&Value::Object(object)).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Where an event was written: its target and source location.
struct Origin {
    target: Value,
    file: Option<Value>,
    line: Option<String>,
    module: Option<Value>,
}

impl Origin {
    /// From the event's metadata; for a `log` crate record (which tracing-log forwards with target "log" and the
    /// record's own target and location in `log.*` fields), from those fields, taken out of `fields`.
    fn of(metadata: &tracing::Metadata<'_>, fields: &mut BTreeMap<&'static str, Value>) -> Self {
        if metadata.target() == "log" && fields.contains_key("log.target") {
            let target = fields.remove("log.target").unwrap_or(Value::Null);
            let file = fields.remove("log.file");
            let line = fields.remove("log.line").as_ref().and_then(as_text);
            let module = fields.remove("log.module_path");
            return Self {
                target,
                file,
                line,
                module,
            };
        }
        Self {
            target: metadata.target().into(),
            file: metadata.file().map(Value::from),
            line: metadata.line().map(|line| line.to_string()),
            module: metadata.module_path().map(Value::from),
        }
    }
}

/// Takes the OpenTelemetry-named fields out of `fields` and builds Cloud Logging's `HttpRequest` from them.
fn http_request(fields: &mut BTreeMap<&'static str, Value>) -> serde_json::Map<String, Value> {
    let mut request = serde_json::Map::new();
    for (field, key) in HTTP_REQUEST_FIELDS {
        let Some(value) = fields.remove(field) else {
            continue;
        };
        let value = match key {
            "requestUrl" => as_text(&value).map(|path| {
                let end = path.find(['?', '#']).unwrap_or(path.len());
                Value::String(path[..end].to_owned())
            }),
            "status" => match &value {
                Value::Number(n) => n.as_u64().map(Value::from),
                Value::String(s) => s.trim().parse::<u16>().ok().map(Value::from),
                _ => None,
            },
            "protocol" => as_text(&value).map(|version| {
                if version.starts_with("HTTP/") {
                    Value::String(version)
                } else {
                    Value::String(format!("HTTP/{version}"))
                }
            }),
            "latency" => value.as_f64().and_then(duration_string).map(Value::String),
            _ => as_text(&value).map(Value::String),
        };
        if let Some(value) = value {
            request.insert(key.to_owned(), value);
        }
    }
    request
}

/// A string field's text, or a number's decimal form.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Seconds as a protobuf Duration's JSON form: "0.012s", "3.5s", "2s" (at most nine fractional digits).
fn duration_string(seconds: f64) -> Option<String> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    let fixed = format!("{seconds:.9}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    Some(format!("{trimmed}s"))
}

/// Records each field as the JSON value closest to its Rust type.
struct JsonVisitor<'a>(&'a mut BTreeMap<&'static str, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.0.insert(field.name(), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name(), value.into());
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        let value = i64::try_from(value).map_or_else(|_| value.to_string().into(), Value::from);
        self.0.insert(field.name(), value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        let value = u64::try_from(value).map_or_else(|_| value.to_string().into(), Value::from);
        self.0.insert(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(
            field.name(),
            idgate_core::ErrorChain(value).to_string().into(),
        );
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Everything the layer wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// Runs `log` under the JSON layer (every level enabled) and returns the lines it wrote, each parsed.
    fn capture(log: impl FnOnce()) -> Vec<serde_json::Map<String, Value>> {
        let buffer = Buffer::default();
        let subscriber =
            tracing_subscriber::registry().with(CloudLoggingLayer::new(buffer.clone()));
        tracing::subscriber::with_default(subscriber, log);
        let bytes = buffer.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|line| match serde_json::from_str(line) {
                Ok(Value::Object(object)) => object,
                other => panic!("not a JSON object: {line:?} ({other:?})"),
            })
            .collect()
    }

    #[test]
    fn an_event_has_the_special_fields_and_typed_values() {
        let lines = capture(|| {
            tracing::warn!(
                target: "idgate::decision",
                count = 3_u64,
                delta = -2_i64,
                ratio = 0.5_f64,
                admitted = false,
                reason = "not_listed",
                "caller {} refused",
                "mallory"
            );
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["severity"], "WARNING");
        assert_eq!(line["message"], "caller mallory refused");
        assert_eq!(line["target"], "idgate::decision");
        assert_eq!(line["count"], 3);
        assert_eq!(line["delta"], -2);
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["admitted"], false);
        assert_eq!(line["reason"], "not_listed");
        assert!(!line.contains_key("httpRequest"), "{line:?}");
        // RFC 3339, UTC.
        let time = line["time"].as_str().unwrap();
        time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).unwrap();
        assert!(time.ends_with('Z'), "{time}");
        let location = &line["logging.googleapis.com/sourceLocation"];
        assert!(
            location["file"].as_str().unwrap().ends_with("logging.rs"),
            "{location}"
        );
        assert!(location["line"].as_str().unwrap().parse::<u32>().is_ok());
    }

    #[test]
    fn each_level_maps_to_a_cloud_logging_severity() {
        let lines = capture(|| {
            tracing::trace!("t");
            tracing::debug!("d");
            tracing::info!("i");
            tracing::warn!("w");
            tracing::error!("e");
        });
        let severities: Vec<_> = lines.iter().map(|l| l["severity"].clone()).collect();
        assert_eq!(
            severities,
            ["DEBUG", "DEBUG", "INFO", "WARNING", "ERROR"].map(Value::from)
        );
    }

    #[test]
    fn a_hostile_value_stays_inside_its_string_on_one_line() {
        let hostile = "\"\n{\"severity\":\"ERROR\"}";
        let lines = capture(|| {
            tracing::info!(user_agent = hostile, "{hostile}");
            let span = tracing::info_span!(
                "request",
                "user_agent.original" = hostile,
                "url.path" = hostile
            );
            let _entered = span.enter();
            tracing::info!(header = ?hostile, "done");
        });
        // Two events, two lines, each one object: nothing was injected.
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["severity"], "INFO");
        assert_eq!(lines[0]["user_agent"], hostile);
        assert_eq!(lines[0]["message"], hostile);
        assert_eq!(lines[1]["severity"], "INFO");
        assert_eq!(lines[1]["header"], format!("{hostile:?}"));
        assert_eq!(lines[1]["httpRequest"]["userAgent"], hostile);
        assert_eq!(lines[1]["httpRequest"]["requestUrl"], hostile);
    }

    #[test]
    fn a_field_named_like_a_special_field_cannot_replace_it() {
        let lines = capture(|| {
            tracing::info!(
                severity = "ERROR",
                time = "yesterday",
                httpRequest = "x",
                "logging.googleapis.com/trace" = "projects/p/traces/t",
                "hello"
            );
        });
        let line = &lines[0];
        assert_eq!(line["severity"], "INFO");
        assert_ne!(line["time"], "yesterday");
        assert!(!line.contains_key("httpRequest"));
        assert!(!line.contains_key("logging.googleapis.com/trace"));
        assert_eq!(line["fields.severity"], "ERROR");
        assert_eq!(line["fields.time"], "yesterday");
        assert_eq!(line["fields.httpRequest"], "x");
        assert_eq!(
            line["fields.logging.googleapis.com/trace"],
            "projects/p/traces/t"
        );
    }

    #[test]
    fn http_request_comes_from_otel_fields_of_the_event_and_enclosing_spans() {
        let lines = capture(|| {
            let outer = tracing::info_span!(
                "connection",
                "client.address" = "203.0.113.7",
                "network.protocol.version" = "1.1"
            );
            let _outer = outer.enter();
            let request = tracing::info_span!(
                "request",
                "http.request.method" = "POST",
                "url.path" = "/books/7?token=secret#frag",
                "user_agent.original" = "curl/8.5.0",
                "http.response.status_code" = tracing::field::Empty,
                "enduser.id" = "caller@example.com",
            );
            let _request = request.enter();
            request.record("http.response.status_code", 403_u64);
            tracing::info!("http.server.request.duration" = 0.0123_f64, "request done");
        });
        let line = &lines[0];
        let request = line["httpRequest"].as_object().unwrap();
        assert_eq!(request["requestMethod"], "POST");
        assert_eq!(request["requestUrl"], "/books/7");
        assert_eq!(request["status"], 403);
        assert_eq!(request["remoteIp"], "203.0.113.7");
        assert_eq!(request["userAgent"], "curl/8.5.0");
        assert_eq!(request["protocol"], "HTTP/1.1");
        assert_eq!(request["latency"], "0.0123s");
        assert_eq!(request.len(), 7, "{request:?}");
        // Read into httpRequest, not repeated; other span fields are kept.
        assert!(!line.contains_key("url.path"));
        assert!(!line.contains_key("http.request.method"));
        assert_eq!(line["enduser.id"], "caller@example.com");
        assert!(
            !Value::Object(line.clone()).to_string().contains("secret"),
            "{line:?}"
        );
    }

    #[test]
    fn an_inner_span_and_then_the_event_win_over_an_outer_span() {
        let lines = capture(|| {
            let outer = tracing::info_span!("outer", layer = "outer", depth = 1_u64);
            let _outer = outer.enter();
            let inner = tracing::info_span!("inner", layer = "inner");
            let _inner = inner.enter();
            tracing::info!(depth = 3_u64, "x");
        });
        assert_eq!(lines[0]["layer"], "inner");
        assert_eq!(lines[0]["depth"], 3);
    }

    #[test]
    fn a_log_crate_record_keeps_its_own_target_and_location() {
        // The shape tracing-log gives a `log` record: target "log", the record's own in `log.*` fields.
        let lines = capture(|| {
            tracing::event!(
                target: "log",
                Level::WARN,
                { log.target = "rustls::client::hs", log.module_path = "rustls::client::hs", log.file = "src/client/hs.rs", log.line = 120_u64 },
                "server sent an unexpected extension"
            );
        });
        let line = &lines[0];
        assert_eq!(line["target"], "rustls::client::hs");
        assert_eq!(line["severity"], "WARNING");
        let location = &line["logging.googleapis.com/sourceLocation"];
        assert_eq!(location["file"], "src/client/hs.rs");
        assert_eq!(location["line"], "120");
        assert_eq!(location["function"], "rustls::client::hs");
        assert!(line.keys().all(|key| !key.starts_with("log.")), "{line:?}");
    }

    #[test]
    fn latency_is_a_duration_string_and_status_a_number() {
        assert_eq!(duration_string(0.012).as_deref(), Some("0.012s"));
        assert_eq!(duration_string(3.5).as_deref(), Some("3.5s"));
        assert_eq!(duration_string(2.0).as_deref(), Some("2s"));
        assert_eq!(duration_string(0.0).as_deref(), Some("0s"));
        assert_eq!(duration_string(1e-10).as_deref(), Some("0s"));
        assert_eq!(duration_string(-1.0), None);
        assert_eq!(duration_string(f64::NAN), None);
        let mut fields = BTreeMap::from([
            ("http.response.status_code", Value::from("200")),
            ("network.protocol.version", Value::from("2")),
            ("http.server.request.duration", Value::from(-3.0)),
        ]);
        let request = http_request(&mut fields);
        assert_eq!(request["status"], 200);
        assert_eq!(request["protocol"], "HTTP/2");
        assert!(!request.contains_key("latency"));
        assert!(fields.is_empty());
    }
}
