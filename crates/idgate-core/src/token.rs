//! Raw tokens and the credentials that carry them.
//!
//! This module never decides whether a token is genuine (that is [`crate::verify`]); it only answers "is there a
//! credential here, and is it shaped like a JWT at all", cheaply and before any cryptography:
//!
//! - [`IdToken`]: an owned raw token whose `Debug` prints `IdToken(<redacted>)` and which has no `Display`, so it
//!   cannot end up in a log line by accident;
//! - [`parse_authorization`]: the token from an `Authorization` / `X-Serverless-Authorization` header value
//!   (`Bearer <jwt>`, scheme case-insensitive, or the `ID <jwt>` form printed by Google's migration guide);
//! - [`is_signature_removed`]: recognises a token whose signature Cloud Run replaced with
//!   `SIGNATURE_REMOVED_BY_GOOGLE` after its own invoker check;
//! - [`decode_unverified`]: header and claims for display, explicitly *not* verified.

use std::fmt;
use std::sync::Arc;

/// The largest token idgate looks at: 16 KiB. Google's ID tokens are about 1 KiB; anything this large is hostile.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What Cloud Run puts in place of a JWT's signature after its invoker IAM check has consumed the token.
pub const SIGNATURE_REMOVED_BY_GOOGLE: &str = "SIGNATURE_REMOVED_BY_GOOGLE";

/// An owned, raw ID token (a compact JWT). The value is a bearer secret.
///
/// `Debug` prints `IdToken(<redacted>)`; there is deliberately no `Display`. Write it into a request with
/// [`IdToken::bearer_header`] (the ready `Bearer <token>` value, marked sensitive), or with [`IdToken::as_str`] where
/// another form is needed, and nowhere else.
///
/// ```
/// use idgate_core::token::IdToken;
///
/// let token = IdToken::new("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln").unwrap();
/// assert_eq!(format!("{token:?}"), "IdToken(<redacted>)");
/// ```
#[derive(Clone)]
pub struct IdToken {
    raw: Arc<str>,
    /// `Bearer <token>`, marked sensitive: built once, so that attaching the token to a request is a reference
    /// count, not an 800-byte copy and check per request.
    bearer: http::HeaderValue,
}

impl PartialEq for IdToken {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for IdToken {}

impl std::hash::Hash for IdToken {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

impl IdToken {
    /// Wraps a raw token after checking that it has the shape of a compact JWT
    /// (three non-empty base64url segments, at most [`MAX_TOKEN_BYTES`]). Nothing is verified.
    ///
    /// # Errors
    ///
    /// [`Malformed`] naming what is wrong with the shape (never echoing the token).
    pub fn new(raw: impl Into<String>) -> Result<Self, Malformed> {
        let raw: String = raw.into();
        let raw = raw.trim_ascii();
        JwtParts::split(raw)?;
        // Three base64url segments and two dots: always a valid header value, so this error cannot happen.
        let bearer = bearer_header_value(raw).ok_or(Malformed::NotBase64Url)?;
        Ok(Self {
            raw: Arc::from(raw),
            bearer,
        })
    }

    /// The raw token (for an `Authorization: Bearer` header, [`bearer_header`](Self::bearer_header) is ready-made).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// `Bearer <token>`, marked sensitive (HTTP/2's HPACK never indexes it): the value of an `Authorization` or
    /// `X-Serverless-Authorization` header carrying this token. Built when the token is, so a clone costs a
    /// reference count.
    ///
    /// ```
    /// use idgate_core::token::IdToken;
    ///
    /// let token = IdToken::new("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln").unwrap();
    /// let value = token.bearer_header();
    /// assert_eq!(value, "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln");
    /// assert!(value.is_sensitive());
    /// ```
    pub fn bearer_header(&self) -> http::HeaderValue {
        self.bearer.clone()
    }

