//! Finding the one credential a request presents, by the precedence rules of
//! [`RequireIdentityLayer`](crate::RequireIdentityLayer). Pure functions over a `HeaderMap`; no I/O, no panics.

use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use idgate_core::token::{CredentialError, parse_authorization};

use crate::rejection::IdentityRejection;

/// `X-Serverless-Authorization`: where Cloud Run looks first, and forwards intact.
pub(crate) static X_SERVERLESS_AUTHORIZATION: HeaderName =
    HeaderName::from_static("x-serverless-authorization");
/// `X-Appengine-Inbound-Appid`: the legacy App Identity header, set by App Engine's URLFetch.
pub(crate) static X_APPENGINE_INBOUND_APPID: HeaderName =
    HeaderName::from_static("x-appengine-inbound-appid");
/// `x-goog-iap-jwt-assertion`: the IAP-signed assertion.
pub(crate) static X_GOOG_IAP_JWT_ASSERTION: HeaderName =
    HeaderName::from_static("x-goog-iap-jwt-assertion");
/// `X-Goog-Authenticated-User-Email`: IAP's unsigned convenience header. Never identity on its own.
pub(crate) static X_GOOG_AUTHENTICATED_USER_EMAIL: HeaderName =
    HeaderName::from_static("x-goog-authenticated-user-email");

/// Which request header carried the credential that admitted a request through
/// [`RequireIdentityLayer`](crate::RequireIdentityLayer). The layer puts it in the request's extensions next to the
/// [`Caller`](idgate_core::identity::Caller), so what runs inside can tell the verified header from the others: the
/// sidecar proxy forwards only the credential idgate verified.
///
/// ```
/// use idgate_server::CredentialHeader;
///
/// assert_eq!(CredentialHeader::ServerlessAuthorization.name(), "x-serverless-authorization");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialHeader {
    /// `X-Appengine-Inbound-Appid`, trusted ([`RequireIdentityLayer::trust_legacy_header`](crate::RequireIdentityLayer::trust_legacy_header)).
    AppEngineInboundAppid,
    /// `X-Serverless-Authorization: Bearer <token>`.
    ServerlessAuthorization,
    /// `Authorization: Bearer <token>`.
    Authorization,
}

impl CredentialHeader {
    /// The header's name, lower case.
    pub fn name(self) -> &'static str {
        self.header_name().as_str()
    }

    /// The header's name as a [`HeaderName`].
    pub fn header_name(self) -> &'static HeaderName {
        match self {
            Self::AppEngineInboundAppid => &X_APPENGINE_INBOUND_APPID,
            Self::ServerlessAuthorization => &X_SERVERLESS_AUTHORIZATION,
            Self::Authorization => &AUTHORIZATION,
        }
    }
}

/// What a request presents, before anything is verified.
#[derive(Debug)]
pub(crate) enum Presented {
    /// The legacy header (only returned when the layer trusts it).
    Legacy(HeaderValue),
    /// A bearer token, parsed.
    Token(BearerToken),
}

/// A bearer token, copied out of its header once it parsed.
///
/// A copy, not a position in the header value: measured against the position-based version (`benches`, in-process
/// layer probe), the copy of a ~1 KiB token costs about 35 ns, 6 % of the layer's cost, and leaves no
/// "cannot fail in practice" error path behind.
#[derive(Debug, Clone)]
pub(crate) struct BearerToken {
    token: Box<str>,
    /// Which header it came from.
    pub(crate) header: CredentialHeader,
}

impl BearerToken {
    /// The token, without its scheme.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }
}

/// The single value of `name`, `None` when absent. Two or more values are ambiguous: a 401, never a guess.
pub(crate) fn single<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a HeaderValue>, IdentityRejection> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(IdentityRejection::MalformedCredential(
            CredentialError::DuplicateHeader,
        ));
    }
    Ok(first)
}

