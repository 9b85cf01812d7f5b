//! From text to the file as written ([`RawConfig`]), each failure classified by where it came from, never by the
//! words of toml's message:
//!
//! 1. the TOML parser: not TOML at all, or a key or table written twice ([`ConfigErrorKind::Syntax`]);
//! 2. deserialization: a value of the wrong type ([`ConfigErrorKind::Syntax`]);
//! 3. keys no table has, collected by `serde_ignored` while deserializing ([`ConfigErrorKind::UnknownKey`]), each
//!    located on the parsed document;
//! 4. enum-like strings (`audience_match`, `*_keys_format`) are read as strings and checked by the validator.
//!
//! One thing stays untyped: toml's parser reports a duplicate key with the same error type as any other syntax
//! error, and no kind to tell them apart, so a parser error's help covers both instead of matching on its text.

use serde::de::{self, Visitor};
use toml::de::{DeTable, DeValue};

#[allow(unused_imports)]
use super::*;

/// One step of the path `serde_ignored` reports: a key of a table, or an index into an array.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// The prefix of the keys `toml::Spanned` uses inside its own deserialization; they are not the file's keys.
const SPANNED_PRIVATE: &str = "$__serde_spanned_private_";

/// Parses `src` into the file as written.
pub(crate) fn parse(src: &str) -> Result<RawConfig, ConfigError> {
    let syntax = |e: toml::de::Error| syntax_error(src, &e);
    let document = DeTable::parse(src).map_err(syntax)?;
    let deserializer = toml::de::Deserializer::parse(src).map_err(syntax)?;
    let mut unknown = Vec::new();
    let raw: Result<RawConfig, _> =
        serde_ignored::deserialize(deserializer, |path| unknown.push(steps(&path)));
    // The first mistake in the file, whichever stage found it.
    let first_unknown = unknown
        .iter()
        .map(|path| unknown_key(src, &document, path))
        .min_by_key(|e| e.location.map(|l| (l.line, l.column)));
    match raw {
        Ok(raw) => first_unknown.map_or(Ok(raw), Err),
        Err(e) => {
            let wrong_type = type_error(src, &e);
            Err(match first_unknown {
                Some(u) if position(&u) < position(&wrong_type) => u,
                _ => wrong_type,
            })
        }
    }
}

fn position(e: &ConfigError) -> (usize, usize) {
    e.location.map_or((usize::MAX, 0), |l| (l.line, l.column))
}

/// An error of the TOML parser.
fn syntax_error(src: &str, error: &toml::de::Error) -> ConfigError {
    located(
        ConfigError::new(ConfigErrorKind::Syntax, error.message().trim()).with_help(
            "fix the TOML at this position; each key and each table may be written only once",
        ),
        src,
        error,
    )
}

/// An error of deserialization: the parser accepted the file, so a value has the wrong type.
fn type_error(src: &str, error: &toml::de::Error) -> ConfigError {
    located(
        ConfigError::new(ConfigErrorKind::Syntax, error.message().trim()),
        src,
        error,
    )
}

fn located(err: ConfigError, src: &str, error: &toml::de::Error) -> ConfigError {
    match error.span() {
        Some(span) => err.at(src, &span),
        None => err,
    }
}

/// The path to an ignored value, without `Option`, newtype and `Spanned` wrappers.
fn steps(path: &serde_ignored::Path<'_>) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut path = path;
    loop {
        match path {
            serde_ignored::Path::Root => break,
            serde_ignored::Path::Seq { parent, index } => {
                steps.push(Step::Index(*index));
                path = parent;
            }
            serde_ignored::Path::Map { parent, key } => {
                if !key.starts_with(SPANNED_PRIVATE) {
                    steps.push(Step::Key(key.clone()));
                }
                path = parent;
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => path = parent,
        }
    }
    steps.reverse();
    steps
}

/// The error for the unknown key at `path`, at the key's position in the document.
fn unknown_key(src: &str, document: &Spanned<DeTable<'_>>, path: &[Step]) -> ConfigError {
    let (key, table) = match path.split_last() {
        Some((Step::Key(key), table)) => (key.as_str(), table),
        _ => ("?", path),
    };
    let table_keys: Vec<&str> = table
        .iter()
        .filter_map(|s| match s {
            Step::Key(k) => Some(k.as_str()),
            Step::Index(_) => None,
        })
        .collect();
    let mut message = format!("unknown key `{key}`");
    if let Some(expected) = keys_of(&table_keys) {
        message.push_str(", expected one of ");
        for (i, k) in expected.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            message.push_str(&format!("{sep}`{k}`"));
        }
    }
    let err = ConfigError::new(ConfigErrorKind::UnknownKey, message).with_help(
        "remove the key or fix its spelling (the keys this table accepts are listed above)",
    );
    match key_span(document, path) {
        Some(span) => err.at(src, &span),
        None => err,
    }
}