    /// The token's `exp` claim, read **without verifying the signature**.
    ///
    /// Meant for a token source that just minted this token from a trusted endpoint and needs to know when to
    /// refresh it; never use it to decide whether to trust a token someone sent you.
    ///
    /// # Errors
    ///
    /// [`Malformed`] when the payload is not JSON or has no integer `exp`.
    pub fn unverified_expiry(&self) -> Result<std::time::SystemTime, Malformed> {
        #[derive(serde::Deserialize)]
        struct Exp {
            exp: i64,
        }
        let parts = JwtParts::split(&self.raw)?;
        let exp: Exp = parts.decode_payload()?;
        let secs = u64::try_from(exp.exp).map_err(|_| Malformed::BadClaims)?;
        Ok(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
    }
}

/// `Bearer <token>` as a header value marked sensitive (HTTP/2's HPACK never indexes it, and its `Debug` hides it):
/// how every idgate adapter writes a bearer credential into `Authorization`. `None` when `token` holds characters a
/// header value cannot carry (control characters, non-ASCII).
///
/// ```
/// use idgate_core::token::bearer_header_value;
///
/// let value = bearer_header_value("ya29.a0Af").unwrap();
/// assert_eq!(value, "Bearer ya29.a0Af");
/// assert!(value.is_sensitive());
/// assert!(bearer_header_value("bad\ntoken").is_none());
/// ```
pub fn bearer_header_value(token: &str) -> Option<http::HeaderValue> {
    let mut value = http::HeaderValue::try_from(format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

impl fmt::Debug for IdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdToken(<redacted>)")
    }
}

/// Why a string is not shaped like a compact JWT. Never contains any part of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    /// Not exactly three dot-separated segments.
    #[error("token does not have exactly three segments")]
    SegmentCount,
    /// A segment is empty.
    #[error("token has an empty segment")]
    EmptySegment,
    /// A segment contains a character outside the unpadded base64url alphabet.
    #[error("token segment is not unpadded base64url")]
    NotBase64Url,
    /// The header is not a JSON object of the expected shape.
    #[error("token header is not valid JSON of the expected shape")]
    BadHeader,
    /// The payload is not a JSON object of the expected shape (a wrong type, a duplicate key, ...).
    #[error("token claims are not valid JSON of the expected shape")]
    BadClaims,
}

/// The three segments of a compact JWT, borrowed from the token.
#[derive(Clone, Copy)]
pub(crate) struct JwtParts<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
    /// `header.payload`: the bytes the signature covers.
    pub(crate) signing_input: &'a str,
}

impl<'a> JwtParts<'a> {
    /// Splits a token after the cheap structural checks: size, segment count, then each segment in turn non-empty
    /// and in the base64url alphabet.
    pub(crate) fn split(token: &'a str) -> Result<Self, Malformed> {
        let parts = Self::at_dots(token)?;
        for segment in [parts.header, parts.payload, parts.signature] {
            if segment.is_empty() {
                return Err(Malformed::EmptySegment);
            }
            if !all_base64url(segment.as_bytes()) {
                return Err(Malformed::NotBase64Url);
            }
        }
        Ok(parts)
    }

    /// Splits a token after the size, segment count and emptiness checks, leaving the alphabet to the decoding of
    /// each segment (which refuses any byte outside it, as [`split`](Self::split) would, and more: an impossible
    /// length, non-canonical trailing bits). For the verifiers, which decode every segment before they trust or
    /// spend a signature check on any of it: one scan of the token fewer, on every token seen for the first time.
    pub(crate) fn segments(token: &'a str) -> Result<Self, Malformed> {
        let parts = Self::at_dots(token)?;
        if parts.header.is_empty() || parts.payload.is_empty() || parts.signature.is_empty() {
            return Err(Malformed::EmptySegment);
        }
        Ok(parts)
    }

