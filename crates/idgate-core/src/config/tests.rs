use super::*;
use crate::identity::test_support::{app, iap_caller, id_token_caller};
use crate::policy::{AllowReason, Decision, DenyReason};

/// A minimal valid `[inbound]`, for tests that add one mistake elsewhere.
const INBOUND: &str = "[inbound]\naudiences = [\"https://svc.example\"]\n[inbound.allow]\nproject_ids = [\"other-app-id\"]\n";

fn err(src: &str) -> ConfigError {
    match Config::from_toml_str(src) {
        Ok(config) => panic!("accepted:\n{src}\n---\n{config}"),
        Err(e) => e,
    }
}

/// Asserts the kind and the 1-based line and column of the error `src` produces, and returns it.
#[track_caller]
fn assert_err(src: &str, kind: ConfigErrorKind, line: usize, column: usize) -> ConfigError {
    let e = err(src);
    assert_eq!(
        (e.kind(), e.line(), e.column()),
        (kind, Some(line), Some(column)),
        "{e}"
    );
    e
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

#[test]
fn location_counts_lines_and_characters() {
    let src = "ab\ncdé\r\nfgh";
    assert_eq!(Location::of(src, 0), Location { line: 1, column: 1 });
    assert_eq!(Location::of(src, 3), Location { line: 2, column: 1 });
    // `é` is two bytes but one column.
    assert_eq!(Location::of(src, 7), Location { line: 2, column: 4 });
    assert_eq!(Location::of(src, 9), Location { line: 3, column: 1 });
    // Offsets inside a character or past the end do not panic.
    assert_eq!(Location::of(src, 6), Location { line: 2, column: 3 });
    assert_eq!(Location::of(src, 1000), Location { line: 3, column: 4 });
}

#[test]
fn minimal_inbound() {
    let config = Config::from_toml_str(INBOUND).unwrap();
    let inbound = config.inbound().unwrap();
    assert_eq!(inbound.audiences(), ["https://svc.example"]);
    assert_eq!(inbound.audience_match(), AudienceMatch::Exact);
    assert_eq!(inbound.leeway(), Duration::from_secs(30));
    assert!(!inbound.trusts_legacy_appengine_header());
    assert!(inbound.legacy_header_trust().is_none());
    assert!(!inbound.trusts_cloud_run_invoker_check());
    assert!(inbound.exempt_paths().is_empty());
    assert!(!inbound.is_exempt("/healthz"));
    assert!(config.iap().is_none());
    assert_eq!(config.endpoints(), Endpoints::default());
    assert_eq!(config.google(), &GoogleConfig::default());
    let allowlist = inbound.allowlist();
    assert_eq!(
        allowlist.decide(&id_token_caller("other-app-id@appspot.gserviceaccount.com")),
        Decision::Allow {
            reason: AllowReason::ProjectDefaultServiceAccount
        }
    );
    assert_eq!(
        allowlist.decide(&id_token_caller(
            "runner@other-app-id.iam.gserviceaccount.com"
        )),
        Decision::Deny {
            reason: DenyReason::NotListed
        }
    );
    let verifier = inbound.oidc_verifier(config.google()).unwrap();
    assert!(format!("{verifier:?}").contains("https://svc.example"));
}

#[test]
fn full_example_fixture() {
    let config = Config::from_path(fixture("example.toml")).unwrap();
    assert_eq!(config.admission(), Admission::ByCredential);
    let inbound = config.inbound().unwrap();
    assert_eq!(inbound.audience_match(), AudienceMatch::Origin);
    assert_eq!(inbound.leeway(), Duration::from_secs(60));
    assert!(inbound.legacy_header_trust().is_some());
    assert!(inbound.is_exempt("/readyz"));
    assert!(!inbound.is_exempt("/readyz/"));
    let allowlist = inbound.allowlist();
    assert!(allowlist.admits_all_service_accounts_of_listed_projects());
    assert_eq!(
        allowlist.service_accounts().collect::<Vec<_>>(),
        [
            "123456789012-compute@developer.gserviceaccount.com",
            "runner@other-proj.iam.gserviceaccount.com"
        ]
    );
    assert_eq!(
        allowlist.decide(&id_token_caller(
            "any-name@other-app-id.iam.gserviceaccount.com"
        )),
        Decision::Allow {
            reason: AllowReason::ProjectServiceAccount
        }
    );
    assert_eq!(
        allowlist.decide(&app("example.com:scoped-app")),
        Decision::Allow {
            reason: AllowReason::LegacyAppIdListed
        }
    );

    let iap = config.iap().unwrap();
    assert_eq!(iap.audience(), &IapAudience::Discover);
    assert_eq!(iap.audience().configured(), None);
    assert!(iap.compare_plain_user_headers());
    let iap_allow = iap.allowlist().unwrap();
    assert_eq!(
        iap_allow.decide(&iap_caller(
            "deployer@ci-proj.iam.gserviceaccount.com",
            None
        )),
        Decision::Allow {
            reason: AllowReason::UserEmailListed
        }
    );
    assert_eq!(
        iap_allow.decide(&iap_caller("x@partner.example", None)),
        Decision::Allow {
            reason: AllowReason::UserDomainListed
        }
    );

    // base_url puts everything on the emulator; per-endpoint keys override it; formats are honoured.
    let google = config.google();
    assert_eq!(
        google.oidc_keys(),
        (
            Url::parse("http://127.0.0.1:8085/oauth2/v1/certs").unwrap(),
            KeyFormat::OidcPemCertificates.into()
        )
    );
    assert_eq!(
        google.iap_keys(),
        (
            Url::parse("http://localhost:8085/iap/verify/public_key").unwrap(),
            KeyFormat::IapPem.into()
        )
    );
    assert_eq!(
        config.endpoints().metadata.as_str(),
        "http://127.0.0.1:8085/computeMetadata/v1/"
    );

    let proxy = config.proxy();
    assert_eq!(proxy.header_read_timeout(), Duration::from_secs(5));
    assert_eq!(proxy.idle_timeout(), Duration::from_secs(120));
    assert_eq!(proxy.max_connections(), 256);
    assert_eq!(proxy.max_request_body_bytes(), 1_048_576);

    // The verifiers build from the configuration.
    inbound.oidc_verifier(google).unwrap();
    iap.iap_verifier(google, "/projects/123456789/apps/my-project")
        .unwrap();
    assert!(iap.iap_verifier(google, "my-project").is_err());

    let policy = config.effective_policy();
    for expected in [
        "audiences (exact, or any URL on the same origin): https://my-service-abc123-uc.a.run.app, https://api.example.com",
        "leeway: 60 s",
        "legacy X-Appengine-Inbound-Appid: TRUSTED",
        "tokens whose signature Cloud Run removed: rejected",
        "exempt paths (no identity required): /healthz, /readyz",
        "project other-app-id: its App Engine default service account other-app-id@appspot.gserviceaccount.com, \
         every NAME@PROJECT.iam.gserviceaccount.com it owns",
        "scoped-app.example.com@appspot.gserviceaccount.com",
        "service account runner@other-proj.iam.gserviceaccount.com",
        "audience: discovered from the metadata server at startup",
        "plain X-Goog-Authenticated-User-* headers: compared with the verified assertion",
        "every user whose email ends in @partner.example",
        "every user of the Google Workspace domain example.com (hd claim)",
        "OIDC keys: http://127.0.0.1:8085/oauth2/v1/certs (PEM)",
        "IAP keys: http://localhost:8085/iap/verify/public_key (PEM)",
        "[proxy] limits on idgate proxy's listener",
        "request head within: 5 s",
        "idle connections closed after: 120 s",
        "connections at once: 256",
        "request body at most: 1048576 bytes",
    ] {
        assert!(
            policy.contains(expected),
            "missing {expected:?} in:\n{policy}"
        );
    }
    assert_eq!(config.to_string(), policy);
}

#[test]
fn iap_only_without_allowlist_admits_everyone_iap_admits() {
    let config =
        Config::from_toml_str("[iap]\naudience = \"/projects/123/global/backendServices/456\"\n")
            .unwrap();
    assert!(config.inbound().is_none());
    let iap = config.iap().unwrap();
    assert_eq!(
        iap.audience().configured().map(Audience::as_str),
        Some("/projects/123/global/backendServices/456")
    );
    assert!(iap.allowlist().is_none());
    assert!(
        config
            .effective_policy()
            .contains("every user IAP admits (IAP's IAM policy is the only gate)")
    );
}

#[test]
fn file_errors() {
    let missing = Config::from_path(fixture("does-not-exist.toml")).unwrap_err();
    assert_eq!(missing.kind(), ConfigErrorKind::Io);
    assert!(std::error::Error::source(&missing).is_some());
    assert!(missing.to_string().contains("does-not-exist.toml"));

    let e = Config::from_path(fixture("wildcard.toml")).unwrap_err();
    assert_eq!(
        (e.kind(), e.line(), e.column()),
        (ConfigErrorKind::Wildcard, Some(5), Some(21))
    );
    assert!(e.file().is_some_and(|f| f.ends_with("wildcard.toml")));
    let shown = e.to_string();
    assert!(shown.contains("wildcard.toml:5:21: "), "{shown}");
    assert!(shown.contains("\n  help: "), "{shown}");
}

#[test]
fn nothing_configured() {
    let e = assert_err("", ConfigErrorKind::NothingConfigured, 1, 1);
    assert!(e.help().unwrap().contains("[inbound]"));
    assert_err(
        "# comment\n[google]\nbase_url = \"http://127.0.0.1:1\"\n",
        ConfigErrorKind::NothingConfigured,
        1,
        1,
    );
}

#[test]
fn toml_syntax_and_types() {
    assert_err("[inbound\n", ConfigErrorKind::Syntax, 1, 9);
    assert_err(
        &format!("{INBOUND}leeway = \n"),
        ConfigErrorKind::Syntax,
        5,
        10,
    );
    // A string where a number belongs.
    assert_err(
        "[inbound]\nleeway_secs = \"30\"\n",
        ConfigErrorKind::Syntax,
        2,
        15,
    );
    assert_err(
        "[inbound]\nleeway_secs = -1\n",
        ConfigErrorKind::Syntax,
        2,
        15,
    );
    assert_err(
        "[inbound]\naudiences = \"https://svc.example\"\n",
        ConfigErrorKind::Syntax,
        2,
        13,
    );
    assert_err("[inbound]\n[inbound]\n", ConfigErrorKind::Syntax, 2, 2);
    let e = assert_err(
        "[inbound]\naudience_match = \"prefix\"\n",
        ConfigErrorKind::Syntax,
        2,
        18,
    );
    assert!(e.message().contains("origin"), "{e}");
    assert_err(
        &format!("{INBOUND}[google]\noidc_keys_format = \"xml\"\n"),
        ConfigErrorKind::Syntax,
        6,
        20,
    );
}

#[test]
fn unknown_keys() {
    let e = assert_err("[inbund]\n", ConfigErrorKind::UnknownKey, 1, 2);
    assert!(
        e.message().contains("inbound"),
        "the message lists the valid keys: {e}"
    );
    // `audience` (singular) is an [iap] key, not an [inbound] one.
    assert_err(
        "[inbound]\naudience = \"https://svc.example\"\n",
        ConfigErrorKind::UnknownKey,
        2,
        1,
    );
    assert_err(
        &format!("{INBOUND}emails = [\"a@example.com\"]\n"),
        ConfigErrorKind::UnknownKey,
        5,
        1,
    );
    assert_err(
        "[iap]\naudience = \"/projects/1/apps/my-app\"\n[iap.allow]\nusers = []\n",
        ConfigErrorKind::UnknownKey,
        4,
        1,
    );
    assert_err(
        &format!("{INBOUND}[google]\njwks_url = \"https://x.example\"\n"),
        ConfigErrorKind::UnknownKey,
        6,
        1,
    );
    assert_err(
        "[inbound]\nallow = { projects = [\"my-app\"] }\n",
        ConfigErrorKind::UnknownKey,
        2,
        11,
    );
}

#[test]
fn inbound_audiences() {
    let e = assert_err(
        "# first\n[inbound]\n[inbound.allow]\nproject_ids = [\"my-app\"]\n",
        ConfigErrorKind::MissingAudience,
        2,
        1,
    );
    assert!(e.help().unwrap().contains("audiences = ["), "{e}");
    assert_err(
        "[inbound]\naudiences = []\n",
        ConfigErrorKind::MissingAudience,
        2,
        13,
    );
    assert_err(
        "[inbound]\naudiences = [\"https://a.example\", \"\"]\n",
        ConfigErrorKind::EmptyEntry,
        2,
        35,
    );
    assert_err(
        "[inbound]\naudiences = [\"*\"]\n",
        ConfigErrorKind::Wildcard,
        2,
        14,
    );
    assert_err(
        "[inbound]\naudiences = [\"https://*.run.app\"]\n",
        ConfigErrorKind::Wildcard,
        2,
        14,
    );
    let e = assert_err(
        "[inbound]\naudiences = [\" https://a.example\"]\n",
        ConfigErrorKind::Whitespace,
        2,
        14,
    );
    assert!(e.help().unwrap().contains("\"https://a.example\""), "{e}");
    let e = assert_err(
        "[inbound]\naudience_match = \"origin\"\naudiences = [\"https://a.example\", \"my-custom-audience\"]\n",
        ConfigErrorKind::InvalidAudience,
        3,
        35,
    );
    assert!(e.help().unwrap().contains("exact"), "{e}");
    // The same audience is fine in exact mode.
    Config::from_toml_str(
        "[inbound]\naudiences = [\"my-custom-audience\"]\n[inbound.allow]\nproject_ids = [\"my-app\"]\n",
    )
    .unwrap();
}

#[test]
fn leeway() {
    let e = assert_err(
        "[inbound]\naudiences = [\"https://a.example\"]\nleeway_secs = 301\n",
        ConfigErrorKind::LeewayTooLarge,
        3,
        15,
    );
    assert!(e.message().contains("301"));
    assert_err(
        "[iap]\ndiscover_audience = true\nleeway_secs = 3600\n",
        ConfigErrorKind::LeewayTooLarge,
        3,
        15,
    );
    let config = Config::from_toml_str(
        &INBOUND.replace("[inbound.allow]", "leeway_secs = 300\n[inbound.allow]"),
    )
    .unwrap();
    assert_eq!(config.inbound().unwrap().leeway(), Duration::from_secs(300));
}

#[test]
fn exempt_paths() {
    let src = |paths: &str| format!("[iap]\ndiscover_audience = true\nexempt_paths = {paths}\n");
    let e = assert_err(
        &src("[\"healthz\"]"),
        ConfigErrorKind::InvalidExemptPath,
        3,
        17,
    );
    assert!(e.help().unwrap().contains("\"/healthz\""), "{e}");
    assert_err(
        &src("[\"/healthz\", \"/status?full=1\"]"),
        ConfigErrorKind::InvalidExemptPath,
        3,
        29,
    );
    assert_err(
        &src("[\"/health z\"]"),
        ConfigErrorKind::InvalidExemptPath,
        3,
        17,
    );
    assert_err(&src("[\"\"]"), ConfigErrorKind::EmptyEntry, 3, 17);
    assert_err(&src("[\"/health/*\"]"), ConfigErrorKind::Wildcard, 3, 17);
    assert_err(
        "[inbound]\naudiences = [\"https://a.example\"]\nexempt_paths = [\"healthz\"]\n",
        ConfigErrorKind::InvalidExemptPath,
        3,
        17,
    );
}

#[test]
fn inbound_allowlist_entries() {
    let src = |allow: &str| {
        format!("[inbound]\naudiences = [\"https://a.example\"]\n[inbound.allow]\n{allow}\n")
    };
    assert_err(
        &src("project_ids = [\"*\"]"),
        ConfigErrorKind::Wildcard,
        4,
        16,
    );
    assert_err(
        &src("project_ids = [\"my-app\", \"\"]"),
        ConfigErrorKind::EmptyEntry,
        4,
        26,
    );
    let e = assert_err(
        &src("project_ids = [\"My-App\"]"),
        ConfigErrorKind::InvalidProjectId,
        4,
        16,
    );
    assert!(e.help().unwrap().contains("\"my-app\""), "{e}");
    let e = assert_err(
        &src("project_ids = [\"e~my-app\"]"),
        ConfigErrorKind::InvalidProjectId,
        4,
        16,
    );
    assert!(e.help().unwrap().contains("region prefix"), "{e}");
    assert_err(
        &src("project_ids = [\"123456789012\"]"),
        ConfigErrorKind::InvalidProjectId,
        4,
        16,
    );
    let e = assert_err(
        &src("project_ids = [\"runner@my-app.iam.gserviceaccount.com\"]"),
        ConfigErrorKind::InvalidProjectId,
        4,
        16,
    );
    assert!(e.help().unwrap().contains("service_accounts"), "{e}");
    assert_err(
        &src("service_accounts = [\"*\"]"),
        ConfigErrorKind::Wildcard,
        4,
        21,
    );
    assert_err(
        &src("service_accounts = [\"*@my-app.iam.gserviceaccount.com\"]"),
        ConfigErrorKind::Wildcard,
        4,
        21,
    );
    assert_err(
        &src("service_accounts = [\"alice@example.com\"]"),
        ConfigErrorKind::InvalidServiceAccount,
        4,
        21,
    );
    assert_err(
        &src("service_accounts = [\"my-app@appspot.gserviceaccount.com.evil.com\"]"),
        ConfigErrorKind::InvalidServiceAccount,
        4,
        21,
    );
    assert_err(
        &src("service_accounts = [\"my-app\"]"),
        ConfigErrorKind::InvalidServiceAccount,
        4,
        21,
    );
    assert_err(
        &src("service_accounts = [\"a@b@appspot.gserviceaccount.com\"]"),
        ConfigErrorKind::InvalidServiceAccount,
        4,
        21,
    );
}

#[test]
fn inbound_allowlist_must_admit_someone() {
    let e = assert_err(
        "[inbound]\naudiences = [\"https://a.example\"]\n",
        ConfigErrorKind::EmptyAllowlist,
        1,
        1,
    );
    assert!(e.message().contains("every request would be denied"), "{e}");
    assert!(e.help().unwrap().contains("project_ids"), "{e}");
    assert_err(
        "[inbound]\naudiences = [\"https://a.example\"]\n\n[inbound.allow]\nproject_ids = []\nservice_accounts = []\n",
        ConfigErrorKind::EmptyAllowlist,
        4,
        1,
    );
}

#[test]
fn ineffective_settings() {
    let e = assert_err(
        "[inbound]\naudiences = [\"https://a.example\"]\n[inbound.allow]\nservice_accounts = [\"a-runner@p-proj.iam.gserviceaccount.com\"]\nall_service_accounts_of_listed_projects = true\n",
        ConfigErrorKind::IneffectiveSetting,
        5,
        43,
    );
    assert!(e.help().unwrap().contains("project_ids"), "{e}");
    assert_err(
        "[inbound]\naudiences = [\"https://a.example\"]\ntrust_legacy_appengine_header = true\n[inbound.allow]\nservice_accounts = [\"a-runner@p-proj.iam.gserviceaccount.com\"]\n",
        ConfigErrorKind::IneffectiveSetting,
        3,
        33,
    );
}

#[test]
fn iap_audience() {
    let e = assert_err(
        "[iap]\naudience = \"/projects/1/apps/my-app\"\ndiscover_audience = true\n",
        ConfigErrorKind::IapAudienceChoice,
        3,
        21,
    );
    assert!(e.help().unwrap().contains("exactly one"), "{e}");
    assert_err(
        "\n[iap]\nleeway_secs = 30\n",
        ConfigErrorKind::IapAudienceChoice,
        2,
        1,
    );
    assert_err(
        "[iap]\ndiscover_audience = false\n",
        ConfigErrorKind::IapAudienceChoice,
        1,
        1,
    );
    let e = assert_err(
        "[iap]\naudience = \"/projects/my-proj/apps/my-proj\"\n",
        ConfigErrorKind::InvalidIapAudience,
        2,
        12,
    );
    assert!(e.help().unwrap().contains("project NUMBER"), "{e}");
    let e = assert_err(
        "[iap]\naudience = \"my-proj\"\n",
        ConfigErrorKind::InvalidIapAudience,
        2,
        12,
    );
    assert!(
        e.help()
            .unwrap()
            .contains("/projects/PROJECT_NUMBER/apps/PROJECT_ID"),
        "{e}"
    );
    assert_err(
        "[iap]\naudience = \"\"\n",
        ConfigErrorKind::InvalidIapAudience,
        2,
        12,
    );
    assert_err(
        "[iap]\naudience = \"/projects/1/apps/*\"\n",
        ConfigErrorKind::Wildcard,
        2,
        12,
    );
    // Still refused when the rest of the file is fine.
    assert_err(
        &format!("{INBOUND}[iap]\naudience = \"/projects/1/apps\"\n"),
        ConfigErrorKind::InvalidIapAudience,
        6,
        12,
    );
}

#[test]
fn iap_audience_rules_agree_with_the_verifier() {
    for aud in [
        "/projects/123/apps/my-project",
        "/projects/123/apps/example.com:my-project",
        "/projects/123/global/backendServices/4567",
        "/projects/123/regions/us-central1/backendServices/4567",
        "/projects/123/locations/europe-west1/services/hello",
        "",
        "my-project",
        "/projects/abc/apps/x",
        "/projects/123/apps/",
        "/projects/123/apps/x/extra",
        "projects/123/apps/x",
        "/projects/123/global/backendServices/a b",
        "/projects/123/locations/eu/services/",
    ] {
        let ours = crate::verify::check_iap_audience(aud).is_ok();
        let verifier = IapVerifier::builder().audience(aud).build();
        assert_eq!(ours, verifier.is_ok(), "{aud:?}: {verifier:?}");
    }
}

#[test]
fn iap_allowlist() {
    let src = |allow: &str| format!("[iap]\ndiscover_audience = true\n\n[iap.allow]\n{allow}\n");
    let e = assert_err(&src(""), ConfigErrorKind::EmptyAllowlist, 4, 1);
    assert!(e.help().unwrap().contains("remove [iap.allow]"), "{e}");
    assert_err(
        &src("emails = []\ndomains = []"),
        ConfigErrorKind::EmptyAllowlist,
        4,
        1,
    );
    assert_err(&src("emails = [\"*\"]"), ConfigErrorKind::Wildcard, 5, 11);
    assert_err(&src("emails = [\"\"]"), ConfigErrorKind::EmptyEntry, 5, 11);
    assert_err(
        &src("emails = [\"alice\"]"),
        ConfigErrorKind::InvalidEmail,
        5,
        11,
    );
    assert_err(
        &src("emails = [\"al ice@example.com\"]"),
        ConfigErrorKind::InvalidEmail,
        5,
        11,
    );
    assert_err(
        &src("domains = [\"*.example.com\"]"),
        ConfigErrorKind::Wildcard,
        5,
        12,
    );
    for sa_domain in [
        "gserviceaccount.com",
        "appspot.gserviceaccount.com",
        "my-proj.iam.gserviceaccount.com",
    ] {
        let e = assert_err(
            &src(&format!("domains = [\"{sa_domain}\"]")),
            ConfigErrorKind::ServiceAccountDomain,
            5,
            12,
        );
        assert!(
            e.message()
                .contains("would admit service accounts as users"),
            "{e}"
        );
        assert_err(
            &src(&format!("hosted_domains = [\"{sa_domain}\"]")),
            ConfigErrorKind::ServiceAccountDomain,
            5,
            19,
        );
    }
    let e = assert_err(
        &src("domains = [\"@example.com\"]"),
        ConfigErrorKind::InvalidDomain,
        5,
        12,
    );
    assert!(e.help().unwrap().contains("\"example.com\""), "{e}");
    assert_err(
        &src("domains = [\"example\"]"),
        ConfigErrorKind::InvalidDomain,
        5,
        12,
    );
    assert_err(
        &src("hosted_domains = [\"gmail.com\"]"),
        ConfigErrorKind::ConsumerHostedDomain,
        5,
        19,
    );
    // Columns count characters: the `é` below is one column.
    assert_err(
        &src("# é\ndomains = [\"ex ample.com\"]"),
        ConfigErrorKind::InvalidDomain,
        6,
        12,
    );
    assert_err(
        &src("domains = [\"é.example\", \"ok.example\"]"),
        ConfigErrorKind::InvalidDomain,
        5,
        12,
    );
    assert_err(
        &src("domains = [\"ok.example\", \"é.example\"]"),
        ConfigErrorKind::InvalidDomain,
        5,
        26,
    );
}

#[test]
fn google_endpoints() {
    let src = |google: &str| format!("{INBOUND}[google]\n{google}\n");
    let e = assert_err(
        &src("oidc_keys_url = \"not a url\""),
        ConfigErrorKind::InvalidUrl,
        6,
        17,
    );
    assert!(e.help().is_some());
    assert_err(
        &src("token_url = \"ftp://127.0.0.1/token\""),
        ConfigErrorKind::InvalidUrl,
        6,
        13,
    );
    assert_err(
        &src("token_url = \"https://user:pw@oauth2.example/token\""),
        ConfigErrorKind::InvalidUrl,
        6,
        13,
    );
    let e = assert_err(
        &src("oidc_keys_url = \"http://keys.example/certs\""),
        ConfigErrorKind::InsecureUrl,
        6,
        17,
    );
    assert!(e.help().unwrap().contains("https"), "{e}");
    assert_err(
        &src("base_url = \"http://emulator.internal:8085\""),
        ConfigErrorKind::InsecureUrl,
        6,
        12,
    );
    assert_err(
        &src("iam_credentials_url = \"http://10.0.0.1/\""),
        ConfigErrorKind::InsecureUrl,
        6,
        23,
    );

    // Plain http is fine on loopback, and for the metadata server anywhere.
    let config = Config::from_toml_str(&src(
        "oidc_keys_url = \"http://[::1]:9000/certs\"\nmetadata_url = \"http://169.254.169.254/computeMetadata/v1\"\n\
         iam_credentials_url = \"https://iam.example/base\"\ntoken_url = \"https://oauth2.example/token\"",
    ))
    .unwrap();
    let endpoints = config.endpoints();
    assert_eq!(endpoints.oidc_jwks.as_str(), "http://[::1]:9000/certs");
    assert_eq!(
        endpoints.metadata.as_str(),
        "http://169.254.169.254/computeMetadata/v1/"
    );
    assert_eq!(
        endpoints.iam_credentials.as_str(),
        "https://iam.example/base/"
    );
    assert_eq!(endpoints.token.as_str(), "https://oauth2.example/token");
    assert_eq!(endpoints.iap_jwks, Endpoints::default().iap_jwks);
    // No format: read from the document (issue #10, item 9: `oidc_keys_url` may be Google's oauth2/v1/certs).
    assert_eq!(
        config.google().oidc_keys().1,
        KeyDocumentFormat::Detect(KeyAlgorithm::Rs256)
    );
    assert_eq!(
        Config::from_toml_str(&src("oidc_keys_format = \"auto\""))
            .unwrap()
            .google()
            .oidc_keys()
            .1,
        KeyDocumentFormat::Detect(KeyAlgorithm::Rs256)
    );
    assert_eq!(
        GoogleConfig::default().iap_keys(),
        (
            Endpoints::default().iap_jwks,
            KeyDocumentFormat::Detect(KeyAlgorithm::Es256)
        )
    );

    // A format without a URL selects Google's document in that format, pinned.
    let pem = Config::from_toml_str(&src("oidc_keys_format = \"pem\"")).unwrap();
    assert_eq!(
        pem.google().oidc_keys(),
        (
            Url::parse("https://www.googleapis.com/oauth2/v1/certs").unwrap(),
            KeyFormat::OidcPemCertificates.into()
        )
    );
    let jwks = Config::from_toml_str(&src("oidc_keys_format = \"jwks\"")).unwrap();
    assert_eq!(jwks.google().oidc_keys().1, KeyFormat::OidcJwks.into());
}

#[test]
fn proxy_limits() {
    // Absent: the defaults, and nothing about them in the policy.
    let config = Config::from_toml_str(INBOUND).unwrap();
    assert_eq!(config.proxy(), &ProxySettings::default());
    let proxy = config.proxy();
    assert_eq!(proxy.header_read_timeout(), Duration::from_secs(10));
    assert_eq!(proxy.idle_timeout(), Duration::from_secs(60));
    assert_eq!(proxy.max_connections(), 1024);
    assert_eq!(proxy.max_request_body_bytes(), 32 * 1024 * 1024);
    assert!(!config.effective_policy().contains("[proxy]"));

    // A table with some keys: those set, the others defaulted, and all of them shown.
    let src = |proxy: &str| format!("{INBOUND}[proxy]\n{proxy}\n");
    let config =
        Config::from_toml_str(&src("idle_timeout_secs = 5\nmax_connections = 100")).unwrap();
    let proxy = config.proxy();
    assert_eq!(proxy.idle_timeout(), Duration::from_secs(5));
    assert_eq!(proxy.max_connections(), 100);
    assert_eq!(proxy.header_read_timeout(), Duration::from_secs(10));
    let policy = config.effective_policy();
    for expected in [
        "request head within: 10 s",
        "idle connections closed after: 5 s",
        "connections at once: 100",
        "request body at most: 33554432 bytes",
    ] {
        assert!(
            policy.contains(expected),
            "missing {expected:?} in:\n{policy}"
        );
    }
    assert!(!proxy.trust_forwarded_headers());
    assert!(
        policy.contains("Forwarded: set from what the proxy saw"),
        "{policy}"
    );
    let trusting = Config::from_toml_str(&src("trust_forwarded_headers = true")).unwrap();
    assert!(trusting.proxy().trust_forwarded_headers());
    assert!(
        trusting
            .effective_policy()
            .contains("KEPT from the front end")
    );
    // An empty table is the defaults, shown.
    assert!(
        Config::from_toml_str(&src(""))
            .unwrap()
            .effective_policy()
            .contains("connections at once: 1024")
    );

    // Zero would switch a limit off: refused where it is written, with the default as advice.
    for (key, column) in [
        ("header_read_timeout_secs", 28),
        ("idle_timeout_secs", 21),
        ("max_connections", 19),
        ("max_request_body_bytes", 26),
    ] {
        let e = assert_err(
            &src(&format!("{key} = 0")),
            ConfigErrorKind::LimitOutOfRange,
            6,
            column,
        );
        assert!(e.message().contains("switch the limit off"), "{e}");
        assert!(e.help().unwrap().contains(&format!("`{key} = ")), "{e}");
    }
    let e = assert_err(
        &src("header_read_timeout_secs = 86401"),
        ConfigErrorKind::LimitOutOfRange,
        6,
        28,
    );
    assert!(e.message().contains("86400"), "{e}");
    assert_err(
        &src("max_connections = 1048577"),
        ConfigErrorKind::LimitOutOfRange,
        6,
        19,
    );
    Config::from_toml_str(&src("idle_timeout_secs = 86400\nmax_connections = 1048576")).unwrap();

    // Typos and types, as everywhere else.
    assert_err(
        &src("max_conections = 10"),
        ConfigErrorKind::UnknownKey,
        6,
        1,
    );
    assert_err(&src("idle_timeout = 10"), ConfigErrorKind::UnknownKey, 6, 1);
    assert_err(
        &src("idle_timeout_secs = \"10\""),
        ConfigErrorKind::Syntax,
        6,
        21,
    );
    assert_err(&src("max_connections = -1"), ConfigErrorKind::Syntax, 6, 19);
    // The table alone configures nothing.
    assert_err(
        "[proxy]\nmax_connections = 10\n",
        ConfigErrorKind::NothingConfigured,
        1,
        1,
    );
}

#[test]
fn error_display() {
    let e = err(
        "[inbound]\naudiences = [\"https://a.example\"]\n[inbound.allow]\nproject_ids = [\"*\"]\n",
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with("line 4, column 16: \"*\" in project_ids is a wildcard"),
        "{shown}"
    );
    assert!(
        shown.contains("\n  help: list every allowed entry of project_ids explicitly"),
        "{shown}"
    );
    assert_eq!(
        e.location(),
        Some(Location {
            line: 4,
            column: 16
        })
    );
    assert_eq!(e.location().unwrap().to_string(), "4:16");
    assert!(e.file().is_none());
}

/// A minimal valid `[signin]`, for tests that change one thing.
const SIGNIN: &str = "[signin]\nclient_id = \"123-abc.apps.googleusercontent.com\"\nclient_secret_env = \"IDGATE_CLIENT_SECRET\"\nredirect_url = \"https://app.example.com/auth/callback\"\n[signin.allow]\ndomains = [\"example.com\"]\n";

fn signin_with(line: &str) -> String {
    SIGNIN.replacen("[signin.allow]", &format!("{line}\n[signin.allow]"), 1)
}

#[test]
fn minimal_signin_alone_configures_something() {
    let config = Config::from_toml_str(SIGNIN).unwrap();
    assert!(config.inbound().is_none() && config.iap().is_none());
    let signin = config.signin().unwrap();
    assert_eq!(signin.client_id(), "123-abc.apps.googleusercontent.com");
    assert_eq!(
        signin.client_secret(),
        &ClientSecretSource::Env("IDGATE_CLIENT_SECRET".into())
    );
    assert_eq!(
        signin.redirect_url().as_str(),
        "https://app.example.com/auth/callback"
    );
    assert_eq!(signin.callback_path(), "/auth/callback");
    assert_eq!(
        (signin.login_path(), signin.logout_path()),
        ("/auth/login", "/auth/logout")
    );
    assert_eq!(signin.scopes(), DEFAULT_SCOPES);
    assert_eq!(signin.session_lifetime(), Duration::from_secs(28_800));
    assert_eq!(signin.session_idle_timeout(), Duration::from_secs(3600));
    assert!(signin.secure_cookies());
    assert!(!signin.fetch_userinfo());
    assert_eq!(
        (
            signin.hosted_domain(),
            signin.prompt(),
            signin.access_type()
        ),
        (None, None, None)
    );
    // The same allowlist machinery as [iap.allow]: a user of the listed domain is admitted.
    assert!(
        signin
            .allowlist()
            .decide(&id_token_caller("bob@example.com"))
            .is_allowed()
    );
    let summary = config.effective_policy();
    assert!(summary.contains("[signin]"), "{summary}");
    assert!(summary.contains("IDGATE_CLIENT_SECRET"), "{summary}");
    assert!(
        summary.contains("every user whose email ends in @example.com"),
        "{summary}"
    );
}

#[test]
fn signin_every_key() {
    let src = "[signin]\nclient_id = \"local-client\"\nclient_secret_file = \"/secrets/client\"\n\
               redirect_url = \"http://127.0.0.1:3000/oauth2/cb\"\nscopes = [\"openid\", \"email\", \"email\"]\n\
               session_lifetime_secs = 600\nsession_idle_timeout_secs = 120\nhosted_domain = \"Example.com\"\n\
               prompt = \"consent select_account\"\naccess_type = \"offline\"\ntoken_encryption_key_env = \"K\"\nfetch_userinfo = true\n\
               login_path = \"/signin\"\nlogout_path = \"/signout\"\n[signin.allow]\nemails = [\"Alice@example.com\"]\n\
               hosted_domains = [\"example.com\"]\n[google]\nbase_url = \"http://127.0.0.1:8085\"\n";
    let config = Config::from_toml_str(src).unwrap();
    let signin = config.signin().unwrap();
    assert_eq!(
        signin.client_secret(),
        &ClientSecretSource::File("/secrets/client".into())
    );
    assert!(
        !signin.secure_cookies(),
        "plain http on loopback: development"
    );
    assert_eq!(signin.callback_path(), "/oauth2/cb");
    assert_eq!(signin.scopes(), ["openid", "email"], "deduplicated");
    assert_eq!(signin.session_lifetime(), Duration::from_secs(600));
    assert_eq!(signin.session_idle_timeout(), Duration::from_secs(120));
    assert_eq!(signin.hosted_domain(), Some("example.com"));
    assert_eq!(signin.prompt(), Some("consent select_account"));
    assert_eq!(signin.access_type(), Some(AccessType::Offline));
    assert!(signin.fetch_userinfo());
    assert_eq!(
        (signin.login_path(), signin.logout_path()),
        ("/signin", "/signout")
    );
    assert_eq!(
        config.endpoints().authorization.as_str(),
        "http://127.0.0.1:8085/o/oauth2/v2/auth"
    );
    assert_eq!(
        config.endpoints().revoke.as_str(),
        "http://127.0.0.1:8085/revoke"
    );
    assert_eq!(
        config.endpoints().userinfo.as_str(),
        "http://127.0.0.1:8085/v1/userinfo"
    );
    assert!(
        config
            .effective_policy()
            .contains("revoke: http://127.0.0.1:8085/revoke")
    );
}

#[test]
fn signin_mistakes_are_located() {
    // The secret itself is refused, and its value never appears in the message.
    let e = assert_err(
        &signin_with("client_secret = \"GOCSPX-very-secret\""),
        ConfigErrorKind::InlineSecret,
        5,
        17,
    );
    assert!(!e.to_string().contains("GOCSPX"), "{e}");
    assert!(e.help().unwrap().contains("client_secret_env"));
    // An unknown key does not offer `client_secret` as a fix.
    let e = assert_err(
        &signin_with("client_secrets = 1"),
        ConfigErrorKind::UnknownKey,
        5,
        1,
    );
    assert!(e.message().contains("`client_secret_env`"), "{e}");
    assert!(!e.message().contains("`client_secret`"), "{e}");

    let no_allow = "[signin]\nclient_id = \"c\"\nclient_secret_env = \"S\"\nredirect_url = \"https://a.example/cb\"\n";
    let e = assert_err(no_allow, ConfigErrorKind::EmptyAllowlist, 1, 1);
    assert!(e.help().unwrap().contains("[signin.allow]"));
    assert_err(
        &format!("{no_allow}[signin.allow]\nemails = []\n"),
        ConfigErrorKind::EmptyAllowlist,
        5,
        1,
    );
    assert_err(
        &format!("{no_allow}[signin.allow]\ndomains = [\"*\"]\n"),
        ConfigErrorKind::Wildcard,
        6,
        12,
    );
    assert_err(
        &format!("{no_allow}[signin.allow]\ndomains = [\"gserviceaccount.com\"]\n"),
        ConfigErrorKind::ServiceAccountDomain,
        6,
        12,
    );
    assert_err(
        &format!("{no_allow}[signin.allow]\nhosted_domains = [\"gmail.com\"]\n"),
        ConfigErrorKind::ConsumerHostedDomain,
        6,
        19,
    );

    let missing_id = SIGNIN.replace("client_id = \"123-abc.apps.googleusercontent.com\"\n", "");
    assert_err(&missing_id, ConfigErrorKind::MissingKey, 1, 1);
    assert_err(
        &SIGNIN.replace("123-abc.apps.googleusercontent.com", "a b"),
        ConfigErrorKind::InvalidClientId,
        2,
        13,
    );
    let neither = SIGNIN.replace("client_secret_env = \"IDGATE_CLIENT_SECRET\"\n", "");
    assert_err(&neither, ConfigErrorKind::ClientSecretChoice, 1, 1);
    assert_err(
        &signin_with("client_secret_file = \"/s\""),
        ConfigErrorKind::ClientSecretChoice,
        5,
        22,
    );
    assert_err(
        &SIGNIN.replace("IDGATE_CLIENT_SECRET", "1-BAD"),
        ConfigErrorKind::ClientSecretChoice,
        3,
        21,
    );
    let no_redirect = SIGNIN.replace(
        "redirect_url = \"https://app.example.com/auth/callback\"\n",
        "",
    );
    assert_err(&no_redirect, ConfigErrorKind::MissingKey, 1, 1);
    assert_err(
        &SIGNIN.replace("https://app.example.com", "http://app.example.com"),
        ConfigErrorKind::InsecureUrl,
        4,
        16,
    );
    assert_err(
        &SIGNIN.replace("/auth/callback", "/auth/callback?x=1"),
        ConfigErrorKind::InvalidUrl,
        4,
        16,
    );
    let e = assert_err(
        &signin_with("scopes = [\"email\", \"profile\"]"),
        ConfigErrorKind::InvalidScope,
        5,
        10,
    );
    assert!(e.message().contains("openid"), "{e}");
    assert_err(
        &signin_with("scopes = [\"openid email\"]"),
        ConfigErrorKind::InvalidScope,
        5,
        11,
    );
    assert_err(
        &signin_with("session_lifetime_secs = 10"),
        ConfigErrorKind::LimitOutOfRange,
        5,
        25,
    );
    assert_err(
        &signin_with("session_lifetime_secs = 600\nsession_idle_timeout_secs = 601"),
        ConfigErrorKind::LimitOutOfRange,
        6,
        29,
    );
    assert_err(
        &signin_with("prompt = \"none consent\""),
        ConfigErrorKind::Syntax,
        5,
        10,
    );
    assert_err(
        &signin_with("access_type = \"forever\""),
        ConfigErrorKind::Syntax,
        5,
        15,
    );
    assert_err(
        &signin_with("hosted_domain = \"gmail.com\""),
        ConfigErrorKind::ConsumerHostedDomain,
        5,
        17,
    );
    for bad in ["auth/login", "//evil", "/a?b", "/a b", "/x/*"] {
        assert_err(
            &signin_with(&format!("login_path = {bad:?}")),
            ConfigErrorKind::InvalidRoutePath,
            5,
            14,
        );
    }
    assert_err(
        &signin_with("logout_path = \"/auth/callback\""),
        ConfigErrorKind::InvalidRoutePath,
        5,
        15,
    );
    assert_err(
        &signin_with("login_path = \"/x\"\nlogout_path = \"/x\""),
        ConfigErrorKind::InvalidRoutePath,
        6,
        15,
    );
}

fn sessions_with(lines: &str) -> String {
    format!("{SIGNIN}[signin.sessions]\n{lines}\n")
}

#[test]
fn sessions_default_to_memory_with_a_five_second_local_copy() {
    let config = Config::from_toml_str(SIGNIN).unwrap();
    let signin = config.signin().unwrap();
    assert_eq!(signin.sessions(), &SessionStoreConfig::Memory);
    assert_eq!(signin.local_cache(), Duration::from_secs(5));
    let config = Config::from_toml_str(&sessions_with("local_cache_ms = 0")).unwrap();
    assert_eq!(config.signin().unwrap().local_cache(), Duration::ZERO);
    assert!(
        config
            .effective_policy()
            .contains("session store: in memory")
    );
}

#[test]
fn redis_sessions_are_read_with_their_settings() {
    let config = Config::from_toml_str(&sessions_with(
        "store = \"redis\"\nurl = \"rediss://redis.internal:6378/2\"\nkey_prefix = \"app:\"\ntimeout_ms = 250",
    ))
    .unwrap();
    let SessionStoreConfig::Redis(redis) = config.signin().unwrap().sessions() else {
        panic!("a Redis store")
    };
    assert_eq!(
        redis.url(),
        &RedisUrlSource::Url("rediss://redis.internal:6378/2".parse().unwrap())
    );
    assert_eq!(redis.key_prefix(), "app:");
    assert_eq!(redis.timeout(), Duration::from_millis(250));
    assert_eq!(redis.ca_file(), None);
    let summary = config.effective_policy();
    assert!(
        summary.contains("session store: Redis at rediss://redis.internal:6378/2"),
        "{summary}"
    );

    let config = Config::from_toml_str(&sessions_with(
        "store = \"redis\"\nurl_env = \"REDIS_URL\"\nca_file = \"/secrets/server-ca.pem\"",
    ))
    .unwrap();
    let SessionStoreConfig::Redis(redis) = config.signin().unwrap().sessions() else {
        panic!("a Redis store")
    };
    assert_eq!(redis.url(), &RedisUrlSource::Env("REDIS_URL".into()));
    assert_eq!(redis.key_prefix(), DEFAULT_REDIS_KEY_PREFIX);
    assert_eq!(redis.timeout(), Duration::from_millis(500));
    assert_eq!(redis.ca_file(), Some(Path::new("/secrets/server-ca.pem")));
}

#[test]
fn malformed_session_stores_are_refused_at_their_line() {
    let refused = |lines: &str, kind: ConfigErrorKind, line: usize| {
        let e = Config::from_toml_str(&sessions_with(lines)).unwrap_err();
        assert_eq!(e.kind(), kind, "{lines}: {e}");
        assert_eq!(e.location().unwrap().line, line, "{lines}: {e}");
        e.to_string()
    };
    // The table starts on line 7.
    refused("store = \"redis\"", ConfigErrorKind::SessionStore, 7);
    refused("store = \"postgres\"", ConfigErrorKind::Syntax, 8);
    refused(
        "store = \"redis\"\nurl = \"redis://a:6379\"\nurl_env = \"R\"",
        ConfigErrorKind::SessionStore,
        10,
    );
    refused(
        "store = \"redis\"\nurl = \"http://a:6379\"",
        ConfigErrorKind::SessionStore,
        9,
    );
    refused(
        "store = \"redis\"\nurl = \"redis://\"",
        ConfigErrorKind::SessionStore,
        9,
    );
    refused(
        "store = \"redis\"\nurl_env = \"1BAD\"",
        ConfigErrorKind::SessionStore,
        9,
    );
    refused(
        "store = \"redis\"\nurl_env = \"R\"\nkey_prefix = \"a b\"",
        ConfigErrorKind::SessionStore,
        10,
    );
    refused(
        "store = \"redis\"\nurl_env = \"R\"\ntimeout_ms = 0",
        ConfigErrorKind::LimitOutOfRange,
        10,
    );
    refused(
        "local_cache_ms = 60001",
        ConfigErrorKind::LimitOutOfRange,
        8,
    );
    // Settings for Redis on the in-memory store would do nothing: refused rather than ignored.
    refused("url = \"redis://a:6379\"", ConfigErrorKind::SessionStore, 8);
    refused(
        "store = \"memory\"\ntimeout_ms = 100",
        ConfigErrorKind::SessionStore,
        9,
    );
    refused("stor = \"redis\"", ConfigErrorKind::UnknownKey, 8);
    refused(
        "store = \"redis\"\nurl = \"redis://a:6379\"\nca_file = \"/ca.pem\"",
        ConfigErrorKind::SessionStore,
        10,
    );
    refused("ca_file = \"/ca.pem\"", ConfigErrorKind::SessionStore, 8);
    // A password in the file: refused, and never echoed.
    let message = refused(
        "store = \"redis\"\nurl = \"redis://user:hunter2@a:6379\"",
        ConfigErrorKind::InlineSecret,
        9,
    );
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("url_env"), "{message}");
}

