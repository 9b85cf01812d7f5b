//! The `idgate.authenticate` span: its fields after real requests through the layers over HTTP, `enduser.id` only
//! when opted in (by the builder or by `[tracing] record_enduser_id`), `otel.status_code = ERROR` only on a 5xx, and
//! no token or assertion in any field. (A binary of its own: it installs a process-wide subscriber.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::routing::get;
use idgate_core::policy::Allowlist;
use idgate_core::verify::{IapVerifier, OidcVerifier};
use idgate_emulator::{Emulator, Fault, Route, TokenSpec};
use idgate_server::{RequireIapLayer, RequireIdentityLayer};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

const AUDIENCE: &str = "https://jobs.idgate.test";
const ALLOWED_SA: &str = "billing-prod@appspot.gserviceaccount.com";
const ALLOWED_USER: &str = "alice@example.com";

/// A closed span: its name and every field it was given, as text.
#[derive(Debug, Clone)]
struct Closed {
    name: &'static str,
    fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// Every closed span, in order.
fn closed() -> &'static Mutex<Vec<Closed>> {
    static CLOSED: OnceLock<Mutex<Vec<Closed>>> = OnceLock::new();
    CLOSED.get_or_init(|| {
        tracing_subscriber::registry()
            .with(Capture)
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
            .try_init()
            .expect("the only global subscriber in this binary");
        Mutex::new(Vec::new())
    })
}

struct Capture;

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Arc::new(Mutex::new(fields)));
        }
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions().get::<Arc<Mutex<Fields>>>()
        {
            values.record(&mut *fields.lock().unwrap());
        }
    }
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id)
            && let Some(fields) = span.extensions().get::<Arc<Mutex<Fields>>>()
        {
            let fields = fields.lock().unwrap().0.clone();
            closed().lock().unwrap().push(Closed {
                name: span.name(),
                fields,
            });
        }
    }
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

fn oidc(emulator: &Emulator) -> RequireIdentityLayer {
    let verifier = OidcVerifier::builder()
        .audience(AUDIENCE)
        .keys_url(emulator.oidc_jwks_url())
        .build()
        .unwrap();
    let allowlist = Allowlist::builder()
        .project_id("billing-prod")
        .build()
        .unwrap();
    RequireIdentityLayer::new(verifier).allowlist(allowlist)
}

fn app(layer: impl Fn(Router) -> Router) -> Router {
    layer(Router::new().route("/", get(|| async { "ok" })))
}

/// Sends `request`, then returns the one `idgate.authenticate` span it closed (the capture is emptied first).
async fn authenticate(request: reqwest::RequestBuilder) -> BTreeMap<String, String> {
    closed().lock().unwrap().clear();
    let _ = request.send().await.unwrap();
    let spans: Vec<Closed> = closed()
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.name == "idgate.authenticate")
        .cloned()
        .collect();
    assert_eq!(spans.len(), 1, "one span per request: {spans:?}");
    spans[0].fields.clone()
}

fn field<'a>(fields: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    fields.get(name).map(String::as_str)
}

