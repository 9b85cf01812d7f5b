//! Sign in with Google: OAuth clients registered in the emulator's "Cloud Console" ([`OAuthClient`]), the test
//! users its account chooser lists ([`UserSpec`], [`TestUser`]), and the authorization requests, codes, consents
//! and revocations of Google's OAuth 2.0 / OpenID Connect web-server flow. The HTTP side (the authorization
//! endpoint, the account chooser, the `authorization_code` grant, userinfo, revoke) is in `routes/signin.rs`; the
//! wire formats and where they come from are in `docs/google-signin.md`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use url::Url;

use crate::emulator::Emulator;
use crate::error::EmulatorError;
use crate::keys::random_bytes;
use crate::state::{Shared, lock, read, write};
use crate::token::{GOOGLE_ISSUER, numeric_id, unix_now};

/// How long an authorization code stays exchangeable, seconds (Google documents no figure; its codes are
/// short-lived, and RFC 6749 §4.1.2 recommends at most 10 minutes).
pub const AUTHORIZATION_CODE_LIFETIME_SECS: i64 = 600;
/// How long the account chooser of one authorization request stays answerable, seconds.
pub const AUTHORIZATION_REQUEST_LIFETIME_SECS: i64 = 3600;

/// The `email` scope's full name (Google grants it for `email`; token responses name it so).
pub const USERINFO_EMAIL_SCOPE: &str = "https://www.googleapis.com/auth/userinfo.email";
/// The `profile` scope's full name (Google grants it for `profile`; token responses name it so).
pub const USERINFO_PROFILE_SCOPE: &str = "https://www.googleapis.com/auth/userinfo.profile";

/// The emulator's default test users, listed by every account chooser until [`Emulator::add_user`] adds more:
/// `(email, name, hosted domain)`. Each has a verified email, a stable numeric `sub` ([`numeric_id`] of the
/// email) and a picture the emulator serves.
pub const DEFAULT_USERS: [(&str, &str, Option<&str>); 3] = [
    ("alice@example.com", "Alice Liddell", Some("example.com")),
    ("bob@example.com", "Bob Builder", Some("example.com")),
    ("mallory@gmail.com", "Mallory Mayhem", None),
];

/// An OAuth 2.0 client registered with the emulator, as the Cloud Console's "Credentials" page creates one
/// (type "Web application"): its ID, its secret and its authorized redirect URIs. `Debug` redacts the secret.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let emulator = idgate_emulator::Emulator::start().await?;
/// let client = emulator.create_oauth_client(&["http://127.0.0.1:8080/auth/callback"]);
/// assert!(client.client_id().ends_with(".apps.googleusercontent.com"));
/// assert!(client.client_secret().starts_with("GOCSPX-"));
/// assert!(!format!("{client:?}").contains(client.client_secret()));
/// // Google's downloadable client_secret.json, pointing at the emulator.
/// let json: serde_json::Value = serde_json::from_str(&client.client_secrets_json())?;
/// assert_eq!(json["web"]["token_uri"], emulator.token_url().as_str());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthClient {
    client_id: String,
    client_secret: String,
    redirect_uris: Vec<String>,
    project_id: String,
    auth_uri: String,
    token_uri: String,
    certs_uri: String,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uris", &self.redirect_uris)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// The client ID (`NNN-xxx.apps.googleusercontent.com` for [`Emulator::create_oauth_client`]).
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client secret (`GOCSPX-…` for [`Emulator::create_oauth_client`]).
    #[must_use]
    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// The authorized redirect URIs: an authorization request must name one of them exactly.
    #[must_use]
    pub fn redirect_uris(&self) -> &[String] {
        &self.redirect_uris
    }

    /// Google's downloadable `client_secret_….json` for a web client, with `auth_uri` and `token_uri` at the
    /// emulator: `{"web": {client_id, project_id, auth_uri, token_uri, auth_provider_x509_cert_url,
    /// client_secret, redirect_uris}}`, the shape `google_auth_oauthlib.flow.Flow.from_client_config` reads.
    #[must_use]
    pub fn client_secrets_json(&self) -> String {
        json!({"web": {
            "client_id": self.client_id,
            "project_id": self.project_id,
            "auth_uri": self.auth_uri,
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": self.certs_uri,
            "client_secret": self.client_secret,
            "redirect_uris": self.redirect_uris,
        }})
        .to_string()
    }
}

