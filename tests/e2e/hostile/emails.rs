//! Email lookalikes against the allowlist.

use idgate_emulator::TokenSpec;

use super::*;
use crate::support::*;

#[tokio::test]
async fn oidc_email_lookalikes_and_allowlist() {
    let (decisions, _guard) = Decisions::capture();
    let emu = emulator().await;
    let site = oidc_site(&emu).await;
    let mint = |email: &str| emu.mint(&TokenSpec::service_account(email).audience(AUD));
    let cases = vec![
        token(
            "control: allowed SA by email",
            mint(ALLOWED_SA),
            200,
            "authorization",
        ),
        token(
            "control: App Engine default SA of the listed project",
            mint(APPSPOT_SA),
            200,
            "authorization",
        ),
        token(
            "allowed SA in upper case (emails are case-insensitive)",
            mint(&ALLOWED_SA.to_uppercase()),
            200,
            "authorization",
        ),
        token(
            "allowed SA in mixed case",
            mint("Caller@IDGATE-E2E.iam.gserviceaccount.com"),
            200,
            "authorization",
        ),
        token(
            "appspot SA with a suffix domain",
            mint("idgate-e2e@appspot.gserviceaccount.com.evil.com"),
            403,
            "not_allowed",
        ),
        token(
            "x@appspot.gserviceaccount.com.evil.com",
            mint("x@appspot.gserviceaccount.com.evil.com"),
            403,
            "not_allowed",
        ),
        token(
            "x@evil-appspot.gserviceaccount.com",
            mint("x@evil-appspot.gserviceaccount.com"),
            403,
            "not_allowed",
        ),
        token(
            "listed project id in a subdomain",
            mint("idgate-e2e@evil.appspot.gserviceaccount.com"),
            403,
            "not_allowed",
        ),
        token(
            "allowed SA with a suffix domain",
            mint("caller@idgate-e2e.iam.gserviceaccount.com.evil.com"),
            403,
            "not_allowed",
        ),
        token(
            "allowed SA local part at another project",
            mint("caller@other-proj.iam.gserviceaccount.com"),
            403,
            "not_allowed",
        ),
        token(
            "other user-managed SA of the listed project",
            mint("other@idgate-e2e.iam.gserviceaccount.com"),
            403,
            "not_allowed",
        ),
        token(
            "another project's appspot SA",
            mint("other-proj@appspot.gserviceaccount.com"),
            403,
            "not_allowed",
        ),
        token(
            "a consumer account",
            mint("caller@gmail.com"),
            403,
            "not_allowed",
        ),
        token(
            "two @ signs",
            mint("caller@evil.com@idgate-e2e.iam.gserviceaccount.com"),
            401,
            "unknown_identity",
        ),
        token(
            "Cyrillic a in appspot",
            mint("idgate-e2e@\u{430}ppspot.gserviceaccount.com"),
            401,
            "unknown_identity",
        ),
        token(
            "Greek omicron in .com",
            mint("caller@idgate-e2e.iam.gserviceaccount.c\u{3bf}m"),
            401,
            "unknown_identity",
        ),
        token(
            "fullwidth letter in the local part",
            mint("\u{ff43}aller@idgate-e2e.iam.gserviceaccount.com"),
            401,
            "unknown_identity",
        ),
        token(
            "zero-width space in the email",
            mint("caller\u{200b}@idgate-e2e.iam.gserviceaccount.com"),
            401,
            "unknown_identity",
        ),
        token(
            "trailing dot domain",
            mint("caller@idgate-e2e.iam.gserviceaccount.com."),
            403,
            "not_allowed",
        ),
    ];
    run(&site, Layer::Oidc, &decisions, cases).await;
}
