//! Secrets hygiene: a full end-to-end run with ALL tracing output captured at TRACE for every target (a global
//! subscriber, so spawned tasks and other threads are captured too; `log` records are bridged), plus the
//! `Display` and `Debug` of every error met on the way, and every span's fields (at creation and at each record).
//! No token, no signature segment, no private-key PEM line, no access token, refresh token or OAuth client secret,
//! and no authorization code, OAuth state or cookie value may appear anywhere in that text.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use idgate_client::{
    AccessTokenMiddleware, AccessTokenSource, Adc, AuthorizedUser, CachedSource, HttpOptions,
    IdTokenMiddleware, IdTokenSource, Impersonated, MetadataServer, RetryPolicy, Scopes,
    ServiceAccountKey, Signer,
};
use idgate_core::ErrorChain;
use idgate_core::google::Endpoints;
use idgate_core::keys::{HttpKeySource, KeyCache, KeyCacheConfig, KeyFormat};
use idgate_emulator::{Fault, Route, TokenSpec};
use idgate_server::{Layers, RequireIapLayer, RequireIdentityLayer};

use crate::support::{
    AUD, Site, allowlist, client, emulator, global_log, iap_allowlist, iap_verifier, oidc_verifier,
    oidc_verifier_with, sa, user,
};

fn quick() -> RetryPolicy {
    RetryPolicy::default()
        .initial_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
        .max_attempts(2)
}

/// A service account and an IAP user no allowlist has, unique to this test, so that their refusals in the shared
/// log capture are this test's.
const OUTSIDER_SA: &str = "secrets-outsider@other-proj.iam.gserviceaccount.com";
const OUTSIDER_USER: &str = "secrets-outsider@evil.example";
/// The audience of the client sources that fail (also unique to this test).
const FAILING_AUD: &str = "https://secrets-failing.idgate-e2e.test";
/// The Workspace user the domain-wide-delegated access tokens act for, and the scope delegated.
const WORKSPACE_USER: &str = "secrets-user@example.com";
const ADMIN_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";

/// An event the capture must hold: some line containing every one of `needles`, `count` times at least.
struct Expected {
    what: &'static str,
    needles: Vec<String>,
    count: usize,
}

impl Expected {
    fn new(what: &'static str, needles: &[&str]) -> Self {
        Self {
            what,
            needles: needles.iter().map(|n| (*n).to_owned()).collect(),
            count: 1,
        }
    }

    fn at_least(mut self, count: usize) -> Self {
        self.count = count;
        self
    }

    fn seen_in(&self, logs: &str) -> bool {
        let lines = logs
            .lines()
            .filter(|line| self.needles.iter().all(|n| line.contains(n.as_str())))
            .count();
        lines >= self.count
    }
}