/// A test user for the account chooser: [`Emulator::add_user`]. Only the email is required; the rest has
/// defaults (a name made from the email, `email_verified: true`, `sub` = [`numeric_id`] of the email, a
/// picture the emulator serves, no hosted domain).
///
/// ```
/// use idgate_emulator::UserSpec;
/// let carol = UserSpec::new("carol@corp.example")
///     .name("Carol Danvers")
///     .hosted_domain("corp.example");
/// let unverified = UserSpec::new("eve@example.net").email_verified(false);
/// # let _ = (carol, unverified);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct UserSpec {
    email: String,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    picture: Option<String>,
    hosted_domain: Option<String>,
    email_verified: bool,
    sub: Option<String>,
}

impl UserSpec {
    /// A user with this email.
    pub fn new(email: impl Into<String>) -> Self {
        Self {
            email: email.into(),
            name: None,
            given_name: None,
            family_name: None,
            picture: None,
            hosted_domain: None,
            email_verified: true,
            sub: None,
        }
    }

    /// `name` (default: the email's local part, capitalised). `given_name` and `family_name` default to its
    /// first word and the rest.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// `given_name`.
    pub fn given_name(mut self, name: impl Into<String>) -> Self {
        self.given_name = Some(name.into());
        self
    }

    /// `family_name`.
    pub fn family_name(mut self, name: impl Into<String>) -> Self {
        self.family_name = Some(name.into());
        self
    }

    /// `picture` (default: `{emulator}/picture/{sub}`, an SVG the emulator serves).
    pub fn picture(mut self, url: impl Into<String>) -> Self {
        self.picture = Some(url.into());
        self
    }

    /// `hd`: the user's Google Workspace domain (default: none, a consumer account).
    pub fn hosted_domain(mut self, domain: impl Into<String>) -> Self {
        self.hosted_domain = Some(domain.into());
        self
    }

    /// `email_verified` (default `true`).
    pub fn email_verified(mut self, verified: bool) -> Self {
        self.email_verified = verified;
        self
    }

    /// `sub`, the stable account ID (default: [`numeric_id`] of the email, 21 digits).
    // Named after the claim, like every other setter here; it is no subtraction.
    #[allow(clippy::should_implement_trait)]
    pub fn sub(mut self, sub: impl Into<String>) -> Self {
        self.sub = Some(sub.into());
        self
    }
}

/// A test user as the emulator holds it: every claim resolved. See [`Emulator::add_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestUser {
    pub(crate) email: String,
    pub(crate) sub: String,
    pub(crate) name: String,
    pub(crate) given_name: String,
    pub(crate) family_name: String,
    pub(crate) picture: String,
    pub(crate) hosted_domain: Option<String>,
    pub(crate) email_verified: bool,
}

impl TestUser {
    /// `email`.
    #[must_use]
    pub fn email(&self) -> &str {
        &self.email
    }

    /// `sub`.
    #[must_use]
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// `name`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `given_name`.
    #[must_use]
    pub fn given_name(&self) -> &str {
        &self.given_name
    }

    /// `family_name`.
    #[must_use]
    pub fn family_name(&self) -> &str {
        &self.family_name
    }

    /// `picture`.
    #[must_use]
    pub fn picture(&self) -> &str {
        &self.picture
    }

    /// `hd`, for a Workspace account.
    #[must_use]
    pub fn hosted_domain(&self) -> Option<&str> {
        self.hosted_domain.as_deref()
    }

    /// `email_verified`.
    #[must_use]
    pub fn email_verified(&self) -> bool {
        self.email_verified
    }

