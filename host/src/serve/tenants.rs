//! The tenants file: who may call the service, and what each tenant's
//! batches run with.
//!
//! ```toml
//! [operator]                       # may see every tenant on `/` and `/metrics`
//! api-keys = ["sha256:…"]
//!
//! [tenants.acme]
//! api-keys = ["sha256:…"]          # SHA-256 of each key (`batchllm-host serve-key` makes one)
//! plugin = "openai"                # every run option of a --config file, under the same key
//! api-key-env = "ACME_OPENAI_KEY"
//! rpm = 500                        # tenant-wide: shared by all of the tenant's batches
//! [tenants.acme.plugin-config]
//! model = "gpt-4o-mini"
//! [tenants.acme.quotas]
//! max-concurrent-items = 16
//! max-file-bytes = 104857600
//! ```
//!
//! A tenant's run options are read by the options layer exactly as a
//! `--config` file is ([`crate::options::settle_text`]): same keys, same
//! checks, same "did you mean". What belongs to the server (results file,
//! events, metrics address, compile cache) is refused in a tenant section.
//!
//! **Keys are stored hashed.** The file holds the SHA-256 of each API key,
//! never the key, so a leaked tenants file opens nothing. Keys are random
//! 128-bit tokens, not passwords, so a plain hash is enough (no slow KDF);
//! the presented key's digest is compared with every stored digest in
//! constant time ([`subtle`]), without an early exit, so timing tells an
//! attacker nothing about how close a guess was or which tenant exists.
//!
//! **No ambient secrets.** The CLI lets a built-in plugin read its
//! provider's variable (`OPENAI_API_KEY`) on its own; a server holding many
//! tenants must not hand the operator's key to whichever tenant forgot to
//! name one. A tenant's secrets are exactly the ones its section names
//! (`api-key-env`, `secret = ["name=env:VAR", "name=file:PATH"]`), inserted
//! host-side into requests to that tenant's granted hosts only.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::options::{Extras, Invocation, OptionsError, Settings};
use crate::run::{GateSettings, RunConfig};

/// The endpoints of the OpenAI Batch API a built-in plugin serves.
const OPENAI_ENDPOINTS: &[&str] = &["/v1/chat/completions", "/v1/responses", "/v1/completions", "/v1/embeddings"];

/// Run options a tenant may not set: the server decides them per batch.
const SERVER_KEYS: &[(&str, &str)] = &[
    ("output", "each batch's results live in the data directory"),
    ("events", "events are per server, not per tenant"),
    ("metrics-addr", "the server's /metrics has per-tenant series"),
    ("cache-dir", "the compile cache is the server's (--cache-dir of serve)"),
];

/// Limits on what one tenant may use.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Quotas {
    /// Items in flight across all of the tenant's batches (default: the
    /// tenant's `concurrency`).
    pub max_concurrent_items: Option<u32>,
    /// Largest upload, in bytes.
    pub max_file_bytes: u64,
    /// All of the tenant's files together, in bytes (uploads and outputs).
    pub max_stored_bytes: u64,
    /// Most lines in one batch's input.
    pub max_lines_per_batch: u64,
    /// Batches not yet finished (validating, in progress, finalizing, cancelling).
    pub max_active_batches: u32,
    /// US dollars a tenant may spend per UTC day.
    pub max_cost_per_day: Option<f64>,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            max_concurrent_items: None,
            // OpenAI's limits: 200 MB per batch input file, 50,000 requests per batch.
            max_file_bytes: 200 * 1000 * 1000,
            max_stored_bytes: 10 * 1000 * 1000 * 1000,
            max_lines_per_batch: 50_000,
            max_active_batches: 100,
            max_cost_per_day: None,
        }
    }
}

/// One tenant, as loaded.
#[derive(Debug)]
pub struct Tenant {
    pub name: String,
    key_digests: Vec<[u8; 32]>,
    /// Batch endpoints the tenant's plugin serves; others are refused at create.
    pub endpoints: Vec<String>,
    pub quotas: Quotas,
    /// The tenant's run options, settled (defaults applied, checked).
    pub settings: Settings,
    /// Its gates' settings (RPM/TPM, cooldown), shared by its batches.
    pub gates: GateSettings,
    /// `concurrency`: workers of one batch.
    pub concurrency: usize,
}

