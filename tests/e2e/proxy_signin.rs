//! `idgate proxy` as a sign-in gateway (the oauth2-proxy model) and the `by_credential` admission mode through the
//! proxy: the real `idgate_proxy` router served on 127.0.0.1, idgate-emulator playing Google (its account chooser
//! driven through `Emulator::consent`), and an upstream that echoes the identity headers and the `Cookie` header it
//! received.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use http::{HeaderMap, Method, StatusCode};
use idgate_core::config::{Admission, Config};
use idgate_core::keys::KeyAlgorithm;
use idgate_core::policy::Allowlist;
use idgate_core::verify::{IapVerifier, OidcVerifier};
use idgate_emulator::TokenSpec;
use idgate_proxy::{Gates, GatesError};
use idgate_server::{Layers, RequireIapLayer, RequireIdentityLayer};
use idgate_signin::{ClientSecret, SignIn};

#[path = "../../crates/idgate-signin/tests/common/mod.rs"]
mod common;

use common::{Browser, Google};

const AUD: &str = "https://upstream.idgate.test";
const SA: &str = "jobs@idgate-e2e.iam.gserviceaccount.com";
const OTHER_SA: &str = "intruder@elsewhere.iam.gserviceaccount.com";
const ALICE: &str = "alice@example.com";
/// Not on the sign-in allowlist (example.com, carol@other.example); the IAP allowlist names her.
const MALLORY: &str = "mallory@gmail.com";

/// An upstream that echoes what identifies the caller, and records every request's headers.
#[derive(Clone, Default)]
struct Echo(Arc<Mutex<Vec<HeaderMap>>>);

impl Echo {
    async fn start(&self) -> url::Url {
        let seen = self.clone();
        let app = Router::new().fallback(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                let echo = |name: &str| {
                    headers
                        .get_all(name)
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .collect::<Vec<_>>()
                        .join(" | ")
                };
                // The upstream sets whatever cookies the test asks for.
                let mut set = HeaderMap::new();
                for value in headers.get_all("x-test-set-cookie") {
                    set.append("set-cookie", value.clone());
                }
                let body = format!(
                    "kind={} email={} credential={} cookie={}",
                    echo("x-idgate-caller-kind"),
                    echo("x-idgate-caller-email"),
                    echo("x-idgate-caller-credential"),
                    echo("cookie"),
                );
                seen.0.lock().unwrap().push(headers);
                (set, body)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/").parse().unwrap()
    }

    fn calls(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn last(&self) -> HeaderMap {
        self.0.lock().unwrap().last().cloned().unwrap_or_default()
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| v.to_str().unwrap().to_owned())
}

/// The cookies the upstream got, one `name=value` each.
fn cookies(headers: &HeaderMap) -> BTreeSet<String> {
    headers
        .get_all("cookie")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(';'))
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect()
}

/// Which gates guard the upstream, next to sign-in.
#[derive(Debug, Clone, Copy)]
struct Combo {
    inbound: bool,
    iap: bool,
    signin: bool,
}

/// The proxy under test, with its browser-facing origin.
struct Proxy {
    google: Google,
    echo: Echo,
    addr: SocketAddr,
    signin: SignIn,
}

impl Proxy {
    /// Sign-in (exempt: `/healthz`) and the gates `combo` names, by credential.
    async fn start(combo: Combo) -> Self {
        let google = Google::start().await;
        let echo = Echo::default();
        let upstream = echo.start().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let redirect = format!("http://{addr}/auth/callback");
        let client = google.emu.create_oauth_client(&[&redirect]);
        let signin = SignIn::builder(
            client.client_id(),
            ClientSecret::new(client.client_secret()),
            redirect.parse().unwrap(),
        )
        .endpoints(&google.endpoints())
        .keys_url_as(google.emu.oidc_jwks_url(), KeyAlgorithm::Rs256)
        .allowlist(common::allowlist())
        .build()
        .unwrap();
        let identity = combo.inbound.then(|| {
            let verifier = OidcVerifier::builder()
                .audience(AUD)
                .keys_url(google.emu.oidc_jwks_url())
                .build()
                .unwrap();
            RequireIdentityLayer::new(verifier)
                .allowlist(Allowlist::builder().service_account(SA).build().unwrap())
        });
        let iap = combo.iap.then(|| {
            let verifier = IapVerifier::builder()
                .audience(google.emu.iap_audience_app_engine())
                .keys_url(google.emu.iap_jwks_url())
                .build()
                .unwrap();
            RequireIapLayer::new(verifier)
                .allowlist(Allowlist::builder().user_email(MALLORY).build().unwrap())
        });
        let gates = if !combo.signin {
            Gates::from(Layers::new(identity, iap).admission(Admission::ByCredential))
        } else if identity.is_some() || iap.is_some() {
            Gates::from(Layers::new(identity, iap).admission(Admission::ByCredential))
                .with_signin(signin.clone())
        } else {
            Gates::from_signin(signin.clone())
        }
        .signin_exempt_path("/healthz");
        let router = idgate_proxy::router(&upstream, gates).unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        Self {
            google,
            echo,
            addr,
            signin,
        }
    }

