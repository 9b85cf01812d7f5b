//! Where the emulator answers: the URL of each endpoint, the metadata host, and IAP's audiences for the
//! emulated project.

use url::Url;

use super::Emulator;
use crate::state::Route;
#[cfg(doc)]
use crate::token::TokenSpec;

impl Emulator {
    /// `http://127.0.0.1:PORT/`.
    #[must_use]
    pub fn base_url(&self) -> Url {
        self.shared.base_url.clone()
    }

    /// The URL of `endpoint` (for endpoints with a path parameter, the metadata server's default account
    /// or the `-` project is used; [`Route::GenerateIdToken`], [`Route::GenerateAccessToken`],
    /// [`Route::SignJwt`], [`Route::SignBlob`], [`Route::ServiceAccountCerts`], [`Route::ServiceAccountJwks`] and
    /// [`Route::ServiceAccountRawKeys`] use the metadata service account).
    #[must_use]
    pub fn url(&self, endpoint: Route) -> Url {
        let sa = &self.shared.config.metadata_service_account;
        let path = match endpoint {
            Route::OidcJwks => "/oauth2/v3/certs".to_owned(),
            Route::OidcPemCerts => "/oauth2/v1/certs".to_owned(),
            Route::OpenIdConfiguration => "/.well-known/openid-configuration".to_owned(),
            Route::IapJwks => "/iap/verify/public_key-jwk".to_owned(),
            Route::IapPem => "/iap/verify/public_key".to_owned(),
            Route::MetadataIdentity => {
                "/computeMetadata/v1/instance/service-accounts/default/identity".to_owned()
            }
            Route::MetadataEmail => {
                "/computeMetadata/v1/instance/service-accounts/default/email".to_owned()
            }
            Route::MetadataAccessToken => {
                "/computeMetadata/v1/instance/service-accounts/default/token".to_owned()
            }
            Route::MetadataServiceAccountInfo => {
                "/computeMetadata/v1/instance/service-accounts/default/".to_owned()
            }
            Route::MetadataRoot => "/".to_owned(),
            Route::MetadataProjectId => "/computeMetadata/v1/project/project-id".to_owned(),
            Route::MetadataNumericProjectId => {
                "/computeMetadata/v1/project/numeric-project-id".to_owned()
            }
            Route::Token => "/token".to_owned(),
            Route::GenerateIdToken => {
                format!("/v1/projects/-/serviceAccounts/{sa}:generateIdToken")
            }
            Route::ServiceAccountCerts => format!("/robot/v1/metadata/x509/{sa}"),
            Route::AccessTokenInfo => "/oauth2/v3/tokeninfo".to_owned(),
            Route::GenerateAccessToken => {
                format!("/v1/projects/-/serviceAccounts/{sa}:generateAccessToken")
            }
            Route::SignJwt => format!("/v1/projects/-/serviceAccounts/{sa}:signJwt"),
            Route::StorageBuckets => "/storage/v1/b".to_owned(),
            Route::SignBlob => format!("/v1/projects/-/serviceAccounts/{sa}:signBlob"),
            Route::ServiceAccountJwks => format!("/service_accounts/v1/metadata/jwk/{sa}"),
            Route::ServiceAccountRawKeys => format!("/service_accounts/v1/metadata/raw/{sa}"),
            Route::MetadataZone => "/computeMetadata/v1/instance/zone".to_owned(),
            Route::MetadataRegion => "/computeMetadata/v1/instance/region".to_owned(),
            Route::MetadataUniverseDomain => {
                "/computeMetadata/v1/universe/universe-domain".to_owned()
            }
            Route::MetadataClusterName => {
                "/computeMetadata/v1/instance/attributes/cluster-name".to_owned()
            }
            Route::Authorization => "/o/oauth2/v2/auth".to_owned(),
            Route::AccountChooser => "/o/oauth2/v2/auth/oauthchooseaccount".to_owned(),
            Route::UserInfo => "/v1/userinfo".to_owned(),
            Route::Revoke => "/revoke".to_owned(),
            Route::UserPicture => format!(
                "/picture/{}",
                crate::token::numeric_id(crate::signin::DEFAULT_USERS[0].0)
            ),
        };
        self.shared.url(&path)
    }

