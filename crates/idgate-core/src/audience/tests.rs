use proptest::prelude::*;
use url::Url;

use super::*;

#[test]
fn rules() {
    assert_eq!(Audience::new("").check(), Err(AudienceError::Empty));
    assert_eq!(Audience::new(" \t").check(), Err(AudienceError::Empty));
    assert_eq!(
        Audience::new("a\nb").check(),
        Err(AudienceError::ControlCharacter)
    );
    assert_eq!(
        Audience::new("x".repeat(MAX_AUDIENCE_LEN + 1)).check(),
        Err(AudienceError::TooLong)
    );
    assert!(Audience::new("x".repeat(MAX_AUDIENCE_LEN)).check().is_ok());
    assert!(Audience::new("https://x").check().is_ok());
    assert_eq!(
        AudienceError::TooLong.to_string(),
        AudienceError::TooLong.reason()
    );
    assert!("".parse::<Audience>().is_err());
}

#[test]
fn origins_of_urls_and_uris() {
    let o = |s: &str| Audience::origin_of(&s.parse().unwrap()).map(|a| a.to_string());
    assert_eq!(o("https://a.run.app/x/y?z").unwrap(), "https://a.run.app");
    assert_eq!(o("http://localhost:80/").unwrap(), "http://localhost");
    assert_eq!(o("https://[::1]:8443/").unwrap(), "https://[::1]:8443");
    assert_eq!(o("https://u:p@H.example/").unwrap(), "https://h.example");
    assert_eq!(o("data:text/plain,hi"), Err(OriginError::NotHttp));
    assert_eq!(o("ftp://example.com/"), Err(OriginError::NotHttp));
    let u = |s: &str| Audience::origin_of_uri(&s.parse().unwrap()).map(|a| a.to_string());
    assert_eq!(u("HTTPS://A.Run.App:443/x").unwrap(), "https://a.run.app");
    assert_eq!(u("http://[::1]:8080/").unwrap(), "http://[::1]:8080");
    assert_eq!(u("https://u:p@h.example/").unwrap(), "https://h.example");
    assert_eq!(u("/path"), Err(OriginError::NotAbsolute));
    assert_eq!(u("ftp://example.com/"), Err(OriginError::NotHttp));
}

#[test]
fn origins_of_configured_audiences() {
    let o = |s: &str| Audience::new(s).origin().map(|a| a.to_string());
    assert_eq!(
        o("https://svc.example.com/jobs").unwrap(),
        "https://svc.example.com"
    );
    assert_eq!(
        o("HTTP://Svc.Example.com:80").unwrap(),
        "http://svc.example.com"
    );
    assert_eq!(o("my-custom-audience"), Err(OriginError::NotAbsolute));
    assert_eq!(o("/projects/1/apps/x"), Err(OriginError::NotAbsolute));
    assert_eq!(
        o("https://user@svc.example.com/"),
        Err(OriginError::UserInfo)
    );
    assert_eq!(
        o("https://:pw@svc.example.com/"),
        Err(OriginError::UserInfo)
    );
    assert_eq!(o("mailto:a@example.com"), Err(OriginError::NotHttp));
    assert_eq!(o("https://"), Err(OriginError::NoHost));
}

/// The hostile spellings of [`AudienceMatch::Origin`](crate::verify::AudienceMatch::Origin)'s docs: a lenient parser
/// reads each as `https://svc.example.com`; only canonical forms count.
#[test]
fn only_canonical_aud_has_an_origin() {
    for canonical in [
        "https://svc.example.com/",
        "https://svc.example.com/jobs?x=1",
    ] {
        assert_eq!(
            canonical_origin_of(canonical).unwrap(),
            "https://svc.example.com",
            "{canonical}"
        );
    }
    // The bare origin serializes with a `/`, so it is not canonical here; the verifier compares it with the
    // configured origins before asking for a canonical one.
    for hostile in [
        "https://svc.example.com",
        "https://svc.example.com\\@evil.com/",
        "https:svc.example.com/x",
        " https://svc.example.com/",
        "https://svc.exa\tmple.com/",
        "https://SVC.example.com/",
        "https://svc.example.com:443/",
        "https://user@svc.example.com/",
        "https://:pw@svc.example.com/",
        "ftp://svc.example.com/",
    ] {
        assert_eq!(canonical_origin_of(hostile), None, "{hostile:?}");
    }
}

