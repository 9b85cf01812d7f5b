//! Sign-in across replicas, against a real `redis-server`: two (or three) instances of the app share one Redis, the
//! browser is sent to whichever the test says (as a load balancer would), and faults are played by stopping the
//! traffic between the app and Redis.

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Answer, Browser, Google, allowlist, router};
use http::StatusCode;
use idgate_core::keys::KeyAlgorithm;
use idgate_emulator::OAuthClient;
use idgate_signin::{ClientSecret, RedisStore, SessionStore as _, SignIn, SignInBuilder};
use redis_server::{Fault, FaultProxy, RedisServer, Reply};

const ORIGIN: &str = "https://app.example.com";
const PREFIX: &str = "idgate:signin:";

/// Replicas of one app behind `ORIGIN`, sharing one OAuth client and one Redis.
struct Replicas {
    signins: Vec<SignIn>,
    addrs: Vec<SocketAddr>,
    client: OAuthClient,
}

impl Replicas {
    async fn start(
        google: &Google,
        n: usize,
        redis_url: &str,
        configure: impl Fn(SignInBuilder) -> SignInBuilder,
    ) -> Self {
        let client = google
            .emu
            .create_oauth_client(&[&format!("{ORIGIN}/auth/callback")]);
        let mut replicas = Self {
            signins: Vec::new(),
            addrs: Vec::new(),
            client: client.clone(),
        };
        for _ in 0..n {
            let (signin, addr) = serve_replica(google, &client, redis_url, &configure).await;
            replicas.signins.push(signin);
            replicas.addrs.push(addr);
        }
        replicas
    }

    fn browser(&self) -> Browser {
        Browser::new(self.addrs[0], ORIGIN, self.signins[0].session_cookie_name())
    }
}

async fn serve_replica(
    google: &Google,
    client: &OAuthClient,
    redis_url: &str,
    configure: &impl Fn(SignInBuilder) -> SignInBuilder,
) -> (SignIn, SocketAddr) {
    let store = RedisStore::open(redis_url)
        .unwrap()
        .timeout(Duration::from_millis(300))
        .unwrap();
    let builder = SignIn::builder(
        client.client_id(),
        ClientSecret::new(client.client_secret()),
        format!("{ORIGIN}/auth/callback").parse().unwrap(),
    )
    .endpoints(&google.endpoints())
    .keys_url_as(google.emu.oidc_jwks_url(), KeyAlgorithm::Rs256)
    .allowlist(allowlist())
    .redis_store(store)
    .local_cache(Duration::ZERO);
    let signin = configure(builder).build().expect("sign-in");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(&signin);
    tokio::spawn(async move { axum::serve(listener, app).await });
    (signin, addr)
}

/// A script's request (no redirect to Google for it: 401 when signed out).
async fn script(browser: &mut Browser, path: &str) -> Answer {
    browser
        .send(http::Method::GET, path, &[("accept", "application/json")])
        .await
}

async fn logout(browser: &mut Browser, path: &str) -> Answer {
    browser
        .send(http::Method::POST, path, &[("origin", ORIGIN)])
        .await
}

