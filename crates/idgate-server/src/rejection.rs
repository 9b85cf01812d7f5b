//! Why a request was turned away, as a typed value and as an HTTP response.
//!
//! Every way [`RequireIdentityLayer`](crate::RequireIdentityLayer), [`RequireIapLayer`](crate::RequireIapLayer) and
//! the [extractors](crate::extract) refuse a request is one [`IdentityRejection`]:
//!
//! | rejection | status | headers |
//! |---|---|---|
//! | [`MissingCredential`](IdentityRejection::MissingCredential) | 401 | `WWW-Authenticate: Bearer` |
//! | [`MalformedCredential`](IdentityRejection::MalformedCredential), [`InvalidToken`](IdentityRejection::InvalidToken), [`UnknownIdentity`](IdentityRejection::UnknownIdentity) | 401 | `WWW-Authenticate: Bearer error="invalid_token"` |
//! | [`SignatureRemoved`](IdentityRejection::SignatureRemoved) | 401 | `WWW-Authenticate: Bearer error="invalid_token"`; the body says what to do |
//! | [`MissingIapAssertion`](IdentityRejection::MissingIapAssertion), [`InvalidIapAssertion`](IdentityRejection::InvalidIapAssertion), [`IapHeaderMismatch`](IdentityRejection::IapHeaderMismatch) | 401 | |
//! | [`NotAllowed`](IdentityRejection::NotAllowed), [`NotAUser`](IdentityRejection::NotAUser) | 403 | |
//! | [`KeysUnavailable`](IdentityRejection::KeysUnavailable) | 503 | `Retry-After: <seconds>` |
//! | [`MissingLayer`](IdentityRejection::MissingLayer) | 500 | the body names the layer to add |
//!
//! Bodies are short `text/plain` sentences. The body of an invalid token is deliberately generic ("invalid token"):
//! the precise reason ([`IdentityRejection::reason`], e.g. `expired`, `wrong_audience`) goes to the log only, so a
//! prober learns nothing. No rejection ever contains a token, in its body, its `Debug` output or its log line.
//!
//! # Logging
//!
//! Every decision the layers take is logged exactly once, on the stable tracing target **`idgate::decision`**, with
//! the fields `layer`, `outcome` (`allow` / `reject`), `reason`, `status`, and when the caller is known
//! `caller_kind`, `caller_email` and `caller_project`:
//!
//! - rejections the caller caused (401, 403) at `DEBUG`: they are routine on the internet and would drown an
//!   `INFO` log;
//! - admissions at `DEBUG`, for the same reason (use `tower_http::trace` for access logs);
//! - keys unavailable (503) at `WARN`, and a missing layer (500, a programming error) at `ERROR`.
//!
//! ```text
//! RUST_LOG=idgate::decision=debug   # see every decision
//! ```

use std::fmt;
use std::time::Duration;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use idgate_core::ErrorChain;
use idgate_core::identity::{Caller, IdentityError};
use idgate_core::policy::DenyReason;
use idgate_core::token::CredentialError;
use idgate_core::verify::VerifyError;

/// The tracing target every decision is logged under.
pub const DECISION_TARGET: &str = "idgate::decision";