    /// The three (possibly empty) segments between a token's two dots, after the size check.
    fn at_dots(token: &'a str) -> Result<Self, Malformed> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Malformed::TooLarge);
        }
        let bytes = token.as_bytes();
        // `memchr` scans with the widest vectors the CPU has; `str::split` went a word at a time.
        let (Some(first), Some(second)) =
            (memchr::memchr(b'.', bytes), memchr::memrchr(b'.', bytes))
        else {
            return Err(Malformed::SegmentCount);
        };
        if first == second || memchr::memchr(b'.', &bytes[first + 1..second]).is_some() {
            return Err(Malformed::SegmentCount);
        }
        Ok(Self {
            header: &token[..first],
            payload: &token[first + 1..second],
            signature: &token[second + 1..],
            signing_input: &token[..second],
        })
    }

    pub(crate) fn decode_header<T: serde::de::DeserializeOwned>(&self) -> Result<T, Malformed> {
        self.with_header(|bytes| serde_json::from_slice(bytes).map_err(|_| Malformed::BadHeader))?
    }

    pub(crate) fn decode_payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, Malformed> {
        self.with_payload(|bytes| serde_json::from_slice(bytes).map_err(|_| Malformed::BadClaims))?
    }

    /// Calls `f` with the decoded header (decoded on the stack when it fits: a header is about 100 bytes).
    pub(crate) fn with_header<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, Malformed> {
        with_decoded(self.header, f)
    }

    /// Calls `f` with the decoded payload, decoded on the stack when it fits (Google's are well under 2 KiB).
    pub(crate) fn with_payload<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, Malformed> {
        with_decoded(self.payload, f)
    }

    /// Calls `f` with the decoded signature (on the stack up to RSA-16384; RSA-2048's is 256 bytes, ES256's 64).
    pub(crate) fn with_signature<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, Malformed> {
        with_decoded(self.signature, f)
    }
}

/// Stack room for a decoded segment, in two sizes so that a small segment needs only a small stack frame; a
/// segment larger than both is decoded onto the heap, so these bound nothing but speed.
const SMALL_STACK_BYTES: usize = 512;
const LARGE_STACK_BYTES: usize = 2048;

/// The decoder of every segment idgate reads: unpadded base64url, strict (a byte outside the alphabet, a length no
/// encoding has, or non-canonical trailing bits is an error, exactly as the `base64` crate's `URL_SAFE_NO_PAD`
/// decides; a test compares the two on arbitrary input). `base64-simd` picks the CPU's widest vectors at run time:
/// it decodes a 2048-bit RSA signature's segment in about 36 ns where `base64` took 120, and a verification decodes
/// three segments per token seen for the first time.
const SEGMENT: base64_simd::Base64 = base64_simd::URL_SAFE_NO_PAD;

/// Decodes an unpadded base64url segment and hands the bytes to `f`: into a stack buffer when the segment fits
/// one, else into a heap buffer. A verification decodes three segments per token (a 2048-bit RSA signature, a
/// header and Google's claims all fit the small buffer); their three allocations and frees were a measurable share
/// of idgate's own work next to one signature check.
fn with_decoded<R>(segment: &str, f: impl FnOnce(&[u8]) -> R) -> Result<R, Malformed> {
    let needed = SEGMENT.estimated_decoded_length(segment.len());
    if needed <= SMALL_STACK_BYTES {
        decode_on_stack::<SMALL_STACK_BYTES, R>(segment, f)
    } else if needed <= LARGE_STACK_BYTES {
        decode_on_stack::<LARGE_STACK_BYTES, R>(segment, f)
    } else {
        let bytes = SEGMENT
            .decode_to_vec(segment)
            .map_err(|_| Malformed::NotBase64Url)?;
        Ok(f(&bytes))
    }
}

