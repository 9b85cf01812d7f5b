//! [`KeyFileError`] and [`KeyOrigin`]: credentials files that cannot be used.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where credentials were read from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyOrigin {
    /// A file.
    File(PathBuf),
    /// JSON handed over in memory.
    Json,
    /// The `source_credentials` object inside an `impersonated_service_account` file.
    SourceCredentials(Box<Self>),
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "credentials file {}", path.display()),
            Self::Json => f.write_str("credentials JSON"),
            Self::SourceCredentials(outer) => write!(f, "source_credentials of {outer}"),
        }
    }
}

/// A credentials file that cannot be used. Never contains key material.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("cannot read {origin}")]
    Read {
        /// The file.
        origin: KeyOrigin,
        /// The I/O error.
        #[source]
        error: Arc<std::io::Error>,
    },
    /// The content is not a JSON object.
    #[error("{origin} is not a JSON object (syntax error at line {line}, column {column})")]
    NotJson {
        /// Where it came from.
        origin: KeyOrigin,
        /// 1-based line of the syntax error (0 when the JSON is valid but not an object).
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
    },
    /// The `type` field is not the one this constructor reads.
    #[error("{origin} has type {}, expected {expected}", found.as_deref().map_or_else(|| "<missing>".to_owned(), |t| format!("`{t}`")))]
    WrongType {
        /// Where it came from.
        origin: KeyOrigin,
        /// The `type` found (bounded in length), if any.
        found: Option<String>,
        /// What was expected.
        expected: &'static str,
    },
    /// A required field is missing, empty or not a string.
    #[error("{origin} is missing the field `{field}` (or it is empty or not a string)")]
    MissingField {
        /// Where it came from.
        origin: KeyOrigin,
        /// The field.
        field: &'static str,
    },
    /// A field has an unusable value.
    #[error("{origin} has an invalid `{field}`: {reason}")]
    InvalidField {
        /// Where it came from.
        origin: KeyOrigin,
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// `private_key` is not an RSA private key in PEM form.
    #[error("{origin} has a `private_key` that is not a usable RSA private key in PEM form")]
    BadPrivateKey {
        /// Where it came from.
        origin: KeyOrigin,
    },
}

impl KeyFileError {
    /// True when the file could not be read.
    pub fn is_read(&self) -> bool {
        matches!(self, Self::Read { .. })
    }
    /// True when the content is not a JSON object.
    pub fn is_not_json(&self) -> bool {
        matches!(self, Self::NotJson { .. })
    }
    /// True when the `type` is not the expected one.
    pub fn is_wrong_type(&self) -> bool {
        matches!(self, Self::WrongType { .. })
    }
    /// True when a required field is missing.
    pub fn is_missing_field(&self) -> bool {
        matches!(self, Self::MissingField { .. })
    }
    /// True when a field has an unusable value.
    pub fn is_invalid_field(&self) -> bool {
        matches!(self, Self::InvalidField { .. })
    }
    /// True when the private key cannot be used.
    pub fn is_bad_private_key(&self) -> bool {
        matches!(self, Self::BadPrivateKey { .. })
    }
}
