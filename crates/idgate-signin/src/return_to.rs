//! The return URL after sign-in: same-origin relative paths only.

use std::borrow::Cow;

/// The longest return URL kept; a longer one falls back to `/`.
pub const MAX_RETURN_TO_LEN: usize = 2048;

/// How many layers of percent-encoding are peeled off to look for a disguised `//`, `\` or control character.
const DECODE_ROUNDS: usize = 4;

/// The return URL to send the browser to after sign-in: `raw` when it is a same-origin relative path, else `/`.
///
/// Accepted: a path that starts with exactly one `/` (not `//` and not `/\`), made of visible ASCII characters (no
/// spaces, no control characters, no backslashes), at most [`MAX_RETURN_TO_LEN`] bytes, and that still obeys these
/// rules after percent-decoding, again and again (so `%2F%2Fevil`, `/%5Cevil`, `%252F%252Fevil` and `/%09/evil` are
/// refused too). Everything else (`//evil`, `/\evil`, `https://evil`, `javascript:alert(1)`, `evil`, the empty
/// string) becomes `/`. A query is kept; a fragment is dropped (browsers never send one to the server, so one
/// written here came from someone else).
///
/// What comes out, resolved against any origin as a browser resolves a `Location` header, stays on that origin.
///
/// ```
/// use idgate_signin::sanitize_return_to;
///
/// assert_eq!(sanitize_return_to("/books/mine?page=2"), "/books/mine?page=2");
/// for hostile in ["//evil.com", "/\\evil.com", "https://evil.com", "%2F%2Fevil.com", "/%2F/evil.com",
///                 "javascript:alert(1)", "/%5Cevil.com", "/\tevil", ""] {
///     assert_eq!(sanitize_return_to(hostile), "/", "{hostile}");
/// }
/// ```
pub fn sanitize_return_to(raw: &str) -> Cow<'_, str> {
    let without_fragment = raw.split('#').next().unwrap_or_default();
    if is_safe_path(without_fragment) {
        Cow::Borrowed(without_fragment)
    } else {
        Cow::Borrowed("/")
    }
}

fn is_safe_path(path: &str) -> bool {
    if path.len() > MAX_RETURN_TO_LEN || !obeys_rules(path.as_bytes()) {
        return false;
    }
    // Peel off percent-encoding: whatever a later decoder (a framework, a proxy, a browser) sees must obey too.
    let mut current: Cow<'_, [u8]> = Cow::Borrowed(path.as_bytes());
    for _ in 0..DECODE_ROUNDS {
        let decoded: Vec<u8> = percent_encoding::percent_decode(&current).collect();
        if decoded == *current {
            return true;
        }
        if !obeys_rules(&decoded) {
            return false;
        }
        current = Cow::Owned(decoded);
    }
    // Still encoded after that many rounds: nobody honest writes this.
    false
}

