//! Fidelity: Google's own Python library, google-auth, against the emulator (issues #3 and #12).
//!
//! The test creates (once, cached under the cargo target dir) a virtualenv with google-auth from PyPI,
//! then runs `tests/fidelity/check.py`, which verifies emulator-minted OIDC tokens and IAP assertions
//! with google-auth's verifiers, and obtains ID tokens through the emulator's `/token` (service-account
//! key file) and metadata server (Compute Engine credentials). The tokens it obtained are verified here
//! again. It also mints access tokens the ways google-auth does (key file with scopes, with a subject for
//! domain-wide delegation, the metadata server with scopes, impersonation), and checks that the emulator's
//! tokeninfo agrees with what google-auth asked for. It signs bytes with google-auth's `iam.Signer` (IAM
//! `signBlob`) and verifies them with google-auth's `crypt.RSAVerifier` against the emulator's x509 document
//! (issue #13). A second test signs in with Google through google-auth-oauthlib's `Flow` (PKCE, the account
//! chooser, the code exchange, `verify_oauth2_token`, refresh, userinfo, revoke; issue #14),
//! `tests/fidelity/signin_flow.py`. If the virtualenv cannot be built the tests FAIL,
//! unless `IDGATE_SKIP_PYTHON_FIDELITY=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use idgate_emulator::{Emulator, GOOGLE_ISSUER, Route, TokenSpec};
use serde_json::{Value, json};

use crate::helpers::verify;

/// What goes into the virtualenv; changing this rebuilds it.
const REQUIREMENTS: [&str; 5] = [
    "google-auth>=2.40,<3",
    "google-auth-oauthlib>=1.2,<2",
    "requests>=2.31,<3",
    "pyjwt>=2.8,<3",
    "cryptography>=42",
];

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const IAM: &str = "https://www.googleapis.com/auth/iam";
const STORAGE_RO: &str = "https://www.googleapis.com/auth/devstorage.read_only";
const ADMIN_USERS: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
const DWD_USER: &str = "alice@example.com";

const SKIP_ENV: &str = "IDGATE_SKIP_PYTHON_FIDELITY";

