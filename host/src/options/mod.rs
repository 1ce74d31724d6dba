//! Run options: from the command line, a `--config` file and the defaults
//! to a checked [`RunConfig`].
//!
//! Each option is defined once ([`defs`]): one struct is both the flags and
//! the file's keys, so they accept the same values; the same check runs on
//! every value whatever its source, and an error names the key the way it
//! was given (`--rpm` for a flag, `rpm` and the file for a key). The layers
//! then merge, flags over the file over the defaults, and the result is
//! turned into the engine's configuration next to the definitions
//! ([`Settings::into_run_config`]).
//!
//! Two settings bound one another: `--cooldown` and `--cooldown-max`,
//! `--backoff-initial` and `--backoff-max`. When you set both and they
//! disagree, the run is refused (silently capping `--cooldown 120` to the
//! 60 s maximum is what used to happen). When you set one, the other's
//! default gives way: `--cooldown 120` alone raises the cap to 120, and
//! `--cooldown-max 0.5` alone lowers the base pause to 0.5. A default never
//! contradicts what you asked for.

mod access;
pub mod check;
mod defs;
mod file;
pub(crate) mod table;
mod values;

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use access::{Access, AccessError, required_secrets};
pub use defs::{INVOCATION_HEADING, Invocation, RunOptions, Settings};
pub use file::FileError;
pub use values::ClassList;

use crate::egress::HostGrant;
use crate::plugin::PluginSource;
use crate::run::RunConfig;

/// Where a value came from, to name it in a message the way it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The command line.
    Flag,
    /// A key of this `--config` file.
    File(PathBuf),
    /// The built-in default.
    Default,
}

impl Origin {
    /// A field's name as this source spells it: `--rpm` or `rpm`.
    pub fn key(&self, field: &str) -> String {
        let long = field.replace('_', "-");
        match self {
            Origin::Flag => format!("--{long}"),
            _ => long,
        }
    }

    /// The error for `value` of `field`, outside what `expected` says.
    pub(crate) fn invalid(&self, field: &str, value: &dyn fmt::Debug, expected: &'static str) -> OptionsError {
        OptionsError::Invalid {
            setting: Setting { origin: self.clone(), field: field.to_string(), value: shown(format!("{value:?}")) },
            expected,
        }
    }
}

/// A value as written in a message: `120` rather than Rust's `120.0`;
/// `1e-300`, `NaN` and `inf` as they are.
fn shown(debug: String) -> String {
    match debug.strip_suffix(".0") {
        Some(whole) => whole.to_string(),
        None => debug,
    }
}

/// One value of one option, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub origin: Origin,
    /// The field name (`cooldown_max`).
    pub field: String,
    /// The value as given.
    pub value: String,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.origin.key(&self.field);
        match &self.origin {
            Origin::Flag => write!(f, "{key} {}", self.value),
            Origin::File(path) => write!(f, "{key} = {} in {}", self.value, path.display()),
            Origin::Default => write!(f, "the built-in default {key} = {}", self.value),
        }
    }
}