fn scheme() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["http", "https", "HTTP", "Https", "ftp", "ws"])
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?(\\.[a-zA-Z0-9]{1,8}){0,3}",
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        prop::sample::select(vec!["[::1]", "[2001:db8::7]", "[0:0::1]", "localhost"])
            .prop_map(str::to_owned),
    ]
}

/// An absolute URL as a caller, a configuration or a token might spell it.
fn url_text() -> impl Strategy<Value = String> {
    (
        scheme(),
        prop::option::of("[a-z]{1,6}(:[a-z0-9]{0,6})?"),
        host(),
        prop::option::of(prop_oneof![Just(80u16), Just(443u16), any::<u16>()]),
        "(/[a-zA-Z0-9._~-]{0,8}){0,3}",
        prop::option::of("[a-z0-9=&]{0,10}"),
    )
        .prop_map(|(scheme, user, host, port, path, query)| {
            let mut s = format!("{scheme}://");
            if let Some(user) = user {
                s.push_str(&user);
                s.push('@');
            }
            s.push_str(&host);
            if let Some(port) = port {
                s.push_str(&format!(":{port}"));
            }
            s.push_str(&path);
            if let Some(query) = query {
                s.push('?');
                s.push_str(&query);
            }
            s
        })
}

#[test]
fn the_fast_path_agrees_with_the_parser_on_its_edges() {
    for text in [
        "https://api.example.com/v1",
        "http://api.example.com:8080/",
        "https://api.example.com:443/",
        "http://api.example.com:80/",
        "https://api.example.com:0443/",
        "https://api.example.com:/",
        "http://127.1/",
        "http://0x7f.1/",
        "http://1.2.3.4:99/",
        "https://xn--nxasmq6b.example/",
        "https://a..b/",
        "https://example.com./",
        "https://EXAMPLE.com/",
        "HTTPS://example.com/",
        "https://ex_ample.com/",
        "https://-a.example/",
        "https://a1/",
        "https://1a/",
        "https://[::1]:8443/",
    ] {
        let Ok(uri) = text.parse::<http::Uri>() else {
            continue;
        };
        let from_uri = Audience::origin_of_uri(&uri);
        let from_url = Url::parse(text)
            .map_err(|_| ())
            .and_then(|u| Audience::origin_of(&u).map_err(|_| ()));
        match from_url {
            Ok(expected) => assert_eq!(from_uri, Ok(expected), "{text}"),
            Err(()) => assert!(from_uri.is_err(), "{text}: {from_uri:?}"),
        }
    }
}

/// The fast path of `Audience::origin_of` on the hosts the proptests' generator does not make: IDNA, a trailing dot,
/// percent-encoding, IPv4 in other bases, IPv4-mapped IPv6, a port with leading zeros, user info.
#[test]
fn a_urls_origin_is_its_serialization_before_the_path_on_odd_hosts() {
    for text in [
        "https://BÜCHER.example/x",
        "https://xn--bcher-kva.example/",
        "https://a.run.app./x",
        "http://0x7f.1:80/",
        "http://127.1/",
        "https://[::FFFF:127.0.0.1]:443/",
        "https://%61.example/",
        "http://example.com:0080/",
        "https://example.com:08443/",
        "https://user:pw@example.com:8443/",
        "https://:@example.com/",
    ] {
        let url = Url::parse(text).unwrap();
        assert_eq!(
            Audience::origin_of(&url).unwrap().as_str(),
            url.origin().ascii_serialization(),
            "{text}"
        );
    }
}