    fn browser(&self) -> Browser {
        Browser::new(
            self.addr,
            &format!("http://{}", self.addr),
            self.signin.session_cookie_name(),
        )
    }

    /// A browser signed in as `email` (allowed by the sign-in allowlist).
    async fn signed_in(&self, email: &str) -> Browser {
        let mut browser = self.browser();
        let back = browser.sign_in(&self.google, "/books", email).await;
        assert_eq!(back.status, StatusCode::FOUND, "{}", back.body);
        assert_eq!(back.location(), "/books");
        assert!(browser.session().is_some());
        browser
    }

    fn bearer(&self, email: &str) -> String {
        format!(
            "Bearer {}",
            self.google
                .emu
                .mint(&TokenSpec::service_account(email).audience(AUD))
        )
    }

    fn assertion(&self, email: &str) -> String {
        self.google
            .emu
            .mint(&TokenSpec::iap_user(email).audience(self.google.emu.iap_audience_app_engine()))
    }
}

/// A script's request (not a page navigation).
const SCRIPT: (&str, &str) = ("accept", "application/json");

#[tokio::test]
async fn proxy_signs_people_in_and_forwards_only_the_verified_user() {
    let proxy = Proxy::start(Combo {
        inbound: false,
        iap: false,
        signin: true,
    })
    .await;
    let mut browser = proxy.browser();

    // Signed out: a page is sent to login, a script gets 401; neither reaches the upstream.
    let page = browser.page("/books?shelf=1").await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert_eq!(
        page.location(),
        "/auth/login?return_to=%2Fbooks%3Fshelf%3D1"
    );
    let script = browser.send(Method::GET, "/books", &[SCRIPT]).await;
    assert_eq!(script.status, StatusCode::UNAUTHORIZED);
    let post = browser.send(Method::POST, "/books", &[]).await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);
    assert_eq!(proxy.echo.calls(), 0);

