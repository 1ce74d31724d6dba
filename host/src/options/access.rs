//! What a plugin may reach and which secrets it may use: the user's grants
//! and secrets, the bundled mock's, and the conventions of the provider
//! SDKs, decided once at start-up.
//!
//! **API keys.** Every provider SDK reads its key from a conventional
//! variable (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GOOGLE_API_KEY` /
//! `GEMINI_API_KEY`), and so does a built-in plugin here, without
//! `--api-key-env`, but with one difference that makes it safe to do by
//! default: a key read that way may go only to the provider's own host (or
//! to the host of the provider's base-URL variable, which the SDKs pair with
//! it). The SDKs send it wherever `base_url` points, which is how an OpenAI
//! key ends up at a third-party gateway; here a `base_url` given in the
//! plugin configuration needs the key named explicitly (`--api-key-env`).
//! File plugins never get a key they were not given.
//!
//! **Base URLs.** `OPENAI_BASE_URL` / `ANTHROPIC_BASE_URL` are read when the
//! plugin configuration sets no `base_url`, and their host is granted as
//! `--allow-host` would grant it (a port in the URL opens internal addresses
//! on that port). Only https, except for a loopback address, where plain
//! http never leaves the machine: an environment variable is easy to forget,
//! and a key sent over plain http to another machine can be read on the way.
//! Plain http elsewhere remains possible, but only by saying so with flags.
//!
//! **Secrets checked before anything is sent.** A plugin names the secret it
//! sends in its configuration (`api_key_secret`, default `api-key` for the
//! built-ins; `{{secret:NAME}}` in `extra_headers`). One that no
//! `--api-key-env`, `--secret` or environment variable provides stops the
//! run at start with the flag to add, instead of failing every item as
//! `egress_denied`.

use serde_json::{Map, Value};

use crate::egress::{
    Egress, EgressLimits, EgressPolicy, HostGrant, SecretError, SecretHost, SecretSource, SecretSpec, Secrets,
};
use crate::plugin::PluginSource;
use crate::providers::{self, Provider};

use super::{Extras, Settings};

/// The egress of a run and the plugin configuration it implies.
#[derive(Debug)]
pub struct Access {
    pub egress: Egress,
    /// What the plugin receives.
    pub plugin_config: Map<String, Value>,
    /// The part that identifies the run's answers: the user's settings and a
    /// base URL read from the environment, not what the host injects.
    pub identity_config: Map<String, Value>,
}

