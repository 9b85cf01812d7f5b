//! [`Gates`]: what guards the upstream: `[inbound]` and `[iap]`'s [`Layers`], `[signin]`'s [`SignIn`], and how they
//! combine.

use idgate_core::config::{Admission, Config, Location};
use idgate_core::keys::{KeyCache, KeysUnavailable};
use idgate_server::{Layers, ServerError};
use idgate_signin::{RequireSignInLayer, SignIn, SignInError};

/// What guards the upstream: the service-to-service and IAP [`Layers`], the people [`SignIn`], or both.
///
/// - **Layers alone** (`[inbound]`, `[iap]`): as [`Layers::apply`] combines them (stacked, or
///   [by credential](idgate_server::ByCredentialLayer)).
/// - **Sign-in alone** (`[signin]`, the oauth2-proxy model; [`Gates::from_signin`]): the proxy serves the login, callback and logout routes
///   itself (never forwarded) and forwards every other path only for a signed-in, allowed user: a signed-out page
///   navigation gets `302` to login, a script `401`, a refused account `403`, a session-store failure `503`.
///   [Exempt paths](Self::signin_exempt_path) are forwarded without sign-in.
/// - **Both**: only by credential ([`Admission::ByCredential`]): an IAP assertion is judged by the IAP gate, a bearer
///   token by the ID-token gate, and a request with neither by the sign-in gate. Stacking them
///   ([`Admission::All`]) is refused: no request carries a session and a token at once.
///
/// The upstream receives the admitted caller in the `X-Idgate-Caller-*` headers, and never idgate's own cookies
/// (the session cookie and the sign-in attempt cookies are removed from the `Cookie` header it gets: with them the
/// upstream could replay the user's session).
///
/// ```no_run
/// use idgate_core::config::Config;
/// use idgate_proxy::{Gates, ProxyOptions};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::from_path("idgate.toml")?;
/// // [inbound]/[iap] keys prefetched, [signin] built, the combination checked: a bad setup fails here.
/// let gates = Gates::from_config(&config).await?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let upstream = "http://127.0.0.1:3000".parse()?;
/// idgate_proxy::serve(listener, upstream, gates, ProxyOptions::default(), std::future::pending()).await?;
/// # Ok(()) }
/// ```
///
/// Built by hand:
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use idgate_proxy::Gates;
/// use idgate_signin::{ClientSecret, SignIn};
///
/// let signin = SignIn::builder(
///     "123-abc.apps.googleusercontent.com",
///     ClientSecret::new("GOCSPX-example"),
///     "https://app.example.com/auth/callback".parse()?,
/// )
/// .allowlist(idgate_core::Allowlist::builder().user_domain("example.com").build()?)
/// .build()?;
/// let gates = Gates::from_signin(signin).signin_exempt_path("/healthz");
/// let router = idgate_proxy::router(&"http://127.0.0.1:3000".parse()?, gates)?;
/// # let _ = router; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Gates {
    pub(crate) layers: Option<Layers>,
    pub(crate) signin: Option<(SignIn, RequireSignInLayer)>,
    /// Where `[signin]` starts in the configuration, for the refusal of a stacked combination.
    signin_at: Option<Location>,
}

/// Why the [`Gates`] cannot guard an upstream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatesError {
    /// `[inbound]` or `[iap]` could not be set up (keys, IAP audience, verifier).
    #[error("cannot set up [inbound]/[iap]")]
    Layers(#[source] ServerError),
    /// `[signin]` could not be set up (client secret, configuration).
    #[error("cannot set up [signin]")]
    SignIn(#[source] SignInError),
    /// `[signin]`'s Google keys (which verify the ID token of each sign-in) could not be fetched.
    #[error("cannot fetch [signin]'s Google keys")]
    SignInKeys(#[source] KeysUnavailable),
    /// `[signin]` with `[inbound]` or `[iap]`, stacked: no request could carry a session and a token at once.
    #[error(
        "{}[signin] guards the upstream next to [inbound]/[iap], but the gates are stacked (`[admission] mode = \"all\"`, \
         the default): no request carries both a session and a token; add `[admission]` with \
         `mode = \"by_credential\"` to admit each request by the credential it presents",
        at.map(|l| format!("line {}: ", l.line)).unwrap_or_default()
    )]
    StackedSignIn {
        /// Where `[signin]` starts in the configuration, when built from one.
        at: Option<Location>,
    },
    /// Nothing guards the upstream.
    #[error("nothing to enforce: configure [inbound], [iap] or [signin]")]
    NothingConfigured,
}