/// What google-auth's `iam.Signer` signs through the emulator.
const SIGNED_MESSAGE: &str = "issue #13: signed by google-auth through IAM signBlob";

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The virtualenv's python, creating the virtualenv if needed.
fn venv_python() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = root.join("idgate-fidelity-venv");
    let python = dir.join("bin").join("python");
    let marker = dir.join(".idgate-requirements");
    let wanted = REQUIREMENTS.join("\n");
    if python.exists() && std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(python);
    }
    // Build in a private directory, then move into place, so concurrent runs never see half a venv.
    let tmp = root.join(format!("idgate-fidelity-venv.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let base = std::env::var("IDGATE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    run(Command::new(&base).args(["-m", "venv"]).arg(&tmp))?;
    run(Command::new(tmp.join("bin").join("python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(REQUIREMENTS))?;
    std::fs::write(tmp.join(".idgate-requirements"), &wanted)
        .map_err(|e| format!("cannot write the venv marker: {e}"))?;
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        // Another run may have won the race; use theirs if it is complete.
        let _ = std::fs::remove_dir_all(&tmp);
        if !(python.exists() && std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted)) {
            return Err(format!("cannot move the venv into place: {e}"));
        }
    }
    Ok(python)
}

/// The virtualenv's python; `None` (with a loud notice) where it cannot be built and the skip is asked for.
/// Built once per test process: the tests of this module run in parallel threads of one process, and
/// `venv_python`'s private build directory is named after the process.
fn python_or_skip(test: &str) -> Option<PathBuf> {
    static VENV: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    match VENV.get_or_init(venv_python).clone() {
        Ok(p) => Some(p),
        Err(why) if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") => {
            eprintln!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 !! SKIPPED: the {test} fidelity test ({SKIP_ENV}=1).\n\
                 !! The Python virtualenv could not be built:\n{why}\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
            None
        }
        Err(why) => panic!(
            "the {test} fidelity test needs a Python virtualenv with google-auth from PyPI \
             (python3 -m venv + pip), and building it failed. Fix Python/PyPI access, or set \
             {SKIP_ENV}=1 to skip this test explicitly.\n{why}"
        ),
    }
}

#[test]
fn google_auth_python_accepts_the_emulator() {
    let Some(python) = python_or_skip("google-auth") else {
        return;
    };

    let rt = tokio::runtime::Runtime::new().unwrap();
    let emu: Emulator = rt.block_on(async { Emulator::start().await.unwrap() });
    let _guard = rt.enter();

    let sa = emu.create_service_account("fidelity@idgate-emulated.iam.gserviceaccount.com");
    let key_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fidelity-keys-{}", std::process::id()));
    std::fs::create_dir_all(&key_dir).unwrap();
    let key_file = sa.write_key_file(&key_dir).unwrap();

    // Access tokens: domain-wide delegation for the key's account, and the right to impersonate `target`.
    emu.enable_domain_wide_delegation(sa.client_email(), &[ADMIN_USERS]);
    let target = emu.create_service_account("target@idgate-emulated.iam.gserviceaccount.com");
    emu.allow_impersonation(sa.client_email(), target.client_email());

    let oidc_audience = "https://fidelity.idgate.test";
    let spec = TokenSpec::service_account("caller@idgate-emulated.iam.gserviceaccount.com")
        .audience(oidc_audience);
    let iap_audience = emu.iap_audience_app_engine();
    let config = json!({
        "oidc_token": emu.mint(&spec),
        "bad_oidc_token": emu.mint(&spec.tampered_signature()),
        "oidc_audience": oidc_audience,
        "iap_token": emu.mint(&TokenSpec::iap_user("user@example.com").hosted_domain("example.com")),
        "iap_audience": iap_audience,
        "v1_certs_url": emu.oidc_pem_certs_url().as_str(),
        "v3_jwks_url": emu.oidc_jwks_url().as_str(),
        "iap_pem_url": emu.iap_pem_url().as_str(),
        "key_file": key_file.to_str().unwrap(),
        "sa_target_audience": "https://sa-key.idgate.test",
        "gce_target_audience": "https://gce.idgate.test",
        "sa_scopes": [STORAGE_RO, CLOUD_PLATFORM],
        "dwd_subject": DWD_USER,
        "dwd_scopes": [ADMIN_USERS],
        "gce_scopes": [STORAGE_RO, IAM],
        "impersonation_target": target.client_email(),
        "impersonation_url": emu.generate_access_token_url(target.client_email()).as_str(),
        "impersonation_scopes": [STORAGE_RO],
        // A str.format template: `{}` is the email (a URL would percent-encode the braces).
        "sign_blob_url_template": format!("{}v1/projects/-/serviceAccounts/{{}}:signBlob", emu.base_url()),
        "sign_blob_message": SIGNED_MESSAGE,
        "signer_x509_url": emu.service_account_x509_url(target.client_email()).as_str(),
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/check.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(config.to_string())
        .env("GCE_METADATA_HOST", emu.metadata_host())
        .env("GCE_METADATA_IP", emu.metadata_host())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&key_dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!("check.py printed no report.\nstdout:\n{stdout}\nstderr:\n{stderr}")
        });
    let checks = report["checks"].as_object().unwrap();
    for name in [
        "oidc_verify_token_v1_certs",
        "oidc_verify_oauth2_token",
        "oidc_verify_token_v3_jwks",
        "oidc_rejects_tampered_token",
        "iap_verify_token_pem",
        "service_account_id_token_credentials",
        "compute_engine_id_token_credentials",
        "service_account_access_token",
        "service_account_dwd_access_token",
        "service_account_dwd_refused_outside_its_scopes",
        "compute_engine_access_token",
        "impersonated_access_token",
        "iam_signer_sign_blob",
    ] {
        assert_eq!(
            checks.get(name).and_then(Value::as_str),
            Some("ok"),
            "{name}: {report}\nstderr:\n{stderr}"
        );
    }
    assert!(output.status.success(), "{report}\nstderr:\n{stderr}");

    // The ID tokens google-auth obtained through the emulator verify here too, with the right identity.
    rt.block_on(async {
        let token = report["sa_id_token"].as_str().unwrap();
        let claims = verify(
            emu.oidc_jwks_url(),
            token,
            "https://sa-key.idgate.test",
            GOOGLE_ISSUER,
        )
        .await
        .unwrap();
        assert_eq!(claims["email"], sa.client_email());
        assert_eq!(claims["sub"], sa.client_id());

        let token = report["gce_id_token"].as_str().unwrap();
        let claims = verify(
            emu.oidc_jwks_url(),
            token,
            "https://gce.idgate.test",
            GOOGLE_ISSUER,
        )
        .await
        .unwrap();
        assert_eq!(claims["email"], emu.metadata_service_account());
        // google-auth asks for format=full.
        assert_eq!(
            claims["google"]["compute_engine"]["project_id"],
            emu.project_id()
        );
    });
    // The access tokens google-auth obtained grant exactly what it asked for, to whom it asked.
    let info = |key: &str| {
        let token = report[key].as_str().unwrap();
        emu.tokeninfo(token)
            .unwrap_or_else(|| panic!("{key}: the emulator does not know {token}"))
    };
    let sa_token = info("sa_access_token");
    assert_eq!(sa_token.email(), sa.client_email());
    assert_eq!(sa_token.subject(), None);
    assert_eq!(sa_token.scopes(), [CLOUD_PLATFORM, STORAGE_RO]);
    let dwd = info("dwd_access_token");
    assert_eq!(dwd.email(), sa.client_email());
    assert_eq!(dwd.subject(), Some(DWD_USER));
    assert_eq!(dwd.scopes(), [ADMIN_USERS]);
    let gce = info("gce_access_token");
    assert_eq!(gce.email(), emu.metadata_service_account());
    assert_eq!(gce.scopes(), [STORAGE_RO, IAM]);
    let impersonated = info("impersonated_access_token");
    assert_eq!(impersonated.email(), target.client_email());
    assert_eq!(impersonated.scopes(), [STORAGE_RO]);
    assert!(emu.hits(Route::GenerateAccessToken) >= 1);
    // google-auth's Signer went through signBlob, and the key that verified its signature is the one IAM signs
    // with for the target (not the target's key file), which verifies it here too.
    assert!(emu.hits(Route::SignBlob) >= 1);
    let key_id = report["signed_blob_key_id"].as_str().unwrap();
    assert_eq!(
        emu.system_key_id(target.client_email()).as_deref(),
        Some(key_id)
    );
    assert_ne!(key_id, target.private_key_id());
    let signature = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(report["signed_blob"].as_str().unwrap())
            .unwrap()
    };
    let jwks: Value = rt.block_on(async {
        reqwest::get(emu.service_account_jwk_url(target.client_email()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == key_id)
        .unwrap();
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let b64url = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&signature)
    };
    assert!(
        jsonwebtoken::crypto::verify(
            &b64url,
            SIGNED_MESSAGE.as_bytes(),
            &key,
            jsonwebtoken::Algorithm::RS256
        )
        .unwrap()
    );

    assert!(emu.hits(Route::Token) >= 1);
    assert!(emu.hits(Route::MetadataIdentity) >= 1);
    assert!(emu.hits(Route::OidcPemCerts) >= 3);
    assert!(emu.hits(Route::IapPem) >= 1);
}

/// The redirect URI of the fidelity client: never contacted (the script reads the redirect, it does not follow it).
const SIGNIN_REDIRECT: &str = "http://127.0.0.1:9/oauth2callback";

#[test]
fn google_auth_oauthlib_signs_in_through_the_emulator() {
    let Some(python) = python_or_skip("google-auth-oauthlib") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emu: Emulator = rt.block_on(async { Emulator::start().await.unwrap() });
    let _guard = rt.enter();
    let client = emu.create_oauth_client(&[SIGNIN_REDIRECT]);
    let email = "alice@example.com";
    let config = json!({
        "client_config": serde_json::from_str::<Value>(&client.client_secrets_json()).unwrap(),
        "redirect_uri": SIGNIN_REDIRECT,
        "email": email,
        "certs_url": emu.oidc_pem_certs_url().as_str(),
        "userinfo_url": emu.userinfo_url().as_str(),
        "revoke_url": emu.revoke_url().as_str(),
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fidelity/signin_flow.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(config.to_string())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!("signin_flow.py printed no report.\nstdout:\n{stdout}\nstderr:\n{stderr}")
        });
    let checks = report["checks"].as_object().unwrap();
    for name in [
        "flow_authorization_url_with_pkce",
        "account_chooser_redirects_with_code_and_state",
        "flow_fetch_token_with_code_verifier",
        "verify_oauth2_token_accepts_the_id_token",
        "userinfo_through_authorized_session",
        "credentials_refresh_gets_a_new_access_token",
        "revoke_then_refresh_fails",
    ] {
        assert_eq!(
            checks.get(name).and_then(Value::as_str),
            Some("ok"),
            "{name}: {report}\nstderr:\n{stderr}"
        );
    }
    assert!(output.status.success(), "{report}\nstderr:\n{stderr}");

    // What google-auth-oauthlib got verifies here too: the ID token for the client, with the nonce it sent.
    let claims = rt
        .block_on(verify(
            emu.oidc_jwks_url(),
            report["id_token"].as_str().unwrap(),
            client.client_id(),
            GOOGLE_ISSUER,
        ))
        .unwrap();
    assert_eq!(claims["email"], email);
    assert_eq!(claims["nonce"], report["nonce"]);
    assert_eq!(claims["hd"], "example.com");
    // The library went through PKCE (the code exchange would have failed without the verifier), the chooser, the
    // token endpoint three times (code, refresh, refused refresh) and revoke; the revoke took every token along.
    assert_eq!(emu.hits(Route::Authorization), 1);
    assert_eq!(emu.hits(Route::AccountChooser), 1);
    assert_eq!(emu.hits(Route::Token), 3);
    assert_eq!(emu.hits(Route::Revoke), 1);
    for token in ["access_token", "refreshed_access_token", "refresh_token"] {
        assert!(emu.is_revoked(report[token].as_str().unwrap()), "{token}");
    }
}
