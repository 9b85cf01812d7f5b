use super::*;
use crate::identity::test_support::{app, iap_caller, iap_external, id_token_caller, user_with_hd};

fn allow(reason: AllowReason) -> Decision {
    Decision::Allow { reason }
}

const NOT_LISTED: Decision = Decision::Deny {
    reason: DenyReason::NotListed,
};

#[test]
fn an_unverified_external_email_matches_no_email_or_domain_entry() {
    let list = Allowlist::builder()
        .user_email("alice@example.com")
        .user_domain("corp.example")
        .hosted_domain("workspace.example")
        .build()
        .unwrap();
    let deny = |reason| Decision::Deny { reason };
    for (caller, want) in [
        (
            iap_external("alice@example.com", None, true),
            allow(AllowReason::UserEmailListed),
        ),
        (
            iap_external("ceo@corp.example", None, true),
            allow(AllowReason::UserDomainListed),
        ),
        (
            iap_external("alice@example.com", None, false),
            deny(DenyReason::EmailNotVerified),
        ),
        (
            iap_external("ceo@corp.example", None, false),
            deny(DenyReason::EmailNotVerified),
        ),
        (
            iap_external("x@other.example", None, false),
            deny(DenyReason::NotListed),
        ),
        // The signed `hd` claim is not the user's to type: it still counts.
        (
            iap_external("bob@workspace.example", Some("workspace.example"), false),
            allow(AllowReason::HostedDomainListed),
        ),
        // Google accounts are verified.
        (
            iap_caller("alice@example.com", None),
            allow(AllowReason::UserEmailListed),
        ),
    ] {
        assert_eq!(list.decide(&caller), want, "{caller:?}");
    }
    let unverified = iap_external("alice@example.com", None, false);
    assert_eq!(unverified.email(), None);
    assert_eq!(
        unverified.to_string(),
        "iap_user accounts.google.com:1234567890 (email not verified)"
    );
    assert_eq!(DenyReason::EmailNotVerified.as_str(), "email_not_verified");
}

#[test]
fn empty_allowlist_denies_everyone() {
    let empty = Allowlist::new();
    assert!(empty.is_empty());
    for caller in [
        id_token_caller("my-app@appspot.gserviceaccount.com"),
        id_token_caller("alice@example.com"),
        iap_caller("alice@example.com", Some("example.com")),
        app("my-app-id"),
    ] {
        let decision = empty.decide(&caller);
        assert_eq!(
            decision,
            Decision::Deny {
                reason: DenyReason::EmptyAllowlist
            }
        );
        assert!(!decision.is_allowed());
        assert_eq!(decision.reason(), "empty_allowlist");
    }
    // The opt-in flag alone lists nobody.
    let flag_only = Allowlist::builder()
        .all_service_accounts_of_listed_projects(true)
        .build()
        .unwrap();
    assert!(flag_only.is_empty());
    assert!(
        !flag_only
            .decide(&id_token_caller("runner@my-proj.iam.gserviceaccount.com"))
            .is_allowed()
    );
}

#[test]
fn listed_service_account() {
    let list = Allowlist::builder()
        .service_account("Runner@Other-Proj.iam.gserviceaccount.com")
        .build()
        .unwrap();
    let decision = list.decide(&id_token_caller(
        "runner@other-proj.iam.gserviceaccount.com",
    ));
    assert_eq!(decision, allow(AllowReason::ServiceAccountListed));
    assert_eq!(decision.reason(), "service_account_listed");
    assert_eq!(
        list.decide(&id_token_caller(
            "RUNNER@other-proj.iam.gserviceaccount.com"
        )),
        decision
    );
    assert_eq!(
        list.decide(&id_token_caller(
            "runner2@other-proj.iam.gserviceaccount.com"
        )),
        NOT_LISTED
    );
    // A listed service-account email admits no user or IAP user of the same name... except it is the same
    // address, which a user token cannot carry; and never an App Engine app.
    assert_eq!(list.decide(&app("other-proj")), NOT_LISTED);
    // The Compute default service account is admitted only by email.
    let compute = Allowlist::builder()
        .service_account("123-compute@developer.gserviceaccount.com")
        .build()
        .unwrap();
    assert_eq!(
        compute.decide(&id_token_caller(
            "123-compute@developer.gserviceaccount.com"
        )),
        allow(AllowReason::ServiceAccountListed)
    );
}

