//! Signing as a service account: [`Signer`] signs bytes ([`Signer::sign_blob`]) and JWTs ([`Signer::sign_jwt`])
//! as the account, locally with its key file or through IAM Credentials `signBlob`/`signJwt`, and always says
//! which key signed ([`SignedBlob::key_id`], the JWT's `kid`), so that anyone can verify the signature against the
//! account's published keys (`https://www.googleapis.com/service_accounts/v1/metadata/{x509,jwk}/EMAIL`).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use idgate_core::clock::Clock;
use idgate_core::google::{Endpoints, HttpOptions};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{ClaimsProblem, Endpoint, ResponseProblem, SignError, SourceError};
use crate::iam::{CallError, IamClient};
use crate::source::{
    AccessTokenSource, Adc, Impersonated, MetadataServer, Resolved, ServiceAccountKey,
};

/// `exp` when the claims have none: one hour after now.
const DEFAULT_JWT_LIFETIME_SECS: i64 = 3600;
/// How far ahead IAM `signJwt` lets `exp` be (12 hours).
const MAX_JWT_EXP_AHEAD_SECS: i64 = 12 * 3600;
const SIGN_BLOB_PERMISSION: &str = "iam.serviceAccounts.signBlob";
const SIGN_JWT_PERMISSION: &str = "iam.serviceAccounts.signJwt";

/// Signs bytes and JWTs as a service account.
///
/// | built with | signs | key ID |
/// |---|---|---|
/// | [`Signer::from_key`] (a key file) | locally: RSASSA-PKCS1-v1_5 with SHA-256 (RS256) | the key file's `private_key_id` |
/// | [`Signer::iam`] (any credential allowed to act as the account) | IAM Credentials `signBlob` / `signJwt` | IAM's `keyId` (a Google-managed key of the account) |
/// | [`Signer::from_impersonated`] | IAM, as the impersonation target, through its delegates | IAM's `keyId` |
/// | [`Signer::attached`] (the metadata server) | IAM, as the attached service account | IAM's `keyId` |
/// | [`Signer::from_adc`] | one of the above, as ADC resolved; user credentials are [`SignError::NoServiceAccount`] | |
///
/// Either way the signature verifies with the account's published keys: Google publishes every key of a service
/// account (key files' and Google-managed) at `service_accounts/v1/metadata/x509/EMAIL` (X.509 certificates) and
/// `.../jwk/EMAIL` (a JWKS). Unlike Google's own libraries, idgate always returns the key ID, so the verifier
/// need not try every key.
///
/// Through IAM, the caller (the credential whose access tokens authorise the call, scope `cloud-platform`) needs
/// `iam.serviceAccounts.signBlob` / `iam.serviceAccounts.signJwt` on the account: the Service Account Token Creator
/// role (`roles/iam.serviceAccountTokenCreator`), **also when the account signs as itself** (the metadata server's
/// account). Without it: [`SignError::PermissionDenied`], which says what to grant. IAM's 500/502/503/504 and
/// transport failures are retried with the [`RetryPolicy`](crate::RetryPolicy) of the [`HttpOptions`]; 4xx never
/// are. When IAM answers 401 to a reused access token, the token is dropped and the call made once more with a
/// fresh one.
///
/// Cloning is cheap and clones share the caller's cached access token and the attached account's email. `Debug`
/// shows the account, the key ID or the IAM endpoint, never a key or a token.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use idgate_client::{ServiceAccountKey, Signer};
///
/// # let emulator = idgate_emulator::Emulator::start().await?;
/// # let key_file = emulator.create_service_account("app@my-project.iam.gserviceaccount.com").to_json();
/// // A key file (`ServiceAccountKey::from_file("/secrets/app-key.json")?` in real life).
/// let signer = Signer::from_key(ServiceAccountKey::from_json(key_file.as_bytes())?);
/// let signed = signer.sign_blob(b"a message from app@").await?;
/// assert_eq!(signed.signature().len(), 256);
/// println!("key {} signed {}", signed.key_id(), signed.signature_base64());
///
/// // A JWT signed as the account: iss = sub = the account, exp = now + 1 h unless given; `aud` is required.
/// let jwt = signer.sign_jwt(&serde_json::json!({"aud": "https://partner.example.com"})).await?;
/// assert_eq!(jwt.split('.').count(), 3);
/// # Ok(()) }
/// ```
///
/// Through IAM, as the account the code runs as (Cloud Run, GCE, GKE, App Engine):
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), idgate_client::SignError> {
/// use idgate_client::{MetadataServer, Signer};
///
/// let signer = Signer::attached(MetadataServer::new());
/// let signed = signer.sign_blob(b"a message").await?;
/// println!("{} signed with key {}", signer.email().await?, signed.key_id());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Signer {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    how: How,
    clock: Arc<dyn Clock>,
}

