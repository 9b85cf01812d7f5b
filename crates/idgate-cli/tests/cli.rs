//! The `idgate` binary as a user runs it: exit codes, what it prints, and the demo's verdict.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use idgate_emulator::{Emulator, TokenSpec};

const AUDIENCE: &str = "https://my-service-abc123-uc.a.run.app";

fn idgate() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin!("idgate"))
}

/// Runs `cmd` off the async runtime (the emulator keeps serving on its worker threads meanwhile).
async fn run(mut cmd: Command, stdin: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("idgate runs");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_every_expected_outcome_and_exits_zero() {
    let out = run(
        {
            let mut c = idgate();
            c.arg("demo");
            c
        },
        None,
    )
    .await;
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("All 24 outcomes are the expected ones"),
        "{stdout}"
    );
    assert!(!stdout.contains("!!"), "{stdout}");
    // It explains itself in the layers' own words.
    for why in [
        "not_allowed",
        "expired",
        "wrong_audience",
        "signature_removed",
        "missing_iap_assertion",
    ] {
        assert!(stdout.contains(why), "{why} missing from:\n{stdout}");
    }
    // One authorized Google API call end to end: the bucket list with a read-only storage token, the same call with
    // a token lacking the scope, and with none, each with Cloud Storage's own answer.
    for row in [
        "access token, scope devstorage.read_only     200  200  buckets: demo-project-invoices, demo-project.appspot.com",
        "access token, scope userinfo.email           403  403  forbidden: Provided scope(s) are not authorized",
        "nothing                                      401  401  required: Anonymous caller does not have storage.buckets.list",
    ] {
        assert!(stdout.contains(row), "{row:?} missing from:\n{stdout}");
    }
    // People sign in with Google through the `[signin]` table: each row's expected and actual status, and why.
    assert!(stdout.contains("[signin]"), "{stdout}");
    for (sends, outcome) in [
        (
            "browser: Sign in with Google, then GET /",
            "200  200  Hello Alice Liddell <alice@example.com>",
        ),
        (
            "browser: Sign in with Google (not allowed)",
            "403  403  Access denied",
        ),
        (
            "script, signed out: GET / (JSON)",
            "401  401  {\"error\":\"sign_in_required\"}",
        ),
        (
            "alice's session cookie, tampered",
            "302  302  to /auth/login?return_to=%2F",
        ),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.contains(sends))
            .unwrap_or_else(|| panic!("{sends:?} missing from:\n{stdout}"));
        assert!(line.contains(outcome), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_accepts_a_genuine_token_and_explains_a_bad_one() {
    let emulator = Emulator::start().await.unwrap();
    let base = emulator.base_url().to_string();
    let good = emulator.mint(
        &TokenSpec::service_account("runner@other-proj.iam.gserviceaccount.com").audience(AUDIENCE),
    );
    let verify = |token: String, extra: &[&str]| {
        let mut c = idgate();
        c.args(["verify", "--audience", AUDIENCE, "--google-base-url", &base])
            .args(extra);
        run(c, Some(token))
    };

    let out = verify(good.clone(), &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verified"], true);
    assert_eq!(json["caller"]["kind"], "service_account");
    assert_eq!(
        json["caller"]["email"],
        "runner@other-proj.iam.gserviceaccount.com"
    );
    assert_eq!(json["caller"]["project"], "other-proj");

    // The same token against PEM certificates, pinned.
    let out = verify(
        good.clone(),
        &[
            "--keys-format",
            "pem",
            "--keys-url",
            emulator.oidc_pem_certs_url().as_str(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    // ...and with the format read from the document, as google-auth does with its default oauth2/v1/certs URL
    // (issue #10, item 9: this failed with "missing field `keys`").
    let out = verify(
        good.clone(),
        &["--keys-url", emulator.oidc_pem_certs_url().as_str()],
    )
    .await;
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // A pinned format that does not match the document is an error, not a guess.
    let out = verify(
        good.clone(),
        &[
            "--keys-format",
            "jwks",
            "--keys-url",
            emulator.oidc_pem_certs_url().as_str(),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    // The family still comes from the token kind: IAP's keys at an OIDC key URL are refused, and the reason says so.
    for iap_keys in [emulator.iap_jwks_url(), emulator.iap_pem_url()] {
        let out = verify(good.clone(), &["--keys-url", iap_keys.as_str()]).await;
        assert_eq!(out.status.code(), Some(1), "{iap_keys}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["reason"], "keys_unavailable", "{json}");
        let detail = json["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("ES256 keys, not the RS256 keys") && detail.contains("IAP"),
            "{detail}"
        );
    }

    let expired = emulator.mint(
        &TokenSpec::service_account("runner@other-proj.iam.gserviceaccount.com")
            .audience(AUDIENCE)
            .expired(),
    );
    let out = verify(expired.clone(), &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verified"], false);
    assert_eq!(json["reason"], "expired");
    assert!(
        !text(&out.stdout).contains(&expired),
        "the token is never echoed"
    );

    let out = verify(good, &["--audience", "https://unrelated.example"]).await;
    assert!(out.status.success(), "any configured audience is accepted");

    let iap = emulator.mint(
        &TokenSpec::iap_user("alice@example.com").audience(emulator.iap_audience_app_engine()),
    );
    let mut c = idgate();
    c.args([
        "verify",
        "--iap",
        "--audience",
        &emulator.iap_audience_app_engine(),
        "--google-base-url",
        &base,
        &iap,
    ]);
    let out = run(c, None).await;
    assert!(out.status.success(), "{}", text(&out.stdout));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["caller"]["kind"], "iap_user");
    // IAP's PEM document (the IAP sample's `iap/verify/public_key`) works as a key URL with no format flag.
    let mut c = idgate();
    c.args([
        "verify",
        "--iap",
        "--audience",
        &emulator.iap_audience_app_engine(),
        "--keys-url",
        emulator.iap_pem_url().as_str(),
        &iap,
    ]);
    let out = run(c, None).await;
    assert!(out.status.success(), "{}", text(&out.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decode_says_loudly_that_nothing_was_verified() {
    let emulator = Emulator::start().await.unwrap();
    let token = emulator.mint(
        &TokenSpec::service_account("a@b-proj.iam.gserviceaccount.com")
            .audience(AUDIENCE)
            .tampered_signature(),
    );
    let mut c = idgate();
    c.arg("decode");
    let out = run(c, Some(format!("{token}\n"))).await;
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("NOTHING was verified"));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verified"], false);
    assert_eq!(json["claims"]["aud"], AUDIENCE);
    assert_eq!(json["header"]["alg"], "RS256");

    let mut c = idgate();
    c.args(["decode", "not-a-jwt"]);
    let out = run(c, None).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a JWT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_mints_through_a_key_file_and_through_impersonation() {
    let emulator = Emulator::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = emulator
        .create_service_account("deployer@ci-proj.iam.gserviceaccount.com")
        .write_key_file(dir.path())
        .unwrap();
    let _runtime = emulator.create_service_account("runtime@app-proj.iam.gserviceaccount.com");
    emulator.allow_impersonation(
        "deployer@ci-proj.iam.gserviceaccount.com",
        "runtime@app-proj.iam.gserviceaccount.com",
    );
    let base = emulator.base_url().to_string();
    let token_for = |extra: &[&str]| {
        let mut c = idgate();
        c.args(["token", "--audience", AUDIENCE, "--google-base-url", &base])
            .args(extra)
            .env("GOOGLE_APPLICATION_CREDENTIALS", &key)
            .env_remove("GCE_METADATA_HOST");
        run(c, None)
    };
    let check = |out: Output, email: &str| {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let token = text(&out.stdout).trim().to_owned();
        let mut c = idgate();
        c.args([
            "verify",
            "--audience",
            AUDIENCE,
            "--google-base-url",
            &base,
            &token,
        ]);
        let email = email.to_owned();
        async move {
            let out = run(c, None).await;
            assert!(out.status.success(), "{}", text(&out.stdout));
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(json["caller"]["email"], email);
        }
    };
    check(
        token_for(&[]).await,
        "deployer@ci-proj.iam.gserviceaccount.com",
    )
    .await;
    check(
        token_for(&["--impersonate", "runtime@app-proj.iam.gserviceaccount.com"]).await,
        "runtime@app-proj.iam.gserviceaccount.com",
    )
    .await;
}

const STORAGE_READ: &str = "https://www.googleapis.com/auth/devstorage.read_only";
const GMAIL_READ: &str = "https://www.googleapis.com/auth/gmail.readonly";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_access_tokens_for_scopes_subjects_and_impersonation() {
    let emulator = Emulator::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let deployer = "deployer@ci-proj.iam.gserviceaccount.com";
    let runtime = "runtime@app-proj.iam.gserviceaccount.com";
    let key = emulator
        .create_service_account(deployer)
        .write_key_file(dir.path())
        .unwrap();
    let _runtime = emulator.create_service_account(runtime);
    let base = emulator.base_url().to_string();
    let token = |extra: &[&str]| {
        let mut c = idgate();
        c.args(["token", "--google-base-url", &base])
            .args(extra)
            .env("GOOGLE_APPLICATION_CREDENTIALS", &key)
            .env_remove("GCE_METADATA_HOST");
        run(c, None)
    };
    let minted = |out: Output| {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let token = text(&out.stdout).trim().to_owned();
        emulator
            .tokeninfo(&token)
            .expect("an access token the emulator issued")
    };

    // The key file's own account, scopes in any order, one of them twice.
    let info = minted(
        token(&[
            "--scopes",
            &format!("{STORAGE_READ},{GMAIL_READ},{STORAGE_READ}"),
        ])
        .await,
    );
    assert_eq!(info.email(), deployer);
    assert_eq!(info.subject(), None);
    assert_eq!(
        info.scopes(),
        [STORAGE_READ, GMAIL_READ],
        "sorted, once each"
    );

    // Domain-wide delegation with the key: refused until the Admin console authorizes it, and the error says so.
    let refused = token(&["--scopes", GMAIL_READ, "--subject", "alice@example.com"]).await;
    assert_eq!(refused.status.code(), Some(2));
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("Admin console"), "{stderr}");
    assert!(stderr.contains(GMAIL_READ), "{stderr}");
    assert!(text(&refused.stdout).is_empty());
    emulator.enable_domain_wide_delegation(deployer, &[GMAIL_READ]);
    let info = minted(token(&["--scopes", GMAIL_READ, "--subject", "alice@example.com"]).await);
    assert_eq!(info.subject(), Some("alice@example.com"));
    assert_eq!(info.scopes(), [GMAIL_READ]);

    // Impersonation: refused until the caller may act as the target; then the token is the target's.
    let refused = token(&["--scopes", STORAGE_READ, "--impersonate", runtime]).await;
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stdout));
    emulator.allow_impersonation(deployer, runtime);
    let info = minted(token(&["--scopes", STORAGE_READ, "--impersonate", runtime]).await);
    assert_eq!(info.email(), runtime);

    // Keyless domain-wide delegation: signJwt as the target, then the JWT-bearer grant with `sub`.
    emulator.enable_domain_wide_delegation(runtime, &[GMAIL_READ]);
    let info = minted(
        token(&[
            "--scopes",
            GMAIL_READ,
            "--impersonate",
            runtime,
            "--subject",
            "bob@example.com",
        ])
        .await,
    );
    assert_eq!(info.email(), runtime);
    assert_eq!(info.subject(), Some("bob@example.com"));

    // ID token or access token, never both, never neither; --subject only with --scopes.
    for args in [
        &["--audience", AUDIENCE, "--scopes", STORAGE_READ][..],
        &[][..],
        &["--audience", AUDIENCE, "--subject", "alice@example.com"][..],
        &["--scopes", " , "][..],
    ] {
        let out = token(args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stdout).is_empty(), "{args:?}");
        assert!(!text(&out.stderr).is_empty(), "{args:?}");
    }
}

/// A running `idgate emulator`; killed when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The status line and body of `GET /oauth2/v3/certs` sent to `addr` with `Host: host`.
fn get_with_host(addr: &str, host: &str) -> (String, String) {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /oauth2/v3/certs HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// `idgate emulator` as a developer starts it: the Host rule with `--allow-host`, and key files only the owner
/// can read.
#[test]
fn emulator_answers_loopback_and_allowed_hosts_and_writes_owner_only_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = idgate();
    command
        .args(["emulator", "--port", "0", "--allow-host", "emulator.test"])
        .args(["--service-account", "svc@cli-proj.iam.gserviceaccount.com"])
        .arg("--key-dir")
        .arg(dir.path());
    let (_running, banner, addr) = start_emulator(command);
    let port = addr.rsplit(':').next().unwrap();
    assert!(banner.contains("emulator.test"), "{banner}");

    for ok in [
        addr.clone(),
        format!("localhost:{port}"),
        "emulator.test".to_owned(),
    ] {
        let (status, body) = get_with_host(&addr, &ok);
        assert!(status.contains(" 200 "), "{ok}: {status}");
        assert!(body.contains("\"keys\""), "{ok}: {body}");
    }
    for bad in ["evil.example".to_owned(), format!("evil.example:{port}")] {
        let (status, body) = get_with_host(&addr, &bad);
        assert!(status.contains(" 403 "), "{bad}: {status}");
        assert!(body.contains("--allow-host"), "{bad}: {body}");
    }

    let key_file = banner
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("export GOOGLE_APPLICATION_CREDENTIALS=")
        })
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no key file in:\n{banner}"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(key_file).unwrap()).unwrap();
    assert_eq!(json["client_email"], "svc@cli-proj.iam.gserviceaccount.com");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(format!("{mode:o}"), "600", "{key_file}");
    }
}

/// `idgate emulator --oauth-client URI` serves Sign in with Google to a developer: it prints the client ID and
/// secret, writes the secret owner-only, lists the test users, and prints a `[signin]` table `check-config` accepts;
/// the client it registered completes the flow at the emulator (chooser, code, exchange with that secret).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_registers_an_oauth_client_for_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let callback = "http://127.0.0.1:8080/auth/callback";
    let other = "http://localhost:8080/auth/callback";
    let mut command = idgate();
    command
        .args(["emulator", "--port", "0"])
        .args(["--oauth-client", callback, "--oauth-client", other])
        .arg("--key-dir")
        .arg(dir.path());
    let (_running, banner, addr) = start_emulator(command);
    let value = |prefix: &str| {
        banner
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {prefix} in:\n{banner}"))
            .to_owned()
    };
    let client_id = value("export IDGATE_CLIENT_ID=");
    let secret = value("export IDGATE_CLIENT_SECRET=");
    assert!(
        client_id.ends_with(".apps.googleusercontent.com"),
        "{banner}"
    );
    assert!(secret.starts_with("GOCSPX-"), "{banner}");
    for user in [
        "alice@example.com (Alice Liddell, hd example.com)",
        "bob@example.com",
        "mallory@gmail.com (Mallory Mayhem)",
    ] {
        assert!(banner.contains(user), "{user} missing from:\n{banner}");
    }

    // The secret file: owner-only, holding the printed secret, named by the [signin] table.
    let secret_file = value("client_secret_file = ");
    let secret_file = secret_file.trim_matches('"');
    assert_eq!(
        std::fs::read_to_string(secret_file).unwrap().trim_end(),
        secret
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(secret_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(format!("{mode:o}"), "600", "{secret_file}");
    }

    // What the banner says to put in idgate.toml is a config idgate accepts.
    let toml: String = banner
        .lines()
        .skip_while(|l| l.trim() != "[google]")
        .take_while(|l| !l.trim().is_empty())
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    assert!(toml.contains("[signin]"), "{banner}");
    assert!(
        toml.contains(&format!("redirect_url = \"{callback}\"")),
        "{toml}"
    );
    let config = dir.path().join("idgate.toml");
    std::fs::write(&config, &toml).unwrap();
    let out = run(
        {
            let mut c = idgate();
            c.arg("check-config").arg(&config);
            c
        },
        None,
    )
    .await;
    assert!(out.status.success(), "{toml}\n{}", text(&out.stderr));

    // The client is registered for both URIs: the second one gets the account chooser, a click gets a code, and
    // the code is exchanged with the printed secret.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://{addr}");
    let authorize = |redirect_uri: &str| {
        http.get(format!("{base}/o/oauth2/v2/auth")).query(&[
            ("client_id", client_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("response_type", "code"),
            ("scope", "openid email profile"),
            ("state", "s1"),
            ("nonce", "n1"),
        ])
    };
    let chooser = authorize(other).send().await.unwrap();
    assert_eq!(chooser.status(), 200);
    let page = chooser.text().await.unwrap();
    assert!(page.contains("data-email=\"alice@example.com\""), "{page}");
    let request_id = page
        .split("name=\"request\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let chosen = http
        .post(format!("{base}/o/oauth2/v2/auth/oauthchooseaccount"))
        .form(&[("request", request_id), ("email", "alice@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), 302);
    let back = url::Url::parse(chosen.headers()["location"].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with(other), "{back}");
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let tokens = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", other),
            ("client_id", client_id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(tokens.status(), 200);
    let tokens: serde_json::Value = tokens.json().await.unwrap();
    assert!(tokens["id_token"].is_string(), "{tokens}");

    // A redirect URI the client did not register: Google's error page, no redirect.
    let refused = authorize("http://127.0.0.1:9999/auth/callback")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.headers().get("location").is_none());

    // Only http(s) redirect URIs.
    let bad = idgate()
        .args([
            "emulator",
            "--port",
            "0",
            "--oauth-client",
            "ftp://127.0.0.1/cb",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("http(s)"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn check_config_prints_the_policy_or_the_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[inbound]\naudiences = [\"https://svc.example.com\"]\n[inbound.allow]\nproject_ids = [\"caller-app\"]\n\
         [proxy]\nmax_connections = 100\n",
    )
    .unwrap();
    let out = idgate().arg("check-config").arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("caller-app"), "{stdout}");
    // The proxy's listener limits, the defaults filled in.
    assert!(stdout.contains("connections at once: 100"), "{stdout}");
    assert!(stdout.contains("request head within: 10 s"), "{stdout}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[inbound]\naudiences = [\"https://svc.example.com\"]\n[inbound.allow]\nservice_accounts = [\"*\"]\n",
    )
    .unwrap();
    let out = idgate().arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bad.toml:4:"), "{stderr}");
}

#[test]
fn check_config_says_what_the_proxy_does_with_sign_in_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let signin = "[signin]\nclient_id = \"123-abc.apps.googleusercontent.com\"\nclient_secret_env = \"X\"\n\
                  redirect_url = \"https://app.example.com/auth/callback\"\nexempt_paths = [\"/healthz\"]\n\
                  [signin.allow]\ndomains = [\"example.com\"]\n";
    let inbound = "[inbound]\naudiences = [\"https://svc.example.com\"]\n[inbound.allow]\nproject_ids = [\"caller-app\"]\n";
    let write = |name: &str, src: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, src).unwrap();
        path
    };

    // Sign-in alone: the oauth2-proxy model.
    let out = idgate()
        .arg("check-config")
        .arg(write("signin.toml", signin.to_owned()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("As `idgate proxy`:"), "{stdout}");
    assert!(
        stdout.contains("serves /auth/login, /auth/callback and /auth/logout itself"),
        "{stdout}"
    );
    assert!(
        stdout.contains("forwarded without sign-in: /healthz"),
        "{stdout}"
    );

    // With [inbound] and no [admission]: a valid file (a library may apply them to different routes), but the
    // proxy would refuse it, and says where and why.
    let out = idgate()
        .arg("check-config")
        .arg(write("stacked.toml", format!("{inbound}{signin}")))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("REFUSES TO START: line 5: [signin]"),
        "{stdout}"
    );

    // By credential: the precedence, spelled out.
    let out = idgate()
        .arg("check-config")
        .arg(write(
            "by.toml",
            format!("[admission]\nmode = \"by_credential\"\n{inbound}{signin}"),
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("[admission] by_credential"), "{stdout}");
    assert!(
        stdout.contains("Authorization / X-Serverless-Authorization present -> [inbound]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("else the session cookie -> [signin]"),
        "{stdout}"
    );

    // "all" written out with [signin] and [inbound]: refused at its line.
    let out = idgate()
        .arg("check-config")
        .arg(write(
            "all.toml",
            format!("{inbound}{signin}[admission]\nmode = \"all\"\n"),
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("all.toml:13:8:"), "{stderr}");
    assert!(stderr.contains("by_credential"), "{stderr}");
}

#[test]
fn help_reads_well() {
    let out = idgate().arg("--help").output().unwrap();
    let help = text(&out.stdout);
    for sub in [
        "demo",
        "emulator",
        "proxy",
        "verify",
        "decode",
        "token",
        "sign-blob",
        "verify-blob",
        "whoami",
        "check-config",
    ] {
        assert!(help.contains(sub), "{sub} missing from --help");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_blob_signs_as_the_service_account_and_verify_blob_checks_it_as_a_third_party() {
    let emulator = Emulator::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = "orders@shop-prod.iam.gserviceaccount.com";
    let runtime = "runtime@shop-prod.iam.gserviceaccount.com";
    let key = emulator.create_service_account(app);
    let key_path = key.write_key_file(dir.path()).unwrap();
    let _runtime = emulator.create_service_account(runtime);
    let message = dir.path().join("message.txt");
    std::fs::write(&message, b"order 42 shipped").unwrap();
    let base = emulator.base_url().to_string();

    let sign = |extra: &[&str]| {
        let mut c = idgate();
        c.args(["sign-blob", "--google-base-url", &base])
            .args(extra)
            .arg(&message)
            .env("GOOGLE_APPLICATION_CREDENTIALS", &key_path)
            .env_remove("GCE_METADATA_HOST");
        run(c, None)
    };
    let verify = |signer: &str, key_id: &str, signature: &str, file: &std::path::Path| {
        let mut c = idgate();
        c.args(["verify-blob", "--google-base-url", &base])
            .args([
                "--signer",
                signer,
                "--key-id",
                key_id,
                "--signature",
                signature,
            ])
            .arg(file);
        run(c, None)
    };
    let json = |out: &Output| -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out.stdout)))
    };

    // Locally, with the key file: the key ID is the file's private_key_id.
    let out = sign(&[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let local = json(&out);
    assert_eq!(local["signer"], app);
    assert_eq!(local["key_id"], key.private_key_id());
    let signature = local["signature"].as_str().unwrap().to_owned();
    assert!(!text(&out.stdout).contains("PRIVATE KEY"));
    let out = verify(app, key.private_key_id(), &signature, &message).await;
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert_eq!(json(&out)["verified"], true);

    // A tampered file, a wrong key ID, another account, garbage: exit 1 with the reason.
    let tampered = dir.path().join("tampered.txt");
    std::fs::write(&tampered, b"order 43 shipped").unwrap();
    let other_key = emulator.create_service_account(app);
    for (signer, key_id, signature, file, reason) in [
        (
            app,
            key.private_key_id(),
            signature.as_str(),
            &tampered,
            "invalid_signature",
        ),
        (
            app,
            other_key.private_key_id(),
            signature.as_str(),
            &message,
            "invalid_signature",
        ),
        (
            app,
            "no-such-key",
            signature.as_str(),
            &message,
            "unknown_key_id",
        ),
        (
            runtime,
            key.private_key_id(),
            signature.as_str(),
            &message,
            "unknown_key_id",
        ),
        (
            "not-an-email",
            key.private_key_id(),
            signature.as_str(),
            &message,
            "invalid_account",
        ),
        (
            app,
            key.private_key_id(),
            "%%%",
            &message,
            "malformed_signature",
        ),
    ] {
        let out = verify(signer, key_id, signature, file).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "{reason}: {}",
            text(&out.stdout)
        );
        let answer = json(&out);
        assert_eq!(answer["verified"], false);
        assert_eq!(answer["reason"], reason, "{answer}");
    }

    // Through IAM as another account: refused until the caller may act as it, and the error names the permission.
    let refused = sign(&["--impersonate", runtime]).await;
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stdout));
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("iam.serviceAccounts.signBlob"), "{stderr}");
    assert!(
        stderr.contains("roles/iam.serviceAccountTokenCreator"),
        "{stderr}"
    );
    emulator.allow_impersonation(app, runtime);
    let out = sign(&["--impersonate", runtime]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let iam = json(&out);
    assert_eq!(iam["signer"], runtime);
    let key_id = iam["key_id"].as_str().unwrap();
    assert_eq!(Some(key_id.to_owned()), emulator.system_key_id(runtime));
    let out = verify(
        runtime,
        key_id,
        iam["signature"].as_str().unwrap(),
        &message,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stdout));
}

/// Starts `idgate emulator` (`command`) and reads its banner: the running child, the banner, and `host:port`.
fn start_emulator(mut command: Command) -> (Running, String, String) {
    use std::io::BufRead as _;

    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("idgate runs");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    // Read the banner on a thread, so that a silent emulator fails the test instead of hanging it.
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    while !banner.iter().any(|l: &String| l.contains("Ctrl-C to stop")) {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("the banner did not finish ({e}):\n{}", banner.join("\n")));
        banner.push(line);
    }
    let banner = banner.join("\n");
    let addr = banner
        .split("identity endpoints at http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no base URL in:\n{banner}"))
        .to_owned();
    (running, banner, addr)
}

/// `idgate emulator --allow-impersonation SA=SA` lets the metadata server's account sign as itself through IAM, so
/// `idgate sign-blob` on "Google Cloud" (GCE_METADATA_HOST, no key file) signs with IAM signBlob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_blob_on_google_cloud_signs_through_iam_as_the_attached_account() {
    let app = "orders-app@appspot.gserviceaccount.com";
    let dir = tempfile::tempdir().unwrap();
    let message = dir.path().join("message.txt");
    std::fs::write(&message, b"order 42 shipped").unwrap();
    let sign = |addr: &str| {
        let mut c = idgate();
        c.args(["sign-blob", "-"])
            .env("GCE_METADATA_HOST", addr)
            .env("IDGATE_GOOGLE_BASE_URL", format!("http://{addr}/"))
            .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
            .env("CLOUDSDK_CONFIG", dir.path());
        run(c, Some("order 42 shipped".to_owned()))
    };

    // Without the grant, IAM refuses and the error says what to grant (exit 2: could not sign).
    let mut command = idgate();
    command.args(["emulator", "--port", "0", "--metadata-service-account", app]);
    let (running, _, addr) = start_emulator(command);
    let refused = sign(&addr).await;
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stdout));
    assert!(text(&refused.stderr).contains("iam.serviceAccounts.signBlob"));
    drop(running);

    let mut command = idgate();
    command
        .args(["emulator", "--port", "0", "--metadata-service-account", app])
        .args(["--allow-impersonation", &format!("{app}={app}")]);
    let (_running, banner, addr) = start_emulator(command);
    assert!(
        banner.contains(&format!("{app} may act as {app}")),
        "{banner}"
    );
    let out = sign(&addr).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let signed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(signed["signer"], app);
    let mut verify = idgate();
    verify
        .args([
            "verify-blob",
            "--google-base-url",
            &format!("http://{addr}/"),
        ])
        .args([
            "--signer",
            app,
            "--key-id",
            signed["key_id"].as_str().unwrap(),
        ])
        .args(["--signature", signed["signature"].as_str().unwrap()])
        .arg(&message);
    let out = run(verify, None).await;
    assert!(out.status.success(), "{}", text(&out.stdout));

    let bad = idgate()
        .args([
            "emulator",
            "--port",
            "0",
            "--allow-impersonation",
            "no-equals-sign",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("CALLER=TARGET"),
        "{}",
        text(&bad.stderr)
    );
}

/// Found attacking issue #13: `verify-blob` exited 1 ("refused") when the account's keys could not even be
/// fetched, so a script could not tell a forged signature from an outage. Now: 1 refused, 2 could not check.
/// Hostile arguments are refusals with their reason, from standard input too, and nothing they carry reaches the
/// output unescaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_blob_tells_refused_from_could_not_check() {
    let emulator = Emulator::start().await.unwrap();
    let app = "orders@shop-prod.iam.gserviceaccount.com";
    let key = emulator.create_service_account(app);
    let dir = tempfile::tempdir().unwrap();
    let message = dir.path().join("message.txt");
    std::fs::write(&message, b"order 42 shipped").unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}/", l.local_addr().unwrap().port())
    };
    let base = emulator.base_url().to_string();
    let verify = |base: &str, key_id: &str, signature: &str, file: &str, stdin: Option<String>| {
        let mut c = idgate();
        c.args(["verify-blob", "--google-base-url", base])
            .args([
                "--signer",
                app,
                "--key-id",
                key_id,
                "--signature",
                signature,
            ])
            .arg(file);
        run(c, stdin)
    };
    let file = message.to_str().unwrap();

    let out = verify(&closed, key.private_key_id(), "AAAA", file, None).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["verified"], false);
    assert_eq!(answer["reason"], "keys_unavailable");

    for (key_id, signature, file, stdin, reason) in [
        ("k\u{1b}[31m\nforged", "AAAA", file, None, "unknown_key_id"),
        ("", "AAAA", file, None, "invalid_key_id"),
        (
            key.private_key_id(),
            "!!not base64!!",
            file,
            None,
            "malformed_signature",
        ),
        (
            key.private_key_id(),
            "AAAA",
            "-",
            Some("piped".to_owned()),
            "invalid_signature",
        ),
    ] {
        let out = verify(&base, key_id, signature, file, stdin).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "{reason}: {}",
            text(&out.stdout)
        );
        let stdout = text(&out.stdout);
        assert!(
            !stdout.contains('\u{1b}') && !stdout.contains("\nforged"),
            "{stdout}"
        );
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(answer["reason"], reason, "{answer}");
    }
}