/// Options that cannot make a run.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("{setting} is out of range: expected {expected}")]
    Invalid { setting: Setting, expected: &'static str },
    #[error(
        "{low} is above {high}: set {} to at least {}, or lower {}",
        high.origin.key(&high.field), low.value, low.origin.key(&low.field)
    )]
    Conflict { low: Box<Setting>, high: Box<Setting> },
    #[error("no jobs file given")]
    NoJobs,
    #[error("no plugin given: pass --plugin NAME|PATH (or `plugin = ...` in --config); built-ins: {0}")]
    NoPlugin(String),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Prices(#[from] crate::cost::PriceError),
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    #[error(transparent)]
    Shard(#[from] crate::cluster::ShardError),
}

/// Facts from the environment the binary set up (e.g. a started mock).
#[derive(Debug, Default)]
pub struct Extras {
    /// Additional grants.
    pub grants: Vec<HostGrant>,
    /// Plugin settings applied before the user's `--plugin-config`.
    pub plugin_config: Vec<(String, Value)>,
    /// Literal secrets (e.g. the generated key of the bundled mock).
    pub secrets: Vec<(String, String)>,
}

/// What the command line gave for a run.
#[derive(Debug)]
pub struct Given {
    pub jobs: Option<PathBuf>,
    /// `--config`.
    pub config: Option<PathBuf>,
    pub flags: RunOptions,
    pub once: Invocation,
}

/// Checks every layer, merges them and builds the run configuration.
pub fn build(given: Given, extras: Extras) -> Result<RunConfig, OptionsError> {
    build_with_env(given, extras, &|var| std::env::var(var).ok())
}

/// [`build`], reading the host's environment through `env`.
pub fn build_with_env(
    given: Given,
    extras: Extras,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RunConfig, OptionsError> {
    let Given { jobs, config, flags, once } = given;
    let settings = settle(flags, config.as_deref())?;
    let jobs = jobs.ok_or(OptionsError::NoJobs)?;
    build_settled(settings, jobs, extras, env, &once)
}

/// The run configuration from settled options (a service builds one per
/// batch from a tenant's settings), reading the environment through `env`.
pub fn build_settled(
    settings: Settings,
    jobs: PathBuf,
    extras: Extras,
    env: &dyn Fn(&str) -> Option<String>,
    once: &Invocation,
) -> Result<RunConfig, OptionsError> {
    let spec = settings.plugin.as_deref().ok_or_else(|| OptionsError::NoPlugin(crate::providers::names()))?;
    let plugin = PluginSource::resolve(spec)?;
    if let Some(expected) = &settings.plugin_sha256 {
        plugin.verify_digest(expected)?;
    }
    let access = access::resolve(&settings, &plugin, extras, env)?;
    let shard = settings.shard.map(|spec| spec.resolve(env)).transpose()?;
    let mut config = settings.into_run_config(jobs, plugin, access, once)?;
    config.shard = shard;
    Ok(config)
}

/// Checks each layer, merges flags over the file over the defaults, and
/// settles the bounds that depend on two options.
pub fn settle(flags: RunOptions, config: Option<&Path>) -> Result<Settings, OptionsError> {
    let file = match config {
        Some(path) => Some(file::load(path)?),
        None => None,
    };
    settle_layers(flags, file, config)
}

/// Settles options written as TOML in a part of a larger file (a tenant's
/// section of the service's tenants file): the keys, values and checks of a
/// `--config` file; messages name the source as `label`.
pub fn settle_text(text: &str, label: &Path) -> Result<Settings, OptionsError> {
    let file = file::parse(text, label)?;
    settle_layers(RunOptions::default(), Some(file), Some(label))
}

fn settle_layers(flags: RunOptions, file: Option<RunOptions>, config: Option<&Path>) -> Result<Settings, OptionsError> {
    RunOptions::defaults().validate(&Origin::Default)?;
    flags.validate(&Origin::Flag)?;
    let file = match (file, config) {
        (Some(file), Some(path)) => {
            file.validate(&Origin::File(path.into()))?;
            file
        }
        _ => RunOptions::default(),
    };
    let given = |field: &str, flag: Option<f64>, from_file: Option<f64>| {
        let (origin, value) = match (flag, from_file, config) {
            (Some(v), _, _) => (Origin::Flag, v),
            (None, Some(v), Some(path)) => (Origin::File(path.into()), v),
            _ => return None,
        };
        Some((Setting { origin, field: field.into(), value: shown(format!("{value:?}")) }, value))
    };
    let cooldown = given("cooldown", flags.cooldown, file.cooldown);
    let cooldown_max = given("cooldown_max", flags.cooldown_max, file.cooldown_max);
    let backoff = given("backoff_initial", flags.backoff_initial, file.backoff_initial);
    let backoff_max = given("backoff_max", flags.backoff_max, file.backoff_max);
    let mut settings = flags.over(file).resolve();
    ordered(cooldown, cooldown_max, &mut settings.cooldown, &mut settings.cooldown_max)?;
    ordered(backoff, backoff_max, &mut settings.backoff_initial, &mut settings.backoff_max)?;
    Ok(settings)
}

/// Keeps `low <= high`: refused when both were given, else the default gives way.
fn ordered(
    low_given: Option<(Setting, f64)>,
    high_given: Option<(Setting, f64)>,
    low: &mut f64,
    high: &mut f64,
) -> Result<(), OptionsError> {
    if *low <= *high {
        return Ok(());
    }
    match (low_given, high_given) {
        (Some((low, _)), Some((high, _))) => Err(OptionsError::Conflict { low: low.into(), high: high.into() }),
        (Some(_), None) => {
            *high = *low;
            Ok(())
        }
        _ => {
            *low = *high;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