/// Why a request was refused. See the [module docs](self) for the status each variant maps to.
///
/// Prefer [`status`](Self::status), [`reason`](Self::reason) and the `is_*` helpers to matching: new variants may
/// be added.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum IdentityRejection {
    /// No credential was presented: no `X-Serverless-Authorization` and no `Authorization` header (nor, when
    /// trusted, `X-Appengine-Inbound-Appid`).
    MissingCredential,
    /// A credential header is present but unusable: sent twice, not visible ASCII, too large, or not of the form
    /// `Bearer <token>`. The [`CredentialError`] says which, without the header value; its
    /// [`reason`](CredentialError::reason) (`duplicate_header`, `not_ascii`, `too_large`, ...) is this rejection's.
    MalformedCredential(CredentialError),
    /// The ID token failed verification (signature, issuer, audience, expiry, ...). The body stays generic; the
    /// error is for logs and tests.
    InvalidToken(VerifyError),
    /// The token's signature was replaced with `SIGNATURE_REMOVED_BY_GOOGLE` by Cloud Run's invoker check, so it
    /// cannot be verified here. The response body says how to fix it.
    SignatureRemoved,
    /// The token is genuine but names no caller idgate can identify (or the trusted legacy header is malformed).
    UnknownIdentity(IdentityError),
    /// [`RequireIapLayer`](crate::RequireIapLayer): no `x-goog-iap-jwt-assertion` header. (Two of them are a
    /// [`MalformedCredential`](Self::MalformedCredential), [`CredentialError::DuplicateHeader`].)
    MissingIapAssertion,
    /// [`RequireIapLayer`](crate::RequireIapLayer): the IAP assertion failed verification.
    InvalidIapAssertion(VerifyError),
    /// [`RequireIapLayer`](crate::RequireIapLayer) with plain-header comparison on: `X-Goog-Authenticated-User-Email`
    /// does not name the user of the verified assertion.
    IapHeaderMismatch,
    /// The caller is genuine but not on the allowlist. The [`DenyReason`] says why (its
    /// [`as_str`](DenyReason::as_str), e.g. `not_listed`, is in the log line's `detail`); the rejection's own
    /// [`reason`](Self::reason) is `not_allowed` whatever the cause.
    NotAllowed(DenyReason),
    /// [`UserEmail`](crate::extract::UserEmail) on a request whose verified caller is not a signed-in user (e.g. a
    /// service account).
    NotAUser,
    /// The signing keys could not be obtained; the request may succeed later. Not the caller's fault.
    KeysUnavailable {
        /// When to retry (sent as `Retry-After`, whole seconds, at least 1).
        retry_after: Duration,
    },
    /// An extractor was used on a route its layer does not cover (a programming error).
    MissingLayer {
        /// The extractor, e.g. `VerifiedCaller`.
        extractor: &'static str,
        /// The layer(s) that provide it.
        layer: &'static str,
    },
}

impl IdentityRejection {
    /// Classifies a verification failure of an ID token: keys unavailable is a 503, everything else a 401.
    pub fn from_token_error(error: VerifyError) -> Self {
        match &error {
            VerifyError::KeysUnavailable(k) => Self::KeysUnavailable {
                retry_after: k.retry_after(),
            },
            _ if error.is_signature_removed() => Self::SignatureRemoved,
            _ => Self::InvalidToken(error),
        }
    }

    /// Classifies a verification failure of an IAP assertion: keys unavailable is a 503, everything else a 401.
    pub fn from_iap_error(error: VerifyError) -> Self {
        match &error {
            VerifyError::KeysUnavailable(k) => Self::KeysUnavailable {
                retry_after: k.retry_after(),
            },
            _ => Self::InvalidIapAssertion(error),
        }
    }

