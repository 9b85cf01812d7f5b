//! Hostile input through the real layers, over HTTP, against the emulator.
//!
//! Every case is named and asserts three things: the exact status, that the inner handler was **not** called
//! (or, for the few control cases that must be admitted, called exactly once), and the reason the layer logged on
//! `idgate::decision` (so a 401 for the wrong reason, e.g. a signature failure where an algorithm check was meant,
//! does not pass). A table reports every failing case by name, not just the first.
//!
//! Time: the layers use the system clock, so boundary cases are minted relative to now at the leeway (30 s) ± 5 s,
//! a margin a slow run cannot cross. The core's own tests (`crates/idgate-core/tests/core`) cover ± 1 s with a
//! manual clock. The lifetime rule does not depend on the clock and is tested at ± 1 s here.

mod audiences;
mod crafted;
mod credentials;
mod emails;
mod iap;
mod oidc_times;
mod oidc_tokens;

use idgate_emulator::Emulator;

use crate::support::{Decisions, Site, client, oidc_verifier, raw_status};

/// How a case presents itself.
enum Input {
    /// The token in the layer's own header (`Authorization: Bearer` / `x-goog-iap-jwt-assertion`).
    Token(String),
    /// These headers, exactly (repeated names are sent repeatedly), on `GET /`.
    Headers(Vec<(&'static str, Vec<u8>)>),
    /// `GET path` with no credential.
    Path(&'static str),
    /// These header lines written raw over TCP on `GET /`.
    Raw(Vec<u8>),
}

struct Case {
    name: &'static str,
    input: Input,
    status: u16,
    /// The reason logged on `idgate::decision`; `None` when the request never reaches the layer (hyper refuses).
    reason: Option<&'static str>,
}

fn case(name: &'static str, input: Input, status: u16, reason: &'static str) -> Case {
    Case {
        name,
        input,
        status,
        reason: Some(reason),
    }
}

fn token(name: &'static str, token: String, status: u16, reason: &'static str) -> Case {
    case(name, Input::Token(token), status, reason)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layer {
    Oidc,
    Iap,
}

/// Runs every case against `site`; panics listing every case that did not get its exact outcome.
async fn run(site: &Site, layer: Layer, decisions: &Decisions, cases: Vec<Case>) -> usize {
    let http = client();
    let mut failures = Vec::new();
    let n = cases.len();
    for c in cases {
        let hits_before = site.hits();
        let decisions_before = decisions.count();
        let status = match c.input {
            Input::Token(t) => {
                let (name, value) = match layer {
                    Layer::Oidc => ("authorization", format!("Bearer {t}")),
                    Layer::Iap => ("x-goog-iap-jwt-assertion", t),
                };
                send(&http, site, "/", vec![(name, value.into_bytes())]).await
            }
            Input::Headers(headers) => send(&http, site, "/", headers).await,
            Input::Path(path) => send(&http, site, path, Vec::new()).await,
            Input::Raw(lines) => {
                let mut request =
                    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".to_vec();
                request.extend_from_slice(&lines);
                request.extend_from_slice(b"\r\n");
                raw_status(site.addr, &request).await
            }
        };
        let called = site.hits() - hits_before;
        let admitted = c.status == 200;
        let expected_calls = usize::from(admitted);
        let decision = (decisions.count() > decisions_before)
            .then(|| decisions.last())
            .flatten();
        let reason = decision.as_ref().map(|d| d.reason.as_str());
        let reason_ok = match c.reason {
            None => decision.is_none(),
            Some(expected) => {
                reason == Some(expected)
                    && decision.as_ref().map(|d| d.outcome.as_str())
                        == Some(if admitted { "allow" } else { "reject" })
            }
        };
        if status != c.status || called != expected_calls || !reason_ok {
            failures.push(format!(
                "{}: status {status} (want {}), handler called {called}x (want {expected_calls}), reason {reason:?} (want {:?})",
                c.name, c.status, c.reason
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    n
}

async fn send(
    http: &reqwest::Client,
    site: &Site,
    path: &str,
    headers: Vec<(&'static str, Vec<u8>)>,
) -> u16 {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::HeaderName::from_static(name),
            http::HeaderValue::from_bytes(&value).expect("a sendable header value"),
        );
    }
    http.get(site.url(path))
        .headers(map)
        .send()
        .await
        .expect("the layer answers")
        .status()
        .as_u16()
}

/// `token` with its segments rearranged by `f`.
fn segments(token: &str, f: impl FnOnce(Vec<&str>) -> String) -> String {
    f(token.split('.').collect())
}

fn bearer(value: &str) -> (&'static str, Vec<u8>) {
    ("authorization", value.as_bytes().to_vec())
}

async fn oidc_site(emu: &Emulator) -> Site {
    Site::oidc(oidc_verifier(emu)).await
}
