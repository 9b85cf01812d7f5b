//! Sign in with Google (issue #14), the token side: PKCE, codes (single use, lifetime, client and redirect URI),
//! refresh tokens, userinfo and revoke.

use idgate_emulator::{GOOGLE_ISSUER, Route, UserSpec};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{emulator, post_token, verify};
use crate::signin::{
    ALICE, REDIRECT, VERIFIER, auth_url, code_for, exchange, query, with_param, without_param,
};

#[tokio::test]
async fn pkce_is_checked() {
    let emu = emulator().await;
    let client = emu.create_oauth_client(&[REDIRECT]);
    let without = |form: &[(&'static str, String)], drop: &str| -> Vec<(&'static str, String)> {
        form.iter().filter(|(k, _)| *k != drop).cloned().collect()
    };
    let form = |code: String| -> Vec<(&'static str, String)> {
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code),
            ("redirect_uri", REDIRECT.into()),
            ("client_id", client.client_id().into()),
            ("client_secret", client.client_secret().into()),
            ("code_verifier", VERIFIER.into()),
        ]
    };
    let post = |form: Vec<(&'static str, String)>| {
        let emu = &emu;
        async move {
            let borrowed: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_token(emu, &borrowed).await
        }
    };

    let (status, body) = post(without(
        &form(code_for(&emu, &client, &[]).await),
        "code_verifier",
    ))
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(body["error_description"], "Missing code verifier.");

    let (status, body) = exchange(
        &emu,
        &client,
        &code_for(&emu, &client, &[]).await,
        &format!("{VERIFIER}x"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(body["error_description"], "Invalid code verifier.");

    // A failed exchange used the code up: the right verifier is too late.
    let code = code_for(&emu, &client, &[]).await;
    let _ = exchange(
        &emu,
        &client,
        &code,
        "wrong-wrong-wrong-wrong-wrong-wrong-wrong-wrong",
    )
    .await;
    let (status, _) = exchange(&emu, &client, &code, VERIFIER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // plain: the verifier is the challenge.
    let plain = with_param(
        &with_param(&auth_url(&emu, &client, &[]), "code_challenge", VERIFIER),
        "code_challenge_method",
        "plain",
    );
    let code = query(&emu.consent(&plain, ALICE).unwrap())["code"].clone();
    assert_eq!(
        exchange(&emu, &client, &code, VERIFIER).await.0,
        StatusCode::OK
    );

    // No challenge: no verifier expected, and one sent anyway is refused (no downgrade by stripping the challenge).
    let bare = without_param(
        &without_param(&auth_url(&emu, &client, &[]), "code_challenge"),
        "code_challenge_method",
    );
    let code = query(&emu.consent(&bare, ALICE).unwrap())["code"].clone();
    assert_eq!(
        post(without(&form(code), "code_verifier")).await.0,
        StatusCode::OK
    );
    let code = query(&emu.consent(&bare, ALICE).unwrap())["code"].clone();
    let (status, body) = exchange(&emu, &client, &code, VERIFIER).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn codes_are_single_use_short_lived_and_bound_to_client_and_redirect_uri() {
    let emu = emulator().await;
    let client = emu.create_oauth_client(&[REDIRECT, "http://127.0.0.1:8080/other"]);
    let other = emu.create_oauth_client(&[REDIRECT]);

    // Replayed: refused, and what the first exchange issued is revoked.
    let code = code_for(&emu, &client, &[("access_type", "offline")]).await;
    let (status, first) = exchange(&emu, &client, &code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK);
    let access = first["access_token"].as_str().unwrap();
    let refresh = first["refresh_token"].as_str().unwrap();
    assert!(emu.tokeninfo(access).is_some());
    let (status, body) = exchange(&emu, &client, &code, VERIFIER).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert!(emu.tokeninfo(access).is_none());
    assert!(emu.is_revoked(access) && emu.is_revoked(refresh));

    // Another client cannot use it (and its attempt does not use it up).
    let code = code_for(&emu, &client, &[]).await;
    let (status, body) = exchange(&emu, &other, &code, VERIFIER).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        exchange(&emu, &client, &code, VERIFIER).await.0,
        StatusCode::OK
    );

    // Another redirect URI (even one the client registered) is a mismatch.
    let code = code_for(&emu, &client, &[]).await;
    let (status, body) = post_token(
        &emu,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:8080/other"),
            ("client_id", client.client_id()),
            ("client_secret", client.client_secret()),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("redirect_uri_mismatch"))
    );

    // Expired.
    let code = code_for(&emu, &client, &[]).await;
    assert!(emu.expire_authorization_code(&code));
    assert!(!emu.expire_authorization_code("4/0Anever"));
    let (status, body) = exchange(&emu, &client, &code, VERIFIER).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // Unknown code, missing code, bad client credentials.
    let (status, body) = exchange(&emu, &client, "4/0Aforged", VERIFIER).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, body) = post_token(
        &emu,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client.client_id()),
            ("client_secret", client.client_secret()),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let code = code_for(&emu, &client, &[]).await;
    let (status, body) = post_token(
        &emu,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", client.client_id()),
            ("client_secret", "GOCSPX-wrong"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body) = post_token(
        &emu,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "ghost.apps.googleusercontent.com"),
            ("client_secret", "x"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("The OAuth client was not found.")
        )
    );
    // A wrong secret did not use the code up: HTTP Basic (client_secret_basic) exchanges it.
    let resp = reqwest::Client::new()
        .post(emu.token_url())
        .basic_auth(client.client_id(), Some(client.client_secret()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_tokens_come_with_offline_access_on_consent_and_refresh() {
    let emu = emulator().await;
    let client = emu.create_oauth_client(&[REDIRECT]);
    // Online: no refresh token.
    let (_, online) = exchange(&emu, &client, &code_for(&emu, &client, &[]).await, VERIFIER).await;
    assert!(online.get("refresh_token").is_none());
    // Offline after the first consent: none either (Google issues one on consent only)...
    let back = emu
        .consent(
            &auth_url(&emu, &client, &[("access_type", "offline")]),
            ALICE,
        )
        .unwrap();
    assert_eq!(query(&back)["prompt"], "none");
    let (_, again) = exchange(&emu, &client, &query(&back)["code"], VERIFIER).await;
    assert!(again.get("refresh_token").is_none());
    // ...unless prompt=consent asks for consent again.
    let back = emu
        .consent(
            &auth_url(
                &emu,
                &client,
                &[("access_type", "offline"), ("prompt", "consent")],
            ),
            ALICE,
        )
        .unwrap();
    assert_eq!(query(&back)["prompt"], "consent");
    let (_, offline) = exchange(&emu, &client, &query(&back)["code"], VERIFIER).await;
    let refresh = offline["refresh_token"].as_str().unwrap();

    let (status, refreshed) = post_token(
        &emu,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", client.client_id()),
            ("client_secret", client.client_secret()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_ne!(refreshed["access_token"], offline["access_token"]);
    assert!(refreshed.get("refresh_token").is_none());
    let claims = verify(
        emu.oidc_jwks_url(),
        refreshed["id_token"].as_str().unwrap(),
        client.client_id(),
        GOOGLE_ISSUER,
    )
    .await
    .unwrap();
    assert_eq!(claims["sub"], idgate_emulator::numeric_id(ALICE));
    assert_eq!(claims["name"], "Alice Liddell");
    assert!(claims.get("nonce").is_none());
    // HTTP Basic works for the refresh grant too; another client's secret does not.
    let resp = reqwest::Client::new()
        .post(emu.token_url())
        .basic_auth(client.client_id(), Some(client.client_secret()))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = reqwest::Client::new()
        .post(emu.token_url())
        .basic_auth(client.client_id(), Some("GOCSPX-nope"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn userinfo_follows_the_scopes_and_refuses_anything_else() {
    let emu = emulator().await;
    let client = emu.create_oauth_client(&[REDIRECT]);
    let user = emu.add_user(
        UserSpec::new("eve@example.net")
            .name("Eve")
            .email_verified(false)
            .sub("42"),
    );
    assert_eq!(user.family_name(), "");
    let only_email = with_param(&auth_url(&emu, &client, &[]), "scope", "openid email");
    let code = query(&emu.consent(&only_email, "eve@example.net").unwrap())["code"].clone();
    let (_, tokens) = exchange(&emu, &client, &code, VERIFIER).await;
    let claims = verify(
        emu.oidc_jwks_url(),
        tokens["id_token"].as_str().unwrap(),
        client.client_id(),
        GOOGLE_ISSUER,
    )
    .await
    .unwrap();
    assert_eq!(
        (claims["sub"].as_str(), claims["email_verified"].as_bool()),
        (Some("42"), Some(false))
    );
    assert!(claims.get("name").is_none() && claims.get("hd").is_none());
    let userinfo = |token: Option<String>| {
        let mut req = reqwest::Client::new().get(emu.userinfo_url());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.unwrap() }
    };
    let me: Value = userinfo(tokens["access_token"].as_str().map(str::to_owned))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        me,
        serde_json::json!({"sub": "42", "email": "eve@example.net", "email_verified": false})
    );

    for token in [None, Some("ya29.forged".to_owned())] {
        let resp = userinfo(token).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(
            resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
    // A token without openid/email/profile (a service account's cloud-platform token) is refused.
    let sa = emu.create_service_account("svc@idgate-emulated.iam.gserviceaccount.com");
    let now = crate::helpers::now();
    let jwt = crate::helpers::assertion(
        &sa,
        &serde_json::json!({"iss": sa.client_email(), "aud": emu.token_url().as_str(), "iat": now, "exp": now + 600,
            "scope": "https://www.googleapis.com/auth/cloud-platform"}),
    );
    let (_, body) = post_token(
        &emu,
        &[
            ("grant_type", crate::helpers::JWT_BEARER),
            ("assertion", &jwt),
        ],
    )
    .await;
    assert_eq!(
        userinfo(body["access_token"].as_str().map(str::to_owned))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn revoking_a_token_revokes_the_grant() {
    let emu = emulator().await;
    let client = emu.create_oauth_client(&[REDIRECT]);
    let http = reqwest::Client::new();
    let offline = [("access_type", "offline")];
    let (_, tokens) = exchange(
        &emu,
        &client,
        &code_for(&emu, &client, &offline).await,
        VERIFIER,
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let resp = http
        .post(emu.revoke_url())
        .form(&[("token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap(), serde_json::json!({}));
    assert!(emu.is_revoked(refresh) && emu.is_revoked(access));
    assert!(emu.tokeninfo(access).is_none());
    let (status, body) = post_token(
        &emu,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", client.client_id()),
            ("client_secret", client.client_secret()),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let resp = http
        .post(emu.revoke_url())
        .form(&[("token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_token"
    );

    // The consent went with the grant: the next offline sign-in consents again and gets a refresh token.
    let back = emu
        .consent(&auth_url(&emu, &client, &offline), ALICE)
        .unwrap();
    assert_eq!(query(&back)["prompt"], "consent");
    let (_, tokens) = exchange(&emu, &client, &query(&back)["code"], VERIFIER).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    // Revoking the access token (as Google's examples do, `?token=` in the query) takes the refresh token along.
    let mut url = emu.revoke_url();
    url.query_pairs_mut()
        .append_pair("token", tokens["access_token"].as_str().unwrap());
    assert_eq!(
        http.post(url).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert!(emu.is_revoked(refresh));
    let resp = http.post(emu.revoke_url()).send().await.unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    assert!(emu.hits(Route::Revoke) >= 3);
}

#[tokio::test]
async fn a_test_sees_the_live_refresh_tokens_and_can_remove_the_apps_access() {
    let emu = emulator().await;
    let client = emu.create_oauth_client(&[REDIRECT]);
    let other = emu.create_oauth_client(&[REDIRECT]);
    let offline = [("access_type", "offline")];
    assert!(emu.refresh_tokens(client.client_id(), ALICE).is_empty());
    assert!(
        !emu.remove_access(client.client_id(), ALICE),
        "no grant yet"
    );

    let (_, first) = exchange(
        &emu,
        &client,
        &code_for(&emu, &client, &offline).await,
        VERIFIER,
    )
    .await;
    let (_, elsewhere) = exchange(
        &emu,
        &other,
        &code_for(&emu, &other, &offline).await,
        VERIFIER,
    )
    .await;
    let refresh = first["refresh_token"].as_str().unwrap();
    assert_eq!(emu.refresh_tokens(client.client_id(), ALICE), [refresh]);
    assert!(
        emu.refresh_tokens(client.client_id(), "bob@example.com")
            .is_empty()
    );

    // Removing the app's access revokes its whole grant (and only this client's): the refresh grant then answers
    // `invalid_grant`, as Google does once a user removes an app.
    assert!(emu.remove_access(client.client_id(), ALICE));
    assert!(emu.refresh_tokens(client.client_id(), ALICE).is_empty());
    assert!(emu.is_revoked(refresh) && emu.is_revoked(first["access_token"].as_str().unwrap()));
    let (status, body) = post_token(
        &emu,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", client.client_id()),
            ("client_secret", client.client_secret()),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        emu.refresh_tokens(other.client_id(), ALICE),
        [elsewhere["refresh_token"].as_str().unwrap()]
    );
}
