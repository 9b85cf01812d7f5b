//! `[admission] mode = "by_credential"` end to end: each credential judged by its own gate and allowlist, a failed
//! credential never falling through to another, requests without one sent to the right gate.

use axum::body::Body;
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use http::{Request, StatusCode};
use idgate_core::config::Admission;
use idgate_core::policy::Allowlist;
use idgate_core::verify::IapVerifier;
use idgate_emulator::{Emulator, TokenSpec};
use idgate_server::{ByCredentialLayer, Layers, RequireIapLayer, RequireIdentityLayer};

use crate::{
    ALLOWED_SA, AUDIENCE, OTHER_SA, Seen, allowlist, client, emulator, oidc_verifier,
    recording_router, serve,
};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

fn iap_layer(emulator: &Emulator) -> RequireIapLayer {
    let verifier = IapVerifier::builder()
        .audience(emulator.iap_audience_app_engine())
        .keys_url(emulator.iap_jwks_url())
        .build()
        .unwrap();
    RequireIapLayer::new(verifier)
        .allowlist(Allowlist::builder().user_email(ALICE).build().unwrap())
}

fn layers(emulator: &Emulator) -> Layers {
    Layers::new(
        Some(
            RequireIdentityLayer::new(oidc_verifier(emulator))
                .allowlist(allowlist())
                .exempt_path("/healthz"),
        ),
        Some(iap_layer(emulator)),
    )
}

fn token(emulator: &Emulator, email: &str) -> String {
    emulator.mint(&TokenSpec::service_account(email).audience(AUDIENCE))
}

fn assertion(emulator: &Emulator, email: &str) -> String {
    emulator.mint(&TokenSpec::iap_user(email).audience(emulator.iap_audience_app_engine()))
}

/// A stand-in for a sign-in gate: `Cookie: session=good` admits, anything else is a 401.
async fn cookie_gate(request: Request<Body>, next: Next) -> Response {
    let good = request
        .headers()
        .get("cookie")
        .is_some_and(|c| c.as_bytes() == b"session=good");
    if good {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "no session").into_response()
    }
}

async fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut request = client().get(format!("{base}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn each_credential_is_judged_by_its_own_allowlist() {
    let emulator = emulator().await;
    let seen = Seen::default();
    let layers = layers(&emulator).admission(Admission::ByCredential);
    assert_eq!(layers.admission_mode(), Admission::ByCredential);
    let base = serve(layers.apply(recording_router(&seen))).await;

    let sa = format!("Bearer {}", token(&emulator, ALLOWED_SA));
    let alice = assertion(&emulator, ALICE);
    // Each alone, by its own gate: neither needs the other's credential.
    assert_eq!(
        get(&base, "/", &[("authorization", &sa)]).await,
        (StatusCode::OK, format!("service_account {ALLOWED_SA}"))
    );
    let (status, body) = get(&base, "/", &[("x-goog-iap-jwt-assertion", &alice)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(ALICE), "{body}");
    // X-Serverless-Authorization is a bearer credential too.
    assert_eq!(
        get(&base, "/", &[("x-serverless-authorization", &sa)])
            .await
            .0,
        StatusCode::OK
    );

    // Refused by the allowlist of the gate their credential names (403), whatever the other gate would say.
    let other = format!("Bearer {}", token(&emulator, OTHER_SA));
    assert_eq!(
        get(&base, "/", &[("authorization", &other)]).await.0,
        StatusCode::FORBIDDEN
    );
    let bob = assertion(&emulator, BOB);
    assert_eq!(
        get(&base, "/", &[("x-goog-iap-jwt-assertion", &bob)])
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // Bob's assertion is judged (and refused) even next to an allowed service account's token: the assertion
    // names the gate, the token cannot rescue it.
    assert_eq!(
        get(
            &base,
            "/",
            &[("x-goog-iap-jwt-assertion", &bob), ("authorization", &sa)]
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    // A forged assertion with a valid token: refused, never a fall-through to the token.
    assert_eq!(
        get(
            &base,
            "/",
            &[
                ("x-goog-iap-jwt-assertion", "e30.e30.AAAA"),
                ("authorization", &sa)
            ]
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    // An empty assertion header is still an assertion: refused.
    assert_eq!(
        get(
            &base,
            "/",
            &[("x-goog-iap-jwt-assertion", ""), ("authorization", &sa)]
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    // A bad token: 401.
    assert_eq!(
        get(&base, "/", &[("authorization", "Bearer nonsense")])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // No credential: the first configured gate answers (the ID-token gate's 401 with its challenge)...
    let response = client().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response
            .headers()
            .get("www-authenticate")
            .is_some_and(|v| v.as_bytes().starts_with(b"Bearer"))
    );
    // ... except on its exempt path.
    assert_eq!(
        get(&base, "/healthz", &[]).await,
        (StatusCode::OK, "anonymous".to_owned())
    );
    assert_eq!(seen.calls(), 4);
}

#[tokio::test]
async fn all_mode_still_stacks() {
    let emulator = emulator().await;
    let seen = Seen::default();
    let layers = layers(&emulator);
    assert_eq!(layers.admission_mode(), Admission::All);
    let base = serve(layers.apply(recording_router(&seen))).await;
    let sa = format!("Bearer {}", token(&emulator, ALLOWED_SA));
    let alice = assertion(&emulator, ALICE);
    assert_eq!(
        get(&base, "/", &[("authorization", &sa)]).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&base, "/", &[("x-goog-iap-jwt-assertion", &alice)])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(
            &base,
            "/",
            &[("x-goog-iap-jwt-assertion", &alice), ("authorization", &sa)]
        )
        .await
        .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn requests_without_a_credential_go_to_the_no_credential_gate() {
    let emulator = emulator().await;
    let seen = Seen::default();
    let layer = ByCredentialLayer::new(
        Some(
            RequireIdentityLayer::new(oidc_verifier(&emulator))
                .allowlist(allowlist())
                .exempt_path("/healthz"),
        ),
        None,
    )
    .no_credential(from_fn(cookie_gate));
    let base = serve(recording_router(&seen).layer(layer)).await;
    let sa = format!("Bearer {}", token(&emulator, ALLOWED_SA));

    assert_eq!(
        get(&base, "/", &[("cookie", "session=good")]).await,
        (StatusCode::OK, "anonymous".to_owned())
    );
    assert_eq!(
        get(&base, "/", &[]).await,
        (StatusCode::UNAUTHORIZED, "no session".to_owned())
    );
    // A bad token next to a good session: the token is judged and refused, never the session tried instead.
    for bad in ["Bearer nonsense", "", "Basic YTpi"] {
        let (status, body) = get(
            &base,
            "/",
            &[("authorization", bad), ("cookie", "session=good")],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad:?}");
        assert_ne!(body, "no session", "{bad:?}");
    }
    let (status, body) = get(
        &base,
        "/",
        &[
            ("x-serverless-authorization", "Bearer x"),
            ("cookie", "session=good"),
        ],
    )
    .await;
    assert_eq!(
        (status, body != "no session"),
        (StatusCode::UNAUTHORIZED, true)
    );
    // No IAP gate configured: an assertion header is not a credential here, the session decides.
    assert_eq!(
        get(
            &base,
            "/",
            &[
                ("x-goog-iap-jwt-assertion", "x"),
                ("cookie", "session=good")
            ]
        )
        .await
        .0,
        StatusCode::OK
    );
    // The token gate's own allowlist.
    assert_eq!(
        get(&base, "/", &[("authorization", &sa)]).await,
        (StatusCode::OK, format!("service_account {ALLOWED_SA}"))
    );
    // The token gate's exempt path needs nothing.
    assert_eq!(get(&base, "/healthz", &[]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_layer_with_no_gate_fails_closed() {
    let seen = Seen::default();
    let base = serve(recording_router(&seen).layer(ByCredentialLayer::new(None, None))).await;
    assert_eq!(
        get(&base, "/", &[]).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(seen.calls(), 0);
}
