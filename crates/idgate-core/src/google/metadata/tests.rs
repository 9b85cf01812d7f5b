//! Unit tests of the metadata client: roots, paths, error classes.

use super::*;

#[test]
fn host_selection() {
    let root = |m: &MetadataClient| m.root().map(|u| u.as_str().to_owned());
    assert_eq!(
        root(&MetadataClient::from_endpoints(&Endpoints::default())).unwrap(),
        "http://metadata.google.internal/computeMetadata/v1/"
    );
    assert_eq!(
        root(&MetadataClient::from_host("127.0.0.1:8085")).unwrap(),
        "http://127.0.0.1:8085/computeMetadata/v1/"
    );
    assert_eq!(
        root(&MetadataClient::from_host(" [::1]:9 ")).unwrap(),
        "http://[::1]:9/computeMetadata/v1/"
    );
    for bad in ["", "evil/path", "a@b", "h?x", "bad host", "h:notaport"] {
        let err = MetadataClient::from_host(bad).root().unwrap_err();
        assert!(err.is_config(), "{bad}: {err}");
    }
    assert_eq!(
        root(&MetadataClient::from_root(
            "http://169.254.169.254/computeMetadata/v1".parse().unwrap()
        ))
        .unwrap(),
        "http://169.254.169.254/computeMetadata/v1/"
    );
}

#[test]
fn paths_stay_under_the_root() {
    let m = MetadataClient::from_base_url(&"http://127.0.0.1:1/base/".parse().unwrap());
    assert_eq!(
        m.url("/project/project-id", &[]).unwrap().as_str(),
        "http://127.0.0.1:1/base/computeMetadata/v1/project/project-id"
    );
    // Leading slashes are stripped: a network-path reference stays a path under the root.
    assert!(
        m.url("//evil.example/x", &[])
            .unwrap()
            .as_str()
            .starts_with("http://127.0.0.1:1/base/computeMetadata/v1/")
    );
    for bad in ["../x", "http://evil.example/", "a?b=1", "a#b"] {
        assert!(m.url(bad, &[]).unwrap_err().is_config(), "{bad}");
    }
}

#[test]
fn errors_classify_and_keep_their_cause_out_of_the_message() {
    let e = unusable("project/numeric-project-id", AnswerProblem::NotANumber);
    assert!(e.is_unusable_answer() && !e.is_transient() && !e.is_not_on_google_cloud());
    assert_eq!(
        e.to_string(),
        "the metadata server's answer for project/numeric-project-id is unusable"
    );
    assert_eq!(
        crate::ErrorChain(&e).to_string(),
        "the metadata server's answer for project/numeric-project-id is unusable: the answer is not a decimal number"
    );
    let s = MetadataError::Status {
        path: "x".into(),
        status: StatusCode::TOO_MANY_REQUESTS,
        attempts: 1,
    };
    assert!(s.is_transient());
    assert_eq!(s.with_attempts(3).attempts(), Some(3));
}

#[test]
fn locations_and_domains() {
    assert_eq!(
        last_resource_segment("projects/123/zones/us-central1-a", "zones"),
        Some("us-central1-a")
    );
    assert_eq!(
        last_resource_segment("projects/123/regions/europe-west1", "regions"),
        Some("europe-west1")
    );
    assert_eq!(
        last_resource_segment("us-east1-b", "zones"),
        Some("us-east1-b")
    );
    for bad in [
        "",
        "projects/123/regions/us-central1",
        "projects//zones/x",
        "elsewhere/123/zones/x",
        "projects/1/zones/",
        "projects/1/zones/US-EAST1",
        "projects/1/zones/a b",
        "projects/1/x/zones/a",
    ] {
        assert_eq!(last_resource_segment(bad, "zones"), None, "{bad:?}");
    }
    assert!(is_domain_name("googleapis.com"));
    assert!(is_domain_name("apis-s3nsapis.fr"));
    for bad in ["", "localhost", "a..b", "<html>", "a.b/c", ".com"] {
        assert!(!is_domain_name(bad), "{bad:?}");
    }
}