#[test]
fn signin_token_encryption_key() {
    // Absent by default; from an environment variable or a file, located for messages about the key it names.
    assert!(
        Config::from_toml_str(SIGNIN)
            .unwrap()
            .signin()
            .unwrap()
            .token_encryption_key()
            .is_none()
    );
    let config = Config::from_toml_str(&signin_with(
        "token_encryption_key_env = \"IDGATE_TOKEN_KEY\"",
    ))
    .unwrap();
    let signin = config.signin().unwrap();
    assert_eq!(
        signin.token_encryption_key(),
        Some(&TokenKeySource::Env("IDGATE_TOKEN_KEY".into()))
    );
    assert_eq!(signin.token_encryption_key_location().unwrap().line, 5);
    let config = Config::from_toml_str(&signin_with(
        "access_type = \"offline\"\ntoken_encryption_key_file = \"/secrets/token-key\"",
    ))
    .unwrap();
    assert_eq!(
        config.signin().unwrap().token_encryption_key(),
        Some(&TokenKeySource::File("/secrets/token-key".into()))
    );
    assert_eq!(
        config.signin().unwrap().access_type(),
        Some(AccessType::Offline)
    );
    let summary = config.effective_policy();
    assert!(summary.contains("offline access"), "{summary}");
    assert!(
        summary.contains("token encryption key: from the file /secrets/token-key"),
        "{summary}"
    );
}