    /// The HTTP status this rejection is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingCredential
            | Self::MalformedCredential(_)
            | Self::InvalidToken(_)
            | Self::SignatureRemoved
            | Self::UnknownIdentity(_)
            | Self::MissingIapAssertion
            | Self::InvalidIapAssertion(_)
            | Self::IapHeaderMismatch => StatusCode::UNAUTHORIZED,
            Self::NotAllowed(_) | Self::NotAUser => StatusCode::FORBIDDEN,
            Self::KeysUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::MissingLayer { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response body: one sentence, safe to show anyone (never a token, never why exactly a token failed).
    pub fn body_text(&self) -> String {
        match self {
            Self::MissingCredential => "missing credential: send a Google-signed ID token as \
                `Authorization: Bearer <token>` or `X-Serverless-Authorization: Bearer <token>`"
                .to_owned(),
            // A duplicate may be of any credential header (IAP's assertion too), which is not a `Bearer` one.
            Self::MalformedCredential(CredentialError::DuplicateHeader) => {
                "malformed credential: the credential header was sent more than once".to_owned()
            }
            Self::MalformedCredential(_) => {
                "malformed credential: expected exactly one `Bearer <token>` header".to_owned()
            }
            Self::InvalidToken(_) | Self::UnknownIdentity(_) => "invalid token".to_owned(),
            Self::SignatureRemoved => "invalid token: its signature was removed by Cloud Run \
                (SIGNATURE_REMOVED_BY_GOOGLE) after Cloud Run's own invoker check, so this service cannot verify it. \
                Send the ID token in the `X-Serverless-Authorization` header instead (Cloud Run checks that header \
                and forwards it intact), or, if this service is reachable only through Cloud Run with the invoker \
                check on, opt in to trusting Cloud Run's check (`trust_cloud_run_invoker_check`)."
                .to_owned(),
            Self::MissingIapAssertion => "missing IAP assertion: this service must be reached through \
                Identity-Aware Proxy (header `x-goog-iap-jwt-assertion`)"
                .to_owned(),
            Self::InvalidIapAssertion(_) => "invalid IAP assertion".to_owned(),
            Self::IapHeaderMismatch => {
                "X-Goog-Authenticated-User-Email does not match the verified IAP assertion".to_owned()
            }
            Self::NotAllowed(_) => "forbidden: the caller is not allowed to call this service".to_owned(),
            Self::NotAUser => "forbidden: this endpoint is for signed-in users".to_owned(),
            Self::KeysUnavailable { .. } => {
                "service unavailable: token signing keys could not be fetched; retry later".to_owned()
            }
            Self::MissingLayer { extractor, layer } => format!(
                "idgate: the `{extractor}` extractor found no verified identity on this request. \
                 Perhaps you forgot to add `{layer}` to this route?"
            ),
        }
    }

    /// A short, stable, machine-readable reason (`missing_credential`, `expired`, `not_allowed`, ...) for logs and
    /// metrics. For invalid tokens it is [`VerifyError::reason`], for malformed credentials
    /// [`CredentialError::reason`].
    ///
    /// ```
    /// use idgate_core::token::CredentialError;
    /// use idgate_server::rejection::IdentityRejection;
    ///
    /// let rejection = IdentityRejection::MalformedCredential(CredentialError::DuplicateHeader);
    /// assert_eq!(rejection.reason(), "duplicate_header");
    /// assert_eq!(rejection.status(), 401);
    /// ```
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingCredential => "missing_credential",
            Self::MalformedCredential(e) => e.reason(),
            Self::InvalidToken(e) | Self::InvalidIapAssertion(e) => e.reason(),
            Self::SignatureRemoved => "signature_removed",
            Self::UnknownIdentity(_) => "unknown_identity",
            Self::MissingIapAssertion => "missing_iap_assertion",
            Self::IapHeaderMismatch => "iap_header_mismatch",
            Self::NotAllowed(_) => "not_allowed",
            Self::NotAUser => "not_a_user",
            Self::KeysUnavailable { .. } => "keys_unavailable",
            Self::MissingLayer { .. } => "missing_layer",
        }
    }

    /// A 401: no credential, or one that is not genuine.
    pub fn is_unauthenticated(&self) -> bool {
        self.status() == StatusCode::UNAUTHORIZED
    }

    /// A 403: a genuine caller that may not do this.
    pub fn is_forbidden(&self) -> bool {
        self.status() == StatusCode::FORBIDDEN
    }

    /// A 503: the signing keys are unavailable.
    pub fn is_keys_unavailable(&self) -> bool {
        matches!(self, Self::KeysUnavailable { .. })
    }

    /// The response for this rejection, with any body type that can be made from a `String` (axum's `Body`,
    /// `http_body_util::Full<Bytes>`, `String`, ...). This is how the layers answer.
    pub fn into_http_response<B: From<String>>(self) -> Response<B> {
        let mut response = Response::new(B::from(self.body_text()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            Self::MissingCredential => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::MalformedCredential(_)
            | Self::InvalidToken(_)
            | Self::SignatureRemoved
            | Self::UnknownIdentity(_) => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            Self::KeysUnavailable { retry_after } => {
                let secs = retry_after.as_secs().max(1);
                headers.insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            _ => {}
        }
        response
    }
}

/// One level, as every idgate error: the cause of an invalid token, an unknown identity or a malformed credential is
/// its [`source`](std::error::Error::source), printed with [`ErrorChain`]. The allowlist's [`DenyReason`] is not an
/// error, so it is part of the message (`caller not allowed: not_listed`).
impl fmt::Display for IdentityRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidToken(_) => f.write_str("invalid token"),
            Self::InvalidIapAssertion(_) => f.write_str("invalid IAP assertion"),
            Self::UnknownIdentity(_) => f.write_str("unknown identity"),
            Self::NotAllowed(reason) => write!(f, "caller not allowed: {}", reason.as_str()),
            Self::MalformedCredential(_) => f.write_str("malformed credential"),
            Self::KeysUnavailable { retry_after } => {
                write!(
                    f,
                    "signing keys unavailable; retry after {} s",
                    retry_after.as_secs().max(1)
                )
            }
            other => f.write_str(&other.body_text()),
        }
    }
}

