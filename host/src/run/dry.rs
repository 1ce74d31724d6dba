//! `--dry-run`: everything but sending.
//!
//! Validates the whole input, compiles and links the plugin and instantiates
//! it once (so an incompatible or broken plugin is caught), and estimates the
//! tokens the run will consume (prompt estimate + max output tokens per job,
//! the same charge the TPM admission uses). Nothing is sent and no results
//! file is touched.

use serde::Serialize;

use super::estimate::{estimate_tokens, prompt_tokens};
use super::{RunConfig, RunError};
use crate::input;
use crate::sandbox::{self, PluginInstance, RunShared, SandboxEngine};

/// What a dry run found.
#[derive(Debug, Clone, Serialize)]
pub struct DryRunReport {
    pub jobs: u64,
    /// Estimated prompt tokens over all jobs.
    pub estimated_input_tokens: u64,
    /// Upper bound on output tokens (max_tokens or the default per job).
    pub max_output_tokens: u64,
    /// The plugin's SHA-256.
    pub plugin_sha256: String,
}

impl DryRunReport {
    /// A short human summary.
    pub fn human(&self) -> String {
        format!(
            "dry run: {} jobs valid, plugin {} loads; estimated input tokens {}, output tokens at most {}; nothing was sent",
            self.jobs,
            &self.plugin_sha256[..16],
            self.estimated_input_tokens,
            self.max_output_tokens
        )
    }
}

/// Runs the checks and estimates of `--dry-run`.
pub async fn dry_run(config: &RunConfig) -> Result<DryRunReport, RunError> {
    let summary = input::validate_file(&config.jobs, 20).map_err(RunError::Input)?;
    let sandbox_err = |source| RunError::Sandbox { plugin: config.plugin.name.clone(), source };
    let engine = SandboxEngine::new(&config.sandbox, 2).map_err(sandbox_err)?;
    let component = config.cache.load(&engine, &config.plugin.bytes, &config.plugin.digest).map_err(sandbox_err)?;
    let pre = sandbox::link(&engine, &component).map_err(sandbox_err)?;
    let shared = std::sync::Arc::new(RunShared {
        plugin: config.plugin.name.clone(),
        config: serde_json::Value::Object(config.plugin_config.clone()).to_string(),
        run_state: Default::default(),
        egress: config.egress.clone(),
        limits: config.sandbox.clone(),
    });
    PluginInstance::new(&pre, shared).await.map_err(sandbox_err)?;

    let mut report = DryRunReport {
        jobs: summary.jobs as u64,
        estimated_input_tokens: 0,
        max_output_tokens: 0,
        plugin_sha256: config.plugin.digest.clone(),
    };
    let default_output = config.item.default_max_output_tokens;
    let lines = input::read_lines(&config.jobs).map_err(|e| RunError::Input(vec![e]))?;
    for entry in lines {
        let (line, text) = entry.map_err(|e| RunError::Input(vec![e]))?;
        if text.trim().is_empty() {
            continue;
        }
        // Validated above; a line that changed since is skipped by the count.
        if let Ok(job) = input::parse_line(&text, line) {
            let prompt = prompt_tokens(&job);
            report.estimated_input_tokens += prompt;
            report.max_output_tokens += estimate_tokens(&job, default_output) - prompt;
        }
    }
    Ok(report)
}