/// The captured text once it holds every `expected` event; panics, naming the missing ones, after `bound`.
async fn wait_for_events(
    buffer: &std::sync::Mutex<Vec<u8>>,
    expected: &[Expected],
    bound: Duration,
) -> String {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let logs = String::from_utf8_lossy(&buffer.lock().expect("lock")).into_owned();
        let missing: Vec<&str> = expected
            .iter()
            .filter(|e| !e.seen_in(&logs))
            .map(|e| e.what)
            .collect();
        if missing.is_empty() {
            return logs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after {bound:?} the log capture ({} lines) still lacks: {}",
            logs.lines().count(),
            missing.join("; ")
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Everything that must never be printed.
#[derive(Default)]
struct Secrets(Vec<(String, &'static str)>);

impl Secrets {
    fn token(&mut self, token: &str) {
        self.0.push((token.to_owned(), "token"));
        if let Some(sig) = token
            .rsplit('.')
            .next()
            .filter(|s| s.len() >= 16 && *s != idgate_core::token::SIGNATURE_REMOVED_BY_GOOGLE)
        {
            self.0.push((sig.to_owned(), "signature segment"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_log_line_or_error() {
    let buffer = global_log();
    let mut secrets = Secrets::default();
    let mut errors: Vec<String> = Vec::new();
    let mut note = |e: &dyn std::fmt::Debug, d: String| errors.push(format!("{d}\n{e:?}"));

    let emu = emulator().await;

    // Server side: both layers, valid and invalid tokens.
    let oidc = Site::oidc(oidc_verifier(&emu)).await;
    let iap = Site::iap(iap_verifier(&emu)).await;
    let http = client();
    let specs = [
        sa(),
        sa().expired(),
        sa().tampered_signature(),
        sa().alg_none(),
        sa().audience("https://other"),
        sa().signature_removed(),
        sa().unknown_key(),
        TokenSpec::service_account(OUTSIDER_SA).audience(AUD),
    ];
    for spec in &specs {
        let token = emu.mint(spec);
        secrets.token(&token);
        let _ = http
            .get(oidc.url("/"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answer");
        let verifier = oidc_verifier(&emu);
        if let Err(e) = verifier.verify(&token).await {
            note(&e, ErrorChain(&e).to_string());
        }
    }
    for spec in [
        user(),
        user().expired(),
        user().tampered_signature(),
        TokenSpec::iap_user(OUTSIDER_USER),
    ] {
        let token = emu.mint(&spec);
        secrets.token(&token);
        let _ = http
            .get(iap.url("/"))
            .header("x-goog-iap-jwt-assertion", &token)
            .send()
            .await
            .expect("answer");
        if let Err(e) = iap_verifier(&emu).verify(&token).await {
            note(&e, ErrorChain(&e).to_string());
        }
    }

    // The proxy.
    let layers = Layers::new(
        Some(RequireIdentityLayer::new(oidc_verifier(&emu)).allowlist(allowlist())),
        Some(RequireIapLayer::new(iap_verifier(&emu)).allowlist(iap_allowlist())),
    );
    let router = idgate_proxy::router(
        &format!("http://{}/", oidc.addr).parse().expect("url"),
        &layers,
    )
    .expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    let (token, assertion) = (emu.mint(&sa()), emu.mint(&user()));
    secrets.token(&token);
    secrets.token(&assertion);
    let _ = http
        .get(format!("http://{proxy_addr}/p"))
        .bearer_auth(&token)
        .header("x-goog-iap-jwt-assertion", &assertion)
        .send()
        .await
        .expect("answer");
    // An OAuth code and state in the query and a session cookie: the proxy's spans record the path, never these.
    let (code, state, cookie) = (
        "4/secrets-oauth-code-0123456789abcdef",
        "secrets-oauth-state-0123456789abcdef",
        "secrets-session-cookie-0123456789abcdef",
    );
    secrets.0.push((code.to_owned(), "authorization code"));
    secrets.0.push((state.to_owned(), "OAuth state"));
    secrets.0.push((cookie.to_owned(), "cookie value"));
    let _ = http
        .get(format!(
            "http://{proxy_addr}/spans/callback?code={code}&state={state}"
        ))
        .bearer_auth(&token)
        .header("x-goog-iap-jwt-assertion", &assertion)
        .header("cookie", format!("idgate_session={cookie}; other={cookie}"))
        .header("user-agent", "secrets-agent/1.0")
        .send()
        .await
        .expect("answer");

    // Key fetch faults: cold caches against a failing and a garbage endpoint.
    for fault in [
        Fault::Status(500),
        Fault::Garbage,
        Fault::Delay(Duration::from_millis(400)),
    ] {
        emu.inject(Route::OidcJwks, fault, 1);
        let mut config = KeyCacheConfig::default();
        config.fetch_timeout = Duration::from_millis(200);
        let keys = KeyCache::with_config(
            HttpKeySource::new(emu.oidc_jwks_url(), KeyFormat::OidcJwks),
            config,
            Arc::new(idgate_core::clock::SystemClock),
        );
        if let Err(e) = keys.warm().await {
            note(&e, ErrorChain(&e).to_string());
        }
        let token = emu.mint(&sa());
        secrets.token(&token);
        if let Err(e) = oidc_verifier_with(keys).verify(&token).await {
            note(&e, ErrorChain(&e).to_string());
        }
    }

    // Client side: every source, through the middleware, plus failures.
    let dir = tempfile::tempdir().expect("tempdir");
    let caller = emu.create_service_account("caller@idgate-e2e.iam.gserviceaccount.com");
    let target = "target@idgate-e2e.iam.gserviceaccount.com";
    let _ = emu.create_service_account(target);
    emu.allow_impersonation(caller.client_email(), target);
    for line in caller
        .private_key_pem()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
    {
        secrets.0.push((line.to_owned(), "private key PEM line"));
    }
    let key_path = caller.write_key_file(dir.path()).expect("key file");
    let metadata =
        MetadataServer::from_base_url(&emu.base_url()).http(HttpOptions::new().retry(quick()));
    let sa_key = ServiceAccountKey::from_file(&key_path).expect("key file");
    let access = [
        metadata
            .access_token(&Scopes::cloud_platform())
            .await
            .expect("metadata access token"),
        sa_key
            .access_token(&Scopes::cloud_platform())
            .await
            .expect("SA access token"),
    ];
    for a in &access {
        secrets.0.push((a.as_str().to_owned(), "access token"));
        note(a, String::new());
    }
    let endpoints = Endpoints::under(&emu.base_url());
    let impersonated = Impersonated::new(sa_key.clone(), target).endpoints(&endpoints);
    let path = key_path.to_string_lossy().into_owned();
    let adc = Adc::builder()
        .env(move |name| (name == "GOOGLE_APPLICATION_CREDENTIALS").then(|| path.clone().into()))
        .build()
        .expect("adc");
    let sources: Vec<Box<dyn IdTokenSource>> = vec![
        Box::new(metadata.clone()),
        Box::new(sa_key.clone()),
        Box::new(impersonated),
        Box::new(adc),
    ];
    for source in &sources {
        let token = source.id_token(AUD).await.expect("mint");
        secrets.token(token.as_str());
        note(&token, String::new());
        note(source, String::new());
    }
    let middleware = reqwest_middleware::ClientBuilder::new(client())
        .with(IdTokenMiddleware::new(CachedSource::new(metadata.clone())).audience(AUD))
        .build();
    let response = middleware
        .get(oidc.url("/client"))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        response.status(),
        403,
        "the metadata SA is not on the allowlist"
    );
    // Access tokens: generateAccessToken, domain-wide delegation with the key and keyless (signJwt), a user's
    // refresh-token grant, the access-token middleware's 401 retry against the Storage API, and their refusals.
    let admin = Scopes::new(["https://www.googleapis.com/auth/admin.directory.user.readonly"])
        .expect("scopes");
    let gmail = Scopes::new(["https://www.googleapis.com/auth/gmail.readonly"]).expect("scopes");
    let dwd_key = sa_key.clone().subject(WORKSPACE_USER);
    if let Err(e) = dwd_key.access_token(&admin).await {
        note(&e, ErrorChain(&e).to_string());
    }
    emu.allow_impersonation(caller.client_email(), target);
    emu.enable_domain_wide_delegation(caller.client_email(), &[ADMIN_SCOPE]);
    emu.enable_domain_wide_delegation(target, &[ADMIN_SCOPE]);
    let keyless = Impersonated::new(sa_key.clone(), target)
        .subject(WORKSPACE_USER)
        .endpoints(&endpoints);
    let generate = Impersonated::new(sa_key.clone(), target).endpoints(&endpoints);
    let user_file = emu.create_authorized_user("secrets-dev@example.com");
    secrets
        .0
        .push((user_file.refresh_token().to_owned(), "refresh token"));
    secrets
        .0
        .push((user_file.client_secret().to_owned(), "OAuth client secret"));
    let user = AuthorizedUser::from_json(user_file.to_json().as_bytes()).expect("user file");
    note(&user, String::new());
    let minted = [
        dwd_key
            .access_token(&admin)
            .await
            .expect("DWD access token"),
        keyless
            .access_token(&admin)
            .await
            .expect("keyless DWD access token"),
        generate
            .access_token(&Scopes::cloud_platform())
            .await
            .expect("generateAccessToken"),
        user.access_token(&Scopes::cloud_platform())
            .await
            .expect("refresh-token grant"),
    ];
    for a in &minted {
        secrets.0.push((a.as_str().to_owned(), "access token"));
        note(a, String::new());
    }
    note(&keyless, String::new());
    // Signing as a service account (issue #13): a JWT `sign_jwt` returns is a bearer credential; the signers'
    // `Debug`, and the refusals of an account the caller may not act as.
    let signers = [
        Signer::from_key(sa_key.clone()),
        Signer::iam(sa_key.clone(), target).endpoints(&endpoints),
        Signer::iam(sa_key.clone(), OUTSIDER_SA).endpoints(&endpoints),
    ];
    let mut signed = 0;
    for signer in &signers {
        note(signer, String::new());
        match signer.sign_jwt(&serde_json::json!({"aud": AUD})).await {
            Ok(jwt) => {
                secrets.token(&jwt);
                signed += 1;
            }
            Err(e) => note(&e, ErrorChain(&e).to_string()),
        }
        match signer.sign_blob(b"secrets hygiene").await {
            Ok(blob) => note(&blob, String::new()),
            Err(e) => note(&e, ErrorChain(&e).to_string()),
        }
    }
    assert_eq!(
        signed, 2,
        "the key file and IAM as the target sign; the outsider is refused"
    );
    // Refused: scopes outside the delegation, a revoked refresh token, a target without a Token Creator grant.
    for result in [
        dwd_key.access_token(&gmail).await,
        keyless.access_token(&gmail).await,
        Impersonated::new(sa_key.clone(), OUTSIDER_SA)
            .endpoints(&endpoints)
            .access_token(&Scopes::cloud_platform())
            .await,
    ] {
        if let Err(e) = result {
            note(&e, ErrorChain(&e).to_string());
        }
    }
    let revoked_token = "1//secrets-revoked-refresh-token-0123456789";
    secrets.0.push((revoked_token.to_owned(), "refresh token"));
    let revoked = user_file
        .to_json()
        .replace(user_file.refresh_token(), revoked_token);
    let revoked = AuthorizedUser::from_json(revoked.as_bytes()).expect("user file");
    note(&revoked, String::new());
    if let Err(e) = revoked.access_token(&Scopes::cloud_platform()).await {
        note(&e, ErrorChain(&e).to_string());
    }
    let buckets = format!(
        "{}storage/v1/b?project={}",
        emu.storage_url(),
        emu.project_id()
    );
    let storage_source = CachedSource::new(metadata.clone());
    let storage = reqwest_middleware::ClientBuilder::new(client())
        .with(AccessTokenMiddleware::new(storage_source.clone()).allow_host("127.0.0.1"))
        .build();
    let cached_token = || {
        storage_source
            .peek_access_token(&Scopes::cloud_platform())
            .expect("a cached access token")
    };
    let response = storage.get(&buckets).send().await.expect("sent");
    assert_eq!(response.status(), 200, "the bucket list");
    let first = cached_token();
    secrets.0.push((first.as_str().to_owned(), "access token"));
    assert!(emu.expire_access_token(first.as_str()));
    let response = storage.get(&buckets).send().await.expect("sent");
    assert_eq!(response.status(), 200, "retried once after the 401");
    secrets
        .0
        .push((cached_token().as_str().to_owned(), "access token"));
    emu.inject(Route::MetadataAccessToken, Fault::Status(503), 10);
    let failing_access = reqwest_middleware::ClientBuilder::new(client())
        .with(
            AccessTokenMiddleware::new(CachedSource::new(
                MetadataServer::from_base_url(&emu.base_url())
                    .http(HttpOptions::new().retry(quick())),
            ))
            .allow_host("127.0.0.1")
            .scopes(gmail),
        )
        .build();
    if let Err(e) = failing_access.get(&buckets).send().await {
        note(&e, ErrorChain(&e).to_string());
    }
    // Failing sources: a dead metadata server, a garbage token endpoint, a broken key file.
    emu.inject(Route::MetadataIdentity, Fault::Status(503), 10);
    let failing = CachedSource::new(
        MetadataServer::from_base_url(&emu.base_url()).http(HttpOptions::new().retry(quick())),
    );
    if let Err(e) = failing.id_token(FAILING_AUD).await {
        note(&e, ErrorChain(&e).to_string());
    }
    let failing_client = reqwest_middleware::ClientBuilder::new(client())
        .with(IdTokenMiddleware::new(failing).audience(FAILING_AUD))
        .build();
    if let Err(e) = failing_client.get(oidc.url("/")).send().await {
        note(&e, ErrorChain(&e).to_string());
    }
    emu.inject(Route::Token, Fault::Garbage, 10);
    if let Err(e) = sa_key.id_token("https://fail2").await {
        note(&e, ErrorChain(&e).to_string());
    }
    let broken = caller
        .to_json()
        .replace("BEGIN PRIVATE KEY", "BEGIN PRIVATE KEY\nAAAA");
    if let Err(e) = ServiceAccountKey::from_json(broken.as_bytes()) {
        note(&e, ErrorChain(&e).to_string());
    }
    // Every request and fetch above was awaited; the emulator's shutdown also waits for its handlers still
    // running (the delayed key fetch outlived the client's timeout). Then wait, bounded, until the capture
    // holds the events this run must have logged: a capture that misses them (or is empty) fails here, rather
    // than letting the scan below pass on nothing.
    let oidc_keys = emu.oidc_jwks_url().to_string();
    let iap_keys = emu.iap_jwks_url().to_string();
    tokio::time::timeout(Duration::from_secs(10), emu.shutdown())
        .await
        .expect("the emulator shut down within the bound");
    let expected = [
        Expected::new(
            "the OIDC key set fetched",
            &["fetched signing keys", &oidc_keys],
        ),
        Expected::new(
            "the IAP key set fetched",
            &["fetched signing keys", &iap_keys],
        ),
        Expected::new(
            "the failed key fetches (500, garbage, timeout)",
            &["key fetch failed", &oidc_keys],
        )
        .at_least(3),
        Expected::new(
            "the OIDC layer refusing the outsider",
            &["idgate::decision", "not_allowed", OUTSIDER_SA],
        ),
        Expected::new(
            "the IAP layer refusing the outsider",
            &["idgate::decision", "not_allowed", OUTSIDER_USER],
        ),
        Expected::new(
            "the middleware sending no token",
            &["no ID token attached", FAILING_AUD],
        ),
        Expected::new(
            "the access-token middleware sending no token",
            &["no access token attached", "gmail.readonly"],
        ),
        Expected::new(
            "the access-token middleware retrying after a 401",
            &["refused the access token (401)"],
        ),
        // Spans (docs/tracing.md): the proxy's server span with its path (not its query), the gates' decisions,
        // the upstream client span, and the statuses recorded on them.
        Expected::new(
            "the proxy's server span",
            &[
                "SPAN new idgate.proxy.request",
                "otel.kind=server",
                "http.request.method=GET",
                "url.path=/spans/callback ",
                "user_agent.original=secrets-agent/1.0",
                "client.address=127.0.0.1",
            ],
        ),
        Expected::new(
            "the proxy's response status on its server span",
            &[
                "SPAN record idgate.proxy.request",
                "http.response.status_code=200",
            ],
        )
        .at_least(2),
        Expected::new(
            "the proxy's request duration",
            &[
                "SPAN record idgate.proxy.request",
                "http.server.request.duration=",
            ],
        ),
        Expected::new(
            "the upstream client span",
            &[
                "SPAN new idgate.proxy.upstream",
                "otel.kind=client",
                "server.address=127.0.0.1",
            ],
        ),
        Expected::new(
            "the layers' authenticate span (admitted)",
            &["SPAN record idgate.authenticate", "idgate.outcome=allow"],
        ),
        Expected::new(
            "the layers' authenticate span (refused, with its reason)",
            &[
                "SPAN record idgate.authenticate",
                "idgate.reason=not_allowed",
            ],
        ),
        Expected::new(
            "the cached source's mint span",
            &[
                "SPAN new idgate.token.mint",
                "idgate.token.kind=id",
                "idgate.token.source=metadata",
            ],
        ),
        Expected::new(
            "a failed mint on its span",
            &["SPAN record idgate.token.mint", "idgate.outcome=error"],
        ),
        Expected::new(
            "the layers' credential header",
            &[
                "SPAN record idgate.authenticate",
                "idgate.credential=authorization",
            ],
        ),
    ];
    let logs = wait_for_events(&buffer, &expected, Duration::from_secs(10)).await;
    let errors = errors.join("\n");
    assert!(errors.lines().count() > 20, "errors were collected");
    let mut leaks = Vec::new();
    for (secret, what) in &secrets.0 {
        for (text, place) in [(&logs, "logs"), (&errors, "errors")] {
            if text.contains(secret.as_str()) {
                let at = text.find(secret.as_str()).unwrap_or(0);
                let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                // Say where, without printing the secret itself.
                leaks.push(format!(
                    "a {what} appears in the {place}, in a line starting {:?}",
                    &text[line_start..at.min(line_start + 160)]
                ));
            }
        }
    }
    assert!(secrets.0.len() > 40, "{}", secrets.0.len());
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}