#[test]
fn project_admits_its_app_engine_default_service_account_only() {
    let list = Allowlist::builder()
        .project_id("other-app-id")
        .build()
        .unwrap();
    let decision = list.decide(&id_token_caller("other-app-id@appspot.gserviceaccount.com"));
    assert_eq!(decision, allow(AllowReason::ProjectDefaultServiceAccount));
    assert_eq!(decision.reason(), "project_default_service_account");
    // Not the project's other service accounts without the opt-in.
    assert_eq!(
        list.decide(&id_token_caller(
            "runner@other-app-id.iam.gserviceaccount.com"
        )),
        NOT_LISTED
    );
    // Not another project's, nor look-alikes, nor service agents.
    for email in [
        "another-app@appspot.gserviceaccount.com",
        "other-app-id@appspot.gserviceaccount.com.evil.com",
        "other-app-id@evil-appspot.gserviceaccount.com",
        "service-123@gcp-sa-iap.iam.gserviceaccount.com",
        "other-app-id@gmail.com",
    ] {
        assert_eq!(list.decide(&id_token_caller(email)), NOT_LISTED, "{email}");
    }
    // A user (IAP or ID token) is never admitted by a project.
    assert_eq!(
        list.decide(&iap_caller(
            "other-app-id@appspot.gserviceaccount.com",
            None
        )),
        NOT_LISTED
    );
}

#[test]
fn domain_scoped_project() {
    let list = Allowlist::builder()
        .project_id("example.com:proj-one")
        .build()
        .unwrap();
    assert_eq!(
        list.decide(&id_token_caller(
            "proj-one.example.com@appspot.gserviceaccount.com"
        )),
        allow(AllowReason::ProjectDefaultServiceAccount)
    );
    assert_eq!(
        list.decide(&app("example.com:proj-one")),
        allow(AllowReason::LegacyAppIdListed)
    );
    assert_eq!(
        list.decide(&id_token_caller("proj-one@appspot.gserviceaccount.com")),
        NOT_LISTED
    );
}

#[test]
fn all_service_accounts_of_listed_projects_is_an_opt_in() {
    let list = Allowlist::builder()
        .project_id("other-proj")
        .all_service_accounts_of_listed_projects(true)
        .build()
        .unwrap();
    assert!(list.admits_all_service_accounts_of_listed_projects());
    let decision = list.decide(&id_token_caller(
        "runner@other-proj.iam.gserviceaccount.com",
    ));
    assert_eq!(decision, allow(AllowReason::ProjectServiceAccount));
    assert_eq!(decision.reason(), "project_service_account");
    assert_eq!(
        list.decide(&id_token_caller("other-proj@appspot.gserviceaccount.com")),
        allow(AllowReason::ProjectDefaultServiceAccount)
    );
    // Still never service agents that live under the project's number, nor other projects.
    assert_eq!(
        list.decide(&id_token_caller(
            "service-42@gcp-sa-iap.iam.gserviceaccount.com"
        )),
        NOT_LISTED
    );
    assert_eq!(
        list.decide(&id_token_caller(
            "runner@third-proj.iam.gserviceaccount.com"
        )),
        NOT_LISTED
    );
    assert_eq!(
        list.decide(&id_token_caller(
            "runner@other-proj.iam.gserviceaccount.com.evil.com"
        )),
        NOT_LISTED
    );
}

#[test]
fn legacy_app_id() {
    let list = Allowlist::builder()
        .project_id("other-app-id")
        .build()
        .unwrap();
    let decision = list.decide(&app("other-app-id"));
    assert_eq!(decision, allow(AllowReason::LegacyAppIdListed));
    assert_eq!(decision.reason(), "legacy_app_id_listed");
    assert_eq!(list.decide(&app("another-app")), NOT_LISTED);
    // A listed service account does not admit an app of the same name.
    let by_email = Allowlist::builder()
        .service_account("other-app-id@appspot.gserviceaccount.com")
        .build()
        .unwrap();
    assert_eq!(by_email.decide(&app("other-app-id")), NOT_LISTED);
}

#[test]
fn users() {
    let list = Allowlist::builder()
        .user_email("Alice@Example.com")
        .user_domain("Partner.example")
        .hosted_domain("corp.example")
        .build()
        .unwrap();
    for caller in [
        id_token_caller("alice@example.com"),
        iap_caller("ALICE@example.com", None),
    ] {
        let decision = list.decide(&caller);
        assert_eq!(decision, allow(AllowReason::UserEmailListed));
        assert_eq!(decision.reason(), "user_email_listed");
    }
    let decision = list.decide(&iap_caller("bob@partner.example", None));
    assert_eq!(decision, allow(AllowReason::UserDomainListed));
    assert_eq!(decision.reason(), "user_domain_listed");
    let decision = list.decide(&iap_caller("carol@other.example", Some("corp.example")));
    assert_eq!(decision, allow(AllowReason::HostedDomainListed));
    assert_eq!(decision.reason(), "hosted_domain_listed");
    assert_eq!(
        list.decide(&user_with_hd("dave@x.example", "Corp.Example")),
        allow(AllowReason::HostedDomainListed)
    );

    // Domains compare exactly on the part after the last `@`: no subdomains, no suffix tricks.
    for email in [
        "bob@sub.partner.example",
        "bob@evilpartner.example",
        "bob@partner.example.evil.com",
        "alice@example.com.evil.com",
        "alice2@example.com",
    ] {
        assert_eq!(list.decide(&iap_caller(email, None)), NOT_LISTED, "{email}");
    }
    // An address with two `@`s or non-ASCII characters is never judged by its domain.
    assert_eq!(
        list.decide(&iap_caller("bob@x@partner.example", None)),
        NOT_LISTED
    );
    assert_eq!(
        list.decide(&iap_caller("b\u{f6}b@partner.example", None)),
        NOT_LISTED
    );
    // hd compares exactly too.
    assert_eq!(
        list.decide(&iap_caller("x@y.example", Some("sub.corp.example"))),
        NOT_LISTED
    );
    // A service account whose address is on a listed user domain is impossible (domains are validated), and a
    // service account is never admitted by the user rules.
    assert_eq!(
        list.decide(&id_token_caller("alice@appspot.gserviceaccount.com")),
        NOT_LISTED
    );
    assert_eq!(list.decide(&app("my-app-id")), NOT_LISTED);
}