// One test function: the capture is process-wide and the requests must not interleave.
#[tokio::test(flavor = "current_thread")]
async fn the_authenticate_span_records_the_decision_and_enduser_id_only_when_configured() {
    closed();
    let emulator = Emulator::start().await.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = emulator.mint(&TokenSpec::service_account(ALLOWED_SA).audience(AUDIENCE));
    let signature = token.rsplit('.').next().unwrap().to_owned();
    let mut every_field = Vec::new();

    // Default: the decision, never the caller.
    let base = serve(app(|r| r.layer(oidc(&emulator)))).await;
    let span = authenticate(http.get(&base).bearer_auth(&token)).await;
    assert_eq!(field(&span, "idgate.layer"), Some("require_identity"));
    assert_eq!(field(&span, "idgate.credential"), Some("authorization"));
    assert_eq!(field(&span, "idgate.outcome"), Some("allow"));
    assert_eq!(field(&span, "idgate.reason"), Some("authorization"));
    assert_eq!(field(&span, "enduser.id"), None, "not opted in: {span:?}");
    assert_eq!(field(&span, "otel.status_code"), None);
    every_field.push(span);

    // Opted in on the layer.
    let base = serve(app(|r| r.layer(oidc(&emulator).record_enduser_id(true)))).await;
    let span = authenticate(
        http.get(&base)
            .header("x-serverless-authorization", format!("Bearer {token}")),
    )
    .await;
    assert_eq!(
        field(&span, "idgate.credential"),
        Some("x-serverless-authorization")
    );
    assert_eq!(field(&span, "enduser.id"), Some(ALLOWED_SA));
    every_field.push(span);

    // A rejection: the stable reason, no caller, no ERROR (a 401 is the layer working).
    let span = authenticate(http.get(&base)).await;
    assert_eq!(field(&span, "idgate.outcome"), Some("reject"));
    assert_eq!(field(&span, "idgate.reason"), Some("missing_credential"));
    assert_eq!(field(&span, "idgate.credential"), None);
    assert_eq!(field(&span, "otel.status_code"), None);
    let tampered = emulator.mint(
        &TokenSpec::service_account(ALLOWED_SA)
            .audience(AUDIENCE)
            .tampered_signature(),
    );
    let span = authenticate(http.get(&base).bearer_auth(&tampered)).await;
    assert_eq!(field(&span, "idgate.reason"), Some("invalid_signature"));
    assert_eq!(field(&span, "enduser.id"), None, "only an admitted caller");
    every_field.push(span);

    // From the configuration: `[tracing] record_enduser_id`, off when absent.
    for (tracing_table, expected) in [
        ("", None),
        ("[tracing]\nrecord_enduser_id = false\n", None),
        ("[tracing]\nrecord_enduser_id = true\n", Some(ALLOWED_SA)),
    ] {
        let config = idgate_core::config::Config::from_toml_str(&format!(
            "[inbound]\naudiences = [\"{AUDIENCE}\"]\n[inbound.allow]\nproject_ids = [\"billing-prod\"]\n\
             [google]\noidc_keys_url = \"{}\"\n{tracing_table}",
            emulator.oidc_jwks_url()
        ))
        .unwrap();
        let layers = idgate_server::from_config(&config).await.unwrap();
        let base = serve(layers.apply(app(|r| r))).await;
        let span = authenticate(http.get(&base).bearer_auth(&token)).await;
        assert_eq!(field(&span, "idgate.outcome"), Some("allow"));
        assert_eq!(field(&span, "enduser.id"), expected, "{tracing_table:?}");
    }

    // IAP: the verified user's email, when opted in.
    let iap_audience = emulator.iap_audience_app_engine();
    let verifier = IapVerifier::builder()
        .audience(iap_audience.clone())
        .keys_url(emulator.iap_jwks_url())
        .build()
        .unwrap();
    let assertion = emulator.mint(&TokenSpec::iap_user(ALLOWED_USER).audience(iap_audience));
    let base = serve(app(|r| {
        r.layer(RequireIapLayer::new(verifier.clone()).record_enduser_id(true))
    }))
    .await;
    let span = authenticate(
        http.get(&base)
            .header("x-goog-iap-jwt-assertion", &assertion),
    )
    .await;
    assert_eq!(field(&span, "idgate.layer"), Some("require_iap"));
    assert_eq!(
        field(&span, "idgate.credential"),
        Some("x-goog-iap-jwt-assertion")
    );
    assert_eq!(field(&span, "idgate.reason"), Some("iap_assertion"));
    assert_eq!(field(&span, "enduser.id"), Some(ALLOWED_USER));
    every_field.push(span);

    // Keys unavailable: a 503, so the span is an ERROR for OpenTelemetry.
    let broken = Emulator::start().await.unwrap();
    broken.inject(Route::OidcJwks, Fault::Status(503), 100);
    let base = serve(app(|r| r.layer(oidc(&broken)))).await;
    let span = authenticate(http.get(&base).bearer_auth(&token)).await;
    assert_eq!(field(&span, "idgate.reason"), Some("keys_unavailable"));
    assert_eq!(field(&span, "otel.status_code"), Some("ERROR"));
    every_field.push(span);

    // No field holds a token, an assertion or a signature.
    let assertion_signature = assertion.rsplit('.').next().unwrap();
    for span in &every_field {
        for value in span.values() {
            for secret in [
                token.as_str(),
                &signature,
                &tampered,
                &assertion,
                assertion_signature,
            ] {
                assert!(!value.contains(secret), "a credential in {span:?}");
            }
        }
    }
}