/// One `/` first, then no second `/` or `\`, and only visible ASCII without `\` anywhere.
fn obeys_rules(bytes: &[u8]) -> bool {
    match bytes {
        [b'/', b'/' | b'\\', ..] => false,
        [b'/', ..] => bytes.iter().all(|&b| b.is_ascii_graphic() && b != b'\\'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use url::Url;

    /// The named corpus: every way a return URL has been used to leave the origin.
    const HOSTILE: &[&str] = &[
        "//evil.com",
        "///evil.com",
        "////evil.com",
        "/\\evil.com",
        "/\\/evil.com",
        "\\\\evil.com",
        "\\/evil.com",
        "https://evil.com",
        "http://evil.com/",
        "HTTPS://evil.com",
        "//evil.com/%2F..",
        "https:evil.com",
        "evil.com",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "%2F%2Fevil.com",
        "%2f%2fevil.com",
        "/%2F/evil.com",
        "/%2f/evil.com",
        "/%2F%2Fevil.com",
        "%252F%252Fevil.com",
        "/%252F/evil.com",
        "/%25252F/evil.com",
        "/%2525252F/evil.com",
        "/%5Cevil.com",
        "/%5cevil.com",
        "/%255Cevil.com",
        "%5C%5Cevil.com",
        "/%09/evil.com",
        "/%0A/evil.com",
        "/%0d%0aSet-Cookie:x=1",
        "/\t/evil.com",
        "/\n/evil.com",
        "/\r\nLocation: https://evil.com",
        "/ /evil.com",
        " //evil.com",
        "/\u{0000}/evil.com",
        "/%00/evil.com",
        "/\u{3000}/evil.com",
        "/\u{FF0F}evil.com",
        "/%E3%80%80/evil.com",
        "",
        "#//evil.com",
        "?next=//evil.com",
        "/.\\evil.com",
    ];

    const KEPT: &[&str] = &[
        "/",
        "/books",
        "/books/mine?page=2&sort=title",
        "/a/b/../c",
        "/@evil.com",
        "/search?q=%2F%2Fnot-a-host",
        "/x?redirect=https://evil.com",
    ];

    #[test]
    fn the_named_corpus_falls_back_to_the_root() {
        for hostile in HOSTILE {
            assert_eq!(sanitize_return_to(hostile), "/", "{hostile:?}");
        }
    }

    #[test]
    fn same_origin_paths_are_kept() {
        for path in KEPT {
            assert_eq!(sanitize_return_to(path), *path, "{path:?}");
        }
        assert_eq!(sanitize_return_to("/books#top"), "/books");
        // Conservative: a path that decodes to non-ASCII (which some servers fold into `/`, like U+FF0F) goes too.
        assert_eq!(sanitize_return_to("/caf%C3%A9"), "/");
        assert_eq!(
            sanitize_return_to(&format!("/{}", "a".repeat(MAX_RETURN_TO_LEN))),
            "/"
        );
    }

    /// What a browser does with `Location: out` on a page of `origin`.
    fn resolved_host(out: &str) -> Option<String> {
        let base = Url::parse("https://app.example.com/auth/callback?code=x").unwrap();
        base.join(out)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    }

    fn check_output(out: &str) {
        let bytes = out.as_bytes();
        assert_eq!(bytes.first(), Some(&b'/'), "{out:?}");
        assert!(!matches!(bytes.get(1), Some(b'/' | b'\\')), "{out:?}");
        assert!(!out.contains('\\'), "{out:?}");
        assert_eq!(
            resolved_host(out).as_deref(),
            Some("https://app.example.com"),
            "{out:?}"
        );
        // Every decoding of the output is still a same-origin path.
        let mut current = out.to_owned();
        for _ in 0..8 {
            let decoded = percent_encoding::percent_decode_str(&current)
                .decode_utf8_lossy()
                .into_owned();
            assert_eq!(
                resolved_host(&decoded).as_deref(),
                Some("https://app.example.com"),
                "{out:?} decodes to {decoded:?}"
            );
            current = decoded;
        }
    }

    fn hostile_pieces() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_owned()),
            Just("\\".to_owned()),
            Just("%2F".to_owned()),
            Just("%2f".to_owned()),
            Just("%5C".to_owned()),
            Just("%25".to_owned()),
            Just("%252F".to_owned()),
            Just("%09".to_owned()),
            Just("%00".to_owned()),
            Just("\t".to_owned()),
            Just(":".to_owned()),
            Just("https:".to_owned()),
            Just("javascript:".to_owned()),
            Just("evil.com".to_owned()),
            Just("@".to_owned()),
            Just("?".to_owned()),
            Just("#".to_owned()),
            Just(".".to_owned()),
            Just(" ".to_owned()),
            "[a-z]{1,3}",
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn output_is_always_a_same_origin_path(raw in hostile_pieces()) {
            check_output(&sanitize_return_to(&raw));
        }

        #[test]
        fn arbitrary_strings_too(raw in any::<String>()) {
            check_output(&sanitize_return_to(&raw));
        }

        #[test]
        fn plain_paths_survive(segments in prop::collection::vec("[a-zA-Z0-9_.~-]{1,8}", 0..6), query in "[a-z0-9=&]{0,12}") {
            let mut path = format!("/{}", segments.join("/"));
            if !query.is_empty() {
                path = format!("{path}?{query}");
            }
            prop_assert_eq!(sanitize_return_to(&path), path.as_str());
        }
    }
}