impl Tenant {
    /// The engine configuration of one batch of this tenant.
    pub fn run_config(&self, jobs: PathBuf, output: PathBuf, cache_dir: &Path) -> Result<RunConfig, OptionsError> {
        build_config(&self.settings, jobs, output, cache_dir)
    }

    /// Items in flight across the tenant's batches.
    pub fn max_concurrent_items(&self) -> usize {
        self.quotas.max_concurrent_items.map_or(self.concurrency, |n| n as usize).max(1)
    }

    /// Whether the tenant's plugin serves `endpoint`.
    pub fn serves(&self, endpoint: &str) -> bool {
        self.endpoints.iter().any(|e| e == "*" || e == endpoint)
    }
}

/// Everyone the service knows.
#[derive(Debug, Default)]
pub struct Tenants {
    pub tenants: BTreeMap<String, Arc<Tenant>>,
    operator_digests: Vec<[u8; 32]>,
    /// Where they were read from.
    pub path: PathBuf,
}

/// Who a request comes from.
#[derive(Debug, Clone)]
pub enum Caller {
    Tenant(Arc<Tenant>),
    Operator,
}

/// Why the tenants file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    #[error("cannot read the tenants file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Toml {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{}: {problem}; {fix}", path.display())]
    Invalid { path: PathBuf, problem: String, fix: String },
    #[error("{}, tenant `{tenant}`: {source}", path.display())]
    Options {
        path: PathBuf,
        tenant: String,
        #[source]
        source: Box<OptionsError>,
    },
}