    fn resolve(spec: UserSpec, base_url: &Url) -> Self {
        let sub = spec.sub.unwrap_or_else(|| numeric_id(&spec.email));
        let name = spec.name.unwrap_or_else(|| {
            let local = spec.email.split('@').next().unwrap_or_default();
            let mut chars = local.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect::<String>()
            })
        });
        let (first, rest) = name.split_once(' ').unwrap_or((name.as_str(), ""));
        let given_name = spec.given_name.unwrap_or_else(|| first.to_owned());
        let family_name = spec.family_name.unwrap_or_else(|| rest.to_owned());
        let picture = spec.picture.unwrap_or_else(|| {
            let mut url = base_url.clone();
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.clear().extend(["picture", sub.as_str()]);
            }
            url.to_string()
        });
        Self {
            email: spec.email,
            sub,
            name,
            given_name,
            family_name,
            picture,
            hosted_domain: spec.hosted_domain,
            email_verified: spec.email_verified,
        }
    }
}

/// PKCE's `code_challenge_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChallengeMethod {
    Plain,
    S256,
}

/// A validated authorization request, waiting for the user's choice.
#[derive(Clone)]
pub(crate) struct Pending {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: Url,
    /// `redirect_uri` exactly as the request spelled it (and the client registered it): the code exchange must
    /// send these very bytes.
    pub(crate) redirect_uri_text: String,
    /// The granted scopes, canonical (`openid`, full URLs for `email` and `profile`).
    pub(crate) scopes: BTreeSet<String>,
    /// The `scope` the redirect echoes: the short names asked for, then the granted set.
    pub(crate) echoed_scope: String,
    pub(crate) state: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) challenge: Option<(String, ChallengeMethod)>,
    pub(crate) offline: bool,
    pub(crate) prompt_consent: bool,
    pub(crate) prompt_none: bool,
    pub(crate) login_hint: Option<String>,
    pub(crate) hd: Option<String>,
    pub(crate) expires_at: i64,
}

/// An authorization code the emulator issued.
pub(crate) struct CodeRecord {
    pub(crate) pending: Pending,
    pub(crate) email: String,
    /// Whether the consent screen was (notionally) shown: first consent, or `prompt=consent`. With
    /// `access_type=offline`, only then does the exchange issue a refresh token, as Google does.
    pub(crate) consent_shown: bool,
    pub(crate) expires_at: i64,
    pub(crate) used: bool,
    /// The tokens the exchange issued, revoked if the code is replayed.
    pub(crate) issued: Vec<String>,
}

/// Everything the sign-in flow keeps.
#[derive(Default)]
pub(crate) struct SigninState {
    pub(crate) clients: HashMap<String, OAuthClient>,
    /// In the order the account chooser lists them.
    pub(crate) users: Vec<TestUser>,
    pub(crate) pending: HashMap<String, Pending>,
    pub(crate) codes: HashMap<String, CodeRecord>,
    /// (client ID, email): the user has consented to the client (and not revoked since).
    pub(crate) consented: HashSet<(String, String)>,
    pub(crate) revoked: HashSet<String>,
}

impl SigninState {
    /// The state with [`DEFAULT_USERS`].
    pub(crate) fn with_default_users(base_url: &Url) -> Self {
        let users = DEFAULT_USERS
            .iter()
            .map(|(email, name, hd)| {
                let mut spec = UserSpec::new(*email).name(*name);
                if let Some(hd) = hd {
                    spec = spec.hosted_domain(*hd);
                }
                TestUser::resolve(spec, base_url)
            })
            .collect();
        Self {
            users,
            ..Self::default()
        }
    }

    pub(crate) fn user(&self, email: &str) -> Option<&TestUser> {
        self.users.iter().find(|u| u.email == email)
    }

    /// Drops what has expired, so a long-running emulator does not grow without bound.
    fn prune(&mut self, now: i64) {
        self.pending.retain(|_, p| p.expires_at > now);
        // An expired code is refused whether or not it was used, so forgetting it changes no answer.
        self.codes.retain(|_, c| c.expires_at > now);
    }
}

/// `N` random bytes as URL-safe base64.
pub(crate) fn random_token<const N: usize>() -> Result<String, EmulatorError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<N>()?))
}