impl std::error::Error for IdentityRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidToken(e) | Self::InvalidIapAssertion(e) => Some(e),
            Self::UnknownIdentity(e) => Some(e),
            Self::MalformedCredential(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl axum::response::IntoResponse for IdentityRejection {
    fn into_response(self) -> axum::response::Response {
        self.into_http_response()
    }
}

/// Logs a rejection once, on [`DECISION_TARGET`], at the level its kind calls for (see the module docs).
pub(crate) fn log_rejection(
    layer: &'static str,
    rejection: &IdentityRejection,
    caller: Option<&Caller>,
) {
    let (kind, email, project) = caller_fields(caller);
    let status = rejection.status().as_u16();
    let reason = rejection.reason();
    crate::metrics::rejected(layer, reason, rejection.status().is_server_error());
    match rejection {
        IdentityRejection::KeysUnavailable { retry_after } => tracing::warn!(
            target: DECISION_TARGET, layer, outcome = "reject", reason, status,
            retry_after_secs = retry_after.as_secs(), "signing keys unavailable; answering 503"
        ),
        IdentityRejection::MissingLayer {
            extractor,
            layer: needed,
        } => tracing::error!(
            target: DECISION_TARGET, layer, outcome = "reject", reason, status, extractor, needed,
            "extractor used on a route without its layer"
        ),
        // Invalid tokens: the detailed error (never containing the token) goes to the debug log only.
        IdentityRejection::InvalidToken(e) | IdentityRejection::InvalidIapAssertion(e) => {
            tracing::debug!(
                target: DECISION_TARGET, layer, outcome = "reject", reason, status, caller_kind = kind,
                caller_email = email, caller_project = project, detail = %ErrorChain(e), "request rejected"
            );
        }
        _ => tracing::debug!(
            target: DECISION_TARGET, layer, outcome = "reject", reason, status, caller_kind = kind,
            caller_email = email, caller_project = project, detail = %ErrorChain(rejection),
            "request rejected"
        ),
    }
}

/// Logs an admission once, on [`DECISION_TARGET`] at `DEBUG`, and counts it.
pub(crate) fn log_allow(
    admissions: &crate::metrics::Admissions,
    layer: &'static str,
    via: &'static str,
    caller: &Caller,
) {
    admissions.admitted(layer, via);
    let (kind, email, project) = caller_fields(Some(caller));
    tracing::debug!(
        target: DECISION_TARGET, layer, outcome = "allow", reason = via, caller_kind = kind,
        caller_email = email, caller_project = project, "request admitted"
    );
}

fn caller_fields(caller: Option<&Caller>) -> (&'static str, Option<&str>, Option<String>) {
    match caller {
        Some(c) => (
            c.kind().as_str(),
            c.email(),
            c.project().map(ToString::to_string),
        ),
        None => ("none", None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_headers() {
        let r: Response<String> = IdentityRejection::MissingCredential.into_http_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");

        let r: Response<String> =
            IdentityRejection::MalformedCredential(CredentialError::DuplicateHeader)
                .into_http_response();
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

        let r: Response<String> = IdentityRejection::KeysUnavailable {
            retry_after: Duration::from_millis(1500),
        }
        .into_http_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[RETRY_AFTER], "1");

        let r: Response<String> =
            IdentityRejection::NotAllowed(DenyReason::NotListed).into_http_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.headers().get(WWW_AUTHENTICATE).is_none());

        let r: Response<String> = IdentityRejection::MissingLayer {
            extractor: "VerifiedCaller",
            layer: "RequireIdentityLayer",
        }
        .into_http_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(r.body().contains("RequireIdentityLayer"));
    }

    #[test]
    fn signature_removed_body_gives_advice() {
        let r = IdentityRejection::from_token_error(VerifyError::SignatureRemoved);
        assert!(matches!(r, IdentityRejection::SignatureRemoved));
        let body = r.body_text();
        assert!(body.contains("X-Serverless-Authorization"));
        assert!(body.contains("trust_cloud_run_invoker_check"));
    }

    #[test]
    fn a_duplicate_header_is_not_called_a_bearer_problem() {
        // The duplicate may be IAP's assertion, which has no `Bearer` scheme.
        let duplicate = IdentityRejection::MalformedCredential(CredentialError::DuplicateHeader);
        assert_eq!(
            duplicate.body_text(),
            "malformed credential: the credential header was sent more than once"
        );
        let scheme = IdentityRejection::MalformedCredential(CredentialError::UnsupportedScheme);
        assert!(scheme.body_text().contains("`Bearer <token>`"));
    }

    #[test]
    fn reasons_derive_from_the_carried_values() {
        for (error, reason) in [
            (CredentialError::DuplicateHeader, "duplicate_header"),
            (CredentialError::NotAscii, "not_ascii"),
            (CredentialError::TooLarge, "too_large"),
            (CredentialError::UnsupportedScheme, "unsupported_scheme"),
            (CredentialError::EmptyToken, "empty_token"),
            (CredentialError::ExtraContent, "extra_content"),
        ] {
            let r = IdentityRejection::MalformedCredential(error);
            assert_eq!(r.reason(), reason);
            assert_eq!(r.to_string(), "malformed credential");
            assert_eq!(
                ErrorChain(&r).to_string(),
                format!("malformed credential: {error}")
            );
        }
        for deny in [
            DenyReason::NotListed,
            DenyReason::EmptyAllowlist,
            DenyReason::EmailNotVerified,
            DenyReason::NoAllowlistConfigured,
        ] {
            let r = IdentityRejection::NotAllowed(deny);
            assert_eq!(r.reason(), "not_allowed");
            assert_eq!(
                ErrorChain(&r).to_string(),
                format!("caller not allowed: {}", deny.as_str())
            );
        }
    }

    #[test]
    fn the_cause_is_in_source_not_in_the_message() {
        let r = IdentityRejection::from_token_error(VerifyError::NotYetValid);
        assert_eq!(r.to_string(), "invalid token");
        assert_eq!(
            ErrorChain(&r).to_string(),
            "invalid token: token is not valid yet"
        );
        let r = IdentityRejection::from_iap_error(VerifyError::InvalidSignature);
        assert_eq!(
            ErrorChain(&r).to_string(),
            "invalid IAP assertion: token signature is invalid"
        );
    }

    #[test]
    fn invalid_token_body_is_generic() {
        let r = IdentityRejection::from_token_error(VerifyError::WrongAudience {
            got: "https://other".into(),
        });
        assert_eq!(r.body_text(), "invalid token");
        assert_eq!(r.reason(), "wrong_audience");
        assert!(r.is_unauthenticated());
    }
}