/// Decodes `segment` (whose estimated decoded length fits `N`) into an uninitialised stack buffer: nothing is
/// zeroed first, and only the bytes the decoder wrote are handed on.
fn decode_on_stack<const N: usize, R>(
    segment: &str,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, Malformed> {
    let mut buffer = [std::mem::MaybeUninit::<u8>::uninit(); N];
    let bytes = SEGMENT
        .decode(
            segment.as_bytes(),
            base64_simd::Out::from_uninit_slice(&mut buffer),
        )
        .map_err(|_| Malformed::NotBase64Url)?;
    Ok(f(bytes))
}

/// Whether every byte is in the unpadded base64url alphabet (`A-Z a-z 0-9 - _`).
///
/// Folded without an early exit and with non-short-circuiting operators, so the compiler vectorizes it: as a
/// byte-at-a-time `all()` this scan of the whole token cost more than all of idgate's JSON parsing.
fn all_base64url(segment: &[u8]) -> bool {
    segment.iter().fold(true, |ok, &b| ok & is_base64url(b))
}

fn is_base64url(b: u8) -> bool {
    // `b | 0x20` folds `A-Z` onto `a-z` and maps no other byte into that range.
    ((b | 0x20).wrapping_sub(b'a') < 26) | (b.wrapping_sub(b'0') < 10) | (b == b'-') | (b == b'_')
}

/// True when the token's signature segment is Cloud Run's `SIGNATURE_REMOVED_BY_GOOGLE` marker.
///
/// Cloud Run's invoker IAM check validates the caller's token and forwards it with the signature replaced, so the
/// service can no longer verify it. Such a token must be rejected with advice (send the token in
/// `X-Serverless-Authorization` instead, or opt in to trusting Cloud Run's check), never accepted.
///
/// ```
/// use idgate_core::token::is_signature_removed;
/// assert!(is_signature_removed("eyJh.eyJz.SIGNATURE_REMOVED_BY_GOOGLE"));
/// assert!(!is_signature_removed("eyJh.eyJz.c2ln"));
/// ```
pub fn is_signature_removed(token: &str) -> bool {
    // The marker holds no '.', so "the last segment is the marker" is "ends with '.' + marker": no scan needed.
    token
        .strip_suffix(SIGNATURE_REMOVED_BY_GOOGLE)
        .is_some_and(|rest| rest.ends_with('.'))
}

/// The authorization scheme a credential was presented with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// `Bearer <token>` (RFC 6750), matched case-insensitively.
    Bearer,
    /// `ID <token>`, the form printed in Google's App Identity migration guide. Verified exactly like `Bearer`.
    Id,
}

/// Why a header value does not carry a usable credential. Never contains the header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The value is not visible ASCII (RFC 9110 field values that are not ASCII are never tokens).
    #[error("authorization header is not visible ASCII")]
    NotAscii,
    /// The value is longer than [`MAX_TOKEN_BYTES`] plus room for the scheme.
    #[error("authorization header is too large")]
    TooLarge,
    /// The scheme is neither `Bearer` nor `ID`.
    #[error("authorization scheme is not Bearer")]
    UnsupportedScheme,
    /// The scheme is present but the token after it is empty.
    #[error("authorization header has an empty token")]
    EmptyToken,
    /// More than one token, or stray whitespace inside the token.
    #[error("authorization header has more than one token")]
    ExtraContent,
    /// The credential header was sent more than once: which copy to believe is ambiguous, so neither is.
    ///
    /// [`parse_authorization`] sees one value and never returns this; whoever reads the request's headers (the
    /// layers of `idgate-server`) does.
    #[error("credential header sent more than once")]
    DuplicateHeader,
}

impl CredentialError {
    /// A short, stable, machine-readable reason (`"not_ascii"`, `"duplicate_header"`, ...) for logs and metrics.
    ///
    /// ```
    /// use idgate_core::token::{CredentialError, parse_authorization};
    ///
    /// assert_eq!(parse_authorization(b"Basic dXNlcjpwdw==").unwrap_err().reason(), "unsupported_scheme");
    /// assert_eq!(CredentialError::DuplicateHeader.reason(), "duplicate_header");
    /// ```
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotAscii => "not_ascii",
            Self::TooLarge => "too_large",
            Self::UnsupportedScheme => "unsupported_scheme",
            Self::EmptyToken => "empty_token",
            Self::ExtraContent => "extra_content",
            Self::DuplicateHeader => "duplicate_header",
        }
    }
}

