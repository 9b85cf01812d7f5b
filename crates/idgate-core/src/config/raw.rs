//! The file as written: serde structs with spans, before validation.
//!
//! No `deny_unknown_fields`: [`parse`](super::parse) collects unknown keys itself, so that it can tell them from
//! other errors by type. Enum-like keys are strings here, checked (with their span) by the validator.

#[allow(unused_imports)]
use super::*;

pub(crate) type List = Option<Spanned<Vec<Spanned<String>>>>;

#[derive(Deserialize)]
pub(crate) struct RawConfig {
    pub(crate) inbound: Option<Spanned<RawInbound>>,
    pub(crate) iap: Option<Spanned<RawIap>>,
    pub(crate) google: Option<Spanned<RawGoogle>>,
    pub(crate) proxy: Option<Spanned<RawProxy>>,
    pub(crate) signin: Option<Spanned<RawSignin>>,
    pub(crate) admission: Option<Spanned<RawAdmission>>,
    pub(crate) tracing: Option<Spanned<RawTracing>>,
}

#[derive(Deserialize)]
pub(crate) struct RawTracing {
    pub(crate) record_enduser_id: Option<bool>,
}

#[derive(Deserialize)]
pub(crate) struct RawAdmission {
    pub(crate) mode: Option<Spanned<String>>,
}

#[derive(Deserialize)]
pub(crate) struct RawInbound {
    pub(crate) audiences: List,
    pub(crate) audience_match: Option<Spanned<String>>,
    pub(crate) leeway_secs: Option<Spanned<u64>>,
    pub(crate) trust_legacy_appengine_header: Option<Spanned<bool>>,
    pub(crate) trust_cloud_run_invoker_check: Option<bool>,
    pub(crate) exempt_paths: List,
    pub(crate) allow: Option<Spanned<RawInboundAllow>>,
}

#[derive(Deserialize)]
pub(crate) struct RawInboundAllow {
    pub(crate) project_ids: List,
    pub(crate) service_accounts: List,
    pub(crate) all_service_accounts_of_listed_projects: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
pub(crate) struct RawIap {
    pub(crate) audience: Option<Spanned<String>>,
    pub(crate) discover_audience: Option<Spanned<bool>>,
    pub(crate) leeway_secs: Option<Spanned<u64>>,
    pub(crate) exempt_paths: List,
    pub(crate) compare_plain_user_headers: Option<bool>,
    pub(crate) allow: Option<Spanned<RawIapAllow>>,
}

#[derive(Deserialize)]
pub(crate) struct RawIapAllow {
    pub(crate) emails: List,
    pub(crate) domains: List,
    pub(crate) hosted_domains: List,
}

#[derive(Deserialize)]
pub(crate) struct RawSignin {
    pub(crate) client_id: Option<Spanned<String>>,
    /// Read only to refuse it: the secret never sits in the file.
    pub(crate) client_secret: Option<Spanned<toml::Value>>,
    pub(crate) client_secret_env: Option<Spanned<String>>,
    pub(crate) client_secret_file: Option<Spanned<String>>,
    /// Read only to refuse it: the token encryption key never sits in the file either.
    pub(crate) token_encryption_key: Option<Spanned<toml::Value>>,
    pub(crate) token_encryption_key_env: Option<Spanned<String>>,
    pub(crate) token_encryption_key_file: Option<Spanned<String>>,
    pub(crate) redirect_url: Option<Spanned<String>>,
    pub(crate) scopes: List,
    pub(crate) session_lifetime_secs: Option<Spanned<u64>>,
    pub(crate) session_idle_timeout_secs: Option<Spanned<u64>>,
    pub(crate) hosted_domain: Option<Spanned<String>>,
    pub(crate) prompt: Option<Spanned<String>>,
    pub(crate) access_type: Option<Spanned<String>>,
    pub(crate) fetch_userinfo: Option<bool>,
    pub(crate) login_path: Option<Spanned<String>>,
    pub(crate) logout_path: Option<Spanned<String>>,
    pub(crate) exempt_paths: List,
    pub(crate) allow: Option<Spanned<RawIapAllow>>,
    pub(crate) sessions: Option<Spanned<RawSessions>>,
}

#[derive(Deserialize)]
pub(crate) struct RawSessions {
    pub(crate) store: Option<Spanned<String>>,
    pub(crate) url: Option<Spanned<String>>,
    pub(crate) url_env: Option<Spanned<String>>,
    pub(crate) key_prefix: Option<Spanned<String>>,
    pub(crate) timeout_ms: Option<Spanned<u64>>,
    pub(crate) local_cache_ms: Option<Spanned<u64>>,
    pub(crate) ca_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
pub(crate) struct RawGoogle {
    pub(crate) base_url: Option<Spanned<String>>,
    pub(crate) oidc_keys_url: Option<Spanned<String>>,
    pub(crate) oidc_keys_format: Option<Spanned<String>>,
    pub(crate) iap_keys_url: Option<Spanned<String>>,
    pub(crate) iap_keys_format: Option<Spanned<String>>,
    pub(crate) metadata_url: Option<Spanned<String>>,
    pub(crate) token_url: Option<Spanned<String>>,
    pub(crate) iam_credentials_url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
pub(crate) struct RawProxy {
    pub(crate) header_read_timeout_secs: Option<Spanned<u64>>,
    pub(crate) idle_timeout_secs: Option<Spanned<u64>>,
    pub(crate) max_connections: Option<Spanned<u64>>,
    pub(crate) max_request_body_bytes: Option<Spanned<u64>>,
    pub(crate) trust_forwarded_headers: Option<bool>,
}

/// The values of `oidc_keys_format` and `iap_keys_format`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawKeysFormat {
    /// Read from each document (the default).
    Auto,
    Jwks,
    Pem,
}

impl RawKeysFormat {
    pub(crate) const CHOICES: &[(&str, Self)] = &[
        ("auto", Self::Auto),
        ("jwks", Self::Jwks),
        ("pem", Self::Pem),
    ];
}

/// The values of `audience_match`.
pub(crate) const AUDIENCE_MATCH_CHOICES: &[(&str, AudienceMatch)] = &[
    ("exact", AudienceMatch::Exact),
    ("origin", AudienceMatch::Origin),
];

pub(crate) fn entries(list: &List) -> &[Spanned<String>] {
    list.as_ref().map_or(&[], |l| l.get_ref().as_slice())
}
