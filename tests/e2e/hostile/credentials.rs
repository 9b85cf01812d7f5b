//! Hostile credential headers: duplicates, schemes, sizes, bytes, the legacy header and exempt paths.

use idgate_core::identity::TrustedAppEngineFrontEnd;
use idgate_emulator::TokenSpec;

use super::*;
use crate::support::*;

#[tokio::test]
async fn oidc_layer_refuses_hostile_credentials() {
    let (decisions, _guard) = Decisions::capture();
    let emu = emulator().await;
    let site = oidc_site(&emu).await;
    let good = emu.mint(&sa());
    let intruder = emu.mint(
        &TokenSpec::service_account("intruder@other-proj.iam.gserviceaccount.com").audience(AUD),
    );
    let bad_alg = emu.mint(&sa().tampered_signature());
    let removed = emu.mint(&sa().signature_removed());
    let h = |pairs: Vec<(&'static str, String)>| {
        Input::Headers(
            pairs
                .into_iter()
                .map(|(n, v)| (n, v.into_bytes()))
                .collect(),
        )
    };
    let cases = vec![
        case(
            "control: ID scheme",
            h(vec![("authorization", format!("ID {good}"))]),
            200,
            "authorization",
        ),
        case(
            "control: X-Serverless-Authorization",
            h(vec![(
                "x-serverless-authorization",
                format!("Bearer {good}"),
            )]),
            200,
            "x-serverless-authorization",
        ),
        case("no credential", Input::Path("/"), 401, "missing_credential"),
        case(
            "empty Bearer",
            Input::Headers(vec![bearer("Bearer ")]),
            401,
            "empty_token",
        ),
        case(
            "Bearer and only spaces",
            Input::Raw(b"Authorization: Bearer      \r\n".to_vec()),
            401,
            "empty_token",
        ),
        case(
            "empty Authorization",
            Input::Headers(vec![bearer("")]),
            401,
            "unsupported_scheme",
        ),
        case(
            "Basic scheme",
            Input::Headers(vec![bearer("Basic dXNlcjpwYXNz")]),
            401,
            "unsupported_scheme",
        ),
        case(
            "token without a scheme",
            Input::Headers(vec![("authorization", good.clone().into_bytes())]),
            401,
            "unsupported_scheme",
        ),
        case(
            "Bearer glued to the token",
            h(vec![("authorization", format!("Bearer{good}"))]),
            401,
            "unsupported_scheme",
        ),
        case(
            "two tokens in one header",
            h(vec![("authorization", format!("Bearer {good} {good}"))]),
            401,
            "extra_content",
        ),
        case(
            "comma-joined tokens",
            h(vec![(
                "authorization",
                format!("Bearer {good}, Bearer {good}"),
            )]),
            401,
            "extra_content",
        ),
        case(
            "duplicate Authorization (both good)",
            h(vec![
                ("authorization", format!("Bearer {good}")),
                ("authorization", format!("Bearer {good}")),
            ]),
            401,
            "duplicate_header",
        ),
        case(
            "duplicate Authorization (good then bad)",
            h(vec![
                ("authorization", format!("Bearer {good}")),
                ("authorization", format!("Bearer {bad_alg}")),
            ]),
            401,
            "duplicate_header",
        ),
        case(
            "duplicate X-Serverless-Authorization",
            h(vec![
                ("x-serverless-authorization", format!("Bearer {good}")),
                ("x-serverless-authorization", format!("Bearer {good}")),
            ]),
            401,
            "duplicate_header",
        ),
        case(
            "bad X-Serverless-Authorization wins over good Authorization",
            h(vec![
                ("x-serverless-authorization", format!("Bearer {bad_alg}")),
                ("authorization", format!("Bearer {good}")),
            ]),
            401,
            "invalid_signature",
        ),
        case(
            "signature-removed in X-Serverless-Authorization",
            h(vec![(
                "x-serverless-authorization",
                format!("Bearer {removed}"),
            )]),
            401,
            "signature_removed",
        ),
        case(
            "signature-removed Authorization next to nothing else",
            h(vec![("authorization", format!("Bearer {removed}"))]),
            401,
            "signature_removed",
        ),
        case(
            "non-UTF-8 bytes in Authorization (raw TCP)",
            Input::Raw(
                [
                    b"Authorization: Bearer ".as_slice(),
                    b"\xff\xfe\xfd.\xc3\x28.\x80",
                    b"\r\n",
                ]
                .concat(),
            ),
            401,
            "not_ascii",
        ),
        case(
            "obs-text bytes after a good token",
            Input::Headers(vec![(
                "authorization",
                [format!("Bearer {good}").as_bytes(), b"\xe9"].concat(),
            )]),
            401,
            "not_ascii",
        ),
        case(
            "UTF-8 letters in the token",
            h(vec![("authorization", format!("Bearer {good}\u{e9}"))]),
            401,
            "not_ascii",
        ),
        case(
            "oversized Authorization (64 KiB)",
            h(vec![(
                "authorization",
                format!("Bearer {}", "A".repeat(64 * 1024)),
            )]),
            401,
            "too_large",
        ),
        case(
            "legacy header naming the listed project, untrusted, no token",
            h(vec![("x-appengine-inbound-appid", PROJECT.to_owned())]),
            401,
            "missing_credential",
        ),
        case(
            "legacy header naming the listed project, untrusted, disallowed token",
            h(vec![
                ("x-appengine-inbound-appid", PROJECT.to_owned()),
                ("authorization", format!("Bearer {intruder}")),
            ]),
            403,
            "not_allowed",
        ),
        case(
            "spoofed X-Goog-Authenticated-User-Email alone",
            h(vec![(
                "x-goog-authenticated-user-email",
                format!("accounts.google.com:{ALLOWED_SA}"),
            )]),
            401,
            "missing_credential",
        ),
        case(
            "spoofed X-Idgate-Caller-Email alone",
            h(vec![("x-idgate-caller-email", ALLOWED_SA.to_owned())]),
            401,
            "missing_credential",
        ),
        case(
            "spoofed IAP assertion header on the OIDC layer",
            h(vec![("x-goog-iap-jwt-assertion", emu.mint(&user()))]),
            401,
            "missing_credential",
        ),
        case(
            "exempt path with a trailing slash is not exempt",
            Input::Path("/healthz/"),
            401,
            "missing_credential",
        ),
        case(
            "exempt path upper case is not exempt",
            Input::Path("/HEALTHZ"),
            401,
            "missing_credential",
        ),
        case(
            "exempt path with a double slash is not exempt",
            Input::Path("//healthz"),
            401,
            "missing_credential",
        ),
        case(
            "exempt path percent-encoded is not exempt",
            Input::Path("/%68ealthz"),
            401,
            "missing_credential",
        ),
        case(
            "exempt path with a dot segment is not exempt",
            Input::Path("/x/../healthz/."),
            401,
            "missing_credential",
        ),
    ];
    run(&site, Layer::Oidc, &decisions, cases).await;

    // Requests hyper refuses before any layer: exact status, no decision, handler not called.
    let hits = site.hits();
    let huge = [
        b"Authorization: Bearer ".as_slice(),
        &vec![b'A'; 1024 * 1024],
        b"\r\n",
    ]
    .concat();
    let control = [b"Authorization: Bearer ".as_slice(), b"a\x01b", b"\r\n"].concat();
    let mut request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".to_vec();
    request.extend_from_slice(&huge);
    request.extend_from_slice(b"\r\n");
    assert_eq!(raw_status(site.addr, &request).await, 431, "1 MiB header");
    let mut request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".to_vec();
    request.extend_from_slice(&control);
    request.extend_from_slice(b"\r\n");
    assert_eq!(raw_status(site.addr, &request).await, 400, "control byte");
    assert_eq!(site.hits(), hits);
}