#[test]
fn signin_token_encryption_key_mistakes_are_located() {
    // The key itself is refused, and its value never appears in the message.
    let e = assert_err(
        &signin_with("token_encryption_key = \"c2VjcmV0LWtleS1ieXRlcy0wMTIzNDU2Nzg5YWJjZGU=\""),
        ConfigErrorKind::InlineSecret,
        5,
        24,
    );
    assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
    assert!(
        e.help().unwrap().contains("openssl rand -base64 32"),
        "{e:?}"
    );
    // Both.
    assert_err(
        &signin_with("token_encryption_key_env = \"K\"\ntoken_encryption_key_file = \"/k\""),
        ConfigErrorKind::TokenEncryptionKeyChoice,
        6,
        29,
    );
    // A malformed variable name, an empty file name.
    assert_err(
        &signin_with("token_encryption_key_env = \"1-BAD\""),
        ConfigErrorKind::TokenEncryptionKeyChoice,
        5,
        28,
    );
    assert_err(
        &signin_with("token_encryption_key_file = \" \""),
        ConfigErrorKind::TokenEncryptionKeyChoice,
        5,
        29,
    );
    // Offline access without a key: refused at the `access_type` line.
    let e = assert_err(
        &signin_with("fetch_userinfo = true\naccess_type = \"offline\""),
        ConfigErrorKind::TokenEncryptionKeyChoice,
        6,
        15,
    );
    assert!(
        e.help().unwrap().contains("openssl rand -base64 32"),
        "{e:?}"
    );
    // Online access needs none.
    assert!(Config::from_toml_str(&signin_with("access_type = \"online\"")).is_ok());
    // A typo is offered the real keys, not the refused one.
    let e = assert_err(
        &signin_with("token_encryption_keys_env = \"K\""),
        ConfigErrorKind::UnknownKey,
        5,
        1,
    );
    assert!(!e.message().contains("`token_encryption_key`"), "{e}");
}

