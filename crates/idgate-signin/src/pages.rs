//! The small HTML pages the sign-in answers with. Every dynamic piece is escaped.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

/// `text` made safe for HTML text and attribute values (`&`, `<`, `>`, `"` and `'` escaped): what the sign-in
/// pages use, and what a page showing a [`SignedInUser`](crate::SignedInUser)'s name or picture URL should use.
///
/// ```
/// assert_eq!(idgate_signin::escape_html(r#"<img src=x onerror="a()">"#), "&lt;img src=x onerror=&quot;a()&quot;&gt;");
/// ```
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page: `title` and `body_html` (already escaped by the caller). `reason` (a stable `[a-z_]` code, never a
/// secret) is on `<main id="signin" data-reason="…">`, for tests and scripts that must tell the pages apart
/// without reading prose.
pub(crate) fn page(status: StatusCode, reason: &str, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\
         <body><main id=\"signin\" data-reason=\"{reason}\"><h1>{title}</h1>{body_html}</main></body></html>\n",
        title = escape_html(title),
        reason = escape_html(reason)
    );
    let mut response = Response::new(Body::from(html));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

pub(crate) fn redirect(status: StatusCode, location: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `302` to the login route with `return_to` (already sanitized).
pub(crate) fn to_login(login_path: &str, return_to: &str) -> Response {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    redirect(StatusCode::FOUND, &format!("{login_path}?{query}"))
}

/// The `401` for a request that is not a page navigation: `{"error":"sign_in_required"}` to a client that accepts
/// JSON, else plain text.
pub(crate) fn not_signed_in(json: bool) -> Response {
    let (body, content_type) = if json {
        ("{\"error\":\"sign_in_required\"}\n", "application/json")
    } else {
        ("sign-in required\n", "text/plain; charset=utf-8")
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) fn not_allowed(logout_path: &str) -> Response {
    page(
        StatusCode::FORBIDDEN,
        "not_allowed",
        "Access denied",
        &format!(
            "<p>You are signed in with a Google account that may not use this site.</p>\
             <form method=\"post\" action=\"{}\"><button type=\"submit\">Sign out</button></form>",
            escape_html(logout_path)
        ),
    )
}

pub(crate) fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "session_store",
        "Sign-in unavailable",
        "<p>Sessions cannot be read right now. Please try again in a moment.</p>",
    )
}

pub(crate) fn missing_layer(what: &str) -> Response {
    tracing::error!(target: "idgate::signin", what, "SignIn::layer() is missing around this route");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "missing_layer",
        "Server misconfigured",
        &format!(
            "<p>{} needs <code>SignIn::layer()</code> around the router. Perhaps you forgot to add it?</p>",
            escape_html(what)
        ),
    )
}

/// The page for a sign-in that did not complete.
pub(crate) fn failed(error: &crate::SignInError, login_path: &str) -> Response {
    use crate::SignInError as E;
    let (title, text) = match error {
        E::AccessDenied => ("Sign-in cancelled", "You chose not to sign in.".to_owned()),
        E::UnknownState | E::MissingState | E::AttemptNotBound => (
            "Sign-in link expired",
            "This sign-in link has expired, was already used, or was started in another browser."
                .to_owned(),
        ),
        E::NotAllowed(_) | E::Identity(_) => (
            "Access denied",
            "This Google account may not sign in to this site.".to_owned(),
        ),
        E::AuthorizationError(code) => (
            "Sign-in failed",
            format!("Google refused the sign-in ({code})."),
        ),
        E::TokenEndpoint(_) | E::Session(_) => (
            "Sign-in unavailable",
            "Google or the session store could not be reached. Please try again in a moment."
                .to_owned(),
        ),
        _ => (
            "Sign-in failed",
            "The sign-in could not be completed.".to_owned(),
        ),
    };
    page(
        error.status(),
        error.reason(),
        title,
        &format!(
            "<p>{}</p><p><a href=\"{}\">Sign in again</a> · <a href=\"/\">Home</a></p>",
            escape_html(&text),
            escape_html(login_path)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn every_page_names_its_reason_and_escapes_it() {
        let page = body(failed(&crate::SignInError::NonceMismatch, "/auth/login")).await;
        assert!(
            page.contains(r#"<main id="signin" data-reason="nonce_mismatch">"#),
            "{page}"
        );
        let page = body(page_for_test("\"><script>")).await;
        assert!(
            page.contains("data-reason=\"&quot;&gt;&lt;script&gt;\""),
            "{page}"
        );
        let json = not_signed_in(true);
        assert_eq!(json.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(body(json).await.trim(), r#"{"error":"sign_in_required"}"#);
        assert_eq!(body(not_signed_in(false)).await, "sign-in required\n");
    }

    fn page_for_test(reason: &str) -> Response {
        page(StatusCode::BAD_REQUEST, reason, "t", "")
    }
}