/// A trusted legacy header that is present but empty is treated as absent, so a blank header cannot block a valid
/// bearer token; a non-empty value that is not an app ID stays a 401 (issue #10, item 8).
#[tokio::test]
async fn oidc_dual_mode_empty_and_malformed_legacy_headers() {
    let (decisions, _guard) = Decisions::capture();
    let emu = emulator().await;
    let layer = idgate_server::RequireIdentityLayer::new(oidc_verifier(&emu))
        .allowlist(allowlist())
        .trust_legacy_header(TrustedAppEngineFrontEnd::assume_behind_app_engine());
    let site = Site::start(|r| r.layer(layer)).await;
    let good = format!("Bearer {}", emu.mint(&sa()));
    let h = |headers: Vec<(&'static str, &str)>| {
        Input::Headers(
            headers
                .into_iter()
                .map(|(name, value)| (name, value.as_bytes().to_vec()))
                .collect(),
        )
    };
    let cases = vec![
        case(
            "control: the listed app by the legacy header",
            h(vec![("x-appengine-inbound-appid", PROJECT)]),
            200,
            "legacy_appengine_header",
        ),
        case(
            "control: a valid token alone",
            h(vec![("authorization", &good)]),
            200,
            "authorization",
        ),
        case(
            "empty legacy header and a valid token",
            h(vec![
                ("x-appengine-inbound-appid", ""),
                ("authorization", &good),
            ]),
            200,
            "authorization",
        ),
        case(
            "empty legacy header and a valid serverless token",
            h(vec![
                ("x-appengine-inbound-appid", ""),
                ("x-serverless-authorization", &good),
            ]),
            200,
            "x-serverless-authorization",
        ),
        case(
            "empty legacy header alone",
            h(vec![("x-appengine-inbound-appid", "")]),
            401,
            "missing_credential",
        ),
        case(
            "two empty legacy headers and a valid token",
            h(vec![
                ("x-appengine-inbound-appid", ""),
                ("x-appengine-inbound-appid", ""),
                ("authorization", &good),
            ]),
            401,
            "duplicate_header",
        ),
        case(
            "malformed legacy header and a valid token",
            h(vec![
                ("x-appengine-inbound-appid", "not an app!"),
                ("authorization", &good),
            ]),
            401,
            "unknown_identity",
        ),
        case(
            "legacy header with a partition prefix",
            h(vec![("x-appengine-inbound-appid", "s~idgate-e2e")]),
            401,
            "unknown_identity",
        ),
        case(
            "unlisted app by the legacy header, valid token",
            h(vec![
                ("x-appengine-inbound-appid", "other-app"),
                ("authorization", &good),
            ]),
            403,
            "not_allowed",
        ),
    ];
    run(&site, Layer::Oidc, &decisions, cases).await;
}