#[test]
fn entries_are_validated() {
    let err = |b: AllowlistBuilder| b.build().unwrap_err();
    assert_eq!(
        err(Allowlist::builder().project_id("")),
        AllowlistError::EmptyEntry {
            list: ListKind::ProjectIds
        }
    );
    assert!(matches!(
        err(Allowlist::builder().project_id("*")),
        AllowlistError::Wildcard { .. }
    ));
    assert!(matches!(
        err(Allowlist::builder().service_account("*@appspot.gserviceaccount.com")),
        AllowlistError::Wildcard { .. }
    ));
    assert!(matches!(
        err(Allowlist::builder().user_domain("*.example.com")),
        AllowlistError::Wildcard { .. }
    ));
    assert!(matches!(
        err(Allowlist::builder().project_id(" my-app")),
        AllowlistError::Whitespace { .. }
    ));
    assert!(matches!(
        err(Allowlist::builder().project_id("My-App")),
        AllowlistError::InvalidProjectId { .. }
    ));
    assert!(matches!(
        err(Allowlist::builder().service_account("alice@example.com")),
        AllowlistError::NotAServiceAccount { .. }
    ));
    assert!(matches!(
        err(Allowlist::builder().service_account("x@appspot.gserviceaccount.com.evil.com")),
        AllowlistError::NotAServiceAccount { .. }
    ));
    assert!(matches!(
        err(Allowlist::builder().user_email("alice")),
        AllowlistError::InvalidEmail { .. }
    ));
    assert!(matches!(
        err(Allowlist::builder().user_email("a@b@c.example")),
        AllowlistError::InvalidEmail { .. }
    ));
    for sa_domain in [
        "gserviceaccount.com",
        "appspot.gserviceaccount.com",
        "my-proj.iam.gserviceaccount.com",
    ] {
        assert!(matches!(
            err(Allowlist::builder().user_domain(sa_domain)),
            AllowlistError::ServiceAccountDomain { .. }
        ));
        assert!(matches!(
            err(Allowlist::builder().hosted_domain(sa_domain)),
            AllowlistError::ServiceAccountDomain { .. }
        ));
    }
    assert!(matches!(
        err(Allowlist::builder().user_domain("@example.com")),
        AllowlistError::InvalidDomain { .. }
    ));
    assert!(matches!(
        err(Allowlist::builder().user_domain("localhost")),
        AllowlistError::InvalidDomain { .. }
    ));
    assert!(matches!(
        err(Allowlist::builder().user_domain("ex\u{0430}mple.com")),
        AllowlistError::InvalidDomain { .. }
    ));
    assert!(matches!(
        err(Allowlist::builder().hosted_domain("gmail.com")),
        AllowlistError::ConsumerHostedDomain { .. }
    ));
    // Help says what to write instead.
    assert!(
        err(Allowlist::builder().project_id("My-App"))
            .help()
            .contains("\"my-app\"")
    );
    assert!(
        err(Allowlist::builder().project_id("s~my-app"))
            .help()
            .contains("\"my-app\"")
    );
    assert!(
        err(Allowlist::builder().user_domain("@example.com"))
            .help()
            .contains("\"example.com\"")
    );
}

#[test]
fn decision_display() {
    assert_eq!(
        allow(AllowReason::UserDomainListed).to_string(),
        "allow (user_domain_listed)"
    );
    assert_eq!(NOT_LISTED.to_string(), "deny (not_listed)");
    assert_eq!(NOT_LISTED.outcome(), "deny");
}

#[test]
fn summary() {
    let list = Allowlist::builder()
        .project_id("example.com:proj-one")
        .service_account("runner@other-proj.iam.gserviceaccount.com")
        .build()
        .unwrap();
    let text = list.to_string();
    assert!(
        text.contains("proj-one.example.com@appspot.gserviceaccount.com"),
        "{text}"
    );
    assert!(
        text.contains("service account runner@other-proj.iam.gserviceaccount.com"),
        "{text}"
    );
    assert!(text.ends_with("everyone else is denied\n"), "{text}");
    assert_eq!(
        Allowlist::new().to_string(),
        "nobody (the allowlist is empty)\n"
    );
}
