use super::service_account::classify_service_account;
use super::test_support::*;
use super::*;

fn id(s: &str) -> Option<Project> {
    Some(Project::Id(s.to_owned()))
}

#[test]
fn app_engine_default_service_account() {
    assert_eq!(
        project_of_service_account("my-app@appspot.gserviceaccount.com"),
        id("my-app")
    );
    assert_eq!(
        classify_service_account("my-app@appspot.gserviceaccount.com").0,
        ServiceAccountKind::AppEngineDefault
    );
}

#[test]
fn domain_scoped_app_engine_default_service_account() {
    assert_eq!(
        project_of_service_account("proj-one.example.com@appspot.gserviceaccount.com"),
        id("example.com:proj-one")
    );
    // Split at the FIRST dot: the project ID has no dots, the domain may have several.
    assert_eq!(
        project_of_service_account("proj-one.corp.example.co.uk@appspot.gserviceaccount.com"),
        id("corp.example.co.uk:proj-one")
    );
    // The domain must be a real multi-label domain.
    assert_eq!(
        project_of_service_account("proj-one.com@appspot.gserviceaccount.com"),
        None
    );
    assert_eq!(
        project_of_service_account("proj-one.@appspot.gserviceaccount.com"),
        None
    );
    assert_eq!(
        project_of_service_account("proj-one..example.com@appspot.gserviceaccount.com"),
        None
    );
}

#[test]
fn user_managed_service_accounts() {
    assert_eq!(
        project_of_service_account("runner@other-proj.iam.gserviceaccount.com"),
        id("other-proj")
    );
    assert_eq!(
        classify_service_account("runner@other-proj.iam.gserviceaccount.com").0,
        ServiceAccountKind::UserManaged
    );
    assert_eq!(
        project_of_service_account("runner@proj-two.example.com.iam.gserviceaccount.com"),
        id("example.com:proj-two")
    );
    // Malformed account names or project IDs map to nothing.
    assert_eq!(
        project_of_service_account("run@other-proj.iam.gserviceaccount.com"),
        None
    );
    assert_eq!(
        project_of_service_account("runner@Other_Proj.iam.gserviceaccount.com"),
        None
    );
    assert_eq!(
        project_of_service_account("runner@.iam.gserviceaccount.com"),
        None
    );
    assert_eq!(
        project_of_service_account("runner@iam.gserviceaccount.com"),
        None
    );
}

#[test]
fn compute_default_service_account() {
    assert_eq!(
        project_of_service_account("123456789012-compute@developer.gserviceaccount.com"),
        Some(Project::Number(123_456_789_012))
    );
    for bad in [
        "-compute@developer.gserviceaccount.com",
        "0123-compute@developer.gserviceaccount.com",
        "12a4-compute@developer.gserviceaccount.com",
        "1234@developer.gserviceaccount.com",
        "1234-computer@developer.gserviceaccount.com",
        "99999999999999999999999-compute@developer.gserviceaccount.com",
    ] {
        assert_eq!(project_of_service_account(bad), None, "{bad}");
    }
}

#[test]
fn upper_case_is_compared_case_insensitively() {
    assert_eq!(
        project_of_service_account("My-App@AppSpot.GServiceAccount.COM"),
        id("my-app")
    );
    assert_eq!(
        project_of_service_account("RUNNER@OTHER-PROJ.IAM.GSERVICEACCOUNT.COM"),
        id("other-proj")
    );
    assert_eq!(
        project_of_service_account("42-COMPUTE@developer.gserviceaccount.com"),
        Some(Project::Number(42))
    );
}