/// Applies the precedence rules: the legacy header only when `trust_legacy`; then `X-Serverless-Authorization`
/// (Cloud Run checks it and forwards it intact); then `Authorization`.
///
/// A trusted legacy header that is present but empty counts as absent: App Engine never sends an empty one, and
/// letting it stand would make a blank header (which any client can add) block the caller's valid bearer token.
/// A non-empty value that is not an app ID is still a 401, never skipped. Two copies are ambiguous either way.
pub(crate) fn presented(
    headers: &HeaderMap,
    trust_legacy: bool,
) -> Result<Presented, IdentityRejection> {
    if trust_legacy
        && let Some(value) = single(headers, &X_APPENGINE_INBOUND_APPID)?
        && !value.as_bytes().trim_ascii().is_empty()
    {
        return Ok(Presented::Legacy(value.clone()));
    }
    let (value, header) = match single(headers, &X_SERVERLESS_AUTHORIZATION)? {
        Some(value) => (value, CredentialHeader::ServerlessAuthorization),
        None => match single(headers, &AUTHORIZATION)? {
            Some(value) => (value, CredentialHeader::Authorization),
            None => return Err(IdentityRejection::MissingCredential),
        },
    };
    // Parse once, now, so the common mistakes are answered without any further work.
    let (_, token) =
        parse_authorization(value.as_bytes()).map_err(IdentityRejection::MalformedCredential)?;
    Ok(Presented::Token(BearerToken {
        token: token.into(),
        header,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&HeaderName, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append((*k).clone(), HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn token(p: Presented) -> (String, &'static str) {
        match p {
            Presented::Token(at) => (at.token().to_owned(), at.header.name()),
            Presented::Legacy(_) => panic!("legacy"),
        }
    }

    #[test]
    fn serverless_header_wins_over_authorization() {
        let h = headers(&[
            (&AUTHORIZATION, b"Bearer a.b.SIGNATURE_REMOVED_BY_GOOGLE"),
            (&X_SERVERLESS_AUTHORIZATION, b"Bearer x.y.z"),
        ]);
        assert_eq!(
            token(presented(&h, false).unwrap()),
            ("x.y.z".to_owned(), "x-serverless-authorization")
        );
    }

    #[test]
    fn authorization_bearer_and_id_schemes() {
        let h = headers(&[(&AUTHORIZATION, b"bEaReR x.y.z")]);
        assert_eq!(token(presented(&h, false).unwrap()).0, "x.y.z");
        let h = headers(&[(&AUTHORIZATION, b"ID x.y.z")]);
        assert_eq!(token(presented(&h, false).unwrap()).0, "x.y.z");
    }

    #[test]
    fn missing_and_malformed() {
        assert!(matches!(
            presented(&HeaderMap::new(), false),
            Err(IdentityRejection::MissingCredential)
        ));
        let h = headers(&[(&AUTHORIZATION, b"Basic dXNlcjpwdw==")]);
        assert_eq!(
            presented(&h, false).unwrap_err().reason(),
            "unsupported_scheme"
        );
        let h = headers(&[(&AUTHORIZATION, b"Bearer \xff\xfe")]);
        assert_eq!(presented(&h, false).unwrap_err().reason(), "not_ascii");
        let big = [b"Bearer ".as_slice(), &[b'a'; 20_000]].concat();
        let h = headers(&[(&AUTHORIZATION, &big)]);
        assert_eq!(presented(&h, false).unwrap_err().reason(), "too_large");
    }

    #[test]
    fn duplicates_are_ambiguous() {
        let h = headers(&[
            (&AUTHORIZATION, b"Bearer a.b.c"),
            (&AUTHORIZATION, b"Bearer d.e.f"),
        ]);
        assert_eq!(
            presented(&h, false).unwrap_err().reason(),
            "duplicate_header"
        );
        let h = headers(&[
            (&X_SERVERLESS_AUTHORIZATION, b"Bearer a.b.c"),
            (&X_SERVERLESS_AUTHORIZATION, b"Bearer d.e.f"),
        ]);
        assert_eq!(
            presented(&h, false).unwrap_err().reason(),
            "duplicate_header"
        );
    }

    #[test]
    fn legacy_header_only_when_trusted() {
        let h = headers(&[
            (&X_APPENGINE_INBOUND_APPID, b"caller-app"),
            (&AUTHORIZATION, b"Bearer a.b.c"),
        ]);
        assert!(matches!(presented(&h, true).unwrap(), Presented::Legacy(v) if v == "caller-app"));
        assert_eq!(token(presented(&h, false).unwrap()).0, "a.b.c");
        let h = headers(&[(&X_APPENGINE_INBOUND_APPID, b"caller-app")]);
        assert!(matches!(
            presented(&h, false),
            Err(IdentityRejection::MissingCredential)
        ));
    }

    #[test]
    fn an_empty_legacy_header_is_absent() {
        for empty in [b"".as_slice(), b" ", b"\t"] {
            let h = headers(&[
                (&X_APPENGINE_INBOUND_APPID, empty),
                (&AUTHORIZATION, b"Bearer a.b.c"),
            ]);
            assert_eq!(token(presented(&h, true).unwrap()).0, "a.b.c");
            let h = headers(&[(&X_APPENGINE_INBOUND_APPID, empty)]);
            assert!(matches!(
                presented(&h, true),
                Err(IdentityRejection::MissingCredential)
            ));
        }
        let h = headers(&[
            (&X_APPENGINE_INBOUND_APPID, b""),
            (&X_APPENGINE_INBOUND_APPID, b""),
            (&AUTHORIZATION, b"Bearer a.b.c"),
        ]);
        assert_eq!(
            presented(&h, true).unwrap_err().reason(),
            "duplicate_header"
        );
    }
}