/// Why the authorization endpoint refused a request.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Google's error page, no redirect (unknown client, unregistered redirect URI, malformed request).
    Page {
        status: u16,
        error: &'static str,
        description: String,
    },
    /// A redirect back to the client with `error=…` (RFC 6749 §4.1.2.1).
    Redirect(Url),
}

impl Refusal {
    fn page(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self::Page {
            status,
            error,
            description: description.into(),
        }
    }

    pub(crate) fn into_error(self) -> Result<Url, EmulatorError> {
        match self {
            Self::Redirect(url) => Ok(url),
            Self::Page {
                status,
                error,
                description,
            } => Err(EmulatorError::AuthorizationRefused {
                status,
                error: error.to_owned(),
                description,
            }),
        }
    }
}

/// `redirect_uri` with `params` appended to its query (a registered URI may carry a query of its own).
pub(crate) fn redirect_with(redirect_uri: &Url, params: &[(&str, &str)]) -> Url {
    let mut url = redirect_uri.clone();
    url.query_pairs_mut().extend_pairs(params);
    url
}

/// `email` and `profile` as their full names; any other scope as it is.
pub(crate) fn full_scope_name(scope: &str) -> &str {
    match scope {
        "email" => USERINFO_EMAIL_SCOPE,
        "profile" => USERINFO_PROFILE_SCOPE,
        other => other,
    }
}

/// The canonical name of a scope Google's authorization endpoint grants, or `None` for one it does not know.
fn canonical_scope(scope: &str) -> Option<&str> {
    match scope {
        "email" | USERINFO_EMAIL_SCOPE => Some(USERINFO_EMAIL_SCOPE),
        "profile" | USERINFO_PROFILE_SCOPE => Some(USERINFO_PROFILE_SCOPE),
        "openid" => Some("openid"),
        s if s.starts_with("https://www.googleapis.com/auth/") && crate::access::valid_scope(s) => {
            Some(s)
        }
        _ => None,
    }
}

/// The authorization request's parameters; a repeated parameter is refused.
fn single_params(query: &[(String, String)]) -> Result<HashMap<&str, &str>, Refusal> {
    let mut params = HashMap::new();
    for (k, v) in query {
        if params.insert(k.as_str(), v.as_str()).is_some() {
            return Err(Refusal::page(
                400,
                "invalid_request",
                format!("Parameter specified multiple times: {k}"),
            ));
        }
    }
    Ok(params)
}