/// The SHA-256 of an API key, as the tenants file stores it.
pub fn key_digest_line(key: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// A new random API key.
pub fn new_key() -> String {
    format!("sk-batch-{:032x}", rand::random::<u128>())
}

impl Tenants {
    /// Reads and checks the tenants file; every tenant's configuration is
    /// built once here, so a missing secret or a wrong digest stops the
    /// server at start (or a reload), not a tenant's first batch.
    pub fn load(path: &Path, cache_dir: &Path) -> Result<Tenants, TenantsError> {
        let text = std::fs::read_to_string(path).map_err(|source| TenantsError::Read { path: path.into(), source })?;
        Self::parse(&text, path, cache_dir, &|var| std::env::var(var).ok())
    }

    /// Parses `text` (`path` is for messages; `env` reads the environment).
    pub fn parse(
        text: &str,
        path: &Path,
        cache_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Tenants, TenantsError> {
        let invalid =
            |problem: String, fix: &str| TenantsError::Invalid { path: path.into(), problem, fix: fix.to_string() };
        let mut root: toml::Table =
            toml::from_str(text).map_err(|source| TenantsError::Toml { path: path.into(), source })?;
        let mut operator_digests = Vec::new();
        if let Some(operator) = root.remove("operator") {
            let toml::Value::Table(mut operator) = operator else {
                return Err(invalid(
                    "`operator` is not a table".into(),
                    "write [operator] api-keys = [\"sha256:...\"]",
                ));
            };
            operator_digests = digests(operator.remove("api-keys"), "operator", &invalid)?;
            if let Some(key) = operator.keys().next() {
                return Err(invalid(format!("unknown key `{key}` in [operator]"), "[operator] has only api-keys"));
            }
        }
        let tenants_table = match root.remove("tenants") {
            Some(toml::Value::Table(t)) => t,
            Some(_) => {
                return Err(invalid("`tenants` is not a table".into(), "write one [tenants.NAME] section per tenant"));
            }
            None => toml::Table::new(),
        };
        if let Some(key) = root.keys().next() {
            return Err(invalid(
                format!("unknown top-level key `{key}`"),
                "the file has [operator] and [tenants.NAME] sections only",
            ));
        }
        if tenants_table.is_empty() {
            return Err(invalid("no tenants".into(), "add a [tenants.NAME] section with api-keys and a plugin"));
        }
        let mut tenants = BTreeMap::new();
        let mut seen: HashSet<[u8; 32]> = operator_digests.iter().copied().collect();
        for (name, section) in tenants_table {
            if name.is_empty()
                || name.len() > 64
                || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                return Err(invalid(format!("tenant name `{name}`"), "use 1-64 lowercase letters, digits, '-' or '_'"));
            }
            let toml::Value::Table(section) = section else {
                return Err(invalid(format!("`tenants.{name}` is not a table"), "write [tenants.NAME] sections"));
            };
            let tenant = Tenant::parse(&name, section, path, cache_dir, env, &invalid)?;
            for d in &tenant.key_digests {
                if !seen.insert(*d) {
                    return Err(invalid(
                        format!("tenant `{name}` shares an API key with another tenant or the operator"),
                        "give every tenant its own keys",
                    ));
                }
            }
            tenants.insert(name, Arc::new(tenant));
        }
        Ok(Tenants { tenants, operator_digests, path: path.into() })
    }

    /// The caller a key belongs to. Every stored digest is compared, in
    /// constant time, whatever matched first.
    pub fn authenticate(&self, key: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found: Option<Caller> = None;
        let mut operator = subtle::Choice::from(0);
        for d in &self.operator_digests {
            operator |= d.ct_eq(&digest);
        }
        for tenant in self.tenants.values() {
            let mut hit = subtle::Choice::from(0);
            for d in &tenant.key_digests {
                hit |= d.ct_eq(&digest);
            }
            if bool::from(hit) {
                found = Some(Caller::Tenant(tenant.clone()));
            }
        }
        if bool::from(operator) {
            found = Some(Caller::Operator);
        }
        found
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.tenants.get(name)
    }
}

impl Tenant {
    fn parse(
        name: &str,
        mut section: toml::Table,
        path: &Path,
        cache_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        invalid: &dyn Fn(String, &str) -> TenantsError,
    ) -> Result<Tenant, TenantsError> {
        let key_digests = digests(section.remove("api-keys"), name, invalid)?;
        if key_digests.is_empty() {
            return Err(invalid(format!("tenant `{name}` has no api-keys"), "add api-keys = [\"sha256:...\"]"));
        }
        let endpoints = match section.remove("endpoints") {
            None => None,
            Some(v) => Some(v.try_into::<Vec<String>>().map_err(|e| {
                invalid(format!("tenant `{name}`: endpoints: {e}"), "write endpoints = [\"/v1/chat/completions\"]")
            })?),
        };
        let quotas: Quotas = match section.remove("quotas") {
            None => Quotas::default(),
            Some(v) => v.try_into().map_err(|e: toml::de::Error| {
                invalid(
                    format!("tenant `{name}`: [quotas]: {}", e.message().trim()),
                    "quotas are max-concurrent-items, max-file-bytes, max-stored-bytes, max-lines-per-batch, \
                     max-active-batches, max-cost-per-day",
                )
            })?,
        };
        check_quotas(name, &quotas, invalid)?;
        for (key, why) in SERVER_KEYS {
            if section.contains_key(*key) {
                return Err(invalid(format!("tenant `{name}` sets `{key}`"), &format!("remove it: {why}")));
            }
        }
        let plugin = section.get("plugin").and_then(toml::Value::as_str).map(str::to_string);
        let builtin = plugin.as_deref().and_then(crate::providers::find).is_some();
        if plugin.is_some() && !builtin && !section.contains_key("plugin-sha256") {
            return Err(invalid(
                format!("tenant `{name}`: the component plugin is not pinned"),
                "add plugin-sha256 = \"<hex>\" (sha256sum of the component), so a replaced file is refused",
            ));
        }
        let text = toml::to_string(&section)
            .map_err(|e| invalid(format!("tenant `{name}`: {e}"), "write run options as in a --config file"))?;
        let label = PathBuf::from(format!("{} [tenants.{name}]", path.display()));
        let options =
            |source| TenantsError::Options { path: path.into(), tenant: name.into(), source: Box::new(source) };
        let settings = crate::options::settle_text(&text, &label).map_err(options)?;
        let endpoints = match endpoints {
            Some(e) => e,
            None => default_endpoints(plugin.as_deref()).ok_or_else(|| {
                invalid(
                    format!("tenant `{name}`: the component plugin declares no endpoints"),
                    "add endpoints = [\"/v1/chat/completions\", ...] naming the batch endpoints it serves",
                )
            })?,
        };
        // Built once now, so a missing secret or plugin stops the load.
        let probe = build_config_with(&settings, PathBuf::new(), PathBuf::new(), cache_dir, env).map_err(options)?;
        let gates = crate::run::gate_settings(&probe);
        let concurrency = probe.concurrency;
        Ok(Tenant { name: name.into(), key_digests, endpoints, quotas, settings, gates, concurrency })
    }
}

fn check_quotas(name: &str, q: &Quotas, invalid: &dyn Fn(String, &str) -> TenantsError) -> Result<(), TenantsError> {
    let bad = |what: &str, fix: &str| Err(invalid(format!("tenant `{name}`: [quotas] {what}"), fix));
    if q.max_concurrent_items == Some(0) {
        return bad("max-concurrent-items = 0", "give at least 1");
    }
    if q.max_file_bytes == 0 || q.max_lines_per_batch == 0 || q.max_active_batches == 0 || q.max_stored_bytes == 0 {
        return bad("has a limit of 0", "limits are at least 1 (leave a key out for its default)");
    }
    if let Some(c) = q.max_cost_per_day
        && !(c.is_finite() && c >= 0.0)
    {
        return bad(&format!("max-cost-per-day = {c}"), "give a number of US dollars, 0 or more");
    }
    Ok(())
}

/// What a built-in plugin serves of the Batch API.
fn default_endpoints(plugin: Option<&str>) -> Option<Vec<String>> {
    let list: &[&str] = match plugin? {
        "openai" | "smart-retry" => OPENAI_ENDPOINTS,
        "anthropic" => &["/v1/messages"],
        // Network-free and endpoint-agnostic: any path.
        "mock" => &["*"],
        _ => return None,
    };
    Some(list.iter().map(|s| s.to_string()).collect())
}

fn digests(
    value: Option<toml::Value>,
    who: &str,
    invalid: &dyn Fn(String, &str) -> TenantsError,
) -> Result<Vec<[u8; 32]>, TenantsError> {
    const FIX: &str = "store the key's SHA-256 as \"sha256:<64 hex digits>\" (`batchllm-host serve-key` makes a key \
                       and prints its line), never the key itself";
    let Some(value) = value else { return Ok(Vec::new()) };
    let list: Vec<String> =
        value.try_into().map_err(|_| invalid(format!("`{who}`: api-keys is not a list of strings"), FIX))?;
    list.iter()
        .map(|entry| {
            let hex_digits = entry
                .strip_prefix("sha256:")
                .ok_or_else(|| invalid(format!("`{who}`: an api-keys entry does not start with `sha256:`"), FIX))?;
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hex_digits, &mut digest)
                .map_err(|_| invalid(format!("`{who}`: an api-keys entry is not 64 hex digits"), FIX))?;
            Ok(digest)
        })
        .collect()
}