#[derive(Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per Signer, behind its Arc: boxing would add an indirection for nothing"
)]
enum How {
    /// A key file's private key.
    Local {
        email: String,
        key_id: String,
        key: Arc<EncodingKey>,
    },
    /// IAM Credentials, as `account`, authorised by `client`'s caller.
    Iam {
        client: IamClient,
        account: Account,
        delegates: Vec<String>,
    },
}

/// The account IAM signs as.
#[derive(Clone)]
enum Account {
    /// Given: an email or unique ID.
    Named(String),
    /// The metadata server's default account, whose email is asked once and kept.
    Attached {
        metadata: MetadataServer,
        email: Arc<tokio::sync::OnceCell<String>>,
    },
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.how {
            How::Local { email, key_id, .. } => f
                .debug_struct("Signer")
                .field("kind", &"local key")
                .field("account", email)
                .field("key_id", key_id)
                .field("private_key", &"<redacted>")
                .finish(),
            How::Iam {
                client,
                account,
                delegates,
            } => {
                let account = match account {
                    Account::Named(email) => email.as_str(),
                    Account::Attached { email, .. } => email
                        .get()
                        .map_or("<attached, not yet read>", String::as_str),
                };
                f.debug_struct("Signer")
                    .field("kind", &"IAM")
                    .field("account", &account)
                    .field("delegates", delegates)
                    .field("iam_credentials", &client.root.as_str())
                    .field("caller", &client.source)
                    .finish()
            }
        }
    }
}

/// A signature and the ID of the key that made it: what a verifier needs to pick the key from the account's
/// published set.
///
/// ```
/// use idgate_client::SignedBlob;
///
/// let signed = SignedBlob::new("0123abcd", vec![0xfb, 0xff]);
/// assert_eq!(signed.key_id(), "0123abcd");
/// assert_eq!(signed.signature_base64(), "+/8="); // standard base64, as IAM's `signedBlob`
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBlob {
    key_id: String,
    signature: Vec<u8>,
}

impl SignedBlob {
    /// A signature made with the key `key_id`.
    pub fn new(key_id: impl Into<String>, signature: Vec<u8>) -> Self {
        Self {
            key_id: key_id.into(),
            signature,
        }
    }

    /// The ID of the key that signed: the key file's `private_key_id`, or IAM's `keyId`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The RSASSA-PKCS1-v1_5 SHA-256 signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The signature in standard base64 (with padding), as IAM's `signedBlob` carries it.
    pub fn signature_base64(&self) -> String {
        STANDARD.encode(&self.signature)
    }

    /// The key ID and the signature.
    pub fn into_parts(self) -> (String, Vec<u8>) {
        (self.key_id, self.signature)
    }
}