#[test]
fn google_service_agents_never_map() {
    for agent in [
        "service-123456789012@gcp-sa-iap.iam.gserviceaccount.com",
        "service-123456789012@serverless-robot-prod.iam.gserviceaccount.com",
        "service-123456789012@container-engine-robot.iam.gserviceaccount.com",
        "service-123456789012@compute-system.iam.gserviceaccount.com",
        "service-org-123456@gcp-sa-ktd-hpsa.iam.gserviceaccount.com",
        "service-folder-123456@gcp-sa-logging.iam.gserviceaccount.com",
        "p123456789012-abcdef@gcp-sa-logging.iam.gserviceaccount.com",
        "service-123456789012@gae-api-prod.google.com.iam.gserviceaccount.com",
        "runner-robot@cloud-ml.google.com.iam.gserviceaccount.com",
        "123456789012@cloudservices.gserviceaccount.com",
        "service-123456789012@appspot.gserviceaccount.com",
    ] {
        assert_eq!(project_of_service_account(agent), None, "{agent}");
        assert_eq!(
            classify_service_account(agent).0,
            ServiceAccountKind::GoogleServiceAgent,
            "{agent}"
        );
    }
    // A user-managed account merely *named* like "service-..." is still a project's account.
    assert_eq!(
        project_of_service_account("service-runner@my-proj.iam.gserviceaccount.com"),
        id("my-proj")
    );
}

#[test]
fn look_alike_domains_never_map() {
    for bad in [
        "x-app-id@appspot.gserviceaccount.com.evil.com",
        "x-app-id@evil-appspot.gserviceaccount.com",
        "x-app-id@evilappspot.gserviceaccount.com",
        "x-app-id@appspot.gserviceaccount.co",
        "x-app-id@appspot.gserviceaccount.com.",
        "x-app-id@sub.appspot.gserviceaccount.com",
        "runner@my-proj.iam.gserviceaccount.com.evil.com",
        "runner@my-proj.iamgserviceaccount.com",
        "123-compute@developer.gserviceaccount.com.evil.com",
        "my-app@cloudbuild.gserviceaccount.com",
        "my-app@gserviceaccount.com",
    ] {
        assert_eq!(project_of_service_account(bad), None, "{bad}");
    }
}

#[test]
fn unicode_look_alikes_never_map() {
    for bad in [
        // Cyrillic "а" (U+0430) in appspot.
        "my-app@\u{0430}ppspot.gserviceaccount.com",
        // Kelvin sign, which Unicode lowercasing would turn into "k".
        "my-app@appspot.gserviceaccount.com\u{212A}",
        "my-\u{212A}app@appspot.gserviceaccount.com",
        // Fullwidth commercial at.
        "my-app\u{FF20}appspot.gserviceaccount.com",
        // Zero-width space.
        "my-app@appspot.gservice\u{200B}account.com",
    ] {
        assert_eq!(project_of_service_account(bad), None, "{bad:?}");
    }
}

#[test]
fn two_ats_use_the_last_and_never_map() {
    assert_eq!(
        project_of_service_account("a@b-project@appspot.gserviceaccount.com"),
        None
    );
    assert_eq!(
        project_of_service_account("my-app@appspot.gserviceaccount.com@evil.com"),
        None
    );
    assert_eq!(
        project_of_service_account("@appspot.gserviceaccount.com"),
        None
    );
    assert_eq!(project_of_service_account("my-app@"), None);
    assert_eq!(project_of_service_account("my-app"), None);
    assert_eq!(project_of_service_account(""), None);
    assert_eq!(
        project_of_service_account(" my-app@appspot.gserviceaccount.com"),
        None
    );
}

#[test]
fn project_id_syntax() {
    for ok in [
        "my-app",
        "abcdef",
        "a12345",
        "a-----b",
        "abcdefghijklmnopqrstuvwxyz1234",
        "example.com:my-app",
    ] {
        assert!(is_valid_project_id(ok), "{ok}");
    }
    for bad in [
        "",
        "abcde",
        "abcdefghijklmnopqrstuvwxyz12345",
        "1abcdef",
        "-abcdef",
        "abcdef-",
        "My-App",
        "my_app",
        "my.app.x",
        "*",
        "s~my-app",
        "example:my-app",
        ":my-app",
        "example.com:",
        "Example.com:my-app",
        "example.com:my",
    ] {
        assert!(!is_valid_project_id(bad), "{bad}");
    }
}

