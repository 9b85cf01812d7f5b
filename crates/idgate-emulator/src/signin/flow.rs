//! The flow's state and rules: validated authorization requests waiting for the chooser, codes, consents,
//! revocations; what the HTTP handlers (`routes/signin.rs`) and [`crate::Emulator::consent`] share.

use std::collections::{BTreeSet, HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;

use super::{
    AUTHORIZATION_CODE_LIFETIME_SECS, AUTHORIZATION_REQUEST_LIFETIME_SECS, DEFAULT_USERS,
    MAX_PENDING_AUTHORIZATION_BYTES, MAX_PENDING_AUTHORIZATIONS, OAuthClient, TestUser,
    USERINFO_EMAIL_SCOPE, USERINFO_PROFILE_SCOPE, UserSpec,
};
use crate::error::EmulatorError;
use crate::keys::random_bytes;
use crate::state::{Shared, lock, read, write};
use crate::token::{GOOGLE_ISSUER, numeric_id, unix_now};

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
    /// When it was held, in the order of the emulator's sign-in records (see [`SigninState::next_sequence`]).
    pub(crate) sequence: u64,
}

impl Pending {
    /// About what this request holds in memory: its texts, plus a fixed share for the record and its map slot.
    fn approximate_bytes(&self) -> usize {
        let texts = [
            self.client_id.len(),
            self.redirect_uri.as_str().len(),
            self.redirect_uri_text.len(),
            self.echoed_scope.len(),
            self.state.as_ref().map_or(0, String::len),
            self.nonce.as_ref().map_or(0, String::len),
            self.challenge.as_ref().map_or(0, |(c, _)| c.len()),
            self.login_hint.as_ref().map_or(0, String::len),
            self.hd.as_ref().map_or(0, String::len),
        ];
        let scopes: usize = self.scopes.iter().map(|s| s.len() + 32).sum();
        256 + texts.iter().sum::<usize>() + scopes
    }
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
    /// When it was issued, in the order of the emulator's sign-in records (see [`SigninState::next_sequence`]).
    pub(crate) sequence: u64,
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
    /// The next pending request's or code's place in line: the oldest go first past the bounds of `prune` (expiry
    /// times are in whole seconds, so they cannot tell apart requests of the same second).
    sequence: u64,
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

    /// A place in line for a new pending request or code.
    fn next_sequence(&mut self) -> u64 {
        self.sequence += 1;
        self.sequence
    }

    /// Drops what has expired, then the oldest pending requests and codes past [`MAX_PENDING_AUTHORIZATIONS`] or
    /// [`MAX_PENDING_AUTHORIZATION_BYTES`] (each with room for one more), so a long-running emulator, or one
    /// flooded with authorization requests, does not grow without bound.
    fn prune(&mut self, now: i64) {
        self.pending.retain(|_, p| p.expires_at > now);
        // An expired code is refused whether or not it was used, so forgetting it changes no answer.
        self.codes.retain(|_, c| c.expires_at > now);
        keep_newest(&mut self.pending, |p| (p.sequence, p.approximate_bytes()));
        keep_newest(&mut self.codes, |c| {
            (
                c.sequence,
                c.pending.approximate_bytes() + c.email.len() + 64 * c.issued.len(),
            )
        });
    }
}

/// Forgets the oldest entries of `map` until there is room for one more within [`MAX_PENDING_AUTHORIZATIONS`] and
/// [`MAX_PENDING_AUTHORIZATION_BYTES`]. `measure` gives an entry's place in line and its size. Linear in the map's
/// size, as the expiry sweep before it is: at most [`MAX_PENDING_AUTHORIZATIONS`] entries.
fn keep_newest<V>(map: &mut HashMap<String, V>, measure: impl Fn(&V) -> (u64, usize)) {
    let mut bytes: usize = map.values().map(|v| measure(v).1).sum();
    while !map.is_empty()
        && (map.len() >= MAX_PENDING_AUTHORIZATIONS || bytes > MAX_PENDING_AUTHORIZATION_BYTES)
    {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| measure(v).0)
            .map(|(id, _)| id.clone())
        else {
            break;
        };
        if let Some(gone) = map.remove(&oldest) {
            bytes = bytes.saturating_sub(measure(&gone).1);
        }
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
            sequence: 0,
        })
    }

    /// Keeps `pending` for the account chooser; returns its opaque ID.
    pub(crate) fn hold_pending(&self, mut pending: Pending) -> Result<String, EmulatorError> {
        let id = random_token::<24>()?;
        let mut signin = lock(&self.signin);
        signin.prune(unix_now());
        pending.sequence = signin.next_sequence();
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
        let sequence = signin.next_sequence();
        signin.codes.insert(
            code.clone(),
            CodeRecord {
                sequence,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries as `keep_newest` sees them: (place in line, bytes).
    fn entries(count: u64, bytes: usize) -> HashMap<String, (u64, usize)> {
        (1..=count).map(|i| (i.to_string(), (i, bytes))).collect()
    }

    #[test]
    fn past_the_count_bound_the_oldest_go_first() {
        let mut map = entries(MAX_PENDING_AUTHORIZATIONS as u64 + 5, 300);
        keep_newest(&mut map, |v| *v);
        // Room for one more: six forgotten, the first six.
        assert_eq!(map.len(), MAX_PENDING_AUTHORIZATIONS - 1);
        assert!((1..=6).all(|i| !map.contains_key(&i.to_string())));
        assert!(map.contains_key("7"));
    }

    #[test]
    fn past_the_byte_bound_the_oldest_go_first() {
        let big = 60 * 1024;
        let fit = MAX_PENDING_AUTHORIZATION_BYTES / big;
        let mut map = entries(fit as u64 + 10, big);
        keep_newest(&mut map, |v| *v);
        assert_eq!(map.len(), fit);
        assert!(map.values().map(|v| v.1).sum::<usize>() <= MAX_PENDING_AUTHORIZATION_BYTES);
        assert!(!map.contains_key("10") && map.contains_key("11"));
        // Within both bounds nothing goes.
        let mut small = entries(100, 300);
        keep_newest(&mut small, |v| *v);
        assert_eq!(small.len(), 100);
    }
}