impl Signer {
    fn new(how: How, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner { how, clock }),
        }
    }

    /// Signs locally with a service-account key file: key ID = its `private_key_id`, account = its
    /// `client_email`. The key's clock stamps the JWTs.
    ///
    /// Signing reuses the key file's already-parsed key through jsonwebtoken (the crate that signs the
    /// key's token-endpoint assertions), so the private key is parsed by one code path only.
    pub fn from_key(key: ServiceAccountKey) -> Self {
        let (email, key_id, key, clock) = key.into_signing_parts();
        Self::new(How::Local { email, key_id, key }, clock)
    }

    /// Signs through IAM Credentials as `email` (a service-account email or unique ID), authorised by `source`'s
    /// access tokens (scope `cloud-platform`). `source`'s principal needs the Service Account Token Creator role on
    /// `email` (on the first delegate, with [`delegates`](Self::delegates)).
    pub fn iam(source: impl AccessTokenSource + 'static, email: impl Into<String>) -> Self {
        Self::iam_with(
            IamClient::new(Arc::new(source)),
            Account::Named(email.into().trim().to_owned()),
            Vec::new(),
        )
    }

    fn iam_with(client: IamClient, account: Account, delegates: Vec<String>) -> Self {
        let clock = Arc::clone(&client.clock);
        Self::new(
            How::Iam {
                client,
                account,
                delegates,
            },
            clock,
        )
    }

    /// Signs through IAM as `impersonated`'s target, through its delegates, authorised by its source credential
    /// (with its IAM endpoint, HTTP options and clock; the caller's cached access token is shared with it).
    pub fn from_impersonated(impersonated: &Impersonated) -> Self {
        Self::iam_with(
            impersonated.iam_client().clone(),
            Account::Named(impersonated.target().to_owned()),
            impersonated.delegates_ref().to_vec(),
        )
    }

    /// Signs through IAM as the service account attached to the code (the metadata server's `default` account, or
    /// the one named with [`MetadataServer::service_account`]), authorised by that account's own access tokens from
    /// the metadata server. The account needs the Service Account Token Creator role **on itself**.
    ///
    /// The email of the `default` account is read from the metadata server on first use and kept.
    pub fn attached(metadata: MetadataServer) -> Self {
        let account = match metadata.account() {
            "default" => Account::Attached {
                metadata: metadata.clone(),
                email: Arc::new(tokio::sync::OnceCell::new()),
            },
            email => Account::Named(email.to_owned()),
        };
        Self::iam_with(IamClient::new(Arc::new(metadata)), account, Vec::new())
    }

    /// The signer for Application Default Credentials: a `service_account` key file signs locally
    /// ([`from_key`](Self::from_key)); an `impersonated_service_account` file through IAM as its target
    /// ([`from_impersonated`](Self::from_impersonated)); the metadata server through IAM as the attached account
    /// ([`attached`](Self::attached)).
    ///
    /// # Errors
    ///
    /// [`SignError::NoServiceAccount`] for user credentials (`authorized_user`, accepted by ADC only with
    /// [`AdcBuilder::accept_user_credentials`](crate::AdcBuilder::accept_user_credentials)): a user cannot sign as
    /// a service account.
    ///
    /// ```
    /// use idgate_client::{Adc, Signer};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("user.json");
    /// # std::fs::write(&path, r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#).unwrap();
    /// let env = move |name: &str| (name == "GOOGLE_APPLICATION_CREDENTIALS").then(|| path.clone().into());
    /// let adc = Adc::builder().env(env).accept_user_credentials(true).build().unwrap();
    /// assert!(Signer::from_adc(&adc).unwrap_err().is_no_service_account());
    /// ```
    pub fn from_adc(adc: &Adc) -> Result<Self, SignError> {
        match adc.resolved() {
            Resolved::ServiceAccountKey(key) => Ok(Self::from_key(key.clone())),
            Resolved::Impersonated(imp) => Ok(Self::from_impersonated(imp)),
            Resolved::MetadataServer(metadata) => Ok(Self::attached(metadata.clone())),
            Resolved::AuthorizedUser(_) => Err(SignError::NoServiceAccount {
                credential_type: "authorized_user".to_owned(),
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    fn iam_client_mut(&mut self) -> Option<&mut IamClient> {
        match &mut self.inner_mut().how {
            How::Iam { client, .. } => Some(client),
            How::Local { .. } => None,
        }
    }

    /// The service accounts in the delegation chain, in order (emails, unique IDs, or
    /// `projects/-/serviceAccounts/...` names): the caller acts as the first, each as the next, the last as the
    /// signer. No effect on a local signer.
    #[must_use]
    pub fn delegates<I, D>(mut self, delegates: I) -> Self
    where
        I: IntoIterator<Item = D>,
        D: AsRef<str>,
    {
        let list: Vec<String> = delegates
            .into_iter()
            .map(|d| {
                let d = d.as_ref().trim();
                if d.starts_with("projects/") {
                    d.to_owned()
                } else {
                    format!("projects/-/serviceAccounts/{d}")
                }
            })
            .collect();
        if let How::Iam { delegates, .. } = &mut self.inner_mut().how {
            *delegates = list;
        }
        self
    }

    /// The IAM Credentials API root from `endpoints` (the emulator: `Endpoints::under(&emulator.base_url())`).
    /// No effect on a local signer.
    #[must_use]
    pub fn endpoints(mut self, endpoints: &Endpoints) -> Self {
        if let Some(client) = self.iam_client_mut() {
            client.root = endpoints.iam_credentials.clone();
        }
        self
    }

    /// The HTTP client, timeout and retries of IAM calls (default: a shared client that honours proxy settings,
    /// 10 s, 3 attempts). No effect on a local signer.
    #[must_use]
    pub fn http(mut self, options: HttpOptions) -> Self {
        if let Some(client) = self.iam_client_mut() {
            client.set_http(options);
        }
        self
    }

    /// The clock that stamps `iat`/`exp` and decides when the caller's access token is renewed (default: the
    /// system clock, or the key's).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        let inner = self.inner_mut();
        inner.clock = Arc::clone(&clock);
        if let How::Iam { client, .. } = &mut inner.how {
            client.clock = clock;
        }
        self
    }

    /// True when this signer signs locally with a key file.
    pub fn is_local(&self) -> bool {
        matches!(self.inner.how, How::Local { .. })
    }

    /// The account signatures are made as: the key file's `client_email`, the email given, the impersonation
    /// target, or the attached account's email (read from the metadata server on first use).
    ///
    /// # Errors
    ///
    /// [`SignError::AttachedAccount`] when the metadata server cannot say; [`SignError::InvalidSigner`] when the
    /// account is not an email or unique ID.
    pub async fn email(&self) -> Result<&str, SignError> {
        let email = match &self.inner.how {
            How::Local { email, .. } => email.as_str(),
            How::Iam {
                account: Account::Named(email),
                ..
            } => email.as_str(),
            How::Iam {
                account: Account::Attached { metadata, email },
                ..
            } => email
                .get_or_try_init(|| async {
                    metadata
                        .service_account_email()
                        .await
                        .map(|e| e.trim().to_owned())
                        .map_err(|e| SignError::AttachedAccount(Box::new(e)))
                })
                .await?
                .as_str(),
        };
        checked_account(email)
    }

    /// Signs `bytes` (RSASSA-PKCS1-v1_5 with SHA-256) as the account: locally, or with IAM `signBlob`
    /// (`{delegates, payload}` → `{keyId, signedBlob}`). Returns the signature **and the ID of the key that made
    /// it**.
    ///
    /// # Errors
    ///
    /// Any [`SignError`]: [`SignError::PermissionDenied`] (naming `iam.serviceAccounts.signBlob`),
    /// [`SignError::Unauthenticated`], [`SignError::Credential`], [`SignError::Iam`] (after the retries),
    /// [`SignError::InvalidSigner`], [`SignError::AttachedAccount`], [`SignError::Local`]. An IAM `keyId` that no
    /// verifier would accept (empty, over 256 bytes, not printable ASCII) is [`SignError::Iam`] with
    /// [`ResponseProblem::NotAKeyId`].
    pub async fn sign_blob(&self, bytes: &[u8]) -> Result<SignedBlob, SignError> {
        match &self.inner.how {
            How::Local { email, key_id, key } => {
                let signature = sign_locally(bytes, key).map_err(|error| SignError::Local {
                    signer: email.clone(),
                    key_id: key_id.clone(),
                    error,
                })?;
                Ok(SignedBlob::new(key_id.clone(), signature))
            }
            How::Iam {
                client, delegates, ..
            } => {
                let account = self.email().await?;
                let body = serde_json::json!({
                    "delegates": delegates,
                    "payload": STANDARD.encode(bytes),
                });
                let answer = client
                    .call(account, "signBlob", &body, iam_retryable)
                    .await
                    .map_err(|e| iam_error(e, account, SIGN_BLOB_PERMISSION, delegates))?;
                let invalid = |problem| SignError::Iam {
                    signer: account.to_owned(),
                    error: Box::new(SourceError::invalid(Endpoint::IamCredentials, problem)),
                };
                let field = |name| {
                    crate::transport::json_field(Endpoint::IamCredentials, &answer, name).map_err(
                        |error| SignError::Iam {
                            signer: account.to_owned(),
                            error: Box::new(error),
                        },
                    )
                };
                let key_id = field("keyId")?;
                if !is_key_id(&key_id) {
                    return Err(invalid(ResponseProblem::NotAKeyId("keyId")));
                }
                let signature = STANDARD
                    .decode(field("signedBlob")?)
                    .map_err(|_| invalid(ResponseProblem::NotBase64("signedBlob")))?;
                Ok(SignedBlob::new(key_id, signature))
            }
        }
    }

    /// Signs `claims` as a JWT (RS256) as the account: locally (header `{"alg": "RS256", "typ": "JWT", "kid": KEY
    /// ID}`) or with IAM `signJwt` (whose header also carries the `kid` of the key IAM used).
    ///
    /// Claims that are absent are filled in: `iss` and `sub` = the account's email, `iat` = now, `exp` = now + 1 h.
    /// That makes the JWT exactly what a verifier of "JWTs signed by service account X" expects (iss = sub = X,
    /// RS256, the key from X's published set), with one exception the caller must supply: **`aud`**, the party the
    /// JWT is meant for, without which the JWT would be accepted by anyone who trusts X. Claims given are kept as
    /// they are.
    ///
    /// # Errors
    ///
    /// [`SignError::InvalidClaims`] before anything is sent: the claims are not a JSON object
    /// ([`ClaimsProblem::NotAnObject`]), have no usable `aud` ([`ClaimsProblem::MissingAudience`]), a time claim that
    /// is not a whole number ([`ClaimsProblem::NotANumericDate`]), or an `exp` more than 12 h ahead
    /// ([`ClaimsProblem::ExpiresTooLate`], IAM's limit, applied to local keys too). Otherwise as
    /// [`sign_blob`](Self::sign_blob), with `iam.serviceAccounts.signJwt` as the permission; IAM's answer is checked
    /// to be the JWT asked for (header `alg` RS256 with a `kid` equal to the answer's `keyId`, every claim sent
    /// unchanged), else [`SignError::Iam`] with [`ResponseProblem::NotWhatWasAsked`] or
    /// [`ResponseProblem::NotAKeyId`].
    pub async fn sign_jwt<T>(&self, claims: &T) -> Result<String, SignError>
    where
        T: Serialize + ?Sized,
    {
        let mut claims = match serde_json::to_value(claims) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(SignError::InvalidClaims(ClaimsProblem::NotAnObject)),
            Err(_) => return Err(SignError::InvalidClaims(ClaimsProblem::NotSerializable)),
        };
        check_audience(&claims).map_err(SignError::InvalidClaims)?;
        let email = self.email().await?;
        let now = unix_now(&*self.inner.clock);
        complete_claims(&mut claims, email, now).map_err(SignError::InvalidClaims)?;
        match &self.inner.how {
            How::Local { email, key_id, key } => {
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some(key_id.clone());
                jsonwebtoken::encode(&header, &Value::Object(claims), key).map_err(|error| {
                    SignError::Local {
                        signer: email.clone(),
                        key_id: key_id.clone(),
                        error,
                    }
                })
            }
            How::Iam {
                client, delegates, ..
            } => {
                let payload = Value::Object(claims.clone()).to_string();
                let body = serde_json::json!({ "delegates": delegates, "payload": payload });
                let answer = client
                    .call(email, "signJwt", &body, iam_retryable)
                    .await
                    .map_err(|e| iam_error(e, email, SIGN_JWT_PERMISSION, delegates))?;
                let iam = |error| SignError::Iam {
                    signer: email.to_owned(),
                    error: Box::new(error),
                };
                let signed =
                    crate::transport::json_field(Endpoint::IamCredentials, &answer, "signedJwt")
                        .map_err(iam)?;
                idgate_core::token::IdToken::new(signed.as_str()).map_err(|e| {
                    iam(SourceError::invalid(
                        Endpoint::IamCredentials,
                        ResponseProblem::MalformedToken(e),
                    ))
                })?;
                // `keyId` is optional here: the JWT's own `kid` is what verifiers read.
                let key_id = serde_json::from_slice::<Value>(&answer)
                    .ok()
                    .and_then(|a| a.get("keyId").and_then(Value::as_str).map(str::to_owned));
                check_signed_jwt(&signed, key_id.as_deref(), &claims).map_err(|problem| {
                    iam(SourceError::invalid(Endpoint::IamCredentials, problem))
                })?;
                Ok(signed)
            }
        }
    }
}

impl TryFrom<Adc> for Signer {
    type Error = SignError;

    /// [`Signer::from_adc`].
    fn try_from(adc: Adc) -> Result<Self, SignError> {
        Self::from_adc(&adc)
    }
}

/// RS256 over `bytes` with the key file's key. jsonwebtoken returns the signature in base64url.
fn sign_locally(bytes: &[u8], key: &EncodingKey) -> Result<Vec<u8>, jsonwebtoken::errors::Error> {
    let encoded = jsonwebtoken::crypto::sign(bytes, key, Algorithm::RS256)?;
    URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|e| jsonwebtoken::errors::ErrorKind::Base64(e).into())
}

