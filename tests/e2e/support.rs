//! Shared fixtures: an emulator, the real layers served over loopback HTTP in front of a counting handler, a raw
//! TCP client for bytes reqwest would not send, a capture of `idgate::decision` log events, and a signer for
//! hand-crafted JWTs.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use idgate_core::keys::{HttpKeySource, KeyCache, KeyFormat};
use idgate_core::policy::Allowlist;
use idgate_core::verify::{IapVerifier, OidcVerifier};
use idgate_emulator::{Emulator, TokenSpec};
use idgate_server::{RequireIapLayer, RequireIdentityLayer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// The audience every OIDC layer here accepts.
pub(crate) const AUD: &str = "https://api.idgate-e2e.test";
/// The emulated project.
pub(crate) const PROJECT: &str = "idgate-e2e";
/// A user-managed service account on the allowlist by email.
pub(crate) const ALLOWED_SA: &str = "caller@idgate-e2e.iam.gserviceaccount.com";
/// The App Engine default service account of the listed project (allowed through `project_ids`).
pub(crate) const APPSPOT_SA: &str = "idgate-e2e@appspot.gserviceaccount.com";
/// The IAP user on the IAP allowlist.
pub(crate) const ALLOWED_USER: &str = "alice@example.com";

pub(crate) async fn emulator() -> Emulator {
    Emulator::builder()
        .project_id(PROJECT)
        .start()
        .await
        .expect("emulator starts")
}

/// Seconds since the epoch, now.
pub(crate) fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("fits")
}

/// A good OIDC token spec for the allowed service account and [`AUD`].
pub(crate) fn sa() -> TokenSpec {
    TokenSpec::service_account(ALLOWED_SA).audience(AUD)
}

/// A good IAP assertion spec for the allowed user (default audience: the emulator's App Engine one).
pub(crate) fn user() -> TokenSpec {
    TokenSpec::iap_user(ALLOWED_USER)
}

pub(crate) fn allowlist() -> Allowlist {
    Allowlist::builder()
        .service_account(ALLOWED_SA)
        .project_id(PROJECT)
        .build()
        .expect("allowlist")
}

pub(crate) fn iap_allowlist() -> Allowlist {
    Allowlist::builder()
        .user_email(ALLOWED_USER)
        .build()
        .expect("allowlist")
}

/// An OIDC verifier for [`AUD`] on the emulator's JWKS.
pub(crate) fn oidc_verifier(emu: &Emulator) -> OidcVerifier {
    OidcVerifier::builder()
        .audience(AUD)
        .keys_url(emu.oidc_jwks_url())
        .build()
        .expect("verifier")
}

/// An OIDC verifier reading keys through `keys`.
pub(crate) fn oidc_verifier_with(keys: KeyCache) -> OidcVerifier {
    OidcVerifier::builder()
        .audience(AUD)
        .keys(keys)
        .build()
        .expect("verifier")
}

/// An IAP verifier for the emulator's App Engine audience on its IAP JWKS.
pub(crate) fn iap_verifier(emu: &Emulator) -> IapVerifier {
    IapVerifier::builder()
        .audience(emu.iap_audience_app_engine())
        .keys_url(emu.iap_jwks_url())
        .build()
        .expect("verifier")
}

/// A loopback server whose every path answers `200 ok` and counts the calls: the "inner handler".
#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub(crate) addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Site {
    /// Serves a counting handler wrapped by `wrap` (which applies the layer under test).
    pub(crate) async fn start(wrap: impl FnOnce(Router) -> Router) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let inner = Router::new().fallback(move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        });
        let app = wrap(inner);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, hits }
    }

    /// An OIDC-protected site: [`RequireIdentityLayer`] with [`allowlist`] and `/healthz` exempt.
    pub(crate) async fn oidc(verifier: OidcVerifier) -> Self {
        let layer = RequireIdentityLayer::new(verifier)
            .allowlist(allowlist())
            .exempt_path("/healthz");
        Self::start(|r| r.layer(layer)).await
    }

    /// An IAP-protected site: [`RequireIapLayer`] with [`iap_allowlist`] and `/healthz` exempt.
    pub(crate) async fn iap(verifier: IapVerifier) -> Self {
        let layer = RequireIapLayer::new(verifier)
            .allowlist(iap_allowlist())
            .exempt_path("/healthz");
        Self::start(|r| r.layer(layer)).await
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A reqwest client that never uses a proxy (everything here is loopback).
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Sends `request` bytes as-is over a fresh TCP connection and returns the response status (`Connection: close`
/// must be in the request). For bytes reqwest will not put on the wire.
pub(crate) async fn raw_status(addr: SocketAddr, request: &[u8]) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut response = Vec::new();
    // The server closes after answering (`Connection: close`); bounded by the read itself ending.
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {:?}", &text[..text.len().min(80)]))
}

/// One `idgate::decision` event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) outcome: String,
    pub(crate) reason: String,
    /// The `detail` field: for a 403, the allowlist's own reason (`caller not allowed: not_listed`).
    pub(crate) detail: String,
}

/// The binary's one global subscriber, installed on first use: every event of every target at TRACE goes into the
/// returned buffer (the secrets test reads it), every span's fields too (one `SPAN new NAME field=value ...` line
/// when it opens, one `SPAN record NAME field=value` line per later record: a fmt layer alone prints span fields
/// only around events), and every `idgate::decision` event goes to the [`Decisions`] capture of the thread it
/// happens on.
///
/// One global subscriber rather than a scoped one per test: tracing caches each callsite's interest across all live
/// dispatchers, and scoped dispatchers created and dropped by tests running in parallel could leave an event
/// unrecorded (seen here: an admitted request whose decision was missing under load).
pub(crate) fn global_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(Arc::clone(&buffer));
        let sink_for_spans = sink.clone();
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || sink.clone()),
            )
            .with(DecisionForwarder)
            .with(SpanLines(sink_for_spans))
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
            .try_init()
            .expect("the only global subscriber in this binary");
        buffer
    })
    .clone()
}

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