/// A minimal valid `[iap]`.
const IAP: &str = "[iap]\naudience = \"/projects/123456789/apps/my-project\"\n";

#[test]
fn admission_defaults_to_all_and_reads_by_credential() {
    assert_eq!(
        Config::from_toml_str(INBOUND).unwrap().admission(),
        Admission::All
    );
    // Without [admission], [signin] may sit next to another gate: a library applies them to different routes.
    let both = format!("{INBOUND}{SIGNIN}");
    let config = Config::from_toml_str(&both).unwrap();
    assert_eq!(config.admission(), Admission::All);
    assert_eq!(
        config.table_location("signin").map(|l| l.line),
        Some(INBOUND.lines().count() + 1)
    );
    assert_eq!(config.table_location("admission"), None);
    for gates in [
        format!("{INBOUND}{IAP}"),
        format!("{INBOUND}{SIGNIN}"),
        format!("{IAP}{SIGNIN}"),
        format!("{INBOUND}{IAP}{SIGNIN}"),
    ] {
        let src = format!("[admission]\nmode = \"by_credential\"\n{gates}");
        let config = Config::from_toml_str(&src).unwrap();
        assert_eq!(config.admission(), Admission::ByCredential, "{src}");
        assert!(
            config
                .effective_policy()
                .contains("[admission] by_credential")
        );
    }
    let src = format!("[admission]\nmode = \"all\"\n{INBOUND}{IAP}");
    let config = Config::from_toml_str(&src).unwrap();
    assert_eq!(config.admission(), Admission::All);
    assert!(config.effective_policy().contains("[admission] all"));
}