/// Polls `check` until it holds (at most `within`): for what is bounded, not instantaneous (a reconnection).
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_started_on_one_replica_is_served_and_ended_by_the_others() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let google = Google::start().await;
    let replicas = Replicas::start(&google, 2, &redis.url(), |b| b).await;
    let (a, b) = (replicas.addrs[0], replicas.addrs[1]);
    let mut browser = replicas.browser();

    // The login starts on A; Google sends the browser back to B: the attempt is in Redis, not in A.
    let authorization = browser.at(a).login("/books?shelf=1").await;
    assert_eq!(redis.keys(&format!("{PREFIX}attempt:*")).len(), 1);
    let attempt_key = &redis.keys(&format!("{PREFIX}attempt:*"))[0];
    assert!((1..=600).contains(&redis.ttl(attempt_key)));
    let callback = google.consent(&authorization, "alice@example.com");
    let signed_in = browser.at(b).page(callback.as_str()).await;
    assert_eq!(signed_in.status, StatusCode::FOUND, "{}", signed_in.body);
    assert_eq!(signed_in.location(), "/books?shelf=1");
    assert!(
        redis.keys(&format!("{PREFIX}attempt:*")).is_empty(),
        "the attempt is spent"
    );

    // One session, whole, with an expiry; one entry in alice's index; the cookie holds only its ID.
    let sessions = redis.keys(&format!("{PREFIX}session:*"));
    assert_eq!(sessions.len(), 1);
    let record = redis.get(&sessions[0]).unwrap();
    assert!(record.contains("alice@example.com"), "{record}");
    assert!((1..=3600).contains(&redis.ttl(&sessions[0])));
    assert_eq!(redis.keys(&format!("{PREFIX}user:*")).len(), 1);
    let cookie = browser.session().unwrap().clone();
    assert_eq!(sessions[0], format!("{PREFIX}session:{cookie}"));

    // Served by either replica.
    for replica in [b, a, b] {
        let books = browser.at(replica).page("/books").await;
        assert_eq!(books.status, StatusCode::OK, "{}", books.body);
        assert!(books.body.contains("alice@example.com"), "{}", books.body);
    }

    // The same callback replayed on A: the attempt was redeemed once, everywhere.
    let mut thief = replicas.browser();
    thief.cookies = browser.cookies.clone();
    let replay = thief.at(a).page(callback.as_str()).await;
    assert_eq!(replay.reason(), Some("unknown_state"), "{}", replay.body);

    // Logged out on B: signed out on A at once (no local copy in this test).
    let out = logout(browser.at(b), "/auth/logout").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(redis.keys(&format!("{PREFIX}session:*")).is_empty());
    browser.set_session(&cookie);
    let after = script(browser.at(a), "/books").await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{}", after.body);
    let page = browser.at(a).page("/books").await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert!(page.location().starts_with("/auth/login?return_to="));
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_out_everywhere_ends_every_session_of_the_user_on_every_replica() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let google = Google::start().await;
    let replicas = Replicas::start(&google, 2, &redis.url(), |b| b).await;
    let (a, b) = (replicas.addrs[0], replicas.addrs[1]);

    // Alice on her laptop (through A) and her phone (through B); Bob through A.
    let mut laptop = replicas.browser();
    let mut phone = replicas.browser();
    let mut bob = replicas.browser();
    for (browser, at, email) in [
        (&mut laptop, a, "alice@example.com"),
        (&mut phone, b, "alice@example.com"),
        (&mut bob, a, "bob@example.com"),
    ] {
        let answer = browser.at(at).sign_in(&google, "/books", email).await;
        assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    }
    assert_eq!(redis.keys(&format!("{PREFIX}session:*")).len(), 3);

    let out = logout(laptop.at(a), "/auth/logout?everywhere=1").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert_eq!(
        script(phone.at(b), "/books").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        script(phone.at(a), "/books").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        script(bob.at(b), "/books").await.status,
        StatusCode::OK,
        "Bob is not Alice"
    );
    assert_eq!(redis.keys(&format!("{PREFIX}session:*")).len(), 1);

    // The same from code (an administrator deprovisioning Bob), through the other replica.
    let sub = google
        .emu
        .users()
        .into_iter()
        .find(|u| u.email() == "bob@example.com")
        .unwrap()
        .sub()
        .to_owned();
    assert_eq!(
        replicas.signins[1].sign_out_everywhere(&sub).await.unwrap(),
        1
    );
    assert_eq!(
        script(bob.at(a), "/books").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        replicas.signins[0].sign_out_everywhere(&sub).await.unwrap(),
        0
    );
    assert!(
        redis.keys(&format!("{PREFIX}*")).is_empty(),
        "{:?}",
        redis.keys("*")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_local_copy_a_logout_elsewhere_arrives_within_its_bound() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let google = Google::start().await;
    let replicas = Replicas::start(&google, 2, &redis.url(), |b| {
        b.local_cache(Duration::from_secs(1))
    })
    .await;
    let (a, b) = (replicas.addrs[0], replicas.addrs[1]);
    let mut browser = replicas.browser();
    browser
        .at(a)
        .sign_in(&google, "/books", "alice@example.com")
        .await;
    assert_eq!(script(browser.at(a), "/books").await.status, StatusCode::OK);
    let cookie = browser.session().unwrap().clone();
    logout(browser.at(b), "/auth/logout").await;
    browser.set_session(&cookie);
    // A may answer from its copy for up to a second, never longer than that plus a store read.
    let signed_out = eventually(Duration::from_secs(20), || {
        let mut browser = browser.clone();
        async move { script(browser.at(a), "/books").await.status == StatusCode::UNAUTHORIZED }
    })
    .await;
    assert!(signed_out, "replica A kept the logged-out session");
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_or_silent_answers_503_lets_nobody_in_and_recovers() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let google = Google::start().await;
    let proxy = FaultProxy::start(redis.addr()).await;
    let replicas = Replicas::start(&google, 1, &proxy.url(), |b| b).await;
    let mut alice = replicas.browser();
    alice.sign_in(&google, "/books", "alice@example.com").await;
    assert_eq!(script(&mut alice, "/books").await.status, StatusCode::OK);
    // A login started before the fault, whose callback arrives during it.
    let mut bob = replicas.browser();
    let authorization = bob.login("/books").await;
    let callback = google.consent(&authorization, "bob@example.com");

    for fault in [Fault::Down, Fault::Silent] {
        proxy.set(fault);
        // Protected routes: 503 for scripts and pages, never the user, never a redirect to sign in again.
        let books = script(&mut alice, "/books").await;
        assert_eq!(
            books.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{fault:?}: {}",
            books.body
        );
        let page = alice.page("/books").await;
        assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{fault:?}");
        assert_eq!(page.reason(), Some("session_store"));
        // A public page shows the signed-out view: nobody is said to be signed in.
        let home = alice.page("/").await;
        assert_eq!((home.status, home.body.as_str()), (StatusCode::OK, "login"));
        // The sign-in pages say the service is unavailable.
        let mut carol = replicas.browser();
        let login = carol.page("/auth/login").await;
        assert_eq!(login.status, StatusCode::SERVICE_UNAVAILABLE, "{fault:?}");
        assert_eq!(login.reason(), Some("session_store"));
        assert!(login.body.contains("try again"), "{}", login.body);
        let answer = bob.page(callback.as_str()).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{fault:?}: {}",
            answer.body
        );
        assert!(bob.session().is_none(), "no session cookie during a fault");
        // Logout cannot delete the session: it says so rather than pretending.
        let out = logout(&mut alice, "/auth/logout").await;
        assert_eq!(out.status, StatusCode::SERVICE_UNAVAILABLE, "{fault:?}");
        assert!(alice.session().is_some());
    }

    proxy.set(Fault::None);
    let recovered = eventually(Duration::from_secs(20), || {
        let mut alice = alice.clone();
        async move { script(&mut alice, "/books").await.status == StatusCode::OK }
    })
    .await;
    assert!(recovered, "the session is served again once Redis is back");
    // Bob's callback, refused during the fault before anything was spent, now completes.
    let answer = bob.page(callback.as_str()).await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    assert_eq!(script(&mut bob, "/books").await.status, StatusCode::OK);
    assert_eq!(redis.keys(&format!("{PREFIX}session:*")).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_redis_is_bounded_by_the_timeout() {
    let Some(redis) = RedisServer::start(&["--enable-debug-command", "yes"]) else {
        return;
    };
    let google = Google::start().await;
    let replicas = Replicas::start(&google, 1, &redis.url(), |b| b).await;
    let mut alice = replicas.browser();
    alice.sign_in(&google, "/books", "alice@example.com").await;
    // Redis itself stalls (DEBUG SLEEP blocks the server) for longer than the 300 ms timeout.
    let addr = redis.addr();
    let sleeper = std::thread::spawn(move || {
        let port = addr.port();
        let server = redis_server_at(port);
        server.command(&["DEBUG", "SLEEP", "3"])
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let books = script(&mut alice, "/books").await;
    assert_eq!(
        books.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        books.body
    );
    assert_eq!(sleeper.join().unwrap(), Reply::Status("OK".into()));
    let recovered = eventually(Duration::from_secs(20), || {
        let mut alice = alice.clone();
        async move { script(&mut alice, "/books").await.status == StatusCode::OK }
    })
    .await;
    assert!(recovered);
}

/// A handle on an already running server (for a command from another thread).
fn redis_server_at(port: u16) -> RawRedis {
    RawRedis { port }
}

struct RawRedis {
    port: u16,
}

impl RawRedis {
    fn command(&self, args: &[&str]) -> Reply {
        use std::io::{BufRead, BufReader, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(out.as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        Reply::Status(line.trim_end().trim_start_matches('+').to_owned())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_whose_session_cannot_be_written_leaves_nothing_behind() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    // A Redis user that may read and delete but not SET: the session write is refused half-way through sign-in.
    assert_eq!(
        redis.command(&[
            "ACL", "SETUSER", "app", "on", ">s3cret", "~*", "&*", "+@all", "-set"
        ]),
        Reply::Status("OK".into())
    );
    let google = Google::start().await;
    let url = format!("redis://app:s3cret@127.0.0.1:{}/0", redis.port);
    let replicas = Replicas::start(&google, 1, &url, |b| b).await;
    let mut alice = replicas.browser();
    let answer = alice.sign_in(&google, "/books", "alice@example.com").await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert_eq!(answer.reason(), Some("session_store"));
    assert!(alice.session().is_none());
    assert!(redis.keys(&format!("{PREFIX}session:*")).is_empty());
    assert!(redis.keys(&format!("{PREFIX}user:*")).is_empty());
    assert_eq!(
        script(&mut alice, "/books").await.status,
        StatusCode::UNAUTHORIZED
    );

    // AUTH by URL: a wrong password is a 503, never a panic, and the message does not carry it.
    let wrong = format!("redis://app:wrong@127.0.0.1:{}/0", redis.port);
    let replicas = Replicas::start(&google, 1, &wrong, |b| b).await;
    let mut bob = replicas.browser();
    let login = bob.page("/auth/login").await;
    assert_eq!(login.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!login.body.contains("wrong"), "{}", login.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_save_never_brings_back_a_deleted_session() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let store = RedisStore::open(&redis.url()).unwrap();
    let mut record = tower_sessions::session::Record {
        id: tower_sessions::session::Id::default(),
        data: Default::default(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    store.create(&mut record).await.unwrap();
    assert!(store.load(&record.id).await.unwrap().is_some());
    store.delete(&record.id).await.unwrap();
    // A request that read the session before a logout elsewhere and saves it after.
    store.save(&record).await.unwrap();
    assert!(store.load(&record.id).await.unwrap().is_none());
    assert!(redis.keys(&format!("{PREFIX}session:*")).is_empty());
    // A record stored under another session's key is not that session.
    let mut other = record.clone();
    store.create(&mut other).await.unwrap();
    let forged = redis.get(&format!("{PREFIX}session:{}", other.id)).unwrap();
    let victim = tower_sessions::session::Id::default();
    redis.command(&["SET", &format!("{PREFIX}session:{victim}"), &forged]);
    assert!(store.load(&victim).await.unwrap().is_none());
    // Garbage in the store is an error, not a panic.
    redis.command(&["SET", &format!("{PREFIX}session:{victim}"), "{not json"]);
    assert!(store.load(&victim).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_configuration_builds_a_redis_store() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let google = Google::start().await;
    let client = google
        .emu
        .create_oauth_client(&["http://127.0.0.1:1/auth/callback"]);
    let secret = std::env::temp_dir().join(format!("idgate-redis-secret-{}", std::process::id()));
    std::fs::write(&secret, client.client_secret()).unwrap();
    let config = idgate_core::Config::from_toml_str(&format!(
        "[signin]\nclient_id = \"{}\"\nclient_secret_file = '{}'\nredirect_url = \"http://127.0.0.1:1/auth/callback\"\n\
         [signin.allow]\ndomains = [\"example.com\"]\n\
         [signin.sessions]\nstore = \"redis\"\nurl = \"{}\"\nkey_prefix = \"cfg:\"\ntimeout_ms = 200\n\
         [google]\nbase_url = \"{}\"\n",
        client.client_id(),
        secret.display(),
        redis.url(),
        google.emu.base_url(),
    ))
    .unwrap();
    let signin = SignIn::from_config(&config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(&signin);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut browser = Browser::new(addr, "http://127.0.0.1:1", signin.session_cookie_name());
    browser.login("/").await;
    assert_eq!(redis.keys("cfg:attempt:*").len(), 1);
    let _ = std::fs::remove_file(secret);
}

/// A certificate authority and a server certificate for 127.0.0.1 it signed, as PEM files under a fresh directory:
/// `(directory, CA PEM)`.
fn tls_files() -> (std::path::PathBuf, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("idgate-redis-tls-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "idgate test Redis CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    (dir, ca.pem())
}

#[tokio::test(flavor = "multi_thread")]
async fn rediss_checks_the_servers_certificate_against_the_configured_ca() {
    let (dir, ca_pem) = tls_files();
    let Some(redis) = RedisServer::start_tls(&dir.join("server.pem"), &dir.join("server.key"))
    else {
        return;
    };
    let google = Google::start().await;
    let url = format!("rediss://127.0.0.1:{}/0", redis.port);
    let client = google
        .emu
        .create_oauth_client(&[&format!("{ORIGIN}/auth/callback")]);
    let with_store = |store: RedisStore| move |b: SignInBuilder| b.redis_store(store.clone());

    // Trusting the server's CA: sign-in works over TLS.
    let trusted = RedisStore::open(&url)
        .unwrap()
        .ca_certificate(ca_pem.clone())
        .unwrap();
    let (signin, addr) = serve_replica(&google, &client, &url, &with_store(trusted)).await;
    let mut alice = Browser::new(addr, ORIGIN, signin.session_cookie_name());
    let answer = alice.sign_in(&google, "/books", "alice@example.com").await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    assert_eq!(script(&mut alice, "/books").await.status, StatusCode::OK);

    // The system's roots do not know that CA: nothing is sent to a server that cannot prove who it is.
    let (signin, addr) = serve_replica(&google, &client, &url, &|b| b).await;
    let mut bob = Browser::new(addr, ORIGIN, signin.session_cookie_name());
    assert_eq!(
        bob.page("/auth/login").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // The right CA, but the certificate does not name the host asked for.
    let localhost = format!("rediss://localhost:{}/0", redis.port);
    let misnamed = RedisStore::open(&localhost)
        .unwrap()
        .ca_certificate(ca_pem)
        .unwrap();
    let (signin, addr) = serve_replica(&google, &client, &url, &with_store(misnamed)).await;
    let mut carol = Browser::new(addr, ORIGIN, signin.session_cookie_name());
    assert_eq!(
        carol.page("/auth/login").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    drop(redis);
    let _ = std::fs::remove_dir_all(dir);
}

/// A script calling the login route in a loop, keeping no cookie (each call a new "browser", so the per-browser
/// limit never applies), on every replica: the attempts kept in Redis stay within `max_pending_attempts`, as they do
/// in memory, instead of one key per request for ten minutes each (Redis filling up, then refusing every write or
/// evicting sessions). The newest survive: a person who starts a login after the flood still signs in.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_logins_keeps_at_most_max_pending_attempts_in_redis() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let google = Google::start().await;
    let replicas = Replicas::start(&google, 2, &redis.url(), |b| b.max_pending_attempts(20)).await;
    // The longest return URL kept, so each attempt is as large as it gets.
    let long = format!("/{}", "a".repeat(2000));
    let mut victim = replicas.browser();
    let early = victim.login("/books").await;
    for i in 0..80 {
        let mut script = Browser::new(
            replicas.addrs[i % 2],
            ORIGIN,
            replicas.signins[0].session_cookie_name(),
        );
        let answer = script
            .page(&format!("/auth/login?return_to={}", common::enc(&long)))
            .await;
        assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    }
    let kept = redis.keys(&format!("{PREFIX}attempt:*")).len();
    assert!(kept <= 20, "{kept} attempts kept in Redis for 80 logins");
    // The oldest went first: the attempt started before the flood is gone, as in memory.
    let callback = google.consent(&early, "alice@example.com");
    let late = victim.page(callback.as_str()).await;
    assert_eq!(late.reason(), Some("unknown_state"), "{}", late.body);
    // One started after the flood completes, on either replica, and frees its place.
    let mut alice = replicas.browser();
    let signed_in = alice.sign_in(&google, "/books", "alice@example.com").await;
    assert_eq!(signed_in.status, StatusCode::FOUND, "{}", signed_in.body);
    assert_eq!(signed_in.location(), "/books");
    assert!(redis.keys(&format!("{PREFIX}attempt:*")).len() <= 20);
    match redis.command(&["ZCARD", &format!("{PREFIX}attempts")]) {
        Reply::Integer(n) => assert!(n <= 20, "{n} attempts indexed"),
        other => panic!("ZCARD answered {other:?}"),
    }
}

/// An out-of-range `local_cache` or session lifetime given to the builder is an error from `build`, not a panic
/// (the caches below refuse durations beyond 1000 years by panicking).
#[tokio::test]
async fn absurd_durations_given_to_the_builder_are_refused_not_a_panic() {
    let builder = || {
        SignIn::builder(
            "123-abc.apps.googleusercontent.com",
            ClientSecret::new("secret"),
            format!("{ORIGIN}/auth/callback").parse().unwrap(),
        )
        .allowlist(allowlist())
    };
    fn catch(f: impl FnOnce() -> bool) -> std::thread::Result<bool> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
    }
    for built in [
        catch(|| builder().local_cache(Duration::MAX).build().is_err()),
        catch(|| builder().session_lifetime(Duration::MAX).build().is_err()),
        catch(|| {
            builder()
                .session_lifetime(Duration::MAX)
                .idle_timeout(Duration::MAX)
                .build()
                .is_err()
        }),
    ] {
        assert!(matches!(built, Ok(true)), "{built:?}");
    }
    let store = RedisStore::open("redis://127.0.0.1:1/0").unwrap();
    let built = catch(|| {
        builder()
            .redis_store(store.clone())
            .local_cache(Duration::MAX)
            .build()
            .is_err()
    });
    assert!(matches!(built, Ok(true)), "{built:?}");
}

/// Whoever can read Redis (a replica's backup, `MONITOR`, a leaked dump) must not find Google tokens there: the
/// documentation promises "never a token in clear". The token logout revokes is in the session record; what is
/// stored must not be a bearer token Google's endpoints accept, and logout still revokes it.
#[tokio::test(flavor = "multi_thread")]
async fn the_session_record_in_redis_holds_no_usable_google_token() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let google = Google::start().await;
    let replicas = Replicas::start(&google, 2, &redis.url(), |b| b).await;
    let mut alice = replicas.browser();
    let signed_in = alice.sign_in(&google, "/books", "alice@example.com").await;
    assert_eq!(signed_in.status, StatusCode::FOUND, "{}", signed_in.body);
    let key = format!("{PREFIX}session:{}", alice.session().unwrap());
    let record: serde_json::Value = serde_json::from_str(&redis.get(&key).unwrap()).unwrap();
    let stored = record["data"][common::TOKEN_KEY]
        .as_str()
        .expect("the token logout revokes is kept in the session")
        .to_owned();
    let userinfo = reqwest::Client::new()
        .get(google.endpoints().userinfo)
        .bearer_auth(&stored)
        .send()
        .await
        .unwrap();
    assert!(
        userinfo.status().is_client_error(),
        "the value stored in Redis is a live Google token: userinfo answered {}",
        userinfo.status()
    );
    // Every replica opens it: a logout on B revokes the token A's sign-in stored.
    let client = &replicas.client;
    let token = common::open_token(client.client_id(), client.client_secret(), &stored)
        .expect("the replicas' key opens it");
    assert_ne!(token, stored);
    assert!(!google.emu.is_revoked(&token));
    let out = logout(alice.at(replicas.addrs[1]), "/auth/logout").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert!(google.emu.is_revoked(&token));
    assert!(redis.keys(&format!("{PREFIX}session:*")).is_empty());

    // A token written in clear into a record (by hand, or before tokens were sealed) is not sent anywhere, and the
    // logout still ends the session.
    let mut bob = replicas.browser();
    let signed_in = bob.sign_in(&google, "/books", "bob@example.com").await;
    assert_eq!(signed_in.status, StatusCode::FOUND, "{}", signed_in.body);
    let key = format!("{PREFIX}session:{}", bob.session().unwrap());
    // Edited as text: the record's ID is a 128-bit number that a JSON value would round.
    let raw = redis.get(&key).unwrap();
    let record: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let sealed = record["data"][common::TOKEN_KEY]
        .as_str()
        .unwrap()
        .to_owned();
    let clear = common::open_token(client.client_id(), client.client_secret(), &sealed).unwrap();
    let edited = raw.replace(&sealed, &clear);
    assert_ne!(edited, raw);
    redis.command(&["SET", &key, &edited, "KEEPTTL"]);
    let out = logout(bob.at(replicas.addrs[0]), "/auth/logout").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert!(!google.emu.is_revoked(&clear));
    assert!(redis.keys(&format!("{PREFIX}session:*")).is_empty());
}

/// One user signing in again and again (a script holding their Google account) cannot grow their session index in
/// Redis without bound (nor make "sign out everywhere" one round trip per sign-in ever made): past the most sessions
/// a user may have, the oldest is ended; none escapes "sign out everywhere".
#[tokio::test(flavor = "multi_thread")]
async fn a_users_session_index_in_redis_is_bounded_and_nothing_escapes_it() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let google = Google::start().await;
    let replicas = Replicas::start(&google, 2, &redis.url(), |b| b).await;
    let mut kept = replicas.browser();
    let first = kept.sign_in(&google, "/books", "alice@example.com").await;
    assert_eq!(first.status, StatusCode::FOUND, "{}", first.body);
    let mut last = replicas.browser();
    for i in 0..300 {
        last = replicas.browser();
        last.at(replicas.addrs[i % 2]);
        let signed_in = last.sign_in(&google, "/books", "alice@example.com").await;
        assert_eq!(signed_in.status, StatusCode::FOUND, "{}", signed_in.body);
    }
    let index = redis.keys(&format!("{PREFIX}user:*"));
    assert_eq!(index.len(), 1);
    let count = match redis.command(&["TYPE", &index[0]]) {
        Reply::Status(t) if t == "set" => "SCARD",
        _ => "ZCARD",
    };
    let members = match redis.command(&[count, &index[0]]) {
        Reply::Integer(n) => n,
        other => panic!("{count} answered {other:?}"),
    };
    assert!(members <= 256, "{members} sessions indexed");
    assert!(redis.keys(&format!("{PREFIX}session:*")).len() <= 256);
    assert_eq!(
        script(&mut kept, "/books").await.status,
        StatusCode::UNAUTHORIZED,
        "the oldest session was ended"
    );
    let out = logout(&mut last, "/auth/logout?everywhere=1").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert!(redis.keys(&format!("{PREFIX}session:*")).is_empty());
}

/// "Sign out everywhere" that fails half-way (Redis refuses to read the user's index) must leave the user able to
/// try again: the 503 page says so. Ending this browser's session first would leave a retry with nobody to sign out
/// (a 303 that ends nothing) while every other session, perhaps a thief's, lives on.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_sign_out_everywhere_can_be_tried_again() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    assert_eq!(
        redis.command(&[
            "ACL",
            "SETUSER",
            "app",
            "on",
            ">s3cret",
            "~*",
            "&*",
            "+@all",
            "-zrange",
            "-smembers"
        ]),
        Reply::Status("OK".into())
    );
    let google = Google::start().await;
    let url = format!("redis://app:s3cret@127.0.0.1:{}/0", redis.port);
    let replicas = Replicas::start(&google, 2, &url, |b| b).await;
    let (a, b) = (replicas.addrs[0], replicas.addrs[1]);
    let mut thief = replicas.browser();
    let stolen = thief
        .at(a)
        .sign_in(&google, "/books", "alice@example.com")
        .await;
    assert_eq!(stolen.status, StatusCode::FOUND, "{}", stolen.body);
    let mut alice = replicas.browser();
    let signed_in = alice
        .at(b)
        .sign_in(&google, "/books", "alice@example.com")
        .await;
    assert_eq!(signed_in.status, StatusCode::FOUND, "{}", signed_in.body);

    let failed = logout(&mut alice, "/auth/logout?everywhere=1").await;
    assert_eq!(
        failed.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        failed.body
    );
    assert_eq!(failed.reason(), Some("session_store"));
    assert_eq!(
        script(&mut alice, "/books").await.status,
        StatusCode::OK,
        "the browser that asked is still signed in, so it can ask again"
    );

    // Redis works again; the user tries again: every session ends, the thief's included.
    assert_eq!(
        redis.command(&["ACL", "SETUSER", "app", "+zrange", "+smembers"]),
        Reply::Status("OK".into())
    );
    let again = logout(&mut alice, "/auth/logout?everywhere=1").await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    assert_eq!(
        script(thief.at(b), "/books").await.status,
        StatusCode::UNAUTHORIZED,
        "the other session survived a retried sign out everywhere"
    );
    assert!(redis.keys(&format!("{PREFIX}session:*")).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_users_google_tokens_are_sealed_in_redis_and_any_replica_can_use_them() {
    use idgate_core::config::AccessType;
    use idgate_signin::{TokenEncryptionKey, UserAccessToken};
    const DRIVE: &str = "https://www.googleapis.com/auth/drive.readonly";
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let google = Google::start().await;
    let key = TokenEncryptionKey::generate();
    let client = google
        .emu
        .create_oauth_client(&[&format!("{ORIGIN}/auth/callback")]);
    let mut addrs = Vec::new();
    let mut cookie_name = "";
    for _ in 0..2 {
        let signin = SignIn::builder(
            client.client_id(),
            ClientSecret::new(client.client_secret()),
            format!("{ORIGIN}/auth/callback").parse().unwrap(),
        )
        .endpoints(&google.endpoints())
        .keys_url_as(google.emu.oidc_jwks_url(), KeyAlgorithm::Rs256)
        .allowlist(allowlist())
        .redis_store(RedisStore::open(&redis.url()).unwrap())
        .scopes(["openid", "email", "profile", DRIVE])
        .access_type(AccessType::Offline)
        .token_encryption_key(key.clone())
        .build()
        .unwrap();
        cookie_name = signin.session_cookie_name();
        let app = axum::Router::new()
            .route(
                "/api/token",
                axum::routing::get(|token: UserAccessToken| async move {
                    format!("{} {}", token.secret(), token.has_scope(DRIVE))
                }),
            )
            .merge(signin.router())
            .layer(signin.layer());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let mut browser = Browser::new(addrs[0], ORIGIN, cookie_name);
    let answer = browser.sign_in(&google, "/", "alice@example.com").await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    let token = script(browser.at(addrs[1]), "/api/token").await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.body);
    let (access_token, drive) = token.body.split_once(' ').unwrap();
    assert_eq!(drive, "true");

    // In Redis: the session, but neither the refresh token nor the access token in clear.
    let refresh_tokens = google
        .emu
        .refresh_tokens(client.client_id(), "alice@example.com");
    assert_eq!(refresh_tokens.len(), 1);
    let session = redis.keys(&format!("{PREFIX}session:*"));
    let record = redis.get(&session[0]).unwrap();
    assert!(record.contains("sealed"), "{record}");
    assert!(
        !record.contains(&refresh_tokens[0]),
        "the refresh token is in Redis in clear"
    );
    assert!(
        !record.contains(access_token),
        "the access token is in Redis in clear"
    );
}