    /// `/oauth2/v3/certs`: the OIDC JWKS (Google's `https://www.googleapis.com/oauth2/v3/certs`).
    #[must_use]
    pub fn oidc_jwks_url(&self) -> Url {
        self.url(Route::OidcJwks)
    }

    /// `/oauth2/v1/certs`: the OIDC X.509 certificates (Google's `https://www.googleapis.com/oauth2/v1/certs`).
    #[must_use]
    pub fn oidc_pem_certs_url(&self) -> Url {
        self.url(Route::OidcPemCerts)
    }

    /// `/.well-known/openid-configuration`.
    #[must_use]
    pub fn openid_configuration_url(&self) -> Url {
        self.url(Route::OpenIdConfiguration)
    }

    /// `/iap/verify/public_key-jwk` (Google's `https://www.gstatic.com/iap/verify/public_key-jwk`).
    #[must_use]
    pub fn iap_jwks_url(&self) -> Url {
        self.url(Route::IapJwks)
    }

    /// `/iap/verify/public_key` (Google's `https://www.gstatic.com/iap/verify/public_key`).
    #[must_use]
    pub fn iap_pem_url(&self) -> Url {
        self.url(Route::IapPem)
    }

    /// `http://127.0.0.1:PORT/computeMetadata/v1/`: the metadata server's root.
    #[must_use]
    pub fn metadata_base_url(&self) -> Url {
        self.shared.url("/computeMetadata/v1/")
    }

    /// `127.0.0.1:PORT`, the value for `GCE_METADATA_HOST`.
    #[must_use]
    pub fn metadata_host(&self) -> String {
        self.local_addr.to_string()
    }

    /// `/computeMetadata/v1/instance/service-accounts/default/identity`.
    #[must_use]
    pub fn metadata_identity_url(&self) -> Url {
        self.url(Route::MetadataIdentity)
    }

    /// `/token`: the OAuth 2.0 token endpoint (Google's `https://oauth2.googleapis.com/token`).
    #[must_use]
    pub fn token_url(&self) -> Url {
        self.url(Route::Token)
    }

    /// `/o/oauth2/v2/auth`: the authorization endpoint, where sign-in starts (Google's
    /// `https://accounts.google.com/o/oauth2/v2/auth`): the account chooser. Add the request's query
    /// (`client_id`, `redirect_uri`, `response_type=code`, `scope`, `state`, ...).
    #[must_use]
    pub fn authorization_url(&self) -> Url {
        self.url(Route::Authorization)
    }

    /// `/v1/userinfo`: OpenID Connect userinfo (Google's `https://openidconnect.googleapis.com/v1/userinfo`).
    #[must_use]
    pub fn userinfo_url(&self) -> Url {
        self.url(Route::UserInfo)
    }

    /// `/revoke`: token revocation (Google's `https://oauth2.googleapis.com/revoke`).
    #[must_use]
    pub fn revoke_url(&self) -> Url {
        self.url(Route::Revoke)
    }

    /// The IAM Credentials API root (Google's `https://iamcredentials.googleapis.com/`): the base URL.
    #[must_use]
    pub fn iam_credentials_url(&self) -> Url {
        self.base_url()
    }

    /// `/v1/projects/-/serviceAccounts/{email}:generateIdToken`.
    #[must_use]
    pub fn generate_id_token_url(&self, email: &str) -> Url {
        self.shared.url(&format!(
            "/v1/projects/-/serviceAccounts/{email}:generateIdToken"
        ))
    }

    /// `/v1/projects/-/serviceAccounts/{email}:generateAccessToken`.
    #[must_use]
    pub fn generate_access_token_url(&self, email: &str) -> Url {
        self.shared.url(&format!(
            "/v1/projects/-/serviceAccounts/{email}:generateAccessToken"
        ))
    }

    /// `/v1/projects/-/serviceAccounts/{email}:signJwt`.
    #[must_use]
    pub fn sign_jwt_url(&self, email: &str) -> Url {
        self.shared
            .url(&format!("/v1/projects/-/serviceAccounts/{email}:signJwt"))
    }