/// `account` if it can name a service account in an IAM URL (an email or a unique ID).
fn checked_account(account: &str) -> Result<&str, SignError> {
    let usable = !account.is_empty()
        && account.chars().all(|c| {
            !c.is_control() && !c.is_whitespace() && !matches!(c, '/' | '?' | '#' | '%' | '\\')
        });
    if usable {
        Ok(account)
    } else {
        Err(SignError::InvalidSigner {
            signer: account.chars().take(100).collect(),
        })
    }
}

/// A key ID a verifier accepts (idgate's refuses an empty one or one over 256 bytes): 1 to 256 printable ASCII
/// characters. Google's are 40 hex digits.
fn is_key_id(key_id: &str) -> bool {
    (1..=256).contains(&key_id.len()) && key_id.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks that IAM's `signedJwt` is the JWT asked for, so that `sign_jwt` never hands out as "signed by the
/// account" a token whose header another party chose (`alg: none`, another `kid`) or whose claims differ from
/// `sent`. Claims IAM adds are accepted; each claim sent must come back unchanged. The signature itself is the
/// verifier's business (it needs the account's published keys).
fn check_signed_jwt(
    signed: &str,
    key_id: Option<&str>,
    sent: &Map<String, Value>,
) -> Result<(), ResponseProblem> {
    let parts =
        idgate_core::token::decode_unverified(signed).map_err(ResponseProblem::MalformedToken)?;
    if parts.header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(ResponseProblem::NotWhatWasAsked("its `alg` is not RS256"));
    }
    let Some(kid) = parts.header.get("kid").and_then(Value::as_str) else {
        return Err(ResponseProblem::NotAKeyId("kid"));
    };
    if !is_key_id(kid) {
        return Err(ResponseProblem::NotAKeyId("kid"));
    }
    if key_id.is_some_and(|k| k != kid) {
        return Err(ResponseProblem::NotWhatWasAsked(
            "its `kid` is not the answer's `keyId`",
        ));
    }
    let unchanged = parts.claims.as_object().is_some_and(|got| {
        sent.iter()
            .all(|(name, value)| got.get(name) == Some(value))
    });
    if unchanged {
        Ok(())
    } else {
        Err(ResponseProblem::NotWhatWasAsked(
            "its claims are not the ones sent",
        ))
    }
}

