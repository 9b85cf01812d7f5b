//! The tracing span each layer's check runs in, for `tracing-opentelemetry` and any other span consumer.
//!
//! [`RequireIdentityLayer`](crate::RequireIdentityLayer) and [`RequireIapLayer`](crate::RequireIapLayer) (and so
//! [`ByCredentialLayer`](crate::ByCredentialLayer), which hands each request to one of them) check every request
//! that is not on an exempt path inside **one** span, named **`idgate.authenticate`**, at `INFO`, on the target
//! [`SPAN_TARGET`] (`idgate::authenticate`). The span covers the check only (finding the credential, verifying it,
//! the allowlist), never the inner service, and the `idgate::decision` event of the check is logged inside it.
//!
//! | field | value |
//! |---|---|
//! | `idgate.layer` | `require_identity` or `require_iap` |
//! | `idgate.credential` | the header judged: `authorization`, `x-serverless-authorization`, `x-appengine-inbound-appid` or `x-goog-iap-jwt-assertion`; empty when none was presented |
//! | `idgate.outcome` | `allow` or `reject` |
//! | `idgate.reason` | the stable reason: for a rejection [`IdentityRejection::reason`](crate::IdentityRejection::reason) (`missing_credential`, `expired`, `not_allowed`, `keys_unavailable`, ...), for an admission what admitted it (`authorization`, `x-serverless-authorization`, `cloud_run_invoker_check`, `legacy_appengine_header`, `iap_assertion`) |
//! | `otel.status_code` | `ERROR` when the answer is a 5xx (keys unavailable); absent otherwise (a 401 or 403 is the layer working) |
//! | `enduser.id` | the admitted caller's verified email (or App Engine app ID), **only** with `record_enduser_id(true)` on the layer ([`Layers::record_enduser_id`](crate::Layers::record_enduser_id), `[tracing] record_enduser_id = true`): an email is personal data |
//!
//! No field ever holds a token, an assertion or any other header value: the credential is named by its header.
//!
//! **Cost.** When no subscriber wants the span (filtered out by level or target) it is a disabled span: a cached
//! interest check of a few nanoseconds, and the fields are not recorded (nothing is formatted or allocated). Turn it
//! off with a filter directive such as `idgate::authenticate=off`.
//!
//! The whole workspace's spans are listed in one table in `docs/tracing.md`.

use idgate_core::identity::Caller;
use tracing::Span;
use tracing::field::Empty;

use crate::rejection::IdentityRejection;

/// The tracing target of the `idgate.authenticate` span.
pub const SPAN_TARGET: &str = "idgate::authenticate";

/// The name of the span each layer's check runs in.
pub const AUTHENTICATE_SPAN: &str = "idgate.authenticate";

/// A new `idgate.authenticate` span for `layer`, its outcome fields empty until [`record_allow`] or
/// [`record_reject`].
pub(crate) fn authenticate_span(layer: &'static str) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        "idgate.authenticate",
        idgate.layer = layer,
        idgate.credential = Empty,
        idgate.outcome = Empty,
        idgate.reason = Empty,
        otel.status_code = Empty,
        enduser.id = Empty,
    )
}

/// Records the header that carried the credential.
pub(crate) fn record_credential(span: &Span, header: &'static str) {
    if !span.is_disabled() {
        span.record("idgate.credential", header);
    }
}

/// Records an admission: `reason` is what admitted the caller; `enduser.id` only when `enduser_id`.
pub(crate) fn record_allow(span: &Span, reason: &'static str, caller: &Caller, enduser_id: bool) {
    if span.is_disabled() {
        return;
    }
    span.record("idgate.outcome", "allow");
    span.record("idgate.reason", reason);
    if enduser_id && let Some(id) = enduser(caller) {
        span.record("enduser.id", id);
    }
}

/// Records a rejection, with `otel.status_code = ERROR` when it is a 5xx.
pub(crate) fn record_reject(span: &Span, rejection: &IdentityRejection) {
    if span.is_disabled() {
        return;
    }
    span.record("idgate.outcome", "reject");
    span.record("idgate.reason", rejection.reason());
    if rejection.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// The caller's identity as OpenTelemetry's `enduser.id`: its verified email, else an App Engine app's ID.
fn enduser(caller: &Caller) -> Option<&str> {
    match caller {
        Caller::AppEngineApp(app) => Some(app.app_id()),
        other => other.email(),
    }
}
