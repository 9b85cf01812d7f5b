//! Reading Google credential files (`service_account`, `impersonated_service_account`, `authorized_user`, ...)
//! without ever putting their content into an error.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::{KeyFileError, KeyOrigin};

/// The largest credentials file idgate reads (real ones are ~2.3 KiB).
const MAX_FILE_BYTES: u64 = 256 * 1024;

/// A parsed credentials JSON object and where it came from.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) origin: KeyOrigin,
    object: Map<String, Value>,
}

impl Credentials {
    pub(crate) fn from_file(path: &Path) -> Result<Self, KeyFileError> {
        let origin = KeyOrigin::File(path.to_path_buf());
        let read_error = |e: std::io::Error| KeyFileError::Read {
            origin: origin.clone(),
            error: Arc::new(e),
        };
        let meta = std::fs::metadata(path).map_err(read_error)?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(KeyFileError::NotJson {
                origin,
                line: 0,
                column: 0,
            });
        }
        let bytes = std::fs::read(path).map_err(read_error)?;
        Self::parse(&bytes, origin)
    }

    pub(crate) fn parse(bytes: &[u8], origin: KeyOrigin) -> Result<Self, KeyFileError> {
        // Parse into a `Value` first: syntax errors carry only a position, while typed deserialisation errors would
        // quote the offending value (possibly the private key).
        let value: Value = serde_json::from_slice(bytes).map_err(|e| KeyFileError::NotJson {
            origin: origin.clone(),
            line: e.line(),
            column: e.column(),
        })?;
        match value {
            Value::Object(object) => Ok(Self { origin, object }),
            _ => Err(KeyFileError::NotJson {
                origin,
                line: 0,
                column: 0,
            }),
        }
    }

    pub(crate) fn from_value(value: &Value, origin: KeyOrigin) -> Result<Self, KeyFileError> {
        match value {
            Value::Object(object) => Ok(Self {
                origin,
                object: object.clone(),
            }),
            _ => Err(KeyFileError::NotJson {
                origin,
                line: 0,
                column: 0,
            }),
        }
    }

    /// The `type` field, bounded in length (it ends up in error messages).
    pub(crate) fn kind(&self) -> Option<String> {
        self.object
            .get("type")
            .and_then(Value::as_str)
            .map(|t| crate::error::bounded(t, 64))
    }

    pub(crate) fn expect_kind(&self, expected: &'static str) -> Result<(), KeyFileError> {
        match self.kind() {
            Some(k) if k == expected => Ok(()),
            found => Err(KeyFileError::WrongType {
                origin: self.origin.clone(),
                found,
                expected,
            }),
        }
    }

    /// A required, non-empty string field.
    pub(crate) fn string(&self, field: &'static str) -> Result<&str, KeyFileError> {
        match self.object.get(field).and_then(Value::as_str) {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(KeyFileError::MissingField {
                origin: self.origin.clone(),
                field,
            }),
        }
    }

    /// An optional string field (absent, null or empty count as absent).
    pub(crate) fn optional_string(&self, field: &'static str) -> Option<&str> {
        self.object
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    }

    /// An optional URL field.
    pub(crate) fn optional_url(
        &self,
        field: &'static str,
    ) -> Result<Option<url::Url>, KeyFileError> {
        match self.optional_string(field) {
            None => Ok(None),
            Some(s) => parse_http_url(s)
                .map(Some)
                .map_err(|reason| self.invalid(field, reason)),
        }
    }

    /// An optional array of strings.
    pub(crate) fn string_array(&self, field: &'static str) -> Result<Vec<String>, KeyFileError> {
        match self.object.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| self.invalid(field, "not an array of strings"))
                })
                .collect(),
            Some(_) => Err(self.invalid(field, "not an array of strings")),
        }
    }

    pub(crate) fn get(&self, field: &str) -> Option<&Value> {
        self.object.get(field)
    }

    pub(crate) fn invalid(&self, field: &'static str, reason: &'static str) -> KeyFileError {
        KeyFileError::InvalidField {
            origin: self.origin.clone(),
            field,
            reason,
        }
    }
}

pub(crate) fn parse_http_url(s: &str) -> Result<url::Url, &'static str> {
    let url = url::Url::parse(s.trim()).map_err(|_| "not a URL")?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err("not an http(s) URL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_never_quote_content() {
        let err = Credentials::parse(br#"{"private_key": "SECRET" "#, KeyOrigin::Json)
            .err()
            .unwrap();
        assert!(err.is_not_json());
        assert!(!err.to_string().contains("SECRET"), "{err}");
        let err = Credentials::parse(br#"["SECRET"]"#, KeyOrigin::Json)
            .err()
            .unwrap();
        assert!(err.is_not_json());
    }

    #[test]
    fn fields() {
        let c = Credentials::parse(
            br#"{"type":"service_account","a":"x","e":"","d":["p"],"bad":[1],"u":"ftp://x"}"#,
            KeyOrigin::Json,
        )
        .unwrap();
        assert!(c.expect_kind("service_account").is_ok());
        assert!(
            c.expect_kind("authorized_user")
                .unwrap_err()
                .is_wrong_type()
        );
        assert_eq!(c.string("a").unwrap(), "x");
        assert!(c.string("e").unwrap_err().is_missing_field());
        assert!(c.string("missing").unwrap_err().is_missing_field());
        assert_eq!(c.string_array("d").unwrap(), vec!["p".to_owned()]);
        assert!(c.string_array("bad").unwrap_err().is_invalid_field());
        assert!(c.optional_url("u").unwrap_err().is_invalid_field());
        assert_eq!(c.optional_url("none").unwrap(), None);
    }
}