/// IAM failures worth retrying: no answer, or 500/502/503/504. Never a 4xx (429 included: IAM's quota).
fn iam_retryable(error: &SourceError) -> bool {
    error.is_transport()
        || matches!(
            error.status().map(|s| s.as_u16()),
            Some(500 | 502 | 503 | 504)
        )
}

/// An IAM call's failure as a [`SignError`].
fn iam_error(
    error: CallError,
    signer: &str,
    permission: &'static str,
    delegates: &[String],
) -> SignError {
    let signer = signer.to_owned();
    match error {
        CallError::Credential(error) => SignError::Credential {
            signer,
            error: Box::new(error),
        },
        CallError::Iam(answer) => match answer.status() {
            Some(http::StatusCode::FORBIDDEN) => SignError::PermissionDenied {
                signer,
                permission,
                delegates: delegates.to_vec(),
                answer: Box::new(answer),
            },
            Some(http::StatusCode::UNAUTHORIZED) => SignError::Unauthenticated {
                signer,
                answer: Box::new(answer),
            },
            _ => SignError::Iam {
                signer,
                error: Box::new(answer),
            },
        },
    }
}

/// `aud` must be a non-empty string, or a non-empty list of non-empty strings.
fn check_audience(claims: &Map<String, Value>) -> Result<(), ClaimsProblem> {
    let usable = match claims.get("aud") {
        Some(Value::String(aud)) => !aud.is_empty(),
        Some(Value::Array(list)) => {
            !list.is_empty()
                && list
                    .iter()
                    .all(|a| a.as_str().is_some_and(|a| !a.is_empty()))
        }
        _ => false,
    };
    if usable {
        Ok(())
    } else {
        Err(ClaimsProblem::MissingAudience)
    }
}

