//! `idgate demo`: the whole story over real HTTP on loopback.
//!
//! The emulator plays Google. One idgate.toml protects two axum services: `inventory` (service to service, dual
//! mode: ID tokens, and App Engine's legacy header because it sits behind App Engine's front end) and `reports`
//! (users behind Identity-Aware Proxy). Callers mint tokens the way production code does (a service-account key,
//! the metadata server) through `IdTokenMiddleware`, or send hostile requests by hand. Each row shows what the layer
//! decided and why, taken from the layers' own decision log (target `idgate::decision`).
//!
//! Then the other half of "prove who I am": the service calls a Google API (the emulator's Cloud Storage bucket
//! list) with an OAuth 2.0 access token that `AccessTokenMiddleware` mints from the metadata server, and the API
//! checks the token and its scope: read-only storage scope → 200 with the buckets, another scope → 403, none → 401.
//!
//! Then people who sign in with their Google account: `shelf`, protected by `idgate_signin` from the same file's
//! `[signin]` table, and a scripted browser on the emulator's account chooser (see `demo/signin.rs`).
//!
//! Last, who the service is and how it proves it to someone who is not Google: `AppIdentity` (what `idgate whoami`
//! prints) on an emulated Cloud Run, then the service signs a message as itself (`Signer`, IAM `signBlob`) and a
//! third party checks it against the account's published keys (`ServiceAccountKeys`): genuine → 200, tampered or
//! signed by another account → 401 with the reason.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use idgate_client::{
    AccessTokenMiddleware, CachedSource, IdTokenMiddleware, IdTokenSourceExt, MetadataServer,
    Scopes, ServiceAccountKey,
};
use idgate_core::config::Config;
use idgate_emulator::{Emulator, IapProxy, IapUserSpec, TokenSpec};
use idgate_server::extract::{UserEmail, VerifiedCaller};
use reqwest_middleware::ClientWithMiddleware;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use super::Error;

mod identity;
mod signin;

const PROJECT_ID: &str = "demo-project";
const PROJECT_NUMBER: u64 = 123_456_789;
const APP_ENGINE_CALLER: &str = "caller-app@appspot.gserviceaccount.com";
const PARTNER: &str = "billing@partner-proj.iam.gserviceaccount.com";
const INTRUDER: &str = "intruder@evil-proj.iam.gserviceaccount.com";
/// Cloud Storage's read-only scope: what listing buckets needs.
const STORAGE_READ_ONLY: &str = "https://www.googleapis.com/auth/devstorage.read_only";
/// A scope that does not cover Cloud Storage.
const USERINFO_EMAIL: &str = "https://www.googleapis.com/auth/userinfo.email";
/// A bucket of the demo project besides its App Engine default one.
const BUCKET: &str = "demo-project-invoices";

/// One decision as the layers logged it.
#[derive(Debug, Clone, Default)]
struct Decision {
    outcome: String,
    reason: String,
    detail: String,
}

/// Captures `idgate::decision` events so the demo can say *why*, in the layers' own words.
#[derive(Clone, Default)]
struct Decisions(Arc<Mutex<Vec<Decision>>>);

impl Decisions {
    fn take(&self) -> Option<Decision> {
        self.0.lock().ok().and_then(|mut d| {
            let last = d.pop();
            d.clear();
            last
        })
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Decisions {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != idgate_server::rejection::DECISION_TARGET {
            return;
        }
        struct Visit<'a>(&'a mut Decision);
        impl tracing::field::Visit for Visit<'_> {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                match field.name() {
                    "outcome" => self.0.outcome = value.to_owned(),
                    "reason" => self.0.reason = value.to_owned(),
                    "detail" => self.0.detail = value.to_owned(),
                    _ => {}
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.record_str(field, format!("{value:?}").trim_matches('"'));
            }
        }
        let mut decision = Decision::default();
        event.record(&mut Visit(&mut decision));
        if let Ok(mut all) = self.0.lock() {
            all.push(decision);
        }
    }
}

/// What a caller sends, and what must happen.
struct Case {
    caller: String,
    sends: &'static str,
    expect: u16,
    request: reqwest_middleware::RequestBuilder,
}

/// Who answers a case, and so where the row's "why" comes from.
#[derive(Clone, Copy)]
enum Judge {
    /// An idgate layer: its decision log.
    Layer,
    /// A Google API: its answer (the bucket names, or Google's error reason and message).
    GoogleApi,
    /// Anything else: its answer's body.
    Body,
}

