//! The `[admission]` table: how the gates combine when a configuration has more than one of `[inbound]`, `[iap]`
//! and `[signin]`.

#[allow(unused_imports)]
use super::*;

/// How a request is admitted when more than one of `[inbound]`, `[iap]` and `[signin]` guards the same routes:
/// `[admission] mode`.
///
/// ```
/// use idgate_core::config::{Admission, Config};
///
/// let config = Config::from_toml_str(r#"
/// [admission]
/// mode = "by_credential"
/// [inbound]
/// audiences = ["https://jobs.example.com"]
/// [inbound.allow]
/// service_accounts = ["runner@billing-prod.iam.gserviceaccount.com"]
/// [iap]
/// audience = "/projects/123456789/apps/billing-prod"
/// "#).unwrap();
/// assert_eq!(config.admission(), Admission::ByCredential);
///
/// // Unknown values are refused, at their line.
/// let err = Config::from_toml_str("[admission]\nmode = \"any\"\n[iap]\naudience = \"/projects/1/apps/a\"\n")
///     .unwrap_err();
/// assert_eq!(err.line(), Some(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Admission {
    /// `"all"` (the default): the gates are stacked, and a request must pass every one of them: an ID token
    /// **and** an IAP assertion with `[inbound]` and `[iap]`. Not allowed with `[signin]` and another gate
    /// written explicitly: a browser has a session but no bearer token, a service a token but no session, so no
    /// request could ever pass both.
    #[default]
    All,
    /// `"by_credential"`: a request is admitted by the credential it presents, judged by that credential's own
    /// gate and allowlist, by this precedence:
    ///
    /// 1. an IAP assertion (`x-goog-iap-jwt-assertion`), when `[iap]` is configured → the IAP gate;
    /// 2. else a bearer token (`Authorization` or `X-Serverless-Authorization`, or the trusted legacy
    ///    `X-Appengine-Inbound-Appid`), when `[inbound]` is configured → the ID-token gate;
    /// 3. else the sign-in gate (the session cookie; `302` to login for a page, `401` for a script) when `[signin]`
    ///    is configured, else the first configured of `[inbound]` and `[iap]` (which answers `401`).
    ///
    /// A credential that is presented and fails is a refusal: it never falls through to another credential (a
    /// stolen session cookie cannot rescue a forged token, nor the other way round). The assertion comes first
    /// because IAP adds it to every request it lets through, and the client cannot remove it: behind IAP, IAP's
    /// judgement is never bypassed by a header the client chose. Bearer tokens come before the session cookie
    /// because a browser attaches cookies by itself (to cross-site requests too), while a token is presented on
    /// purpose: a request that carries one is a program's call and is judged as one.
    ///
    /// A request without any credential on a path exempt in `[inbound]` or `[iap]` passes as it does there
    /// (health checks); one that presents a credential is judged by that credential's gate, exempt paths
    /// included.
    ByCredential,
}

impl Admission {
    /// The value written in the file: `"all"` or `"by_credential"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::ByCredential => "by_credential",
        }
    }
}

impl fmt::Display for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The values of `[admission] mode`.
const MODE_CHOICES: &[(&str, Admission)] = &[
    ("all", Admission::All),
    ("by_credential", Admission::ByCredential),
];

/// Which gates a configuration has, for the `[admission]` rules.
pub(crate) struct Gates {
    pub(crate) inbound: bool,
    pub(crate) iap: bool,
    pub(crate) signin: bool,
}

impl Gates {
    fn count(&self) -> usize {
        usize::from(self.inbound) + usize::from(self.iap) + usize::from(self.signin)
    }

    fn names(&self) -> String {
        let names: Vec<&str> = [
            (self.inbound, "[inbound]"),
            (self.iap, "[iap]"),
            (self.signin, "[signin]"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
        names.join(" and ")
    }
}

impl Validator<'_> {
    /// `[admission]`: the mode, checked against the gates the file configures.
    pub(crate) fn admission(
        &self,
        raw: Option<&Spanned<RawAdmission>>,
        gates: &Gates,
    ) -> Result<Admission, ConfigError> {
        let Some(mode) = raw.and_then(|t| t.get_ref().mode.as_ref()) else {
            return Ok(Admission::All);
        };
        let Some(admission) = self.choice(Some(mode), MODE_CHOICES)? else {
            return Ok(Admission::All);
        };
        match admission {
            Admission::ByCredential if gates.count() < 2 => Err(self
                .error(
                    ConfigErrorKind::IneffectiveSetting,
                    &mode.span(),
                    format!(
                        "`mode = \"by_credential\"` chooses a gate by the credential a request presents, but only \
                         {} is configured",
                        gates.names()
                    ),
                )
                .with_help("remove the [admission] table, or configure a second gate")),
            Admission::All if gates.signin && (gates.inbound || gates.iap) => Err(self
                .error(
                    ConfigErrorKind::AdmissionConflict,
                    &mode.span(),
                    format!(
                        "`mode = \"all\"` would require every request to pass {} at once: a browser has a \
                         session but no bearer token or IAP assertion, a service a token but no session, so \
                         nothing could ever pass",
                        gates.names()
                    ),
                )
                .with_help(
                    "write `mode = \"by_credential\"` to admit each request by the credential it presents, each \
                     judged by its own allowlist",
                )),
            _ => Ok(admission),
        }
    }
}