#[test]
fn legacy_header() {
    let trust = TrustedAppEngineFrontEnd::assume_behind_app_engine();
    let app = AppEngineApp::from_trusted_header(b"other-app-id", trust).unwrap();
    assert_eq!(app.app_id(), "other-app-id");
    assert_eq!(app.project(), &Project::Id("other-app-id".into()));
    let scoped = AppEngineApp::from_trusted_header(b"example.com:other-app", trust).unwrap();
    assert_eq!(scoped.app_id(), "example.com:other-app");
    for bad in [
        &b""[..],
        b"*",
        b"Other-App-Id",
        b" other-app-id",
        b"other-app-id ",
        b"s~other-app-id",
        b"other-app-id\r\nX-Evil: 1",
        b"\xff\xfe",
        "\u{0430}pp-app-id".as_bytes(),
        b"other-app-id,second-app",
        &[b'a'; 400][..],
    ] {
        let err = AppEngineApp::from_trusted_header(bad, trust).unwrap_err();
        assert!(matches!(err, IdentityError::InvalidAppId(_)), "{bad:?}");
    }
}

#[test]
fn callers_from_verified_claims() {
    let sa = id_token_caller("Runner@Other-Proj.iam.gserviceaccount.com");
    assert_eq!(sa.kind(), CallerKind::ServiceAccount);
    assert_eq!(
        sa.email(),
        Some("runner@other-proj.iam.gserviceaccount.com")
    );
    assert_eq!(sa.project(), Some(&Project::Id("other-proj".into())));
    assert_eq!(sa.subject(), Some("1234567890"));
    assert_eq!(
        sa.to_string(),
        "service_account runner@other-proj.iam.gserviceaccount.com"
    );
    let Caller::ServiceAccount(inner) = &sa else {
        panic!("not a service account")
    };
    assert_eq!(inner.kind(), ServiceAccountKind::UserManaged);
    assert!(!inner.is_app_engine_default());

    let agent = id_token_caller("service-42@gcp-sa-iap.iam.gserviceaccount.com");
    assert_eq!(agent.kind(), CallerKind::ServiceAccount);
    assert_eq!(agent.project(), None);

    let user = user_with_hd("Alice@Example.com", "Example.com");
    assert_eq!(user.kind(), CallerKind::User);
    assert_eq!(user.email(), Some("alice@example.com"));
    assert_eq!(user.project(), None);
    let Caller::User(inner) = &user else {
        panic!("not a user")
    };
    assert_eq!(inner.hosted_domain(), Some("example.com"));
    assert_eq!(user.to_string(), "user alice@example.com");

    // A look-alike of a service-account domain is a user, and maps to no project.
    let fake = id_token_caller("my-app@appspot.gserviceaccount.com.evil.com");
    assert_eq!(fake.kind(), CallerKind::User);
    assert_eq!(fake.project(), None);

    let app = app("my-app-id");
    assert_eq!(app.kind(), CallerKind::AppEngineApp);
    assert_eq!(app.email(), None);
    assert_eq!(app.subject(), None);
    assert_eq!(app.project(), Some(&Project::Id("my-app-id".into())));
    assert_eq!(app.to_string(), "app_engine_app my-app-id");

    let iap = iap_caller("Bob@Example.com", Some("example.com"));
    assert_eq!(iap.kind(), CallerKind::IapUser);
    assert_eq!(iap.email(), Some("bob@example.com"));
    assert_eq!(iap.to_string(), "iap_user bob@example.com");
}