/// Extracts the token from an `Authorization` (or `X-Serverless-Authorization`) header value.
///
/// Accepts `Bearer <token>` and `ID <token>`, schemes case-insensitive, separated by one or more spaces. The token
/// itself is returned untouched; whether it is a JWT at all is the verifier's business.
///
/// ```
/// use idgate_core::token::{CredentialError, Scheme, parse_authorization};
///
/// assert_eq!(parse_authorization(b"Bearer abc.def.ghi"), Ok((Scheme::Bearer, "abc.def.ghi")));
/// assert_eq!(parse_authorization(b"bearer abc.def.ghi"), Ok((Scheme::Bearer, "abc.def.ghi")));
/// assert_eq!(parse_authorization(b"ID abc.def.ghi"), Ok((Scheme::Id, "abc.def.ghi")));
/// assert_eq!(parse_authorization(b"Basic dXNlcjpwdw=="), Err(CredentialError::UnsupportedScheme));
/// assert_eq!(parse_authorization(b"Bearer "), Err(CredentialError::EmptyToken));
/// ```
///
/// # Errors
///
/// A [`CredentialError`] saying what is wrong, without echoing the value.
pub fn parse_authorization(value: &[u8]) -> Result<(Scheme, &str), CredentialError> {
    // Scheme, a space, and the largest token we accept.
    if value.len() > MAX_TOKEN_BYTES + 16 {
        return Err(CredentialError::TooLarge);
    }
    let value = value.trim_ascii();
    let split = value
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(value.len());
    let (scheme, rest) = value.split_at(split);
    let scheme = if scheme.eq_ignore_ascii_case(b"bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case(b"id") {
        Scheme::Id
    } else if scheme.is_ascii() {
        return Err(CredentialError::UnsupportedScheme);
    } else {
        return Err(CredentialError::NotAscii);
    };
    let token = rest.trim_ascii_start();
    if token.is_empty() {
        return Err(CredentialError::EmptyToken);
    }
    // The hot path: one pass over the (about 1 KiB) token. Visible ASCII only: no spaces, no controls. Written
    // without an early exit so the compiler vectorizes it; `all()` would stop at each byte to branch.
    let invisible = token
        .iter()
        .fold(false, |bad, &b| bad | (b.wrapping_sub(0x21) > 0x7e - 0x21));
    if invisible {
        return Err(
            if token
                .iter()
                .all(|b| (0x20..0x7f).contains(b) || *b == b'\t')
            {
                CredentialError::ExtraContent
            } else {
                CredentialError::NotAscii
            },
        );
    }
    // Visible ASCII is UTF-8; keep the checked conversion rather than reach for `unsafe`.
    let token = std::str::from_utf8(token).map_err(|_| CredentialError::NotAscii)?;
    Ok((scheme, token))
}

/// A token's header and claims as JSON, decoded **without any verification**.
///
/// For display and debugging only (`idgate decode`). Nothing in the result may be trusted.
#[derive(Debug, Clone, PartialEq)]
pub struct UnverifiedParts {
    /// The JOSE header.
    pub header: serde_json::Value,
    /// The claims.
    pub claims: serde_json::Value,
}

