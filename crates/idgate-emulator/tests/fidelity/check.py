"""Fidelity check: Google's own Python library (google-auth) against the idgate emulator.

Run by the Rust test `fidelity` (tests/emulator/fidelity.rs) with one argument, a JSON object:

    oidc_token, oidc_audience, bad_oidc_token   tokens minted by the emulator
    iap_token, iap_audience                      an IAP assertion and its audience
    v1_certs_url, v3_jwks_url, iap_pem_url       the emulator's key endpoints
    key_file, sa_target_audience                 a service-account key file for the emulator's /token
    gce_target_audience                          audience to ask the metadata server for
    sa_scopes, dwd_subject, dwd_scopes           access tokens through /token (plain, domain-wide delegation)
    gce_scopes                                   access-token scopes to ask the metadata server for
    impersonation_target, impersonation_url,     generateAccessToken through impersonated_credentials
    impersonation_scopes
    sign_blob_url_template, sign_blob_message,   IAM signBlob through google.auth.iam.Signer, as
    signer_x509_url                              impersonation_target, verified with google.auth.crypt

GCE_METADATA_HOST / GCE_METADATA_IP must point at the emulator in the environment (google-auth reads
them at import time).

Prints one JSON object: {"checks": {name: "ok" | "FAIL: reason"}, "sa_id_token": ..., "gce_id_token": ...,
"sa_access_token": ..., "dwd_access_token": ..., "gce_access_token": ..., "impersonated_access_token": ...,
"signed_blob_key_id": ..., "signed_blob": (standard base64)}
and exits 0 only if every check passed.
"""

import json
import sys
import traceback

import base64

import google.auth.exceptions
import google.auth.iam
import google.auth.transport.requests
from google.auth import crypt, impersonated_credentials
from google.auth.compute_engine import credentials as gce_credentials
from google.oauth2 import id_token, service_account