    /// `/v1/projects/-/serviceAccounts/{email}:signBlob`.
    #[must_use]
    pub fn sign_blob_url(&self, email: &str) -> Url {
        self.shared
            .url(&format!("/v1/projects/-/serviceAccounts/{email}:signBlob"))
    }

    /// `/service_accounts/v1/metadata/`: the root of every service account's public-key documents (Google's
    /// `https://www.googleapis.com/service_accounts/v1/metadata/`, idgate-core's `Endpoints::service_account_keys`).
    #[must_use]
    pub fn service_account_keys_root(&self) -> Url {
        self.shared.url("/service_accounts/v1/metadata/")
    }

    /// `/service_accounts/v1/metadata/x509/{email}`: `email`'s public keys as `{key_id: X.509 certificate PEM}`
    /// (Google's `https://www.googleapis.com/service_accounts/v1/metadata/x509/EMAIL`). Every key of the account is
    /// there: its key files' keys and the key `signBlob`/`signJwt` sign with.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let emulator = idgate_emulator::Emulator::start().await?;
    /// let key = emulator.create_service_account("signer@my-proj.iam.gserviceaccount.com");
    /// let url = emulator.service_account_x509_url(key.client_email());
    /// assert!(url.as_str().ends_with("/service_accounts/v1/metadata/x509/signer@my-proj.iam.gserviceaccount.com"));
    /// let certs: serde_json::Value = reqwest::get(url).await?.json().await?;
    /// assert!(certs[key.private_key_id()].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn service_account_x509_url(&self, email: &str) -> Url {
        self.service_account_keys_url("x509", email)
    }

    /// `/service_accounts/v1/metadata/jwk/{email}`: `email`'s public keys as a JWKS (`{"keys": [{kid, kty, alg,
    /// use, n, e}]}`).
    #[must_use]
    pub fn service_account_jwk_url(&self, email: &str) -> Url {
        self.service_account_keys_url("jwk", email)
    }

    /// `/service_accounts/v1/metadata/raw/{email}`: `email`'s public keys as
    /// `{"keyvalues": [{keyid, algorithm, modulus, exponent}]}` (standard base64, big-endian).
    #[must_use]
    pub fn service_account_raw_url(&self, email: &str) -> Url {
        self.service_account_keys_url("raw", email)
    }

    /// `{root}{format}/{email}`, the email one path segment (a `/` or `?` in it is percent-encoded, never a path
    /// of its own).
    fn service_account_keys_url(&self, format: &str, email: &str) -> Url {
        let mut url = self.service_account_keys_root();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend([format, email]);
        }
        url
    }

    /// `/oauth2/v3/tokeninfo`: what an access token grants (Google's
    /// `https://oauth2.googleapis.com/tokeninfo` and `https://www.googleapis.com/oauth2/v3/tokeninfo`); add
    /// `?access_token=...`.
    #[must_use]
    pub fn tokeninfo_url(&self) -> Url {
        self.url(Route::AccessTokenInfo)
    }

    /// The Cloud Storage JSON API root (Google's `https://storage.googleapis.com/`): the base URL. The
    /// bucket list is `storage/v1/b?project=P` under it.
    #[must_use]
    pub fn storage_url(&self) -> Url {
        self.base_url()
    }

    /// IAP's audience for App Engine: `/projects/PROJECT_NUMBER/apps/PROJECT_ID`. The default audience of
    /// [`TokenSpec::iap_user`] tokens.
    #[must_use]
    pub fn iap_audience_app_engine(&self) -> String {
        self.shared.iap_audience_app_engine()
    }

    /// IAP's audience for a global backend service: `/projects/PROJECT_NUMBER/global/backendServices/ID`.
    #[must_use]
    pub fn iap_audience_backend_service(&self, service_id: u64) -> String {
        format!(
            "/projects/{}/global/backendServices/{service_id}",
            self.project_number()
        )
    }

    /// IAP's audience for Cloud Run: `/projects/PROJECT_NUMBER/locations/REGION/services/NAME`.
    #[must_use]
    pub fn iap_audience_cloud_run(&self, region: &str, service: &str) -> String {
        format!(
            "/projects/{}/locations/{region}/services/{service}",
            self.project_number()
        )
    }
}