/// Decodes a token's header and claims **without verifying anything**. See [`UnverifiedParts`].
///
/// # Errors
///
/// [`Malformed`] when the token is not a compact JWT with JSON header and payload.
pub fn decode_unverified(token: &str) -> Result<UnverifiedParts, Malformed> {
    let parts = JwtParts::split(token.trim_ascii())?;
    Ok(UnverifiedParts {
        header: parts.decode_header()?,
        claims: parts.decode_payload()?,
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    #[test]
    fn only_ascii_whitespace_around_a_token_is_dropped() {
        const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";
        assert_eq!(
            IdToken::new(format!(" {TOKEN}\r\n")).unwrap().as_str(),
            TOKEN
        );
        assert!(decode_unverified(&format!("\t{TOKEN} ")).is_ok());
        for odd in ["\u{a0}", "\u{3000}", "\u{200b}", "\u{feff}"] {
            assert_eq!(
                IdToken::new(format!("{TOKEN}{odd}")).err(),
                Some(Malformed::NotBase64Url),
                "{odd:?}"
            );
            assert!(
                decode_unverified(&format!("{odd}{TOKEN}")).is_err(),
                "{odd:?}"
            );
        }
    }

    #[test]
    fn split_rejects_bad_shapes() {
        assert_eq!(JwtParts::split("a.b").err(), Some(Malformed::SegmentCount));
        assert_eq!(
            JwtParts::split("a.b.c.d").err(),
            Some(Malformed::SegmentCount)
        );
        assert_eq!(JwtParts::split("a..c").err(), Some(Malformed::EmptySegment));
        assert_eq!(
            JwtParts::split("a.b=.c").err(),
            Some(Malformed::NotBase64Url)
        );
        assert_eq!(
            JwtParts::split("a.b+.c").err(),
            Some(Malformed::NotBase64Url)
        );
        assert_eq!(
            JwtParts::split("a.b/.c").err(),
            Some(Malformed::NotBase64Url)
        );
        assert_eq!(
            JwtParts::split("a.b c.c").err(),
            Some(Malformed::NotBase64Url)
        );
        let huge = format!("a.{}.c", "b".repeat(MAX_TOKEN_BYTES));
        assert_eq!(JwtParts::split(&huge).err(), Some(Malformed::TooLarge));
        let ok = JwtParts::split("aa.bb.cc").unwrap();
        assert_eq!(ok.signing_input, "aa.bb");
        assert_eq!(ok.signature, "cc");
    }

    #[test]
    fn the_alphabet_check_is_exactly_base64url() {
        for b in 0..=u8::MAX {
            let reference = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            assert_eq!(is_base64url(b), reference, "byte {b:#04x}");
            // The vectorized fold, with the byte at every position of a block wider than any vector.
            for at in [0, 15, 31, 32, 63, 64, 99] {
                let mut segment = [b'A'; 100];
                segment[at] = b;
                assert_eq!(all_base64url(&segment), reference, "byte {b:#04x} at {at}");
            }
        }
    }

    #[test]
    fn segments_decode_on_the_stack_or_the_heap_alike() {
        // Sizes around each stack buffer's bound, so both branches of every segment kind run.
        for len in [
            0, 1, 100, 383, 384, 385, 386, 510, 511, 512, 513, 1535, 1536, 1537, 1538, 4000,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let encoded = URL_SAFE_NO_PAD.encode(&bytes);
            if encoded.is_empty() {
                continue;
            }
            let token = format!("{encoded}.{encoded}.{encoded}");
            let parts = JwtParts::split(&token).unwrap();
            assert_eq!(parts.with_header(<[u8]>::to_vec).unwrap(), bytes);
            assert_eq!(parts.with_payload(<[u8]>::to_vec).unwrap(), bytes);
            assert_eq!(parts.with_signature(<[u8]>::to_vec).unwrap(), bytes);
        }
        // A length no base64 encoding has (4k + 1 characters) and non-canonical trailing bits are refused on both
        // paths, as the heap-only decoding refused them.
        for segment in [
            "A".repeat(5),
            "A".repeat(4001),
            "AB".to_owned(),
            "AAB".to_owned(),
        ] {
            let token = format!("{segment}.{segment}.{segment}");
            let parts = JwtParts::split(&token).unwrap();
            assert_eq!(
                parts.with_payload(|_| ()),
                Err(Malformed::NotBase64Url),
                "{}",
                segment.len()
            );
            assert_eq!(parts.with_signature(|_| ()), Err(Malformed::NotBase64Url));
        }
    }

    proptest::proptest! {
        /// The segment decoder (`base64-simd`) accepts and refuses exactly what the `base64` crate's strict
        /// `URL_SAFE_NO_PAD` does, and decodes to the same bytes: on arbitrary strings over the alphabet and its
        /// neighbours, and on real encodings with one character changed, at lengths that reach every buffer.
        #[test]
        fn segment_decoding_agrees_with_the_base64_crate(
            arbitrary in "[A-Za-z0-9_=+/ .é\u{0}\u{80}-]{1,40}|[A-Za-z0-9_-]{1,3000}",
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 1..2500),
            at in proptest::num::usize::ANY,
            replacement in proptest::char::any(),
        ) {
            let encoded = URL_SAFE_NO_PAD.encode(&bytes);
            // One character replaced by any character (non-ASCII ones are several bytes).
            let at = at % encoded.len();
            let changed = format!("{}{replacement}{}", &encoded[..at], &encoded[at + 1..]);
            for segment in [arbitrary.as_str(), encoded.as_str(), changed.as_str()] {
                let ours = with_decoded(segment, <[u8]>::to_vec);
                let reference = URL_SAFE_NO_PAD.decode(segment).map_err(|_| Malformed::NotBase64Url);
                proptest::prop_assert_eq!(ours, reference, "{:?}", segment);
            }
        }
    }

    #[test]
    fn segments_are_found_by_their_dots() {
        for (token, expected) in [
            ("a.b.c", Ok(("a", "b", "c"))),
            ("aa.bb.cc", Ok(("aa", "bb", "cc"))),
            ("", Err(Malformed::SegmentCount)),
            ("abc", Err(Malformed::SegmentCount)),
            ("a.b", Err(Malformed::SegmentCount)),
            ("a.b.c.d", Err(Malformed::SegmentCount)),
            ("a..b.c", Err(Malformed::SegmentCount)),
            ("...", Err(Malformed::SegmentCount)),
            ("..", Err(Malformed::EmptySegment)),
            (".b.c", Err(Malformed::EmptySegment)),
            ("a..c", Err(Malformed::EmptySegment)),
            ("a.b.", Err(Malformed::EmptySegment)),
            // The alphabet is the decoder's to check.
            ("a!.b+.c/", Ok(("a!", "b+", "c/"))),
        ] {
            let got = JwtParts::segments(token).map(|p| (p.header, p.payload, p.signature));
            assert_eq!(got, expected, "{token:?}");
            if let Ok(parts) = JwtParts::segments(token) {
                assert_eq!(parts.signing_input, &token[..token.rfind('.').unwrap()]);
            }
        }
        let huge = format!("a.{}.c", "b".repeat(MAX_TOKEN_BYTES));
        assert_eq!(JwtParts::segments(&huge).err(), Some(Malformed::TooLarge));
        // `split` judges the segments in order, each for emptiness then alphabet, as it always has.
        assert_eq!(
            JwtParts::split("a!..c").err(),
            Some(Malformed::NotBase64Url)
        );
        assert_eq!(
            JwtParts::split("a..c!").err(),
            Some(Malformed::EmptySegment)
        );
    }

    #[test]
    fn authorization_parsing() {
        assert_eq!(
            parse_authorization(b"BEARER  x.y.z "),
            Ok((Scheme::Bearer, "x.y.z"))
        );
        assert_eq!(
            parse_authorization(b"Bearer"),
            Err(CredentialError::EmptyToken)
        );
        assert_eq!(
            parse_authorization(b""),
            Err(CredentialError::UnsupportedScheme)
        );
        assert_eq!(
            parse_authorization(b"Bearer a b"),
            Err(CredentialError::ExtraContent)
        );
        assert_eq!(
            parse_authorization(b"Bearer \xff\xfe"),
            Err(CredentialError::NotAscii)
        );
        assert_eq!(
            parse_authorization(b"Bearer a\x00b"),
            Err(CredentialError::NotAscii)
        );
        let big = [b'a'; MAX_TOKEN_BYTES + 100];
        assert_eq!(parse_authorization(&big), Err(CredentialError::TooLarge));
    }

    #[test]
    fn debug_is_redacted() {
        let t = IdToken::new("aaa.bbb.ccc").unwrap();
        assert!(!format!("{t:?}").contains("aaa"));
    }

    #[test]
    fn unverified_expiry_reads_exp() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":1700000000}"#);
        let t = IdToken::new(format!("eyJ9.{payload}.c2ln")).unwrap();
        assert_eq!(
            t.unverified_expiry().unwrap(),
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)
        );
    }
}