def main() -> int:
    cfg = json.loads(sys.argv[1])
    request = google.auth.transport.requests.Request()
    checks = {}
    out = {"checks": checks}

    def check(name, fn):
        try:
            result = fn()
            checks[name] = "ok"
            return result
        except Exception as exc:  # noqa: BLE001 - every failure is reported, not raised
            checks[name] = "FAIL: %s: %s" % (type(exc).__name__, exc)
            traceback.print_exc(file=sys.stderr)
            return None

    # (1) OIDC tokens verify through the X.509 v1 certs, exactly as verify_token does it.
    def oidc_v1():
        claims = id_token.verify_token(
            cfg["oidc_token"], request, audience=cfg["oidc_audience"], certs_url=cfg["v1_certs_url"]
        )
        assert claims["iss"] == "https://accounts.google.com", claims
        assert claims["email_verified"] is True, claims

    check("oidc_verify_token_v1_certs", oidc_v1)

    # verify_oauth2_token itself (issuer check included), with its certs URL pointed at the emulator.
    def oidc_oauth2():
        id_token._GOOGLE_OAUTH2_CERTS_URL = cfg["v1_certs_url"]
        claims = id_token.verify_oauth2_token(cfg["oidc_token"], request, audience=cfg["oidc_audience"])
        assert claims["aud"] == cfg["oidc_audience"], claims

    check("oidc_verify_oauth2_token", oidc_oauth2)

    # The JWKS (v3) path of verify_token (PyJWT underneath).
    def oidc_v3():
        claims = id_token.verify_token(
            cfg["oidc_token"], request, audience=cfg["oidc_audience"], certs_url=cfg["v3_jwks_url"]
        )
        assert claims["sub"] == claims["azp"], claims

    check("oidc_verify_token_v3_jwks", oidc_v3)

    # Negative control: a tampered token must be refused, or the checks above prove nothing.
    def oidc_rejects_bad():
        try:
            id_token.verify_token(
                cfg["bad_oidc_token"], request, audience=cfg["oidc_audience"], certs_url=cfg["v1_certs_url"]
            )
        except ValueError:
            return
        raise AssertionError("a tampered token was accepted")

    check("oidc_rejects_tampered_token", oidc_rejects_bad)

    # (2) IAP assertions verify through the SPKI PEM keys (ES256), as Google's IAP sample does.
    def iap():
        claims = id_token.verify_token(
            cfg["iap_token"], request, audience=cfg["iap_audience"], certs_url=cfg["iap_pem_url"]
        )
        assert claims["iss"] == "https://cloud.google.com/iap", claims
        assert claims["sub"].startswith("accounts.google.com:"), claims

    check("iap_verify_token_pem", iap)

    # (3) A service-account key file obtains an ID token through the emulator's /token.
    def sa_key():
        creds = service_account.IDTokenCredentials.from_service_account_file(
            cfg["key_file"], target_audience=cfg["sa_target_audience"]
        )
        creds.refresh(request)
        assert creds.token, "no token"
        assert creds.expiry is not None, "no expiry"
        # google-auth's own verifier accepts what the emulator's /token returned.
        id_token.verify_token(
            creds.token, request, audience=cfg["sa_target_audience"], certs_url=cfg["v1_certs_url"]
        )
        return creds.token

    out["sa_id_token"] = check("service_account_id_token_credentials", sa_key)

    # (4) The metadata server, as Compute Engine credentials use it.
    def gce():
        creds = gce_credentials.IDTokenCredentials(
            request, target_audience=cfg["gce_target_audience"], use_metadata_identity_endpoint=True
        )
        creds.refresh(request)
        assert creds.token, "no token"
        return creds.token

    out["gce_id_token"] = check("compute_engine_id_token_credentials", gce)

    # (5) Access tokens: a service-account key with scopes (the JWT-bearer grant with `scope`), the same
    # with a subject (domain-wide delegation), the metadata server with scopes, and impersonation
    # (IAM generateAccessToken). The Rust side checks the emulator's tokeninfo against what was asked.
    with open(cfg["key_file"]) as f:
        info = json.load(f)

    def sa_access():
        creds = service_account.Credentials.from_service_account_info(info, scopes=cfg["sa_scopes"])
        creds.refresh(request)
        assert creds.token and creds.token.startswith("ya29."), creds.token
        assert creds.expiry is not None, "no expiry"
        return creds.token

    out["sa_access_token"] = check("service_account_access_token", sa_access)

    def dwd_access():
        creds = service_account.Credentials.from_service_account_info(
            info, scopes=cfg["dwd_scopes"]
        ).with_subject(cfg["dwd_subject"])
        creds.refresh(request)
        assert creds.token, "no token"
        return creds.token

    out["dwd_access_token"] = check("service_account_dwd_access_token", dwd_access)

    def dwd_refused():
        creds = service_account.Credentials.from_service_account_info(
            info, scopes=cfg["dwd_scopes"] + ["https://www.googleapis.com/auth/gmail.readonly"]
        ).with_subject(cfg["dwd_subject"])
        try:
            creds.refresh(request)
        except google.auth.exceptions.RefreshError as exc:
            assert "unauthorized_client" in str(exc), exc
            return
        raise AssertionError("a scope outside the delegation was granted")

    check("service_account_dwd_refused_outside_its_scopes", dwd_refused)

    def gce_access():
        creds = gce_credentials.Credentials(scopes=cfg["gce_scopes"])
        creds.refresh(request)
        assert creds.token, "no token"
        assert creds.service_account_email, "no email"
        return creds.token

    out["gce_access_token"] = check("compute_engine_access_token", gce_access)

    def impersonated():
        source = service_account.Credentials.from_service_account_info(
            info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        creds = impersonated_credentials.Credentials(
            source_credentials=source,
            target_principal=cfg["impersonation_target"],
            target_scopes=cfg["impersonation_scopes"],
            lifetime=1800,
            iam_endpoint_override=cfg["impersonation_url"],
        )
        creds.refresh(request)
        assert creds.token, "no token"
        assert creds.expiry is not None, "no expiry"
        return creds.token

    out["impersonated_access_token"] = check("impersonated_access_token", impersonated)

    # (6) IAM signBlob through google-auth's own iam.Signer (authorised by the key file's access token, which may
    # act as impersonation_target), verified with google-auth's RSAVerifier against the target's x509 document.
    # iam.Signer.key_id is always None (google-auth cannot know it), so the key that verifies is looked up in
    # the document, and the Rust side checks it is the one IAM signs with.
    def iam_sign_blob():
        google.auth.iam._IAM_SIGN_ENDPOINT = cfg["sign_blob_url_template"]
        source = service_account.Credentials.from_service_account_info(
            info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        signer = google.auth.iam.Signer(request, source, cfg["impersonation_target"])
        message = cfg["sign_blob_message"].encode("utf-8")
        signature = signer.sign(message)
        response = request(url=cfg["signer_x509_url"], method="GET")
        assert response.status == 200, response.status
        certs = json.loads(response.data.decode("utf-8"))
        verifying = [
            kid for kid, pem in certs.items() if crypt.RSAVerifier.from_string(pem).verify(message, signature)
        ]
        assert len(verifying) == 1, (verifying, sorted(certs))
        # Negative control: a changed message verifies with no published key.
        assert not any(
            crypt.RSAVerifier.from_string(pem).verify(message + b"!", signature) for pem in certs.values()
        )
        out["signed_blob_key_id"] = verifying[0]
        out["signed_blob"] = base64.b64encode(signature).decode("ascii")

    check("iam_signer_sign_blob", iam_sign_blob)

    print(json.dumps(out))
    return 0 if all(v == "ok" for v in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