/// Why the run's egress could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("the {plugin} plugin sends secret `{secret}`, and none is configured: {fix}")]
    MissingSecret { plugin: String, secret: String, fix: String },
    #[error("{var}={value}: {reason}")]
    BaseUrlEnv { var: &'static str, value: String, reason: String },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("building the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

/// Where the plugin's base URL comes from.
enum Base {
    /// The plugin's own default: its provider's API host.
    Default,
    /// The provider's base-URL variable; its host is granted.
    Env { grant: HostGrant },
    /// `base_url` in the plugin configuration (the user's or the bundled mock's).
    Configured,
}

/// The secret `--api-key-env` fills: the API key's name in every built-in plugin.
const API_KEY: &str = "api-key";

/// Decides grants, secrets and the plugin configuration. `env` reads the
/// host's environment (a parameter, for tests).
pub(super) fn resolve(
    settings: &Settings,
    plugin: &PluginSource,
    extras: Extras,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Access, AccessError> {
    let provider = providers::find(&plugin.name).filter(|_| plugin.builtin);
    let mut user_config: Map<String, Value> = settings.plugin_config.iter().cloned().collect();
    let sets_base = |(k, v): (&String, &Value)| k == "base_url" && !v.is_null();
    let base = if user_config.iter().any(sets_base) || extras.plugin_config.iter().any(|(k, v)| sets_base((k, v))) {
        Base::Configured
    } else {
        match provider.and_then(|p| p.base_url_env).and_then(|var| env(var).filter(|v| !v.is_empty()).map(|v| (var, v)))
        {
            Some((var, value)) => {
                let grant = env_base_grant(&value).map_err(|reason| AccessError::BaseUrlEnv {
                    var,
                    value: value.clone(),
                    reason,
                })?;
                tracing::info!("base URL {value} from {var}");
                user_config.insert("base_url".into(), value.clone().into());
                Base::Env { grant }
            }
            None => Base::Default,
        }
    };
    // The host a key read from the provider's variable may go to.
    let conventional_host = match (&base, provider.and_then(|p| p.api_host)) {
        (Base::Env { grant }, _) => Some(grant.clone()),
        (Base::Default, Some(host)) => Some(host.parse::<HostGrant>().map_err(SecretError::Grant)?),
        _ => None,
    };

    let mut grants = settings.allow_host.clone();
    grants.extend(settings.allow_internal_host.iter().map(|g| g.0.clone()));
    grants.extend(extras.grants);
    grants.extend(conventional_host.clone());
    let policy = EgressPolicy::new(grants);

    let mut specs = settings.secret.clone();
    if let Some(var) = &settings.api_key_env {
        specs.push(SecretSpec { name: API_KEY.into(), source: SecretSource::Env(var.clone()) });
    }
    let mut plugin_config: Map<String, Value> = extras.plugin_config.into_iter().collect();
    plugin_config.extend(user_config.clone());
    let configured = |name: &str| specs.iter().any(|s| s.name == name) || extras.secrets.iter().any(|(n, _)| n == name);
    let mut implicit = None;
    for secret in required_secrets(provider, &plugin_config) {
        if configured(&secret) {
            continue;
        }
        let key = provider.and_then(|p| p.api_key).filter(|k| k.secret == secret);
        let found = key.zip(conventional_host.as_ref()).and_then(|(key, host)| {
            key.env.iter().find_map(|var| env(var).filter(|v| !v.is_empty()).map(|v| (*var, v, host.clone())))
        });
        match found {
            Some((var, value, host)) => {
                tracing::info!("API key from {var}, for {host} only");
                implicit = Some((secret, value, host));
            }
            None => {
                let plugin = plugin.name.clone();
                return Err(AccessError::MissingSecret { fix: missing_fix(provider, &base, &secret), plugin, secret });
            }
        }
    }

    let mut secrets = Secrets::load(&specs, policy.clone())?;
    for (name, value) in extras.secrets {
        secrets.insert(name, value);
    }
    let mut secret_hosts = settings.secret_host.clone();
    if let Some((name, value, host)) = implicit {
        secrets.insert(name.clone(), value);
        secret_hosts.push(SecretHost { name, grant: host });
    }
    secrets.restrict(&secret_hosts)?;
    let limits = EgressLimits {
        max_requests_per_call: u32::try_from(settings.max_requests_per_call).unwrap_or(1),
        ..EgressLimits::default()
    };
    let egress = Egress::new(policy, secrets, limits).map_err(AccessError::Http)?;
    Ok(Access { egress, plugin_config, identity_config: user_config })
}

/// The secrets a plugin configuration names: its API key (`api_key_secret`,
/// else the built-in provider's default; `null` or `""` for none) and every
/// `{{secret:NAME}}` in `extra_headers`, the settings every provider plugin
/// shares (plugins/sdk `provider_config`).
pub fn required_secrets(provider: Option<&Provider>, config: &Map<String, Value>) -> Vec<String> {
    let mut names = Vec::new();
    match config.get("api_key_secret") {
        None => names.extend(provider.and_then(|p| p.api_key).map(|k| k.secret.to_string())),
        Some(Value::String(name)) if !name.is_empty() => names.push(name.clone()),
        // `null`, `""`: no key; another type is the plugin's error to report.
        Some(_) => {}
    }
    if let Some(Value::Object(headers)) = config.get("extra_headers") {
        for value in headers.values().filter_map(Value::as_str) {
            let mut rest = value;
            while let Some((_, tail)) = rest.split_once("{{secret:") {
                let Some((name, after)) = tail.split_once("}}") else { break };
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
                rest = after;
            }
        }
    }
    names
}

/// The flag to add for a missing secret.
fn missing_fix(provider: Option<&Provider>, base: &Base, secret: &str) -> String {
    let no_key = "or --plugin-config api_key_secret=null for a server that needs no key";
    let key = provider.and_then(|p| p.api_key).filter(|k| k.secret == secret);
    match (key, base) {
        (Some(key), Base::Configured) => format!(
            "add --api-key-env VAR naming the variable that holds it (e.g. --api-key-env {}; the provider's \
             variable is read on its own only for its API host or its base-URL variable, not for a base_url \
             given in the plugin configuration), {no_key}",
            key.env.first().copied().unwrap_or("VAR")
        ),
        (Some(key), _) => format!(
            "{} not set; set it, or add --api-key-env VAR naming the variable that holds the key, {no_key}",
            match key.env {
                [one] => format!("{one} is"),
                many => format!("{} are", many.join(" and ")),
            }
        ),
        (None, _) if secret == API_KEY => {
            format!("add --api-key-env VAR (or --secret {API_KEY}=env:VAR), {no_key}")
        }
        (None, _) => format!("add --secret {secret}=env:VAR (or {secret}=file:PATH)"),
    }
}

/// Checks a base URL read from the environment and returns the grant for it.
fn env_base_grant(value: &str) -> Result<HostGrant, String> {
    let url = reqwest::Url::parse(value).map_err(|e| format!("not an absolute URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a base URL must not carry credentials (the plugin would see them); use --secret".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a base URL must not have a query or a fragment".into());
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or("the URL has no host")?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "plain http is taken from the environment only for a loopback address (127.0.0.1, [::1], \
                 localhost), since the API key would cross the network unencrypted; use https, or choose \
                 plain http explicitly with --plugin-config base_url={value} --allow-host {host}:{}",
                url.port_or_known_default().unwrap_or(80)
            ));
        }
        other => return Err(format!("scheme `{other}` is not http or https")),
    }
    // As `--allow-host` would grant it: a name without a port must resolve to
    // public addresses; a port (or a loopback address) is an explicit choice.
    match url.port() {
        Some(port) => Ok(HostGrant::exact(host, port)),
        None if loopback => Ok(HostGrant::exact(host, url.port_or_known_default().unwrap_or(80))),
        None => host.parse().map_err(|e| format!("{e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn required_secrets_follow_the_shared_provider_keys() {
        let openai = providers::find("openai");
        assert_eq!(required_secrets(openai, &Map::new()), ["api-key"]);
        assert!(required_secrets(openai, &object(json!({"api_key_secret": null}))).is_empty());
        assert!(required_secrets(openai, &object(json!({"api_key_secret": ""}))).is_empty());
        assert_eq!(required_secrets(openai, &object(json!({"api_key_secret": "or"}))), ["or"]);
        let headers = json!({"api_key_secret": null,
            "extra_headers": {"api-key": "{{secret:azure}}", "x": "a {{secret:b}} {{secret:c}}", "y": "{{secret:open"}});
        assert_eq!(required_secrets(openai, &object(headers)), ["azure", "b", "c"]);
        assert!(required_secrets(providers::find("mock"), &Map::new()).is_empty());
        assert!(required_secrets(None, &Map::new()).is_empty(), "a file plugin's default is unknown");
        assert_eq!(required_secrets(None, &object(json!({"api_key_secret": "api-key"}))), ["api-key"]);
    }

    #[test]
    fn base_urls_from_the_environment_are_https_or_loopback() {
        let grant = |v: &str| env_base_grant(v).map(|g| g.to_string());
        assert_eq!(grant("https://gateway.example.com/v1").as_deref(), Ok("gateway.example.com"));
        assert_eq!(grant("https://gateway.example.com:8443/v1").as_deref(), Ok("gateway.example.com:8443"));
        assert_eq!(grant("http://127.0.0.1:8000/v1").as_deref(), Ok("127.0.0.1:8000"));
        assert_eq!(grant("http://localhost/v1").as_deref(), Ok("localhost:80"));
        assert_eq!(grant("http://[::1]:9/v1").as_deref(), Ok("[::1]:9"));
        let e = grant("http://10.0.0.5:8000/v1").expect_err("plain http to another machine");
        assert!(e.contains("--plugin-config base_url=http://10.0.0.5:8000/v1 --allow-host 10.0.0.5:8000"), "{e}");
        assert!(grant("http://localhost.evil.com/v1").is_err());
        assert!(grant("ftp://x.com/").is_err());
        assert!(grant("api.openai.com/v1").is_err());
        assert!(grant("https://user:pw@x.com/v1").expect_err("credentials").contains("credentials"));
        assert!(grant("https://x.com/v1?k=1").is_err());
    }
}