/// Where the key at `path` is written.
fn key_span(document: &Spanned<DeTable<'_>>, path: &[Step]) -> Option<Range<usize>> {
    let mut table = document.get_ref();
    let mut value: Option<&DeValue<'_>> = None;
    let mut span = None;
    for step in path {
        if let Some(v) = value {
            match (step, v) {
                (Step::Key(_), DeValue::Table(t)) => table = t,
                (Step::Index(i), DeValue::Array(a)) => {
                    let item = a.get(*i)?;
                    value = Some(item.get_ref());
                    continue;
                }
                _ => return None,
            }
        }
        let Step::Key(key) = step else { return None };
        let (k, v) = table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key.as_str())?;
        span = Some(k.span());
        value = Some(v.get_ref());
    }
    span
}

/// The keys the table at `path` accepts, read from its serde definition so that the list cannot drift.
fn keys_of(path: &[&str]) -> Option<&'static [&'static str]> {
    Some(match path {
        [] => fields_of::<RawConfig>(),
        ["inbound"] => fields_of::<RawInbound>(),
        ["inbound", "allow"] => fields_of::<RawInboundAllow>(),
        ["iap"] => fields_of::<RawIap>(),
        ["iap", "allow"] => fields_of::<RawIapAllow>(),
        ["google"] => fields_of::<RawGoogle>(),
        ["proxy"] => fields_of::<RawProxy>(),
        ["admission"] => fields_of::<RawAdmission>(),
        ["tracing"] => fields_of::<RawTracing>(),
        // `client_secret` is read only to be refused with its own message: never offer it.
        ["signin"] => SIGNIN_KEYS,
        ["signin", "allow"] => fields_of::<RawIapAllow>(),
        ["signin", "sessions"] => fields_of::<RawSessions>(),
        _ => return None,
    })
}

/// The keys `[signin]` accepts: its fields but `client_secret` and `token_encryption_key`, which exist only to be
/// refused.
const SIGNIN_KEYS: &[&str] = &[
    "client_id",
    "client_secret_env",
    "client_secret_file",
    "token_encryption_key_env",
    "token_encryption_key_file",
    "redirect_url",
    "scopes",
    "session_lifetime_secs",
    "session_idle_timeout_secs",
    "hosted_domain",
    "prompt",
    "access_type",
    "fetch_userinfo",
    "login_path",
    "logout_path",
    "exempt_paths",
    "allow",
    "sessions",
];

/// The field names a derived `Deserialize` struct asks for: it hands them to `deserialize_struct`.
fn fields_of<T: de::DeserializeOwned>() -> &'static [&'static str] {
    struct Introspect<'a>(&'a mut &'static [&'static str]);

    impl<'de> de::Deserializer<'de> for Introspect<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("only the fields were wanted"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    // The error is the point: introspection stops as soon as the struct names its fields.
    let _ = T::deserialize(Introspect(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_lists_its_keys() {
        assert_eq!(
            keys_of(&[]),
            Some(
                &[
                    "inbound",
                    "iap",
                    "google",
                    "proxy",
                    "signin",
                    "admission",
                    "tracing"
                ][..]
            )
        );
        assert!(keys_of(&["inbound"]).unwrap().contains(&"audiences"));
        assert!(
            keys_of(&["iap", "allow"])
                .unwrap()
                .contains(&"hosted_domains")
        );
        assert!(keys_of(&["proxy"]).unwrap().contains(&"max_connections"));
        assert_eq!(keys_of(&["nope"]), None);
        // Every [signin] field is offered but the ones that are only there to be refused.
        let mut fields: Vec<&str> = fields_of::<RawSignin>().to_vec();
        fields.retain(|f| *f != "client_secret" && *f != "token_encryption_key");
        assert_eq!(keys_of(&["signin"]), Some(&fields[..]));
    }

    #[test]
    fn the_first_mistake_in_the_file_is_reported() {
        let e = parse("[inbound]\nleeway_secs = \"x\"\nbogus = 1\n")
            .err()
            .unwrap();
        assert_eq!((e.kind(), e.line()), (ConfigErrorKind::Syntax, Some(2)));
        let e = parse("[inbound]\nbogus = 1\nleeway_secs = \"x\"\n")
            .err()
            .unwrap();
        assert_eq!((e.kind(), e.line()), (ConfigErrorKind::UnknownKey, Some(2)));
        assert!(e.message().contains("`audiences`"), "{e}");
        let e = parse("[proxy]\nzzz = 1\naaa = 2\n").err().unwrap();
        assert_eq!((e.line(), e.column()), (Some(2), Some(1)), "{e}");
    }

    #[test]
    fn parser_errors_are_syntax_with_help() {
        for src in ["[inbound]\n[inbound]\n", "a = 1\na = 2\n", "[inbound\n"] {
            let e = parse(src).err().unwrap();
            assert_eq!(e.kind(), ConfigErrorKind::Syntax, "{e}");
            assert!(e.help().unwrap().contains("only once"), "{e}");
        }
    }

    #[test]
    fn enum_like_values_list_the_choices() {
        let src = "[inbound]\naudiences = [\"x\"]\naudience_match = \"prefix\"\n[inbound.allow]\nproject_ids = [\"a-b-c\"]\n";
        let e = Config::from_toml_str(src).unwrap_err();
        assert_eq!(
            e.message(),
            "unknown value \"prefix\", expected `exact` or `origin`"
        );
        assert_eq!(e.help(), Some("use one of the values listed above"));
    }
}