fn build_config(settings: &Settings, jobs: PathBuf, output: PathBuf, cache: &Path) -> Result<RunConfig, OptionsError> {
    build_config_with(settings, jobs, output, cache, &|var| std::env::var(var).ok())
}

/// A batch's configuration. The environment is read only for the variables
/// the tenant names (`api-key-env`, `secret = env:VAR`): the provider
/// variables a built-in plugin would read on its own are hidden.
fn build_config_with(
    settings: &Settings,
    jobs: PathBuf,
    output: PathBuf,
    cache: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RunConfig, OptionsError> {
    let mut settings = settings.clone();
    settings.output = output;
    settings.cache_dir = Some(cache.to_path_buf());
    let named: Vec<String> = settings.api_key_env.iter().cloned().collect();
    let scoped = |var: &str| if named.iter().any(|n| n == var) { env(var) } else { None };
    let once = Invocation { fsync: true, quiet: true, ..Invocation::default() };
    crate::options::build_settled(settings, jobs, Extras::default(), &scoped, &once)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Tenants, TenantsError> {
        Tenants::parse(text, Path::new("tenants.toml"), Path::new("/tmp/cache"), &|_| None)
    }

    fn key_line(key: &str) -> String {
        key_digest_line(key)
    }

    #[test]
    fn keys_are_found_by_digest_and_never_across_tenants() {
        let text = format!(
            "[operator]\napi-keys = [\"{}\"]\n[tenants.a]\napi-keys = [\"{}\"]\nplugin = \"mock\"\n\
             [tenants.b]\napi-keys = [\"{}\", \"{}\"]\nplugin = \"mock\"\n",
            key_line("op"),
            key_line("ka"),
            key_line("kb1"),
            key_line("kb2")
        );
        let t = parse(&text).expect("valid");
        let name = |k: &str| match t.authenticate(k) {
            Some(Caller::Tenant(t)) => t.name.clone(),
            Some(Caller::Operator) => "operator".into(),
            None => "none".into(),
        };
        assert_eq!(name("ka"), "a");
        assert_eq!(name("kb2"), "b");
        assert_eq!(name("op"), "operator");
        assert_eq!(name("kb"), "none");
        assert_eq!(name(""), "none");
    }

    #[test]
    fn bad_files_name_the_tenant_and_the_fix() {
        let k = key_line("k");
        let e = |text: &str| parse(text).expect_err("refused").to_string();
        assert!(e("[tenants.a]\napi-keys = [\"sk-plain\"]\nplugin = \"mock\"").contains("sha256:"));
        let msg = e(&format!("[tenants.a]\napi-keys = [\"{k}\"]\nplugin = \"mock\"\nconcurency = 3"));
        assert!(msg.contains("tenant `a`") && msg.contains("did you mean `concurrency`"), "{msg}");
        let msg = e(&format!("[tenants.a]\napi-keys = [\"{k}\"]\nplugin = \"mock\"\noutput = \"x\""));
        assert!(msg.contains("sets `output`"), "{msg}");
        let msg = e(&format!("[tenants.a]\napi-keys = [\"{k}\"]\nplugin = \"./x.wasm\""));
        assert!(msg.contains("plugin-sha256"), "{msg}");
        let msg =
            e(&format!("[tenants.a]\napi-keys = [\"{k}\"]\nplugin = \"mock\"\n[tenants.a.quotas]\nmax-files = 1"));
        assert!(msg.contains("[quotas]") && msg.contains("max-files"), "{msg}");
        let msg = e(&format!(
            "[tenants.a]\napi-keys = [\"{k}\"]\nplugin = \"mock\"\n[tenants.b]\napi-keys = [\"{k}\"]\nplugin = \"mock\""
        ));
        assert!(msg.contains("shares an API key"), "{msg}");
        let msg = e(&format!("[tenants.A]\napi-keys = [\"{k}\"]"));
        assert!(msg.contains("tenant name"), "{msg}");
        let msg = e(&format!("[tenants.a]\napi-keys = [\"{k}\"]\nplugin = \"mock\"\nconcurrency = 0"));
        assert!(msg.contains("out of range"), "{msg}");
    }

    #[test]
    fn provider_variables_are_not_read_for_a_tenant() {
        let k = key_line("k");
        let text = format!("[tenants.a]\napi-keys = [\"{k}\"]\nplugin = \"openai\"\n");
        let env = |var: &str| (var == "OPENAI_API_KEY").then(|| "sk-operator".to_string());
        let e = Tenants::parse(&text, Path::new("t.toml"), Path::new("/tmp"), &env).expect_err("no ambient key");
        assert!(e.to_string().contains("api-key"), "{e}");
        // A named variable is read (secrets come from the real environment: PATH is set).
        let text = format!("[tenants.a]\napi-keys = [\"{k}\"]\nplugin = \"openai\"\napi-key-env = \"PATH\"\n");
        let t = Tenants::parse(&text, Path::new("t.toml"), Path::new("/tmp"), &env).expect("named key");
        assert!(t.get("a").expect("a").serves("/v1/responses"));
        assert!(!t.get("a").expect("a").serves("/v1/messages"));
    }
}