impl From<Layers> for Gates {
    fn from(layers: Layers) -> Self {
        Self {
            layers: Some(layers),
            signin: None,
            signin_at: None,
        }
    }
}

impl From<SignIn> for Gates {
    fn from(signin: SignIn) -> Self {
        Self::from_signin(signin)
    }
}

impl From<&Layers> for Gates {
    fn from(layers: &Layers) -> Self {
        layers.clone().into()
    }
}

impl Gates {
    /// Sign-in alone: the proxy serves `signin`'s routes and forwards only signed-in, allowed users.
    pub fn from_signin(signin: SignIn) -> Self {
        let gate = signin.require();
        Self {
            layers: None,
            signin: Some((signin, gate)),
            signin_at: None,
        }
    }

    /// Adds sign-in next to the layers; their [`Admission`] must then be [`Admission::ByCredential`], or the proxy
    /// refuses to start ([`GatesError::StackedSignIn`]).
    #[must_use]
    pub fn with_signin(mut self, signin: SignIn) -> Self {
        let gate = signin.require();
        self.signin = Some((signin, gate));
        self
    }

    /// Forwards requests for exactly `path` without a signed-in user (a health check, a public page), as
    /// `[signin] exempt_paths` asks. No effect without sign-in.
    #[must_use]
    pub fn signin_exempt_path(mut self, path: impl Into<String>) -> Self {
        if let Some((_, gate)) = &mut self.signin {
            *gate = gate.clone().exempt_path(path);
        }
        self
    }

    /// The gates `config` asks for: [`idgate_server::from_config`] for `[inbound]` and `[iap]` (keys prefetched,
    /// IAP audience discovered), [`SignIn::from_config`] for `[signin]` with its `exempt_paths`, combined as
    /// `[admission] mode` says, and checked ([`check`](Self::check)).
    ///
    /// # Errors
    ///
    /// [`GatesError::Layers`], [`GatesError::SignIn`] when a gate cannot be set up; [`GatesError::StackedSignIn`]
    /// (naming the line of `[signin]`) for `[signin]` with another gate without `mode = "by_credential"`.
    pub async fn from_config(config: &Config) -> Result<Self, GatesError> {
        let layers = if config.inbound().is_some() || config.iap().is_some() {
            Some(
                idgate_server::from_config(config)
                    .await
                    .map_err(GatesError::Layers)?,
            )
        } else {
            None
        };
        let signin = match config.signin() {
            None => None,
            Some(table) => {
                let signin = SignIn::from_config(config).map_err(GatesError::SignIn)?;
                // As the layers do: a wrong key URL fails the start, not the first user's sign-in.
                signin.keys().warm().await.map_err(GatesError::SignInKeys)?;
                let mut gate = signin.require();
                for path in table.exempt_paths() {
                    gate = gate.exempt_path(path.clone());
                }
                Some((signin, gate))
            }
        };
        let gates = Self {
            layers,
            signin,
            signin_at: config.table_location("signin"),
        };
        gates.check()?;
        Ok(gates)
    }

    /// The service-to-service and IAP layers, if any.
    pub fn layers(&self) -> Option<&Layers> {
        self.layers.as_ref()
    }

    /// The sign-in, if any.
    pub fn signin(&self) -> Option<&SignIn> {
        self.signin.as_ref().map(|(s, _)| s)
    }

    /// Every Google key set the gates verify with: `[inbound]`'s, `[iap]`'s and `[signin]`'s, those configured.
    pub fn key_caches(&self) -> Vec<&KeyCache> {
        let mut caches = Vec::new();
        if let Some(layers) = &self.layers {
            if let Some(identity) = layers.identity() {
                caches.push(identity.verifier().keys());
            }
            if let Some(iap) = layers.iap() {
                caches.push(iap.verifier().keys());
            }
        }
        if let Some((signin, _)) = &self.signin {
            caches.push(signin.keys());
        }
        caches
    }

    /// Whether every gate can decide now: each key set it verifies with is usable (fresh, or stale within the
    /// bound). What a readiness probe reports; a gate without keys answers `503` until this holds again.
    pub fn ready(&self) -> bool {
        self.key_caches().iter().all(|keys| keys.status().ready)
    }

