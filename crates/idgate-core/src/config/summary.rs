//! The readable summary of a [`Config`]: what it lets in, for `idgate check-config` and startup logs.

#[allow(unused_imports)]
use super::*;

impl Config {
    pub(super) fn write_policy(&self, out: &mut String) -> fmt::Result {
        if let Some(inbound) = &self.inbound {
            writeln!(out, "[inbound] service-to-service Google ID tokens")?;
            let mode = match inbound.audience_match {
                AudienceMatch::Origin => "exact, or any URL on the same origin",
                _ => "exact match",
            };
            write!(out, "  audiences ({mode}): ")?;
            for (i, audience) in inbound.audiences.iter().enumerate() {
                let comma = if i == 0 { "" } else { ", " };
                write!(out, "{comma}{audience}")?;
            }
            writeln!(out)?;
            writeln!(out, "  leeway: {} s", inbound.leeway.as_secs())?;
            if inbound.trust_legacy_appengine_header {
                writeln!(
                    out,
                    "  legacy X-Appengine-Inbound-Appid: TRUSTED (only safe when served by App Engine's front end)"
                )?;
            } else {
                writeln!(out, "  legacy X-Appengine-Inbound-Appid: ignored")?;
            }
            if inbound.trust_cloud_run_invoker_check {
                writeln!(
                    out,
                    "  tokens whose signature Cloud Run removed: accepted on the strength of Cloud Run's invoker check"
                )?;
            } else {
                writeln!(out, "  tokens whose signature Cloud Run removed: rejected")?;
            }
            write_paths(out, &inbound.exempt_paths)?;
            writeln!(out, "  admitted:")?;
            write_indented(out, &inbound.allowlist.to_string())?;
        }
        if let Some(iap) = &self.iap {
            writeln!(out, "[iap] Identity-Aware Proxy assertions")?;
            match &iap.audience {
                IapAudience::Configured(aud) => writeln!(out, "  audience: {aud}")?,
                IapAudience::Discover => writeln!(
                    out,
                    "  audience: discovered from the metadata server at startup"
                )?,
            }
            writeln!(out, "  leeway: {} s", iap.leeway.as_secs())?;
            write_paths(out, &iap.exempt_paths)?;
            if iap.compare_plain_user_headers {
                writeln!(
                    out,
                    "  plain X-Goog-Authenticated-User-* headers: compared with the verified assertion"
                )?;
            } else {
                writeln!(out, "  plain X-Goog-Authenticated-User-* headers: ignored")?;
            }
            writeln!(out, "  admitted:")?;
            match &iap.allowlist {
                Some(allowlist) => write_indented(out, &allowlist.to_string())?,
                None => writeln!(
                    out,
                    "    every user IAP admits (IAP's IAM policy is the only gate)"
                )?,
            }
        }
        if let Some(signin) = &self.signin {
            writeln!(
                out,
                "[signin] people sign in with Google (OAuth 2.0 / OpenID Connect)"
            )?;
            writeln!(out, "  client ID: {}", signin.client_id)?;
            match &signin.client_secret {
                ClientSecretSource::Env(name) => {
                    writeln!(out, "  client secret: from the environment variable {name}")?;
                }
                ClientSecretSource::File(path) => {
                    writeln!(out, "  client secret: from the file {}", path.display())?;
                }
            }
            writeln!(out, "  redirect URL: {}", signin.redirect_url)?;
            writeln!(
                out,
                "  routes: login {}, callback {}, logout {} (POST)",
                signin.login_path,
                signin.callback_path(),
                signin.logout_path
            )?;
            writeln!(out, "  scopes: {}", signin.scopes.join(" "))?;
            writeln!(
                out,
                "  sessions: at most {} s, ended after {} s unused",
                signin.session_lifetime.as_secs(),
                signin.session_idle_timeout.as_secs()
            )?;
            match &signin.sessions {
                SessionStoreConfig::Memory => {
                    writeln!(out, "  session store: in memory (this process only)")?;
                }
                SessionStoreConfig::Redis(redis) => {
                    match redis.url() {
                        RedisUrlSource::Url(url) => {
                            writeln!(out, "  session store: Redis at {url}")?;
                        }
                        RedisUrlSource::Env(name) => {
                            writeln!(
                                out,
                                "  session store: Redis at the URL in the environment variable {name}"
                            )?;
                        } // `RedisUrlSource` is non-exhaustive for other crates only.
                    }
                    writeln!(
                        out,
                        "    keys under {:?}, each operation at most {} ms",
                        redis.key_prefix(),
                        redis.timeout().as_millis()
                    )?;
                }
            }
            writeln!(
                out,
                "  local copy of a session's user: {} ms (a logout elsewhere reaches this process within it)",
                signin.local_cache.as_millis()
            )?;
            if let Some(hd) = &signin.hosted_domain {
                writeln!(out, "  hosted domain: {hd} (required of the ID token's hd)")?;
            }
            if signin.access_type == Some(AccessType::Offline) {
                writeln!(
                    out,
                    "  offline access: the user's refresh token is kept encrypted in the session store"
                )?;
            }
            match &signin.token_encryption_key {
                Some((TokenKeySource::Env(name), _)) => {
                    writeln!(
                        out,
                        "  token encryption key: from the environment variable {name}"
                    )?;
                }
                Some((TokenKeySource::File(path), _)) => {
                    writeln!(
                        out,
                        "  token encryption key: from the file {}",
                        path.display()
                    )?;
                }
                None => {}
            }
            write_paths(out, &signin.exempt_paths)?;
            writeln!(out, "  admitted:")?;
            write_indented(out, &signin.allowlist.to_string())?;
        }
        let gates = [
            self.inbound.is_some(),
            self.iap.is_some(),
            self.signin.is_some(),
        ];
        if gates.iter().filter(|on| **on).count() > 1 {
            match self.admission {
                Admission::ByCredential => writeln!(
                    out,
                    "[admission] by_credential: each request is judged by the credential it presents (IAP \
                     assertion, else bearer token, else session), by that gate's allowlist alone; a credential \
                     that fails is refused, never tried as another"
                )?,
                _ => writeln!(out, "[admission] all: a request must pass every gate above")?,
            }
        }
        let google = &self.google;
        writeln!(out, "Google endpoints")?;
        let (oidc_url, oidc_format) = google.oidc_keys();
        let (iap_url, iap_format) = google.iap_keys();
        writeln!(out, "  OIDC keys: {oidc_url} ({oidc_format})")?;
        writeln!(out, "  IAP keys: {iap_url} ({iap_format})")?;
        writeln!(out, "  metadata server: {}", google.endpoints.metadata)?;
        writeln!(out, "  token endpoint: {}", google.endpoints.token)?;
        writeln!(
            out,
            "  IAM credentials: {}",
            google.endpoints.iam_credentials
        )?;
        if self.signin.is_some() {
            writeln!(out, "  authorization: {}", google.endpoints.authorization)?;
            writeln!(out, "  userinfo: {}", google.endpoints.userinfo)?;
            writeln!(out, "  revoke: {}", google.endpoints.revoke)?;
        }
        if self.tracing.record_enduser_id {
            writeln!(
                out,
                "[tracing] enduser.id: the verified caller's email or app ID is recorded on spans (personal data)"
            )?;
        }
        if let Some(proxy) = &self.proxy {
            writeln!(out, "[proxy] limits on idgate proxy's listener")?;
            writeln!(
                out,
                "  request head within: {} s (a connection that sends nothing is closed then)",
                proxy.header_read_timeout.as_secs()
            )?;
            writeln!(
                out,
                "  idle connections closed after: {} s",
                proxy.idle_timeout.as_secs()
            )?;
            writeln!(
                out,
                "  connections at once: {} (more wait in the kernel's backlog)",
                proxy.max_connections
            )?;
            writeln!(
                out,
                "  request body at most: {} bytes",
                proxy.max_request_body_bytes
            )?;
            if proxy.trust_forwarded_headers {
                writeln!(
                    out,
                    "  X-Forwarded-Host/-Proto, Forwarded: KEPT from the front end (only safe if clients cannot reach the proxy directly)"
                )?;
            } else {
                writeln!(
                    out,
                    "  X-Forwarded-Host/-Proto, Forwarded: set from what the proxy saw"
                )?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.effective_policy())
    }
}

fn write_paths(out: &mut String, paths: &[String]) -> fmt::Result {
    if paths.is_empty() {
        writeln!(out, "  exempt paths: none")
    } else {
        writeln!(
            out,
            "  exempt paths (no identity required): {}",
            paths.join(", ")
        )
    }
}

fn write_indented(out: &mut String, text: &str) -> fmt::Result {
    for line in text.lines() {
        writeln!(out, "    {line}")?;
    }
    Ok(())
}