#[test]
fn admission_mistakes_name_their_line() {
    // An unknown mode, at its value.
    let e = assert_err(
        &format!("{INBOUND}{IAP}[admission]\nmode = \"either\"\n"),
        ConfigErrorKind::Syntax,
        8,
        8,
    );
    assert!(e.to_string().contains("by_credential"), "{e}");
    // The wrong type.
    assert_err(
        &format!("[admission]\nmode = true\n{INBOUND}"),
        ConfigErrorKind::Syntax,
        2,
        8,
    );
    // An unknown key.
    assert_err(
        &format!("[admission]\nmod = \"all\"\n{INBOUND}"),
        ConfigErrorKind::UnknownKey,
        2,
        1,
    );
    // by_credential with one gate chooses nothing.
    let e = assert_err(
        &format!("[admission]\nmode = \"by_credential\"\n{SIGNIN}"),
        ConfigErrorKind::IneffectiveSetting,
        2,
        8,
    );
    assert!(e.to_string().contains("only [signin]"), "{e}");
    // "all" written with [signin] and another gate: nothing could pass.
    for gates in [
        format!("{INBOUND}{SIGNIN}"),
        format!("{IAP}{SIGNIN}"),
        format!("{INBOUND}{IAP}{SIGNIN}"),
    ] {
        let e = assert_err(
            &format!("[admission]\nmode = \"all\"\n{gates}"),
            ConfigErrorKind::AdmissionConflict,
            2,
            8,
        );
        assert!(e.help().unwrap().contains("by_credential"), "{e}");
    }
}

