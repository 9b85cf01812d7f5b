//! Unit tests of the error types and their messages.

use super::*;

#[test]
fn error_detail_reads_oauth_and_api_errors() {
    assert_eq!(
        error_detail(br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#)
            .as_deref(),
        Some("invalid_grant: Invalid JWT Signature.")
    );
    assert_eq!(
        error_detail(
            br#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#
        )
        .as_deref(),
        Some("PERMISSION_DENIED: Permission denied")
    );
    assert_eq!(error_detail(b"<html>secret</html>"), None);
    assert_eq!(error_detail(br#"{"other":1}"#), None);
}

#[test]
fn bounded_truncates_and_strips_controls() {
    assert_eq!(bounded("a\nb", 10), "a b");
    assert_eq!(bounded("abcdef", 3), "abc…");
}

#[test]
fn unsupported_message_gives_advice() {
    let e = SourceError::UnsupportedCredentials {
        credential_type: "authorized_user".into(),
        origin: Some(KeyOrigin::File("/tmp/adc.json".into())),
    };
    let msg = e.to_string();
    assert!(msg.contains("OAuth client ID"), "{msg}");
    assert!(msg.contains("--impersonate-service-account"), "{msg}");
    assert!(msg.contains("/tmp/adc.json"), "{msg}");
    assert!(e.is_unsupported_credentials());
}

#[test]
fn transient_classification() {
    let s = |code: u16| SourceError::Status {
        endpoint: Endpoint::OAuthToken,
        status: StatusCode::from_u16(code).unwrap(),
        attempts: 1,
        detail: None,
    };
    assert!(s(503).is_transient());
    assert!(s(500).is_transient());
    assert!(s(429).is_transient());
    assert!(!s(400).is_transient());
    assert!(!s(403).is_transient());
    assert!(!SourceError::InvalidAudience { reason: "x" }.is_transient());
}

#[test]
fn causes_are_in_source_not_in_the_message() {
    use std::error::Error as _;

    use idgate_core::ErrorChain;

    let read = KeyFileError::Read {
        origin: KeyOrigin::Json,
        error: Arc::new(std::io::Error::other("disk on fire")),
    };
    assert_eq!(read.to_string(), "cannot read credentials JSON");
    assert_eq!(
        ErrorChain(&read).to_string(),
        "cannot read credentials JSON: disk on fire"
    );

    let invalid = SourceError::invalid(
        Endpoint::OAuthToken,
        ResponseProblem::MissingField("id_token"),
    );
    assert!(invalid.source().is_some());
    assert!(!invalid.to_string().contains("id_token"), "{invalid}");
    assert!(ErrorChain(&invalid).to_string().contains("`id_token`"));

    let attach = AttachError::Source {
        audience: crate::Audience::new("https://a.example"),
        error: SourceError::from(read),
    };
    assert_eq!(
        attach.to_string(),
        "cannot get an ID token for audience https://a.example"
    );
    assert!(
        ErrorChain(&attach).to_string().ends_with(": disk on fire"),
        "{}",
        ErrorChain(&attach)
    );

    let none = SourceError::NoCredentials {
        metadata: Box::new(SourceError::Config { reason: "x".into() }),
    };
    assert!(
        !none.to_string().contains("invalid configuration"),
        "{none}"
    );
    assert!(
        ErrorChain(&none)
            .to_string()
            .ends_with("invalid configuration: x")
    );
}

#[test]
fn metadata_errors_map_onto_source_errors() {
    use idgate_core::google::metadata::{AnswerProblem, MetadataError};

    let e = SourceError::from(MetadataError::Status {
        path: "project/project-id".into(),
        status: StatusCode::NOT_FOUND,
        attempts: 1,
    });
    assert_eq!(e.status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(e.endpoint(), Some(Endpoint::MetadataServer));
    let e = SourceError::from(MetadataError::UnusableAnswer {
        path: "project/numeric-project-id".into(),
        problem: AnswerProblem::NotANumber,
    });
    assert!(e.is_invalid_response());
    let e = SourceError::from(MetadataError::InvalidHost);
    assert!(e.is_config());
    assert_eq!(
        e.to_string(),
        "invalid configuration: GCE_METADATA_HOST is not a usable host[:port]"
    );
}
