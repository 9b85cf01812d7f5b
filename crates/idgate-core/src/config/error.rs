//! Configuration errors: where in the file, what kind, and what to write instead.

#[allow(unused_imports)]
use super::*;

/// A position in the configuration file, 1-based. Columns count characters, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Location {
    /// The line, starting at 1.
    pub line: usize,
    /// The column, starting at 1.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `src`.
    pub(crate) fn of(src: &str, offset: usize) -> Self {
        let mut offset = offset.min(src.len());
        while !src.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &src[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What kind of mistake a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Io,
    /// Not valid TOML, or a value of the wrong type.
    Syntax,
    /// A key idgate does not know (often a typo).
    UnknownKey,
    /// None of `[inbound]`, `[iap]` and `[signin]` is present: the file configures nothing.
    NothingConfigured,
    /// `[inbound]` without `audiences`, or with an empty list.
    MissingAudience,
    /// An audience that cannot be right (padded, or not a URL in origin mode).
    InvalidAudience,
    /// An empty string in a list.
    EmptyEntry,
    /// A `*` in a list: there are no wildcards.
    Wildcard,
    /// An entry with leading or trailing whitespace.
    Whitespace,
    /// A malformed project ID.
    InvalidProjectId,
    /// A `service_accounts` entry that is not an email on a `gserviceaccount.com` domain.
    InvalidServiceAccount,
    /// A malformed email.
    InvalidEmail,
    /// A malformed domain.
    InvalidDomain,
    /// A service-account domain (`gserviceaccount.com`, ...) listed as a user domain.
    ServiceAccountDomain,
    /// A consumer domain (`gmail.com`) listed as a hosted domain.
    ConsumerHostedDomain,
    /// An allowlist that lists nobody.
    EmptyAllowlist,
    /// `[iap]` with both or neither of `audience` and `discover_audience = true`.
    IapAudienceChoice,
    /// An IAP audience not of a shape Google documents.
    InvalidIapAudience,
    /// A leeway over 300 seconds.
    LeewayTooLarge,
    /// An exempt path that is not an exact absolute path.
    InvalidExemptPath,
    /// An endpoint that is not an absolute http(s) URL.
    InvalidUrl,
    /// A plain-http endpoint that is not on a loopback address.
    InsecureUrl,
    /// A setting that would have no effect as written.
    IneffectiveSetting,
    /// A `[proxy]` limit of zero (which would switch it off), or over its maximum; a `[signin]` session time out
    /// of its range.
    LimitOutOfRange,
    /// A required key is missing (`[signin]`'s `client_id`, `redirect_url`).
    MissingKey,
    /// A secret written in the file (`[signin] client_secret`, `token_encryption_key`): name an environment variable or a file instead.
    InlineSecret,
    /// `[signin]` with both or neither of `client_secret_env` and `client_secret_file`, or a malformed one.
    ClientSecretChoice,
    /// A `[signin] client_id` that cannot be an OAuth client ID.
    InvalidClientId,
    /// A `[signin]` scope that is malformed, or `scopes` without `openid`.
    InvalidScope,
    /// A `[signin]` route path that is not an exact absolute path, or two routes on one path.
    InvalidRoutePath,
    /// `[signin.sessions]` that does not say where the store is (`store = "redis"` without exactly one of `url`
    /// and `url_env`, a URL that is not `redis://` or `rediss://`, a key prefix that is not plain text), or a
    /// store setting given to the in-memory store.
    SessionStore,
    /// `[signin]` with both `token_encryption_key_env` and `token_encryption_key_file`, a malformed one, or
    /// `access_type = "offline"` without either (a refresh token is only kept encrypted).
    TokenEncryptionKeyChoice,
    /// `[admission] mode = "all"` with `[signin]` and another gate: no request could pass both.
    AdmissionConflict,
}

/// Why a configuration was refused: what, where (line and column), and what to write instead.
///
/// `Display` renders `file:line:column: message` followed by a `help:` line.
#[derive(Debug)]
pub struct ConfigError {
    pub(crate) kind: ConfigErrorKind,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
    pub(crate) location: Option<Location>,
    pub(crate) file: Option<PathBuf>,
    pub(crate) source: Option<std::io::Error>,
}

impl ConfigError {
    pub(crate) fn new(kind: ConfigErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            help: None,
            location: None,
            file: None,
            source: None,
        }
    }

    pub(crate) fn at(mut self, src: &str, span: &Range<usize>) -> Self {
        self.location = Some(Location::of(src, span.start));
        self
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// What kind of mistake this is.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// Where the mistake is, when it is in the file.
    pub fn location(&self) -> Option<Location> {
        self.location
    }

    /// The 1-based line of the mistake.
    pub fn line(&self) -> Option<usize> {
        self.location.map(|l| l.line)
    }

    /// The 1-based column of the mistake.
    pub fn column(&self) -> Option<usize> {
        self.location.map(|l| l.column)
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What to write instead, when there is advice.
    pub fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }

    /// The file the configuration came from ([`Config::from_path`]).
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.location) {
            (Some(file), Some(loc)) => write!(f, "{}:{loc}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, Some(loc)) => write!(f, "line {}, column {}: ", loc.line, loc.column)?,
            (None, None) => {}
        }
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

pub(crate) fn from_allowlist_error(
    src: &str,
    span: &Range<usize>,
    error: &AllowlistError,
) -> ConfigError {
    let kind = match error {
        AllowlistError::EmptyEntry { .. } => ConfigErrorKind::EmptyEntry,
        AllowlistError::Wildcard { .. } => ConfigErrorKind::Wildcard,
        AllowlistError::Whitespace { .. } => ConfigErrorKind::Whitespace,
        AllowlistError::InvalidProjectId { .. } => ConfigErrorKind::InvalidProjectId,
        AllowlistError::NotAServiceAccount { .. } => ConfigErrorKind::InvalidServiceAccount,
        AllowlistError::InvalidEmail { .. } => ConfigErrorKind::InvalidEmail,
        AllowlistError::InvalidDomain { .. } => ConfigErrorKind::InvalidDomain,
        AllowlistError::ServiceAccountDomain { .. } => ConfigErrorKind::ServiceAccountDomain,
        AllowlistError::ConsumerHostedDomain { .. } => ConfigErrorKind::ConsumerHostedDomain,
    };
    ConfigError::new(kind, error.to_string())
        .at(src, span)
        .with_help(error.help())
}