thread_local! {
    static CAPTURE: RefCell<Option<Decisions>> = const { RefCell::new(None) };
}

/// The decisions logged on this thread while the guard lives (tests run on a current-thread runtime, so the
/// layers' futures and the servers' tasks log on the test's thread).
#[derive(Clone, Default)]
pub(crate) struct Decisions(Arc<Mutex<Vec<Decision>>>);

/// Stops a thread's [`Decisions`] capture when dropped.
pub(crate) struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

impl Decisions {
    /// Starts capturing on this thread.
    pub(crate) fn capture() -> (Self, CaptureGuard) {
        global_log();
        let decisions = Self::default();
        CAPTURE.with(|c| *c.borrow_mut() = Some(decisions.clone()));
        (decisions, CaptureGuard)
    }

    pub(crate) fn last(&self) -> Option<Decision> {
        self.0.lock().expect("lock").last().cloned()
    }

    pub(crate) fn count(&self) -> usize {
        self.0.lock().expect("lock").len()
    }
}

struct DecisionVisitor<'a>(&'a mut Decision);

impl Visit for DecisionVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "outcome" => value.clone_into(&mut self.0.outcome),
            "reason" => value.clone_into(&mut self.0.reason),
            "detail" => value.clone_into(&mut self.0.detail),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.record_str(field, text.trim_matches('"'));
    }
}

/// Sends `idgate::decision` events to the current thread's capture, if it has one.
struct DecisionForwarder;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for DecisionForwarder {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != idgate_server::rejection::DECISION_TARGET {
            return;
        }
        CAPTURE.with(|c| {
            if let Some(decisions) = &*c.borrow() {
                let mut decision = Decision::default();
                event.record(&mut DecisionVisitor(&mut decision));
                decisions.0.lock().expect("lock").push(decision);
            }
        });
    }
}

/// Writes every span's fields into the log buffer as they are given: at creation and at each `record`.
struct SpanLines(Sink);

/// A span's fields as ` name=value` text.
#[derive(Default)]
struct FieldText(String);

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push_str(&format!(" {}={value}", field.name()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl SpanLines {
    fn write(&self, what: &str, name: &str, fields: &FieldText) {
        let line = format!("SPAN {what} {name}{}\n", fields.0);
        self.0
            .0
            .lock()
            .expect("lock")
            .extend_from_slice(line.as_bytes());
    }
}

impl<S> tracing_subscriber::Layer<S> for SpanLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: Context<'_, S>,
    ) {
        let mut fields = FieldText::default();
        attrs.record(&mut fields);
        self.write("new", attrs.metadata().name(), &fields);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        let mut fields = FieldText::default();
        values.record(&mut fields);
        let name = ctx.span(id).map_or("?", |s| s.name());
        self.write("record", name, &fields);
    }
}

/// Base64url (unpadded) of `bytes`.
pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs hand-written JWT headers and payloads with a service-account key the emulator created, whose public
/// certificates the emulator publishes at `/robot/v1/metadata/x509/{email}` in Google's `oauth2/v1/certs` shape.
/// A verifier on that URL ([`KeyFormat::OidcPemCertificates`]) then checks signatures over *exactly* the bytes
/// written here, which [`TokenSpec`] cannot produce (duplicate keys, non-JSON payloads).
pub(crate) struct RawSigner {
    pub(crate) kid: String,
    key: aws_lc_rs::signature::RsaKeyPair,
    pub(crate) certs_url: url::Url,
}

impl RawSigner {
    pub(crate) fn new(emu: &Emulator, email: &str) -> Self {
        let account = emu.create_service_account(email);
        let body: String = account
            .private_key_pem()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = STANDARD.decode(body).expect("PEM body is base64");
        let key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der).expect("PKCS#8 RSA key");
        let certs_url = emu
            .base_url()
            .join(&format!("robot/v1/metadata/x509/{email}"))
            .expect("url");
        Self {
            kid: account.private_key_id().to_owned(),
            key,
            certs_url,
        }
    }

    /// A key cache on this signer's published certificates.
    pub(crate) fn key_cache(&self) -> KeyCache {
        KeyCache::new(HttpKeySource::new(
            self.certs_url.clone(),
            KeyFormat::OidcPemCertificates,
        ))
    }

    /// `b64(header).b64(payload).b64(RS256 signature)`, with `header` and `payload` taken byte for byte.
    pub(crate) fn sign(&self, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .expect("sign");
        format!("{input}.{}", b64(sig))
    }

    /// A well-formed RS256 header naming this key.
    pub(crate) fn header(&self) -> String {
        format!(r#"{{"alg":"RS256","kid":"{}","typ":"JWT"}}"#, self.kid)
    }
}

/// A good payload for `email` and [`AUD`], as raw JSON text (`extra` is spliced in before the closing brace).
pub(crate) fn payload(email: &str, extra: &str) -> String {
    let iat = now();
    format!(
        r#"{{"aud":"{AUD}","azp":"1","email":"{email}","email_verified":true,"exp":{},"iat":{iat},"iss":"https://accounts.google.com","sub":"1"{extra}}}"#,
        iat + 3600
    )
}