    // The exempt path is forwarded without sign-in, with no caller.
    let health = browser.send(Method::GET, "/healthz", &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(proxy.echo.calls(), 1);
    assert_eq!(header(&proxy.echo.last(), "x-idgate-caller-kind"), None);

    // Sign in through the proxy's own routes (never forwarded).
    let mut browser = proxy.signed_in(ALICE).await;
    assert_eq!(proxy.echo.calls(), 1);
    browser.cookies.insert("theme".into(), "dark".into());
    let books = browser.page("/books").await;
    assert_eq!(books.status, StatusCode::OK, "{}", books.body);
    let seen = proxy.echo.last();
    assert_eq!(
        header(&seen, "x-idgate-caller-kind").as_deref(),
        Some("user")
    );
    assert_eq!(
        header(&seen, "x-idgate-caller-email").as_deref(),
        Some(ALICE)
    );
    assert_eq!(
        header(&seen, "x-idgate-caller-credential").as_deref(),
        Some("session")
    );
    // The upstream gets the other cookies, never idgate's session: it could replay it.
    assert_eq!(cookies(&seen), BTreeSet::from(["theme=dark".to_owned()]));

    // A forged caller header from the signed-in client is replaced; its twin spelling is removed.
    let forged = browser
        .send(
            Method::GET,
            "/books",
            &[
                ("x-idgate-caller-email", "root@example.com"),
                ("x_idgate_caller_email", "root@example.com"),
                ("x-idgate-caller-credential", "iap_assertion"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::OK);
    let seen = proxy.echo.last();
    assert_eq!(
        seen.get_all("x-idgate-caller-email").iter().count(),
        1,
        "{seen:?}"
    );
    assert_eq!(
        header(&seen, "x-idgate-caller-email").as_deref(),
        Some(ALICE)
    );
    assert_eq!(
        header(&seen, "x-idgate-caller-credential").as_deref(),
        Some("session")
    );
    assert!(!seen.contains_key("x_idgate_caller_email"));

    // Signed out with a forged caller header: still 401, never forwarded.
    let calls = proxy.echo.calls();
    let mut stranger = proxy.browser();
    let forged = stranger
        .send(
            Method::GET,
            "/books",
            &[SCRIPT, ("x-idgate-caller-email", ALICE)],
        )
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(proxy.echo.calls(), calls);

    // The sign-in routes are the proxy's: GET on logout is 405, never forwarded.
    let get_logout = browser.send(Method::GET, "/auth/logout", &[]).await;
    assert_eq!(get_logout.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(proxy.echo.calls(), calls);

    // Logout through the proxy: the session ends; the old cookie replayed is signed out.
    let session = browser.session().cloned().unwrap();
    let origin = format!("http://{}", proxy.addr);
    let out = browser.logout(Some(&origin)).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert_eq!(proxy.echo.calls(), calls);
    assert_eq!(browser.page("/books").await.status, StatusCode::FOUND);
    browser.set_session(&session);
    assert_eq!(
        browser.send(Method::GET, "/books", &[SCRIPT]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(proxy.echo.calls(), calls);
}

#[tokio::test]
async fn a_refused_account_gets_403_and_nothing_is_forwarded() {
    let proxy = Proxy::start(Combo {
        inbound: false,
        iap: false,
        signin: true,
    })
    .await;
    let mut browser = proxy.browser();
    let back = browser.sign_in(&proxy.google, "/books", MALLORY).await;
    assert_eq!(back.status, StatusCode::FORBIDDEN, "{}", back.body);
    assert_eq!(browser.page("/books").await.status, StatusCode::FOUND);
    assert_eq!(proxy.echo.calls(), 0);
}

/// A `HEAD` the sign-in gate refuses has no body over h2c either, for sign-in alone and next to a token gate: the
/// gate answers inside axum's method router, which drops a `HEAD` body (hyper's HTTP/2 server does not). See
/// `head_requests_get_no_body_over_http1_and_http2` in proxy.rs for the regression this guards.
#[tokio::test]
async fn a_refused_head_has_no_body_over_h2c() {
    for inbound in [false, true] {
        let proxy = Proxy::start(Combo {
            inbound,
            iap: false,
            signin: true,
        })
        .await;
        let refused = crate::proxy::h2c_client()
            .head(format!("http://{}/books", proxy.addr))
            .header(SCRIPT.0, SCRIPT.1)
            .send()
            .await
            .unwrap_or_else(|e| panic!("inbound {inbound}: a refused HEAD: {e:?}"));
        assert_eq!(
            refused.status(),
            StatusCode::UNAUTHORIZED,
            "inbound {inbound}"
        );
        let body = refused.bytes().await;
        assert!(body.is_ok_and(|b| b.is_empty()), "inbound {inbound}");
        assert_eq!(proxy.echo.calls(), 0);
    }
}

#[tokio::test]
async fn idgate_cookies_never_reach_the_upstream_in_any_spelling() {
    let proxy = Proxy::start(Combo {
        inbound: false,
        iap: false,
        signin: true,
    })
    .await;
    let browser = proxy.signed_in(ALICE).await;
    let session = browser.session().cloned().unwrap();
    let name = proxy.signin.session_cookie_name();
    let prefix = proxy.signin.attempt_cookie_prefix();
    assert_eq!((name, prefix), ("idgate_session", "idgate_signin_"));
    // On the exempt path (forwarded whether signed in or not), as one header and as several (HTTP/2 style).
    let hostile = format!(
        "a=1; {name}={session};b=2 ;  idgate%5Fsession=x; IDGATE_SESSION=y; {prefix}abc=z; %69dgate_signin_q=w; \
         idgate_sessionx=keep; ; c"
    );
    let response = Browser::new(proxy.addr, "http://x", name)
        .send(
            Method::GET,
            "/healthz",
            &[
                ("cookie", &hostile),
                ("cookie", &format!("{name}={session}")),
            ],
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let seen = proxy.echo.last();
    assert_eq!(
        cookies(&seen),
        BTreeSet::from([
            "a=1".to_owned(),
            "b=2".to_owned(),
            "idgate_sessionx=keep".to_owned(),
            "c".to_owned()
        ]),
        "{seen:?}"
    );
    // Only idgate's cookies: no Cookie header at all is left.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .get(format!("http://{}/healthz", proxy.addr))
        .header("cookie", format!("{name}={session}; {prefix}t=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!proxy.echo.last().contains_key("cookie"));

    // Nor can the upstream plant one of idgate's cookies in the browser (session fixation); its others pass.
    let response = client
        .get(format!("http://{}/healthz", proxy.addr))
        .header(
            "x-test-set-cookie",
            format!("{name}=planted; Path=/; HttpOnly"),
        )
        .header("x-test-set-cookie", "idgate%5Fsession=planted")
        .header("x-test-set-cookie", format!(" {prefix}x=1"))
        .header("x-test-set-cookie", "theme=dark; Path=/")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(set, ["theme=dark; Path=/"]);
}

/// The by-credential scenarios shared by every combination with sign-in.
async fn by_credential(combo: Combo) {
    let proxy = Proxy::start(combo).await;
    let mut nobody = proxy.browser();
    // No credential: the sign-in gate answers (302 page, 401 script).
    assert_eq!(nobody.page("/books").await.status, StatusCode::FOUND);
    assert_eq!(
        nobody.send(Method::GET, "/books", &[SCRIPT]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(proxy.echo.calls(), 0);

    // Alice, by her session, judged by the sign-in allowlist.
    let mut alice = proxy.signed_in(ALICE).await;
    let answer = alice.page("/books").await;
    assert_eq!(answer.status, StatusCode::OK, "{combo:?}");
    assert_eq!(
        answer.body,
        "kind=user email=alice@example.com credential=session cookie="
    );
    let calls = proxy.echo.calls();

    if combo.inbound {
        // The service account, by its token alone, judged by the inbound allowlist.
        let sa = proxy.bearer(SA);
        let answer = nobody
            .send(Method::GET, "/jobs", &[("authorization", &sa)])
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{combo:?}");
        assert_eq!(
            header(&proxy.echo.last(), "x-idgate-caller-credential").as_deref(),
            Some("id_token")
        );
        assert_eq!(
            header(&proxy.echo.last(), "x-idgate-caller-email").as_deref(),
            Some(SA)
        );
        // Not on the inbound allowlist: 403, whatever else it carries.
        let other = proxy.bearer(OTHER_SA);
        let answer = alice
            .send(Method::GET, "/jobs", &[("authorization", &other)])
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{combo:?}");
        // A bad token next to Alice's valid session: refused, never a fall-through to the session.
        for bad in ["Bearer forged.token.here", "Basic YWxpY2U6cHc=", ""] {
            for name in ["authorization", "x-serverless-authorization"] {
                let answer = alice.send(Method::GET, "/books", &[(name, bad)]).await;
                assert_eq!(
                    answer.status,
                    StatusCode::UNAUTHORIZED,
                    "{combo:?} {name}: {bad:?}"
                );
            }
        }
        // Alice's user ID token is not on the inbound allowlist either: her session does not rescue it.
        let user_token = format!(
            "Bearer {}",
            proxy
                .google
                .emu
                .mint(&TokenSpec::service_account(ALICE).audience(AUD))
        );
        let answer = alice
            .send(Method::GET, "/books", &[("authorization", &user_token)])
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{combo:?}");
        // A valid token with Alice's session: the token decides; the caller is the service account.
        let answer = alice
            .send(Method::GET, "/jobs", &[("authorization", &sa)])
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            header(&proxy.echo.last(), "x-idgate-caller-email").as_deref(),
            Some(SA)
        );
    } else {
        // Without [inbound], a bearer header is not idgate's: the session decides, and the header passes.
        let answer = alice
            .send(
                Method::GET,
                "/books",
                &[("authorization", "Bearer upstream-own")],
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{combo:?}");
        let seen = proxy.echo.last();
        assert_eq!(
            header(&seen, "x-idgate-caller-credential").as_deref(),
            Some("session")
        );
        assert_eq!(
            header(&seen, "authorization").as_deref(),
            Some("Bearer upstream-own")
        );
    }

    if combo.iap {
        // Mallory, refused by the sign-in allowlist, is admitted by IAP's own allowlist through her assertion.
        let mallory = proxy.assertion(MALLORY);
        let answer = nobody
            .send(
                Method::GET,
                "/books",
                &[("x-goog-iap-jwt-assertion", &mallory)],
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{combo:?}");
        let seen = proxy.echo.last();
        assert_eq!(
            header(&seen, "x-idgate-caller-kind").as_deref(),
            Some("iap_user")
        );
        assert_eq!(
            header(&seen, "x-idgate-caller-credential").as_deref(),
            Some("iap_assertion")
        );
        // Alice's assertion is judged by IAP's allowlist (not on it): 403, her valid session notwithstanding.
        let alice_assertion = proxy.assertion(ALICE);
        let answer = alice
            .send(
                Method::GET,
                "/books",
                &[("x-goog-iap-jwt-assertion", &alice_assertion)],
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{combo:?}");
        // A forged assertion with a valid session (and a valid token, when [inbound] is there): refused.
        let sa = proxy.bearer(SA);
        let answer = alice
            .send(
                Method::GET,
                "/books",
                &[
                    ("x-goog-iap-jwt-assertion", "e30.e30.c2ln"),
                    ("authorization", &sa),
                ],
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{combo:?}");
        if combo.inbound {
            // Admitted by the assertion, the unverified bearer next to it never reaches the upstream.
            let answer = nobody
                .send(
                    Method::GET,
                    "/books",
                    &[
                        ("x-goog-iap-jwt-assertion", &mallory),
                        ("authorization", &sa),
                    ],
                )
                .await;
            assert_eq!(answer.status, StatusCode::OK);
            assert!(!proxy.echo.last().contains_key("authorization"));
        }
    }

    // Whatever admitted a request, idgate's cookies stayed home.
    for seen in proxy.echo.0.lock().unwrap().iter() {
        assert!(
            cookies(seen).iter().all(|c| !c.starts_with("idgate_")),
            "{seen:?}"
        );
    }
    assert!(proxy.echo.calls() > calls);
}

#[tokio::test]
async fn by_credential_inbound_and_signin() {
    by_credential(Combo {
        inbound: true,
        iap: false,
        signin: true,
    })
    .await;
}

#[tokio::test]
async fn by_credential_iap_and_signin() {
    by_credential(Combo {
        inbound: false,
        iap: true,
        signin: true,
    })
    .await;
}

#[tokio::test]
async fn by_credential_inbound_iap_and_signin() {
    by_credential(Combo {
        inbound: true,
        iap: true,
        signin: true,
    })
    .await;
}

#[tokio::test]
async fn by_credential_inbound_and_iap_through_the_proxy() {
    let proxy = Proxy::start(Combo {
        inbound: true,
        iap: true,
        signin: false,
    })
    .await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let get = |headers: Vec<(&'static str, String)>| {
        let mut request = client.get(format!("http://{}/jobs", proxy.addr));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().status() }
    };
    let sa = proxy.bearer(SA);
    let mallory = proxy.assertion(MALLORY);

    // The service account by its token, Mallory by her assertion: each says which credential admitted it.
    assert_eq!(
        get(vec![("authorization", sa.clone())]).await,
        StatusCode::OK
    );
    let seen = proxy.echo.last();
    assert_eq!(
        header(&seen, "x-idgate-caller-credential").as_deref(),
        Some("id_token")
    );
    assert_eq!(header(&seen, "authorization"), Some(sa.clone()));
    assert_eq!(
        get(vec![("x-goog-iap-jwt-assertion", mallory.clone())]).await,
        StatusCode::OK
    );
    assert_eq!(
        header(&proxy.echo.last(), "x-idgate-caller-credential").as_deref(),
        Some("iap_assertion")
    );
    // Each refused by its own allowlist.
    assert_eq!(
        get(vec![("authorization", proxy.bearer(OTHER_SA))]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(vec![("x-goog-iap-jwt-assertion", proxy.assertion(ALICE))]).await,
        StatusCode::FORBIDDEN
    );
    // Nothing: the ID-token gate's 401. A forged token: 401.
    assert_eq!(get(vec![]).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(vec![("authorization", "Bearer forged".to_owned())]).await,
        StatusCode::UNAUTHORIZED
    );
    // A forged caller header gets nowhere, and is replaced when a credential admits the request.
    let calls = proxy.echo.calls();
    assert_eq!(
        get(vec![("x-idgate-caller-email", SA.to_owned())]).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(proxy.echo.calls(), calls);
    assert_eq!(
        get(vec![
            ("x-goog-iap-jwt-assertion", mallory),
            ("x-idgate-caller-email", SA.to_owned()),
            ("x-idgate-caller-credential", "id_token".to_owned()),
            ("authorization", sa),
        ])
        .await,
        StatusCode::OK
    );
    let seen = proxy.echo.last();
    assert_eq!(
        header(&seen, "x-idgate-caller-email").as_deref(),
        Some(MALLORY)
    );
    assert_eq!(
        header(&seen, "x-idgate-caller-credential").as_deref(),
        Some("iap_assertion")
    );
    // Admitted by the assertion: the token next to it was not verified and does not reach the upstream.
    assert!(!seen.contains_key("authorization"));
}

/// A configuration with `[signin]` and `[inbound]` for the emulator at `base`.
fn config(base: &str, secret: &std::path::Path, admission: &str) -> String {
    format!(
        r#"{admission}
[google]
base_url = "{base}"
[inbound]
audiences = ["{AUD}"]
[inbound.allow]
service_accounts = ["{SA}"]
[signin]
client_id = "123-abc.apps.googleusercontent.com"
client_secret_file = '{}'
redirect_url = "http://127.0.0.1:8080/auth/callback"
exempt_paths = ["/healthz"]
[signin.allow]
domains = ["example.com"]
"#,
        secret.display()
    )
}

#[tokio::test]
async fn a_config_stacking_signin_with_another_gate_is_refused_at_startup() {
    let google = Google::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "GOCSPX-test\n").unwrap();
    let base = google.emu.base_url().to_string();
    let base = base.trim_end_matches('/');

    // Without [admission], the default "all" cannot guard one upstream with a session and a token: refused,
    // naming the line of [signin].
    let stacked = Config::from_toml_str(&config(base, &secret, "")).unwrap();
    let error = Gates::from_config(&stacked).await.unwrap_err();
    assert!(
        matches!(error, GatesError::StackedSignIn { at: Some(at) } if at.line == 8),
        "{error:?}"
    );
    assert!(error.to_string().starts_with("line 8: [signin]"), "{error}");
    assert!(error.to_string().contains("by_credential"), "{error}");
    assert!(idgate_proxy::describe(&stacked).contains("REFUSES TO START"));
    assert!(
        idgate_proxy::router(&"http://127.0.0.1:1".parse().unwrap(), {
            let layers = idgate_server::from_config(&stacked).await.unwrap();
            let signin = SignIn::from_config(&stacked).unwrap();
            Gates::from(layers).with_signin(signin)
        })
        .is_err()
    );

    // By credential: built.
    let by = Config::from_toml_str(&config(
        base,
        &secret,
        "[admission]\nmode = \"by_credential\"",
    ))
    .unwrap();
    let gates = Gates::from_config(&by).await.unwrap();
    assert!(gates.layers().is_some() && gates.signin().is_some());
    let text = idgate_proxy::describe(&by);
    assert!(
        text.contains("else the session cookie -> [signin]"),
        "{text}"
    );
    assert!(
        text.contains("forwarded without sign-in: /healthz"),
        "{text}"
    );
}