struct Row {
    case_caller: String,
    sends: &'static str,
    expect: u16,
    got: u16,
    why: String,
}

pub(crate) async fn run(verbose: bool) -> Result<ExitCode, Error> {
    let decisions = Decisions::default();
    let filter = tracing_subscriber::filter::Targets::new().with_target(
        idgate_server::rejection::DECISION_TARGET,
        tracing::Level::DEBUG,
    );
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::Layer::with_filter(
            decisions.clone(),
            filter,
        ))
        .try_init();

    // Google, on loopback.
    let emulator = Emulator::builder()
        .project_id(PROJECT_ID)
        .project_number(PROJECT_NUMBER)
        .metadata_service_account(PARTNER)
        // The metadata server answers as Cloud Run's does (instance/region, a REGION-1 zone).
        .serverless_region("us-central1")
        .start()
        .await?;

    // The two protected services, configured by one file.
    let inventory_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let reports_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let inventory = format!("http://{}", inventory_listener.local_addr()?);
    let reports = format!("http://{}", reports_listener.local_addr()?);
    // Key files and the OAuth client secret, as production code holds them: in files.
    let keys = tempfile::tempdir()?;
    let shelf = signin::prepare(&emulator, keys.path()).await?;
    let toml = format!(
        r#"# inventory: service to service. It runs on App Engine, so the legacy header can be trusted there.
[inbound]
audiences = ["{inventory}"]
trust_legacy_appengine_header = true
exempt_paths = ["/healthz"]

[inbound.allow]
project_ids = ["caller-app"]                 # admits caller-app's App Engine default service account (and its legacy app ID)
service_accounts = ["{PARTNER}"]

# reports: people, behind Identity-Aware Proxy.
[iap]
audience = "/projects/{PROJECT_NUMBER}/apps/{PROJECT_ID}"

[iap.allow]
domains = ["example.com"]

{}
[google]                                     # the emulator plays Google
base_url = "{}"
"#,
        shelf.toml,
        emulator.base_url()
    );
    let config = Config::from_toml_str(&toml)?;
    let layers = idgate_server::from_config(&config).await?;
    let (Some(identity), Some(iap)) = (layers.identity(), layers.iap()) else {
        return Err("the demo config must build both layers".into());
    };
    let inventory_app = Router::new()
        .route(
            "/whoami",
            get(|VerifiedCaller(caller): VerifiedCaller| async move { format!("hello, {caller}") }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .layer(identity.clone());
    let reports_app = Router::new()
        .route(
            "/",
            get(|UserEmail(email): UserEmail| async move { format!("Hello {email}") }),
        )
        .layer(iap.clone());
    tokio::spawn(async move { axum::serve(inventory_listener, inventory_app).await });
    tokio::spawn(async move { axum::serve(reports_listener, reports_app).await });

    println!("idgate demo: Google (emulated) at {}", emulator.base_url());
    println!(
        "  inventory  {inventory}  service to service, dual mode (ID tokens + trusted legacy header)"
    );
    println!("  reports    {reports}  users behind Identity-Aware Proxy");
    println!(
        "  shelf      {}  people, Sign in with Google",
        shelf.origin()
    );
    println!();
    println!("idgate.toml:");
    for line in toml.lines() {
        println!("  | {line}");
    }
    println!();

    // Credentials, as production code holds them.
    let key_file = |email: &str| -> Result<std::path::PathBuf, Error> {
        Ok(emulator
            .try_create_service_account(email)?
            .write_key_file(keys.path())?)
    };
    let client_with = |source: Box<dyn idgate_client::IdTokenSource>| -> ClientWithMiddleware {
        reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(IdTokenMiddleware::new(source.cached())) // audience = the request URL's origin
            .build()
    };
    let app_engine = client_with(Box::new(ServiceAccountKey::from_file(key_file(
        APP_ENGINE_CALLER,
    )?)?));
    let partner = client_with(Box::new(MetadataServer::from_base_url(
        &emulator.base_url(),
    )));
    let intruder = client_with(Box::new(ServiceAccountKey::from_file(key_file(INTRUDER)?)?));
    let plain = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build();

    let whoami = format!("{inventory}/whoami");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mint = |spec: TokenSpec| emulator.mint(&spec);
    let bearer = |token: String| format!("Bearer {token}");

    let alice = IapProxy::start(
        &emulator,
        reports.parse()?,
        IapUserSpec::new("alice@example.com")
            .hosted_domain("example.com")
            .audience(emulator.iap_audience_app_engine()),
    )
    .await?;
    let mallory = IapProxy::start(
        &emulator,
        reports.parse()?,
        IapUserSpec::new("mallory@gmail.com").audience(emulator.iap_audience_app_engine()),
    )
    .await?;

    let cases = vec![
        Case {
            caller: APP_ENGINE_CALLER.into(),
            sends: "ID token from its key file",
            expect: 200,
            request: app_engine.get(&whoami),
        },
        Case {
            caller: PARTNER.into(),
            sends: "ID token from the metadata server",
            expect: 200,
            request: partner.get(&whoami),
        },
        Case {
            caller: INTRUDER.into(),
            sends: "ID token from its key file",
            expect: 403,
            request: intruder.get(&whoami),
        },
        Case {
            caller: "anyone".into(),
            sends: "nothing",
            expect: 401,
            request: plain.get(&whoami),
        },
        Case {
            caller: "anyone".into(),
            sends: "nothing, to the health check",
            expect: 200,
            request: plain.get(format!("{inventory}/healthz")),
        },
        Case {
            caller: APP_ENGINE_CALLER.into(),
            sends: "an expired ID token",
            expect: 401,
            request: plain.get(&whoami).header(
                "authorization",
                bearer(mint(
                    TokenSpec::service_account(APP_ENGINE_CALLER)
                        .audience(&inventory)
                        .expired(),
                )),
            ),
        },
        Case {
            caller: APP_ENGINE_CALLER.into(),
            sends: "a token minted for another service",
            expect: 401,
            request: plain.get(&whoami).header(
                "authorization",
                bearer(mint(
                    TokenSpec::service_account(APP_ENGINE_CALLER)
                        .audience("https://other-service.a.run.app"),
                )),
            ),
        },
        Case {
            caller: "forger".into(),
            sends: "alg:none token claiming caller-app",
            expect: 401,
            request: plain.get(&whoami).header(
                "authorization",
                bearer(mint(
                    TokenSpec::service_account(APP_ENGINE_CALLER)
                        .audience(&inventory)
                        .alg_none(),
                )),
            ),
        },
        Case {
            caller: APP_ENGINE_CALLER.into(),
            sends: "token whose signature Cloud Run removed",
            expect: 401,
            request: plain.get(&whoami).header(
                "authorization",
                bearer(mint(
                    TokenSpec::service_account(APP_ENGINE_CALLER)
                        .audience(&inventory)
                        .issued_at(now)
                        .signature_removed(),
                )),
            ),
        },
        Case {
            caller: "caller-app (App Engine)".into(),
            sends: "X-Appengine-Inbound-Appid: caller-app",
            expect: 200,
            request: plain
                .get(&whoami)
                .header("x-appengine-inbound-appid", "caller-app"),
        },
        Case {
            caller: "other-app (App Engine)".into(),
            sends: "X-Appengine-Inbound-Appid: other-app",
            expect: 403,
            request: plain
                .get(&whoami)
                .header("x-appengine-inbound-appid", "other-app"),
        },
        Case {
            caller: "alice@example.com".into(),
            sends: "browser, through IAP",
            expect: 200,
            request: plain.get(alice.url()),
        },
        Case {
            caller: "mallory@gmail.com".into(),
            sends: "browser, through IAP",
            expect: 403,
            request: plain.get(mallory.url()),
        },
        Case {
            caller: "mallory@gmail.com".into(),
            sends: "bypasses IAP, spoofs X-Goog-Authenticated-User-Email",
            expect: 401,
            request: plain
                .get(&reports)
                .header(
                    "x-goog-authenticated-user-email",
                    "accounts.google.com:alice@example.com",
                )
                .header(
                    "x-goog-authenticated-user-id",
                    "accounts.google.com:1234567890",
                ),
        },
    ];

    let mut rows = send(cases, Judge::Layer, &decisions, verbose).await?;
    print!("{}", table(&rows));

    // The other direction: the service proves who it is to a Google API with an access token.
    emulator.create_bucket(PROJECT_ID, BUCKET);
    let storage_scope = Scopes::new([STORAGE_READ_ONLY])?;
    let service = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            AccessTokenMiddleware::new(CachedSource::new(MetadataServer::from_base_url(
                &emulator.base_url(),
            )))
            .allow_host("127.0.0.1")
            .scopes(storage_scope),
        )
        .build();
    let mut buckets = emulator.storage_url().join("storage/v1/b")?;
    buckets.query_pairs_mut().append_pair("project", PROJECT_ID);
    println!();
    println!(
        "The service calls a Google API: Cloud Storage's bucket list (emulated), GET {buckets}"
    );
    println!(
        "  as {PARTNER}, with access tokens AccessTokenMiddleware mints from the metadata server"
    );
    println!();
    let api_cases = vec![
        Case {
            caller: PARTNER.into(),
            sends: "access token, scope devstorage.read_only",
            expect: 200,
            request: service.get(buckets.clone()),
        },
        Case {
            caller: PARTNER.into(),
            sends: "access token, scope userinfo.email",
            expect: 403,
            // Per-request scopes override the client's: a token that does not cover Cloud Storage.
            request: service
                .get(buckets.clone())
                .with_extension(Scopes::new([USERINFO_EMAIL])?),
        },
        Case {
            caller: "anyone".into(),
            sends: "nothing",
            expect: 401,
            request: plain.get(buckets.clone()),
        },
    ];
    let api_rows = send(api_cases, Judge::GoogleApi, &decisions, verbose).await?;
    print!("{}", table(&api_rows));
    rows.extend(api_rows);

    rows.extend(signin::sign_in(shelf, &config, &emulator, verbose).await?);

    rows.extend(identity::who_am_i(&emulator, &plain, &decisions, verbose).await?);

    let wrong = rows.iter().filter(|r| r.expect != r.got).count();
    println!();
    if wrong == 0 {
        println!(
            "All {} outcomes are the expected ones: nothing unverified got in, everyone allowed did.",
            rows.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{wrong} of {} outcomes were NOT the expected ones (marked !!).",
            rows.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Sends every case, and says what happened and why.
async fn send(
    cases: Vec<Case>,
    judge: Judge,
    decisions: &Decisions,
    verbose: bool,
) -> Result<Vec<Row>, Error> {
    let mut rows = Vec::new();
    for case in cases {
        decisions.take();
        let response = case.request.send().await?;
        let got = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        let decision = decisions.take();
        let why = match (judge, decision) {
            (Judge::GoogleApi, _) => google_api_why(&body),
            (Judge::Body, _) => truncate(&body, 64),
            (Judge::Layer, Some(d)) if d.outcome == "allow" => format!(
                "admitted ({}): {:?}",
                d.reason.replace('_', " "),
                truncate(&body, 44)
            ),
            (Judge::Layer, Some(d)) => format!(
                "{}: {}",
                d.reason,
                truncate(
                    if d.detail.is_empty() {
                        &body
                    } else {
                        &d.detail
                    },
                    64
                )
            ),
            (Judge::Layer, None) => format!("exempt path, no check: {:?}", truncate(&body, 20)),
        };
        if verbose {
            println!("  {} / {}: HTTP {got} {body:?}", case.caller, case.sends);
        }
        rows.push(Row {
            case_caller: case.caller,
            sends: case.sends,
            expect: case.expect,
            got,
            why,
        });
    }
    Ok(rows)
}

/// A Google API's answer in a few words: the bucket names of a bucket list, else Google's error reason and message
/// (`{"error": {"message", "errors": [{"reason"}]}}`), else the body.
fn google_api_why(body: &str) -> String {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(body) else {
        return truncate(body, 64);
    };
    if json["kind"] == "storage#buckets" {
        let names: Vec<&str> = json["items"]
            .as_array()
            .map(|items| items.iter().filter_map(|b| b["name"].as_str()).collect())
            .unwrap_or_default();
        return format!("buckets: {}", truncate(&names.join(", "), 64));
    }
    match (
        json["error"]["errors"][0]["reason"].as_str(),
        json["error"]["message"].as_str(),
    ) {
        (Some(reason), Some(message)) => format!("{reason}: {}", truncate(message, 64)),
        _ => truncate(body, 64),
    }
}

fn truncate(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn table(rows: &[Row]) -> String {
    let w_caller = rows
        .iter()
        .map(|r| r.case_caller.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    let w_sends = rows.iter().map(|r| r.sends.len()).max().unwrap_or(5).max(5);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "   {:w_caller$}  {:w_sends$}  expect  got  why",
        "caller", "sends"
    );
    let _ = writeln!(
        out,
        "   {}  {}  ------  ---  ---",
        "-".repeat(w_caller),
        "-".repeat(w_sends)
    );
    for row in rows {
        let mark = if row.expect == row.got { "  " } else { "!!" };
        let _ = writeln!(
            out,
            "{mark} {:w_caller$}  {:w_sends$}  {:>6}  {:>3}  {}",
            row.case_caller, row.sends, row.expect, row.got, row.why
        );
    }
    out
}
