//! From the file as written to a [`Config`](super::Config): every rule, each error with its line and column.

#[allow(unused_imports)]
use super::*;

pub(crate) struct Validator<'a> {
    pub(crate) src: &'a str,
}

impl Validator<'_> {
    pub(crate) fn error(
        &self,
        kind: ConfigErrorKind,
        span: &Range<usize>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::new(kind, message).at(self.src, span)
    }

    pub(crate) fn config(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        if raw.inbound.is_none() && raw.iap.is_none() && raw.signin.is_none() {
            return Err(self
                .error(
                    ConfigErrorKind::NothingConfigured,
                    &(0..0),
                    "the configuration has none of the [inbound], [iap] and [signin] tables, so it configures nothing",
                )
                .with_help(
                    "add [inbound] with `audiences = [...]` and an [inbound.allow] list to verify service-to-service \
                     ID tokens, [iap] with `audience = \"/projects/NUMBER/...\"` to verify IAP assertions, and/or \
                     [signin] with `client_id`, `redirect_url` and a [signin.allow] list to sign people in with Google",
                ));
        }
        let gates = admission::Gates {
            inbound: raw.inbound.is_some(),
            iap: raw.iap.is_some(),
            signin: raw.signin.is_some(),
        };
        let mut tables = Vec::new();
        let mut located = |name: &'static str, span: Option<Range<usize>>| {
            if let Some(span) = span {
                tables.push((name, Location::of(self.src, span.start)));
            }
        };
        located("inbound", raw.inbound.as_ref().map(Spanned::span));
        located("iap", raw.iap.as_ref().map(Spanned::span));
        located("signin", raw.signin.as_ref().map(Spanned::span));
        located("google", raw.google.as_ref().map(Spanned::span));
        located("proxy", raw.proxy.as_ref().map(Spanned::span));
        located("admission", raw.admission.as_ref().map(Spanned::span));
        located("tracing", raw.tracing.as_ref().map(Spanned::span));
        let inbound = raw.inbound.map(|t| self.inbound(t)).transpose()?;
        let iap = raw.iap.map(|t| self.iap(t)).transpose()?;
        let google = raw
            .google
            .map(|t| self.google(t.get_ref()))
            .transpose()?
            .unwrap_or_default();
        let proxy = raw.proxy.map(|t| self.proxy(t.get_ref())).transpose()?;
        let signin = raw.signin.map(|t| self.signin(t)).transpose()?;
        let admission = self.admission(raw.admission.as_ref(), &gates)?;
        let tracing = raw
            .tracing
            .map(|t| TracingSettings {
                record_enduser_id: t.get_ref().record_enduser_id.unwrap_or(false),
            })
            .unwrap_or_default();
        Ok(Config {
            inbound,
            iap,
            google,
            proxy,
            signin,
            admission,
            tracing,
            tables,
        })
    }

    /// An enum-like key: one of `choices`, or `None` when absent.
    pub(crate) fn choice<T: Copy>(
        &self,
        raw: Option<&Spanned<String>>,
        choices: &[(&str, T)],
    ) -> Result<Option<T>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let value = raw.get_ref();
        if let Some((_, choice)) = choices.iter().find(|(name, _)| name == value) {
            return Ok(Some(*choice));
        }
        let mut message = format!("unknown value {value:?}, expected ");
        for (i, (name, _)) in choices.iter().enumerate() {
            let sep = match i {
                0 => "",
                i if i + 1 == choices.len() => " or ",
                _ => ", ",
            };
            message.push_str(&format!("{sep}`{name}`"));
        }
        Err(self
            .error(ConfigErrorKind::Syntax, &raw.span(), message)
            .with_help("use one of the values listed above"))
    }

    pub(crate) fn proxy(&self, raw: &RawProxy) -> Result<ProxySettings, ConfigError> {
        let defaults = ProxySettings::DEFAULT;
        let timeout = |value: Option<&Spanned<u64>>, default: Duration, what: &str| {
            self.limit(
                value,
                default.as_secs(),
                MAX_PROXY_TIMEOUT_SECS,
                what,
                "seconds",
            )
            .map(Duration::from_secs)
        };
        let header_read_timeout = timeout(
            raw.header_read_timeout_secs.as_ref(),
            defaults.header_read_timeout,
            "header_read_timeout_secs",
        )?;
        let idle_timeout = timeout(
            raw.idle_timeout_secs.as_ref(),
            defaults.idle_timeout,
            "idle_timeout_secs",
        )?;
        let max_connections = self.limit(
            raw.max_connections.as_ref(),
            defaults.max_connections as u64,
            MAX_PROXY_CONNECTIONS,
            "max_connections",
            "connections",
        )?;
        let max_request_body_bytes = self.limit(
            raw.max_request_body_bytes.as_ref(),
            defaults.max_request_body_bytes,
            u64::MAX,
            "max_request_body_bytes",
            "bytes",
        )?;
        Ok(ProxySettings {
            header_read_timeout,
            idle_timeout,
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            max_request_body_bytes,
            trust_forwarded_headers: raw.trust_forwarded_headers.unwrap_or(false),
        })
    }

    /// A `[proxy]` limit: `default` when absent, else 1 to `max`.
    pub(crate) fn limit(
        &self,
        value: Option<&Spanned<u64>>,
        default: u64,
        max: u64,
        key: &str,
        unit: &str,
    ) -> Result<u64, ConfigError> {
        let Some(value) = value else {
            return Ok(default);
        };
        let n = *value.get_ref();
        if n == 0 {
            return Err(self
                .error(
                    ConfigErrorKind::LimitOutOfRange,
                    &value.span(),
                    format!("`{key} = 0` would switch the limit off"),
                )
                .with_help(format!(
                    "write a positive number of {unit}, e.g. the default `{key} = {default}`, or remove the key"
                )));
        }
        if n > max {
            return Err(self
                .error(
                    ConfigErrorKind::LimitOutOfRange,
                    &value.span(),
                    format!("`{key} = {n}` is over the maximum of {max} {unit}"),
                )
                .with_help(format!("write at most {max}; the default is {default}")));
        }
        Ok(n)
    }

    pub(crate) fn inbound(&self, table: Spanned<RawInbound>) -> Result<InboundConfig, ConfigError> {
        let header = table.span();
        let raw = table.into_inner();
        let audience_match = self
            .choice(raw.audience_match.as_ref(), AUDIENCE_MATCH_CHOICES)?
            .unwrap_or(AudienceMatch::Exact);
        let audiences = self.audiences(&header, raw.audiences.as_ref(), audience_match)?;
        let leeway = self.leeway(raw.leeway_secs.as_ref())?;
        let exempt_paths = self.exempt_paths(&raw.exempt_paths)?;

        let mut allowlist = Allowlist::new();
        let mut allow_span = header;
        if let Some(allow) = raw.allow {
            allow_span = allow.span();
            let allow = allow.into_inner();
            self.fill(&mut allowlist, ListKind::ProjectIds, &allow.project_ids)?;
            self.fill(
                &mut allowlist,
                ListKind::ServiceAccounts,
                &allow.service_accounts,
            )?;
            if let Some(flag) = &allow.all_service_accounts_of_listed_projects {
                if *flag.get_ref() && entries(&allow.project_ids).is_empty() {
                    return Err(self
                        .error(
                            ConfigErrorKind::IneffectiveSetting,
                            &flag.span(),
                            "`all_service_accounts_of_listed_projects = true` has no effect without `project_ids`",
                        )
                        .with_help("list the projects whose service accounts may call in `project_ids`, or remove the flag"));
                }
                allowlist.set_all_service_accounts_of_listed_projects(*flag.get_ref());
            }
        }
        if allowlist.is_empty() {
            return Err(self
                .error(
                    ConfigErrorKind::EmptyAllowlist,
                    &allow_span,
                    "the [inbound] allowlist is empty, so every request would be denied",
                )
                .with_help(
                    "add an [inbound.allow] table with `project_ids = [\"calling-project-id\"]` (admits that \
                     project's App Engine default service account) and/or `service_accounts = \
                     [\"name@project-id.iam.gserviceaccount.com\"]`",
                ));
        }
        let trust_legacy = raw
            .trust_legacy_appengine_header
            .as_ref()
            .is_some_and(|f| *f.get_ref());
        if let (true, Some(flag)) = (trust_legacy, &raw.trust_legacy_appengine_header)
            && allowlist.project_ids().next().is_none()
        {
            return Err(self
                .error(
                    ConfigErrorKind::IneffectiveSetting,
                    &flag.span(),
                    "`trust_legacy_appengine_header = true` has no effect: the header names an app ID, and \
                     [inbound.allow] lists no `project_ids`",
                )
                .with_help("list the calling apps' IDs in `project_ids`, or remove the flag"));
        }
        Ok(InboundConfig {
            audiences,
            audience_match,
            leeway,
            trust_legacy_appengine_header: trust_legacy,
            trust_cloud_run_invoker_check: raw.trust_cloud_run_invoker_check.unwrap_or(false),
            exempt_paths,
            allowlist,
        })
    }

    pub(crate) fn audiences(
        &self,
        header: &Range<usize>,
        list: Option<&Spanned<Vec<Spanned<String>>>>,
        mode: AudienceMatch,
    ) -> Result<Vec<Audience>, ConfigError> {
        const HELP: &str = "write the audience callers mint their tokens for, e.g. `audiences = \
                            [\"https://my-service-abc123-uc.a.run.app\"]` (the service URL or a Cloud Run custom \
                            audience)";
        let Some(list) = list else {
            return Err(self
                .error(
                    ConfigErrorKind::MissingAudience,
                    header,
                    "[inbound] has no `audiences`: idgate always checks a token's `aud`, so it must know yours",
                )
                .with_help(HELP));
        };
        if list.get_ref().is_empty() {
            return Err(self
                .error(
                    ConfigErrorKind::MissingAudience,
                    &list.span(),
                    "`audiences` is empty: idgate always checks a token's `aud`, so it must know yours",
                )
                .with_help(HELP));
        }
        let mut audiences = Vec::new();
        for aud in list.get_ref() {
            let span = aud.span();
            let value = aud.get_ref();
            // The allowlist's shape rule, with messages that say why it matters for an audience.
            check_shape(value).map_err(|bad| match bad {
                BadShape::Empty => self
                    .error(ConfigErrorKind::EmptyEntry, &span, "an audience may not be empty")
                    .with_help("remove the empty string"),
                BadShape::Wildcard => self
                    .error(
                        ConfigErrorKind::Wildcard,
                        &span,
                        format!("{value:?} is a wildcard; audiences are compared exactly and a wildcard would accept \
                                 tokens minted for any service"),
                    )
                    .with_help("list every audience explicitly"),
                BadShape::Padded => self
                    .error(
                        ConfigErrorKind::Whitespace,
                        &span,
                        format!("{value:?} has leading or trailing whitespace"),
                    )
                    .with_help(format!("write {:?}", value.trim())),
            })?;
            let audience = Audience::new(value.as_str());
            audience.check().map_err(|e| {
                self.error(ConfigErrorKind::InvalidAudience, &span, format!("{value:?}: {e}"))
                    .with_help(format!(
                        "write the audience callers mint tokens for: at most {MAX_AUDIENCE_LEN} bytes, no control \
                         characters"
                    ))
            })?;
            if mode == AudienceMatch::Origin && audience.origin().is_err() {
                return Err(self
                    .error(
                        ConfigErrorKind::InvalidAudience,
                        &span,
                        format!("{value:?} is not an absolute http(s) URL, which `audience_match = \"origin\"` needs"),
                    )
                    .with_help("write the service URL, e.g. \"https://my-service-abc123-uc.a.run.app\", or use \
                           `audience_match = \"exact\"` for custom audiences"));
            }
            audiences.push(audience);
        }
        Ok(audiences)
    }

    pub(crate) fn leeway(&self, leeway: Option<&Spanned<u64>>) -> Result<Duration, ConfigError> {
        let Some(leeway) = leeway else {
            return Ok(DEFAULT_LEEWAY);
        };
        let secs = *leeway.get_ref();
        if secs > MAX_LEEWAY_SECS {
            return Err(self
                .error(
                    ConfigErrorKind::LeewayTooLarge,
                    &leeway.span(),
                    format!(
                        "a leeway of {secs} s is larger than the maximum of {MAX_LEEWAY_SECS} s"
                    ),
                )
                .with_help(
                    "use the default 30 (Google's IAP documentation) or fix the server's clock",
                ));
        }
        Ok(Duration::from_secs(secs))
    }

    pub(crate) fn exempt_paths(&self, list: &List) -> Result<Vec<String>, ConfigError> {
        let mut paths = Vec::new();
        for path in entries(list) {
            let span = path.span();
            let value = path.get_ref();
            if value.is_empty() {
                return Err(self
                    .error(
                        ConfigErrorKind::EmptyEntry,
                        &span,
                        "an exempt path may not be empty",
                    )
                    .with_help("remove the empty string"));
            }
            if value.contains('*') {
                return Err(self
                    .error(
                        ConfigErrorKind::Wildcard,
                        &span,
                        format!("{value:?} is a wildcard; exempt paths are exact, and a pattern could exempt more than \
                                 you meant"),
                    )
                    .with_help("list every exempt path exactly, e.g. \"/healthz\""));
            }
            let bad_char = value
                .chars()
                .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'));
            if !value.starts_with('/') || bad_char.is_some() {
                let help = if bad_char.is_some() {
                    "write only the path, without query, fragment or spaces, e.g. \"/healthz\""
                        .to_owned()
                } else {
                    format!("write \"/{value}\"")
                };
                return Err(self
                    .error(
                        ConfigErrorKind::InvalidExemptPath,
                        &span,
                        format!("{value:?} is not an exact path: it must start with `/` and contain no query, \
                                 fragment or whitespace"),
                    )
                    .with_help(help));
            }
            paths.push(value.clone());
        }
        Ok(paths)
    }

    pub(crate) fn fill(
        &self,
        allowlist: &mut Allowlist,
        kind: ListKind,
        list: &List,
    ) -> Result<(), ConfigError> {
        for entry in entries(list) {
            allowlist
                .insert(kind, entry.get_ref())
                .map_err(|e| from_allowlist_error(self.src, &entry.span(), &e))?;
        }
        Ok(())
    }

    pub(crate) fn iap(&self, table: Spanned<RawIap>) -> Result<IapConfig, ConfigError> {
        let header = table.span();
        let raw = table.into_inner();
        let discover = raw.discover_audience.as_ref().filter(|d| *d.get_ref());
        let audience = match (&raw.audience, discover) {
            (Some(_), Some(discover)) => {
                return Err(self
                    .error(
                        ConfigErrorKind::IapAudienceChoice,
                        &discover.span(),
                        "[iap] has both `audience` and `discover_audience = true`",
                    )
                    .with_help("keep exactly one: the audience written out, or discovery from the metadata server"));
            }
            (None, None) => {
                return Err(self
                    .error(
                        ConfigErrorKind::IapAudienceChoice,
                        &header,
                        "[iap] has neither `audience` nor `discover_audience = true`: idgate always checks `aud`",
                    )
                    .with_help("add `audience = \"/projects/PROJECT_NUMBER/apps/PROJECT_ID\"` (App Engine), \
                           `\"/projects/PROJECT_NUMBER/global/backendServices/SERVICE_ID\"` (load balancer), ... or \
                           `discover_audience = true` on App Engine"));
            }
            (Some(aud), None) => IapAudience::Configured(self.iap_audience(aud)?),
            (None, Some(_)) => IapAudience::Discover,
        };
        let leeway = self.leeway(raw.leeway_secs.as_ref())?;
        let exempt_paths = self.exempt_paths(&raw.exempt_paths)?;
        let allowlist = match raw.allow {
            None => None,
            Some(allow) => {
                let span = allow.span();
                let allow = allow.into_inner();
                let mut allowlist = Allowlist::new();
                self.fill(&mut allowlist, ListKind::UserEmails, &allow.emails)?;
                self.fill(&mut allowlist, ListKind::UserDomains, &allow.domains)?;
                self.fill(
                    &mut allowlist,
                    ListKind::HostedDomains,
                    &allow.hosted_domains,
                )?;
                if allowlist.is_empty() {
                    return Err(self
                        .error(
                            ConfigErrorKind::EmptyAllowlist,
                            &span,
                            "[iap.allow] lists nobody, so every IAP user would be denied",
                        )
                        .with_help("list `emails`, `domains` or `hosted_domains`, or remove [iap.allow] to admit every \
                               user IAP lets through (IAP's IAM policy is then the only gate)"));
                }
                Some(allowlist)
            }
        };
        Ok(IapConfig {
            audience,
            leeway,
            exempt_paths,
            compare_plain_user_headers: raw.compare_plain_user_headers.unwrap_or(false),
            allowlist,
        })
    }

    pub(crate) fn iap_audience(&self, aud: &Spanned<String>) -> Result<Audience, ConfigError> {
        let value = aud.get_ref();
        let span = aud.span();
        if value.contains('*') {
            return Err(self
                .error(ConfigErrorKind::Wildcard, &span, format!("{value:?} is a wildcard; the IAP audience is exact"))
                .with_help("write the audience from the IAP console, e.g. \"/projects/123456789/apps/my-project\""));
        }
        crate::verify::check_iap_audience(value).map_err(|help| {
            self.error(
                ConfigErrorKind::InvalidIapAudience,
                &span,
                format!("{value:?} is not an IAP audience of a shape Google documents"),
            )
            .with_help(help)
        })?;
        let audience = Audience::new(value.as_str());
        audience.check().map_err(|e| {
            self.error(ConfigErrorKind::InvalidIapAudience, &span, format!("{value:?}: {e}"))
                .with_help("write the audience from the IAP console, e.g. \"/projects/123456789/apps/my-project\"")
        })?;
        Ok(audience)
    }

    pub(crate) fn google(&self, raw: &RawGoogle) -> Result<GoogleConfig, ConfigError> {
        let mut endpoints = match &raw.base_url {
            Some(base) => Endpoints::under(&self.url(base, Plain::LoopbackOnly)?),
            None => Endpoints::default(),
        };
        let oidc_keys_format =
            self.choice(raw.oidc_keys_format.as_ref(), RawKeysFormat::CHOICES)?;
        let iap_keys_format = self.choice(raw.iap_keys_format.as_ref(), RawKeysFormat::CHOICES)?;
        let oidc_pem = oidc_keys_format == Some(RawKeysFormat::Pem);
        let iap_pem = iap_keys_format == Some(RawKeysFormat::Pem);
        if let Some(url) = &raw.oidc_keys_url {
            let url = self.url(url, Plain::LoopbackOnly)?;
            if oidc_pem {
                endpoints.oidc_pem = url;
            } else {
                endpoints.oidc_jwks = url;
            }
        }
        if let Some(url) = &raw.iap_keys_url {
            let url = self.url(url, Plain::LoopbackOnly)?;
            if iap_pem {
                endpoints.iap_pem = url;
            } else {
                endpoints.iap_jwks = url;
            }
        }
        if let Some(url) = &raw.metadata_url {
            // The metadata server is plain HTTP by design (metadata.google.internal, 169.254.169.254).
            endpoints.metadata = with_trailing_slash(self.url(url, Plain::Anywhere)?);
        }
        if let Some(url) = &raw.token_url {
            endpoints.token = self.url(url, Plain::LoopbackOnly)?;
        }
        if let Some(url) = &raw.iam_credentials_url {
            endpoints.iam_credentials = with_trailing_slash(self.url(url, Plain::LoopbackOnly)?);
        }
        Ok(GoogleConfig {
            endpoints,
            oidc_keys_format: match oidc_keys_format {
                None | Some(RawKeysFormat::Auto) => None,
                Some(RawKeysFormat::Jwks) => Some(KeyFormat::OidcJwks),
                Some(RawKeysFormat::Pem) => Some(KeyFormat::OidcPemCertificates),
            },
            iap_keys_format: match iap_keys_format {
                None | Some(RawKeysFormat::Auto) => None,
                Some(RawKeysFormat::Jwks) => Some(KeyFormat::IapJwks),
                Some(RawKeysFormat::Pem) => Some(KeyFormat::IapPem),
            },
        })
    }

    pub(crate) fn url(&self, raw: &Spanned<String>, plain: Plain) -> Result<Url, ConfigError> {
        let value = raw.get_ref();
        let span = raw.span();
        let invalid = || {
            self.error(
                ConfigErrorKind::InvalidUrl,
                &span,
                format!("{value:?} is not an absolute http(s) URL"),
            )
            .with_help(
                "write a full URL such as \"https://www.googleapis.com/oauth2/v3/certs\" or \
                       \"http://127.0.0.1:8085\" for the emulator",
            )
        };
        let url = Url::parse(value).map_err(|_| invalid())?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(invalid());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self
                .error(
                    ConfigErrorKind::InvalidUrl,
                    &span,
                    "endpoint URLs may not carry credentials",
                )
                .with_help("remove the `user:password@` part"));
        }
        if url.scheme() == "http" && plain == Plain::LoopbackOnly && !is_loopback(&url) {
            return Err(self
                .error(
                    ConfigErrorKind::InsecureUrl,
                    &span,
                    format!("{value:?} uses plain http on a non-loopback host: anyone on the path could substitute \
                             signing keys or read credentials"),
                )
                .with_help("use https, or a loopback address (127.0.0.1, [::1], localhost) for the emulator"));
        }
        Ok(url)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plain {
    Anywhere,
    LoopbackOnly,
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

pub(crate) fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}