proptest! {
    /// The reqwest adapter's fast path (the URL's serialization up to its path) is exactly the URL standard's
    /// origin serialization, for every http(s) URL it is taken for.
    #[test]
    fn a_urls_origin_is_its_serialization_before_the_path(text in url_text()) {
        let Ok(url) = Url::parse(&text) else { return Ok(()) };
        let Ok(origin) = Audience::origin_of(&url) else { return Ok(()) };
        prop_assert_eq!(origin.as_str(), url.origin().ascii_serialization(), "{}", text);
    }

    /// An origin is its own origin, by every entry point, and is canonical.
    #[test]
    fn the_origin_parser_is_idempotent(text in url_text()) {
        let Ok(url) = Url::parse(&text) else { return Ok(()) };
        let Ok(origin) = Audience::origin_of(&url) else { return Ok(()) };
        prop_assert!(origin.check().is_ok());
        let again = Audience::origin_of(&Url::parse(origin.as_str()).unwrap()).unwrap();
        prop_assert_eq!(&again, &origin);
        prop_assert_eq!(&origin.origin().unwrap(), &origin);
        prop_assert_eq!(canonical_origin_of(&format!("{origin}/")), Some(origin.clone()));
        let uri: http::Uri = origin.as_str().parse().unwrap();
        prop_assert_eq!(&Audience::origin_of_uri(&uri).unwrap(), &origin);
    }

    /// The former call sites agree: the reqwest adapter (URL), the tower adapter (URI), the configuration and the
    /// verifier builder (a configured audience) and the verifier (a canonical `aud`) find the same origin, or none.
    #[test]
    fn every_entry_point_finds_the_same_origin(text in url_text()) {
        let from_url = Url::parse(&text).ok().map(|u| Audience::origin_of(&u));
        if let Ok(uri) = text.parse::<http::Uri>() {
            let from_uri = Audience::origin_of_uri(&uri);
            match &from_url {
                Some(from_url) => prop_assert_eq!(from_url, &from_uri, "{}", text),
                None => prop_assert!(from_uri.is_err(), "{}", text),
            }
        }
        let configured = Audience::new(text.as_str()).origin();
        match (&from_url, &configured) {
            (Some(Ok(expected)), Ok(got)) => prop_assert_eq!(expected, got),
            (Some(Ok(_)), Err(e)) => prop_assert_eq!(*e, OriginError::UserInfo, "{}", text),
            (_, Ok(got)) => prop_assert!(false, "{text} has origin {got} only as configured"),
            (_, Err(_)) => {}
        }
        if let Some(canonical) = canonical_origin_of(&text) {
            prop_assert_eq!(Some(Ok(canonical)), from_url);
        }
    }

    /// For the ASCII hosts the tower adapter's former hand-written parser handled, the result is what it gave:
    /// lower-case `scheme://host`, and `:port` only when it is not the scheme's default.
    #[test]
    fn uri_origins_are_what_the_former_parser_gave(
        scheme in prop::sample::select(vec!["http", "https", "HTTPS"]),
        host in "[a-z]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-zA-Z]{1,8}){1,3}",
        port in prop::option::of(any::<u16>()),
    ) {
        let authority = port.map_or_else(|| host.clone(), |p| format!("{host}:{p}"));
        let uri: http::Uri = format!("{scheme}://{authority}/x?y").parse().unwrap();
        let scheme = scheme.to_ascii_lowercase();
        let default = if scheme == "https" { 443 } else { 80 };
        let host = host.to_ascii_lowercase();
        let expected = match port {
            Some(p) if p != default => format!("{scheme}://{host}:{p}"),
            _ => format!("{scheme}://{host}"),
        };
        let got = Audience::origin_of_uri(&uri).unwrap();
        prop_assert_eq!(got.as_str(), expected);
    }
}
