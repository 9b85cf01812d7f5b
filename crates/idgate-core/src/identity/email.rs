//! Email addresses as identities: splitting, domains, normalization.

use super::SA_ROOT_DOMAIN;

/// The longest email idgate looks at (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;

/// Splits an email at its **last** `@` into `(local, domain)`. `None` unless both parts are non-empty.
pub(crate) fn split_email(email: &str) -> Option<(&str, &str)> {
    let (local, domain) = email.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then_some((local, domain))
}

/// The domain of an email: everything after its last `@`; `None` unless the email is a plain ASCII address with
/// exactly one `@` (so an odd address can never be judged by a suffix of it).
pub(crate) fn email_domain(email: &str) -> Option<&str> {
    if !email.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let (local, domain) = split_email(email)?;
    (!local.contains('@')).then_some(domain)
}

/// Whether a (lowercase) domain is a Google service-account domain: `gserviceaccount.com` or a subdomain of it.
/// Only ever applied to the part of an email after its last `@`.
pub(crate) fn is_service_account_domain(domain: &str) -> bool {
    domain == SA_ROOT_DOMAIN
        || domain
            .strip_suffix(SA_ROOT_DOMAIN)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// An email in the form idgate compares: ASCII only, lowercased, one `@` with non-empty sides, no whitespace or
/// control characters, at most 254 characters. `None` for anything else.
///
/// ASCII-only lowercasing is deliberate: Unicode case folding maps look-alikes onto ASCII (the Kelvin sign `K`
/// lowercases to `k`), and Google account and service-account emails are ASCII.
pub(crate) fn normalize_email(email: &str) -> Option<String> {
    if email.len() > MAX_EMAIL_LEN || !email.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let (local, _domain) = split_email(email)?;
    if local.contains('@') {
        return None;
    }
    Some(email.to_ascii_lowercase())
}