/// `from_id_token` and `from_iap` on tokens that really went through the verifiers (minted by the emulator).
#[tokio::test]
async fn callers_from_verified_tokens() {
    use std::sync::Arc;

    use crate::clock::{Clock as _, ManualClock};
    use crate::verify::{IapVerifier, OidcVerifier};
    use idgate_emulator::{Emulator, TokenSpec};

    const AUDIENCE: &str = "https://my-service-abc123-uc.a.run.app";
    let emulator = Emulator::builder()
        .project_id("my-project")
        .project_number(123_456_789)
        .start()
        .await
        .unwrap();
    let clock = ManualClock::starting_now();
    let now = clock.unix_seconds();
    // Email is not required by this verifier, so tokens without a verified email reach `from_id_token`.
    let oidc = OidcVerifier::builder()
        .audience(AUDIENCE)
        .clock(Arc::new(clock.clone()))
        .keys_url(emulator.oidc_jwks_url())
        .require_verified_email(false)
        .build()
        .unwrap();
    let verify = |spec: TokenSpec| {
        let token = emulator.mint(&spec.audience(AUDIENCE).issued_at(now));
        let oidc = oidc.clone();
        async move { oidc.verify(&token).await.unwrap() }
    };

    let sa = verify(TokenSpec::service_account(
        "Runner@Other-Proj.iam.gserviceaccount.com",
    ))
    .await;
    let caller = Caller::from_id_token(&sa).unwrap();
    assert_eq!(caller.kind().as_str(), "service_account");
    assert_eq!(
        caller.email(),
        Some("runner@other-proj.iam.gserviceaccount.com")
    );
    assert_eq!(caller.project(), Some(&Project::Id("other-proj".into())));
    assert_eq!(caller.subject(), Some(sa.subject()));

    let app_sa = verify(TokenSpec::service_account(
        "my-project@appspot.gserviceaccount.com",
    ))
    .await;
    let Caller::ServiceAccount(app_sa) = Caller::from_id_token(&app_sa).unwrap() else {
        panic!("not an SA")
    };
    assert!(app_sa.is_app_engine_default());

    let user =
        verify(TokenSpec::service_account("Alice@Example.com").hosted_domain("example.com")).await;
    let Caller::User(user) = Caller::from_id_token(&user).unwrap() else {
        panic!("not a user")
    };
    assert_eq!(
        (user.email(), user.hosted_domain()),
        ("alice@example.com", Some("example.com"))
    );

    for spec in [
        TokenSpec::service_account("runner@other-proj.iam.gserviceaccount.com")
            .email_verified(false),
        TokenSpec::service_account("runner@other-proj.iam.gserviceaccount.com")
            .without_claim("email_verified"),
        TokenSpec::service_account("runner@other-proj.iam.gserviceaccount.com")
            .without_claim("email"),
    ] {
        let verified = verify(spec).await;
        assert_eq!(
            Caller::from_id_token(&verified).unwrap_err(),
            IdentityError::NoVerifiedEmail
        );
    }

    let iap = IapVerifier::builder()
        .audience(emulator.iap_audience_app_engine())
        .clock(Arc::new(clock.clone()))
        .keys_url(emulator.iap_jwks_url())
        .build()
        .unwrap();
    let assertion = emulator.mint(
        &TokenSpec::iap_user("Bob@Example.com")
            .hosted_domain("example.com")
            .access_levels(["accessPolicies/1/accessLevels/corp"])
            .issued_at(now),
    );
    let verified = iap.verify(&assertion).await.unwrap();
    let caller = Caller::from_iap(&verified);
    assert_eq!(caller.to_string(), "iap_user bob@example.com");
    let Caller::IapUser(user) = caller else {
        panic!("not an IAP user")
    };
    assert_eq!(user.subject(), verified.subject());
    assert_eq!(user.hosted_domain(), Some("example.com"));
    assert_eq!(user.access_levels(), ["accessPolicies/1/accessLevels/corp"]);
    emulator.shutdown().await;
}

#[test]
fn bad_emails_are_refused() {
    for bad in [
        "",
        "no-at-sign",
        "@example.com",
        "alice@",
        "al ice@example.com",
        "a\u{0430}@example.com",
    ] {
        assert_eq!(
            Caller::from_verified_email(bad, "1", None).unwrap_err(),
            IdentityError::InvalidEmail,
            "{bad:?}"
        );
    }
    assert!(Caller::from_verified_email("a@b@example.com", "1", None).is_err());
}