    /// Sets the age and freshness gauges of every key set ([`KeyCache::record_metrics`]): call it before each
    /// metrics scrape. Does nothing without `idgate-core`'s `metrics` feature.
    pub fn record_metrics(&self) {
        for keys in self.key_caches() {
            keys.record_metrics();
        }
    }

    /// Whether these gates can guard an upstream.
    ///
    /// # Errors
    ///
    /// [`GatesError::NothingConfigured`] for no gate at all; [`GatesError::StackedSignIn`] for sign-in next to
    /// layers whose [`Admission`] is not [`Admission::ByCredential`].
    pub fn check(&self) -> Result<(), GatesError> {
        match (&self.layers, &self.signin) {
            (None, None) => Err(GatesError::NothingConfigured),
            (Some(layers), Some(_)) if layers.admission_mode() != Admission::ByCredential => {
                Err(GatesError::StackedSignIn { at: self.signin_at })
            }
            _ => Ok(()),
        }
    }
}

/// What `idgate proxy` does with `config`, in words, for `idgate check-config`: which gate judges which request,
/// what the upstream receives, or why the proxy would refuse to start. Reads the configuration only (no I/O).
///
/// ```
/// use idgate_core::config::Config;
///
/// # let secret = std::env::temp_dir().join("idgate-proxy-describe-doctest-secret");
/// # std::fs::write(&secret, "GOCSPX-example\n").unwrap();
/// let config = Config::from_toml_str(&format!(r#"
///     [signin]
///     client_id = "123-abc.apps.googleusercontent.com"
///     client_secret_file = '{}'
///     redirect_url = "https://app.example.com/auth/callback"
///     exempt_paths = ["/healthz"]
///     [signin.allow]
///     domains = ["example.com"]
/// "#, secret.display())).unwrap();
/// let text = idgate_proxy::describe(&config);
/// assert!(text.contains("serves /auth/login, /auth/callback and /auth/logout itself"));
/// assert!(text.contains("/healthz"));
/// ```
pub fn describe(config: &Config) -> String {
    let mut out = String::from("As `idgate proxy`:\n");
    let inbound = config.inbound().is_some();
    let iap = config.iap().is_some();
    let layers = inbound || iap;
    let signin = config.signin();
    if let Some(table) = signin {
        out.push_str(&format!(
            "  serves {}, {} and {} itself (never forwarded); idgate's session and sign-in cookies are removed from \
             the Cookie header the upstream gets\n",
            table.login_path(),
            table.callback_path(),
            table.logout_path()
        ));
    }
    if signin.is_some() && layers && config.admission() != Admission::ByCredential {
        out.push_str(&format!(
            "  REFUSES TO START: {}\n",
            GatesError::StackedSignIn {
                at: config.table_location("signin")
            }
        ));
        return out;
    }
    match (layers, config.admission()) {
        (true, Admission::ByCredential) => {
            out.push_str("  admits each request by the credential it presents, judged by that gate alone:\n");
            if iap {
                out.push_str("    x-goog-iap-jwt-assertion present -> [iap]\n");
            }
            if inbound {
                out.push_str(if iap {
                    "    else Authorization / X-Serverless-Authorization present -> [inbound]\n"
                } else {
                    "    Authorization / X-Serverless-Authorization present -> [inbound]\n"
                });
            }
            if signin.is_some() {
                out.push_str(
                    "    else the session cookie -> [signin] (signed out: 302 to login for a page, 401 for a script)\n",
                );
            } else {
                out.push_str("    else 401\n");
            }
            out.push_str("    a credential that fails is refused, never tried as another\n");
        }
        (true, _) if inbound && iap => {
            out.push_str("  every request must pass [inbound] and [iap] (stacked)\n");
        }
        (true, _) => {
            let gate = if inbound { "[inbound]" } else { "[iap]" };
            out.push_str(&format!("  every request must pass {gate}\n"));
        }
        (false, _) => out.push_str(
            "  forwards a request only for a signed-in, allowed user (signed out: 302 to login for a page, 401 \
             for a script; refused account: 403)\n",
        ),
    }
    if let Some(table) = signin
        && !table.exempt_paths().is_empty()
    {
        out.push_str(&format!(
            "  forwarded without sign-in: {}\n",
            table.exempt_paths().join(", ")
        ));
    }
    out.push_str(
        "  the upstream learns the caller from X-Idgate-Caller-Kind, -Email, -Project and -Credential (client \
         copies removed)\n",
    );
    out
}
