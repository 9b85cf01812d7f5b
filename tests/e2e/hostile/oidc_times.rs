//! Time claims at the leeway boundaries, through the real layer.

use idgate_emulator::TokenSpec;

use super::*;
use crate::support::*;

#[tokio::test]
async fn oidc_time_boundaries_at_the_leeway_plus_minus_5_seconds() {
    let (decisions, _guard) = Decisions::capture();
    let emu = emulator().await;
    let site = oidc_site(&emu).await;
    let t = now();
    let mint = |spec: TokenSpec| emu.mint(&spec);
    let leeway = 30;
    let cases = vec![
        token(
            "exp passed, within leeway (-25 s)",
            mint(
                sa().issued_at(t - 3600 + 5 - leeway)
                    .expires_at(t - leeway + 5),
            ),
            200,
            "authorization",
        ),
        token(
            "exp passed, beyond leeway (-35 s)",
            mint(
                sa().issued_at(t - 3600 - 5 - leeway)
                    .expires_at(t - leeway - 5),
            ),
            401,
            "expired",
        ),
        token(
            "iat in the future, within leeway (+25 s)",
            mint(sa().issued_at(t + leeway - 5)),
            200,
            "authorization",
        ),
        token(
            "iat in the future, beyond leeway (+35 s)",
            mint(sa().issued_at(t + leeway + 5)),
            401,
            "issued_in_future",
        ),
        token(
            "nbf in the future, within leeway (+25 s)",
            mint(sa().not_before(t + leeway - 5)),
            200,
            "authorization",
        ),
        token(
            "nbf in the future, beyond leeway (+35 s)",
            mint(sa().not_before(t + leeway + 5)),
            401,
            "not_yet_valid",
        ),
        token(
            "nbf far in the future",
            mint(sa().not_before(t + 86_400)),
            401,
            "not_yet_valid",
        ),
        token(
            "nbf as a string",
            mint(sa().claim("nbf", "0")),
            401,
            "malformed",
        ),
        // Lifetime (no clock involved): at most 3600 s + leeway.
        token(
            "lifetime 3630 s (the maximum)",
            mint(sa().issued_at(t - 60).lifetime(3600 + leeway)),
            200,
            "authorization",
        ),
        token(
            "lifetime 3631 s (one over)",
            mint(sa().issued_at(t - 60).lifetime(3600 + leeway + 1)),
            401,
            "lifetime_too_long",
        ),
        token(
            "lifetime a day",
            mint(sa().lifetime(86_400)),
            401,
            "lifetime_too_long",
        ),
        token(
            "exp before iat",
            mint(sa().issued_at(t).expires_at(t - 100)),
            401,
            "expired",
        ),
    ];
    run(&site, Layer::Oidc, &decisions, cases).await;
}