#[test]
fn signin_exempt_paths_are_exact_paths() {
    let config =
        Config::from_toml_str(&signin_with("exempt_paths = [\"/healthz\", \"/public\"]")).unwrap();
    let signin = config.signin().unwrap();
    assert_eq!(signin.exempt_paths(), ["/healthz", "/public"]);
    assert!(signin.is_exempt("/public") && !signin.is_exempt("/public/"));
    assert!(config.effective_policy().contains("/healthz, /public"));
    assert_err(
        &signin_with("exempt_paths = [\"/a/*\"]"),
        ConfigErrorKind::Wildcard,
        5,
        17,
    );
    assert_err(
        &signin_with("exempt_paths = [\"healthz\"]"),
        ConfigErrorKind::InvalidExemptPath,
        5,
        17,
    );
}

#[test]
fn tracing_table() {
    // Absent: enduser.id is not recorded (an email is personal data).
    let config = Config::from_toml_str(INBOUND).unwrap();
    assert!(!config.tracing().record_enduser_id());
    assert!(!config.effective_policy().contains("enduser.id"));
    let config = Config::from_toml_str(&format!("{INBOUND}[tracing]\n")).unwrap();
    assert!(!config.tracing().record_enduser_id());
    let config =
        Config::from_toml_str(&format!("{INBOUND}[tracing]\nrecord_enduser_id = true\n")).unwrap();
    assert!(config.tracing().record_enduser_id());
    assert!(config.effective_policy().contains("[tracing] enduser.id"));
    assert_eq!(config.table_location("tracing").map(|l| l.line), Some(5));
    // A typo is reported with the keys the table takes.
    let e = assert_err(
        &format!("{INBOUND}[tracing]\nenduser_id = true\n"),
        ConfigErrorKind::UnknownKey,
        6,
        1,
    );
    assert!(e.message().contains("`record_enduser_id`"), "{e}");
    assert_err(
        &format!("{INBOUND}[tracing]\nrecord_enduser_id = \"yes\"\n"),
        ConfigErrorKind::Syntax,
        6,
        21,
    );
}