/// Whether `s` is a PKCE code verifier or S256 challenge: 43 to 128 characters of `[A-Za-z0-9-._~]`
/// (RFC 7636 §4.1, §4.2).
pub(crate) fn valid_pkce_string(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl Shared {
    /// Validates an authorization request as Google's `/o/oauth2/v2/auth` does: client and redirect URI first
    /// (refused with an error page, never a redirect), then the rest (an error page for a malformed request,
    /// as Google shows; a redirect for an unsupported `response_type`).
    pub(crate) fn authorization_request(
        &self,
        query: &[(String, String)],
    ) -> Result<Pending, Refusal> {
        let p = single_params(query)?;
        let Some(client_id) = p.get("client_id").filter(|c| !c.is_empty()) else {
            return Err(Refusal::page(
                400,
                "invalid_request",
                "Missing required parameter: client_id",
            ));
        };
        let Some(client) = lock(&self.signin).clients.get(*client_id).cloned() else {
            return Err(Refusal::page(
                401,
                "invalid_client",
                "The OAuth client was not found.",
            ));
        };
        let Some(redirect) = p.get("redirect_uri").filter(|r| !r.is_empty()) else {
            return Err(Refusal::page(
                400,
                "invalid_request",
                "Missing required parameter: redirect_uri",
            ));
        };
        let registered = client.redirect_uris.iter().any(|r| r == redirect);
        let redirect_uri = match Url::parse(redirect) {
            Ok(url) if registered && url.fragment().is_none() => url,
            _ => {
                return Err(Refusal::page(
                    400,
                    "redirect_uri_mismatch",
                    format!(
                        "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. \
                         Register the redirect URI in the Google Cloud Console. redirect_uri: {redirect}"
                    ),
                ));
            }
        };
        let state = p.get("state").map(|s| (*s).to_owned());
        let error_redirect = |error: &str, description: &str| {
            let mut params = vec![("error", error), ("error_description", description)];
            if let Some(state) = &state {
                params.push(("state", state));
            }
            params.push(("iss", GOOGLE_ISSUER));
            Refusal::Redirect(redirect_with(&redirect_uri, &params))
        };
        match p.get("response_type") {
            None | Some(&"") => {
                return Err(Refusal::page(
                    400,
                    "invalid_request",
                    "Required parameter is missing: response_type",
                ));
            }
            Some(&"code") => {}
            Some(other) => {
                return Err(error_redirect(
                    "unsupported_response_type",
                    &format!("Unsupported response_type: {other}"),
                ));
            }
        }
        let Some(scope) = p.get("scope").filter(|s| !s.trim().is_empty()) else {
            return Err(Refusal::page(
                400,
                "invalid_request",
                "Missing required parameter: scope",
            ));
        };
        let mut scopes = BTreeSet::new();
        let mut short = Vec::new();
        let mut invalid = Vec::new();
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            match canonical_scope(s) {
                Some(c) => {
                    if matches!(s, "email" | "profile") && !short.contains(&s) {
                        short.push(s);
                    }
                    scopes.insert(c.to_owned());
                }
                None => invalid.push(s),
            }
        }
        if !invalid.is_empty() {
            return Err(Refusal::page(
                400,
                "invalid_scope",
                format!(
                    "Some requested scopes were invalid. {{invalid=[{}]}}",
                    invalid.join(", ")
                ),
            ));
        }
        let echoed_scope = short
            .into_iter()
            .map(str::to_owned)
            .chain(scopes.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        let challenge = match (p.get("code_challenge"), p.get("code_challenge_method")) {
            (None, _) => None,
            (Some(c), method) => {
                let method = match method {
                    None | Some(&"plain") => ChallengeMethod::Plain,
                    Some(&"S256") => ChallengeMethod::S256,
                    Some(_) => {
                        return Err(Refusal::page(
                            400,
                            "invalid_request",
                            "Invalid code_challenge_method value.",
                        ));
                    }
                };
                if !valid_pkce_string(c) {
                    return Err(Refusal::page(
                        400,
                        "invalid_request",
                        "Invalid code_challenge value.",
                    ));
                }
                Some(((*c).to_owned(), method))
            }
        };
        let offline = match p.get("access_type") {
            None | Some(&"online") => false,
            Some(&"offline") => true,
            Some(other) => {
                return Err(Refusal::page(
                    400,
                    "invalid_request",
                    format!("Invalid access_type: {other}"),
                ));
            }
        };
        let prompts: Vec<&str> = p
            .get("prompt")
            .map(|s| s.split(' ').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        if prompts
            .iter()
            .any(|v| !matches!(*v, "none" | "consent" | "select_account"))
            || (prompts.contains(&"none") && prompts.len() > 1)
        {
            return Err(Refusal::page(
                400,
                "invalid_request",
                "Invalid parameter value for prompt: Invalid prompt value",
            ));
        }
        Ok(Pending {
            client_id: client.client_id,
            redirect_uri,
            redirect_uri_text: (*redirect).to_owned(),
            scopes,
            echoed_scope,
            state,
            nonce: p.get("nonce").map(|s| (*s).to_owned()),
            challenge,
            offline,
            prompt_consent: prompts.contains(&"consent"),
            prompt_none: prompts.contains(&"none"),
            login_hint: p
                .get("login_hint")
                .filter(|h| !h.is_empty())
                .map(|s| (*s).to_owned()),
            hd: p
                .get("hd")
                .filter(|h| !h.is_empty())
                .map(|s| (*s).to_owned()),
            expires_at: unix_now().saturating_add(AUTHORIZATION_REQUEST_LIFETIME_SECS),
        })
    }

    /// Keeps `pending` for the account chooser; returns its opaque ID.
    pub(crate) fn hold_pending(&self, pending: Pending) -> Result<String, EmulatorError> {
        let id = random_token::<24>()?;
        let mut signin = lock(&self.signin);
        signin.prune(unix_now());
        signin.pending.insert(id.clone(), pending);
        Ok(id)
    }

    /// Takes (once) the pending request `id`.
    pub(crate) fn take_pending(&self, id: &str) -> Option<Pending> {
        lock(&self.signin)
            .pending
            .remove(id)
            .filter(|p| p.expires_at > unix_now())
    }

    /// `prompt=none`: no page may be shown. The emulator has no browser session, so the "signed-in" user is the
    /// `login_hint`: a known user who has consented to the client gets a code at once; otherwise the OpenID
    /// Connect errors `login_required` (no such user) or `consent_required`.
    pub(crate) fn silent(&self, pending: Pending) -> Result<Url, EmulatorError> {
        let (user, consented) = {
            let signin = lock(&self.signin);
            let user = pending.login_hint.as_deref().and_then(|hint| {
                signin
                    .users
                    .iter()
                    .find(|u| u.email == hint || u.sub == hint)
                    .map(|u| u.email.clone())
            });
            let consented = user.as_ref().is_some_and(|email| {
                signin
                    .consented
                    .contains(&(pending.client_id.clone(), email.clone()))
            });
            (user, consented)
        };
        match user {
            Some(email) if consented => self.complete(pending, &email),
            Some(_) => Ok(self.deny_with(&pending, "consent_required")),
            None => Ok(self.deny_with(&pending, "login_required")),
        }
    }

    /// The user `email` chose an account (and consented): a code, and the redirect Google sends with it
    /// (`state`, `iss`, `code`, `scope`, `authuser`, `hd`, `prompt`, in that order).
    pub(crate) fn complete(&self, pending: Pending, email: &str) -> Result<Url, EmulatorError> {
        let code = format!("4/0A{}", random_token::<54>()?);
        let now = unix_now();
        let mut signin = lock(&self.signin);
        let Some(user) = signin.user(email).cloned() else {
            return Err(EmulatorError::UnknownUser(email.to_owned()));
        };
        let first_consent = signin
            .consented
            .insert((pending.client_id.clone(), user.email.clone()));
        let consent_shown = first_consent || pending.prompt_consent;
        let mut params: Vec<(&str, &str)> = Vec::new();
        if let Some(state) = &pending.state {
            params.push(("state", state));
        }
        params.push(("iss", GOOGLE_ISSUER));
        params.push(("code", &code));
        params.push(("scope", &pending.echoed_scope));
        params.push(("authuser", "0"));
        if let Some(hd) = &user.hosted_domain {
            params.push(("hd", hd));
        }
        params.push(("prompt", if consent_shown { "consent" } else { "none" }));
        let url = redirect_with(&pending.redirect_uri, &params);
        signin.prune(now);
        signin.codes.insert(
            code.clone(),
            CodeRecord {
                pending,
                email: user.email,
                consent_shown,
                expires_at: now.saturating_add(AUTHORIZATION_CODE_LIFETIME_SECS),
                used: false,
                issued: Vec::new(),
            },
        );
        Ok(url)
    }

    /// The redirect for a refused or denied request: `error`, `state`, `iss`.
    pub(crate) fn deny_with(&self, pending: &Pending, error: &str) -> Url {
        let mut params = vec![("error", error)];
        if let Some(state) = &pending.state {
            params.push(("state", state));
        }
        params.push(("iss", GOOGLE_ISSUER));
        redirect_with(&pending.redirect_uri, &params)
    }

    /// Revokes `token` as Google's `/revoke` does: an access or refresh token of a user's grant revokes the whole
    /// grant (every access and refresh token of that user for that client, and the consent); a service account's
    /// own access token is revoked alone. Returns whether the token was live.
    pub(crate) fn revoke(&self, token: &str) -> bool {
        let access = lock(&self.access_tokens)
            .get(token)
            .filter(|r| r.expires_at > unix_now())
            .map(|r| (r.client_id.clone(), r.email.clone(), r.subject.is_some()));
        let (client_id, email) = match access {
            Some((client_id, email, delegated)) => {
                if delegated || client_id == numeric_id(&email) {
                    // A service account's own token (or one acting for a user): no user grant behind it.
                    self.revoke_exactly(&[token.to_owned()]);
                    return true;
                }
                (client_id, email)
            }
            None => match read(&self.grants).refresh_tokens.get(token) {
                Some(grant) => (grant.client_id.clone(), grant.email.clone()),
                None => return false,
            },
        };
        let mut revoked = Vec::new();
        lock(&self.access_tokens).retain(|t, r| {
            let member = r.client_id == client_id && r.email == email && r.subject.is_none();
            if member {
                revoked.push(t.clone());
            }
            !member
        });
        write(&self.grants).refresh_tokens.retain(|t, g| {
            let member = g.client_id == client_id && g.email == email;
            if member {
                revoked.push(t.clone());
            }
            !member
        });
        let mut signin = lock(&self.signin);
        signin.consented.remove(&(client_id, email));
        signin.revoked.extend(revoked);
        true
    }

    /// Revokes exactly `tokens` (what a replayed code's first exchange issued).
    pub(crate) fn revoke_exactly(&self, tokens: &[String]) {
        {
            let mut access = lock(&self.access_tokens);
            for t in tokens {
                access.remove(t);
            }
        }
        {
            let mut grants = write(&self.grants);
            for t in tokens {
                grants.refresh_tokens.remove(t);
            }
        }
        lock(&self.signin).revoked.extend(tokens.iter().cloned());
    }
}

impl Emulator {
    /// Registers the OAuth client `client_id` with `client_secret` and its authorized `redirect_uris`, as the Cloud
    /// Console does (registering the same ID again replaces it). An authorization request must name one of
    /// `redirect_uris` exactly (scheme, host, port, path, trailing slash and query all count), or it gets
    /// Google's `redirect_uri_mismatch` error page.
    pub fn register_oauth_client(
        &self,
        client_id: &str,
        client_secret: &str,
        redirect_uris: &[&str],
    ) -> OAuthClient {
        let client = OAuthClient {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris: redirect_uris.iter().map(|r| (*r).to_owned()).collect(),
            project_id: self.project_id().to_owned(),
            auth_uri: self.authorization_url().to_string(),
            token_uri: self.token_url().to_string(),
            certs_uri: self.oidc_pem_certs_url().to_string(),
        };
        lock(&self.shared.signin)
            .clients
            .insert(client.client_id.clone(), client.clone());
        client
    }

    /// Creates a web-application OAuth client with Google-shaped credentials (ID
    /// `PROJECT_NUMBER-<32 characters>.apps.googleusercontent.com`, secret `GOCSPX-<28 characters>`) and
    /// registers it with `redirect_uris`; see [`Emulator::register_oauth_client`].
    ///
    /// # Panics
    ///
    /// If the system's random source fails; [`Emulator::try_create_oauth_client`] returns that as an error.
    #[must_use]
    pub fn create_oauth_client(&self, redirect_uris: &[&str]) -> OAuthClient {
        match self.try_create_oauth_client(redirect_uris) {
            Ok(client) => client,
            Err(error) => panic!("idgate emulator could not create an OAuth client: {error}"),
        }
    }

    /// Like [`Emulator::create_oauth_client`], returning failures.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::Crypto`] if the system's random source fails.
    pub fn try_create_oauth_client(
        &self,
        redirect_uris: &[&str],
    ) -> Result<OAuthClient, EmulatorError> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let id: String = random_bytes::<32>()?
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect();
        let secret: String = random_bytes::<21>()
            .map(|b| URL_SAFE_NO_PAD.encode(b))?
            .chars()
            .take(28)
            .collect();
        Ok(self.register_oauth_client(
            &format!("{}-{id}.apps.googleusercontent.com", self.project_number()),
            &format!("GOCSPX-{secret}"),
            redirect_uris,
        ))
    }

    /// Adds a test user to the account chooser (after the ones already there; a user with the same email is
    /// replaced in place). The chooser starts with [`DEFAULT_USERS`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use idgate_emulator::UserSpec;
    /// let emulator = idgate_emulator::Emulator::start().await?;
    /// let carol = emulator.add_user(UserSpec::new("carol@corp.example").name("Carol Danvers"));
    /// assert_eq!(carol.given_name(), "Carol");
    /// assert_eq!(carol.sub(), idgate_emulator::numeric_id("carol@corp.example"));
    /// assert_eq!(emulator.users().len(), 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_user(&self, spec: UserSpec) -> TestUser {
        let user = TestUser::resolve(spec, &self.shared.base_url);
        let mut signin = lock(&self.shared.signin);
        match signin.users.iter_mut().find(|u| u.email == user.email) {
            Some(existing) => *existing = user.clone(),
            None => signin.users.push(user.clone()),
        }
        user
    }

    /// Removes the test user `email` from the account chooser; returns whether it was there.
    pub fn remove_user(&self, email: &str) -> bool {
        let mut signin = lock(&self.shared.signin);
        let before = signin.users.len();
        signin.users.retain(|u| u.email != email);
        signin.users.len() != before
    }

    /// The test users, in the account chooser's order.
    #[must_use]
    pub fn users(&self) -> Vec<TestUser> {
        lock(&self.shared.signin).users.clone()
    }

    /// Does what clicking `email` on the account chooser of `authorization_url` does, without HTTP: validates
    /// the request as `GET /o/oauth2/v2/auth` does, then returns the redirect to the client, with a code
    /// (`?state=…&iss=https://accounts.google.com&code=…&scope=…&authuser=0[&hd=…]&prompt=consent|none`), or
    /// with `?error=…` where Google redirects with an error (an unsupported `response_type`; `prompt=none`
    /// without a consented `login_hint` user). Only the URL's query is read. Counts no hits.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::AuthorizationRefused`] where Google shows an error page and does not redirect (unknown
    /// client, unregistered redirect URI, malformed request), [`EmulatorError::UnknownUser`] if `email` is not a
    /// test user, or [`EmulatorError::Crypto`] if the random source fails.
    pub fn consent(&self, authorization_url: &Url, email: &str) -> Result<Url, EmulatorError> {
        let query: Vec<(String, String)> = authorization_url.query_pairs().into_owned().collect();
        let pending = match self.shared.authorization_request(&query) {
            Ok(pending) => pending,
            Err(refusal) => return refusal.into_error(),
        };
        if pending.prompt_none {
            return self.shared.silent(pending);
        }
        self.shared.complete(pending, email)
    }

    /// Does what clicking "Deny" on the account chooser of `authorization_url` does: returns the redirect
    /// `?error=access_denied&state=…&iss=…`.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::AuthorizationRefused`] where Google shows an error page instead (see
    /// [`Emulator::consent`]).
    pub fn deny(&self, authorization_url: &Url) -> Result<Url, EmulatorError> {
        let query: Vec<(String, String)> = authorization_url.query_pairs().into_owned().collect();
        match self.shared.authorization_request(&query) {
            Ok(pending) => Ok(self.shared.deny_with(&pending, "access_denied")),
            Err(refusal) => refusal.into_error(),
        }
    }

    /// Whether `token` (an access or refresh token) was revoked: through `POST /revoke`, with its grant, or
    /// because the code it was issued for was replayed.
    #[must_use]
    pub fn is_revoked(&self, token: &str) -> bool {
        lock(&self.shared.signin).revoked.contains(token)
    }

    /// Makes the authorization code `code` expire now, as if its [`AUTHORIZATION_CODE_LIFETIME_SECS`] had passed
    /// (the emulator has no clock of its own). Returns whether the emulator knew the code.
    pub fn expire_authorization_code(&self, code: &str) -> bool {
        match lock(&self.shared.signin).codes.get_mut(code) {
            Some(record) => {
                record.expires_at = unix_now().saturating_sub(1);
                true
            }
            None => false,
        }
    }
}