/// Fills in `iss`, `sub`, `iat`, `exp` where absent, and checks the time claims.
fn complete_claims(
    claims: &mut Map<String, Value>,
    email: &str,
    now: i64,
) -> Result<(), ClaimsProblem> {
    for name in ["iss", "sub"] {
        let value = claims
            .entry(name)
            .or_insert_with(|| Value::String(email.to_owned()));
        if value.as_str().is_none_or(str::is_empty) {
            return Err(ClaimsProblem::NotAString(name));
        }
    }
    claims.entry("iat").or_insert_with(|| Value::from(now));
    claims
        .entry("exp")
        .or_insert_with(|| Value::from(now.saturating_add(DEFAULT_JWT_LIFETIME_SECS)));
    for name in ["iat", "nbf", "exp"] {
        if let Some(value) = claims.get(name)
            && value.as_i64().is_none()
        {
            return Err(ClaimsProblem::NotANumericDate(name));
        }
    }
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
    let ahead = exp.saturating_sub(now);
    if ahead > MAX_JWT_EXP_AHEAD_SECS {
        return Err(ClaimsProblem::ExpiresTooLate {
            ahead_secs: ahead,
            max_secs: MAX_JWT_EXP_AHEAD_SECS,
        });
    }
    Ok(())
}

/// Whole seconds since the epoch on `clock` (0 before the epoch).
fn unix_now(clock: &dyn Clock) -> i64 {
    clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn claims_are_completed_only_where_absent() {
        let mut claims = map(serde_json::json!({"aud": "https://x", "sub": "someone"}));
        complete_claims(&mut claims, "sa@p.iam.gserviceaccount.com", 1_000).unwrap();
        assert_eq!(
            Value::Object(claims),
            serde_json::json!({
                "aud": "https://x", "sub": "someone", "iss": "sa@p.iam.gserviceaccount.com",
                "iat": 1_000, "exp": 4_600,
            })
        );
    }

    /// Found attacking issue #13: `iss: null` or `sub: 5` was signed as given, a JWT every verifier refuses.
    #[test]
    fn issuer_and_subject_must_name_someone() {
        for (claims, name) in [
            (serde_json::json!({"iss": null}), "iss"),
            (serde_json::json!({"iss": 5}), "iss"),
            (serde_json::json!({"sub": ""}), "sub"),
            (serde_json::json!({"sub": ["a"]}), "sub"),
        ] {
            let err = complete_claims(&mut map(claims), "sa@p", 1_000).unwrap_err();
            assert_eq!(err, ClaimsProblem::NotAString(name));
        }
    }

    #[test]
    fn time_claims_are_checked() {
        let check = |v: Value| complete_claims(&mut map(v), "sa@p", 1_000);
        assert_eq!(check(serde_json::json!({"exp": 1_000 + 12 * 3600})), Ok(()));
        assert_eq!(
            check(serde_json::json!({"exp": 1_001 + 12 * 3600})),
            Err(ClaimsProblem::ExpiresTooLate {
                ahead_secs: 12 * 3600 + 1,
                max_secs: 12 * 3600
            })
        );
        assert_eq!(
            check(serde_json::json!({"exp": u64::MAX})),
            Err(ClaimsProblem::NotANumericDate("exp"))
        );
        assert_eq!(
            check(serde_json::json!({"iat": "now"})),
            Err(ClaimsProblem::NotANumericDate("iat"))
        );
        assert_eq!(
            check(serde_json::json!({"nbf": 1.5})),
            Err(ClaimsProblem::NotANumericDate("nbf"))
        );
        assert!(check(serde_json::json!({"exp": i64::MAX})).is_err());
        assert_eq!(check(serde_json::json!({"exp": i64::MIN})), Ok(()));
    }

    #[test]
    fn audiences() {
        let aud = |v: Value| check_audience(&map(v));
        assert!(aud(serde_json::json!({"aud": "https://x"})).is_ok());
        assert!(aud(serde_json::json!({"aud": ["a", "b"]})).is_ok());
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"aud": ""}),
            serde_json::json!({"aud": []}),
            serde_json::json!({"aud": ["a", ""]}),
            serde_json::json!({"aud": 7}),
            serde_json::json!({"aud": null}),
        ] {
            assert_eq!(aud(bad), Err(ClaimsProblem::MissingAudience));
        }
    }

    #[test]
    fn accounts_that_would_change_the_url_are_refused() {
        for good in ["sa@p.iam.gserviceaccount.com", "123456789012345678901"] {
            assert_eq!(checked_account(good).unwrap(), good);
        }
        for bad in [
            "", "a/b", "a?b", "a#b", "a b", "a%2Fb", "a\\b", "a\nb", "../x",
        ] {
            assert!(
                checked_account(bad).unwrap_err().is_invalid_signer(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_signed_jwt_may_gain_claims_but_not_change_them() {
        let segment = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let sent =
            map(serde_json::json!({"aud": ["a", "b"], "iat": 5, "n": 1.5, "o": {"x": null}}));
        let header = segment(serde_json::json!({"alg": "RS256", "kid": "0a1b", "typ": "JWT"}));
        let jwt = |claims: Value| format!("{header}.{}.c2ln", segment(claims));
        let same =
            jwt(serde_json::json!({"o": {"x": null}, "n": 1.5, "iat": 5, "aud": ["a", "b"]}));
        assert_eq!(check_signed_jwt(&same, Some("0a1b"), &sent), Ok(()));
        assert_eq!(check_signed_jwt(&same, None, &sent), Ok(()));
        let more = jwt(
            serde_json::json!({"aud": ["a", "b"], "iat": 5, "n": 1.5, "o": {"x": null}, "extra": 1}),
        );
        assert_eq!(check_signed_jwt(&more, Some("0a1b"), &sent), Ok(()));
        for changed in [
            serde_json::json!({"aud": ["b", "a"], "iat": 5, "n": 1.5, "o": {"x": null}}),
            serde_json::json!({"aud": ["a", "b"], "iat": 6, "n": 1.5, "o": {"x": null}}),
            serde_json::json!({"aud": ["a", "b"], "iat": 5, "n": 1.5, "o": {}}),
            serde_json::json!({"aud": ["a", "b"], "iat": 5, "n": 1.5}),
        ] {
            assert_eq!(
                check_signed_jwt(&jwt(changed.clone()), Some("0a1b"), &sent),
                Err(ResponseProblem::NotWhatWasAsked(
                    "its claims are not the ones sent"
                )),
                "{changed}"
            );
        }
        assert!(!is_key_id(""));
        assert!(!is_key_id("a b"));
        assert!(is_key_id(&"f".repeat(256)));
        assert!(!is_key_id(&"f".repeat(257)));
    }

    #[test]
    fn only_server_errors_and_transport_are_retried() {
        let status = |code: u16| SourceError::Status {
            endpoint: Endpoint::IamCredentials,
            status: http::StatusCode::from_u16(code).unwrap(),
            attempts: 1,
            detail: None,
        };
        for code in [500, 502, 503, 504] {
            assert!(iam_retryable(&status(code)), "{code}");
        }
        for code in [400, 401, 403, 404, 429, 501] {
            assert!(!iam_retryable(&status(code)), "{code}");
        }
    }
}
