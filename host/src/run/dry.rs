//! `--dry-run`: everything but sending.
//!
//! Validates the whole input, compiles and links the plugin and instantiates
//! it once (so an incompatible or broken plugin is caught), and estimates the
//! tokens the run will consume (prompt estimate + max output tokens per job,
//! the same charge the TPM admission uses) in the same single pass over the
//! input, so a dry run reads stdin too. Each job is priced as the run would
//! price it: its own `model`, else `--plugin-config model=`, else the
//! built-in plugin's default model. Nothing is sent and no results file is
//! touched (the ids for the duplicate check are spooled to a private
//! temporary file).

use serde::Serialize;

use super::policy::estimate::{estimate_tokens, prompt_tokens};
use super::{RunConfig, RunError, StopHandle};
use crate::input::{InputError, SpoolWriter};
use crate::model::TokenUsage;
use crate::sandbox::{self, PluginInstance};
use crate::validate::{Decision, read_once};

/// What a dry run found.
#[derive(Debug, Clone, Serialize)]
pub struct DryRunReport {
    pub jobs: u64,
    /// Estimated prompt tokens over all jobs.
    pub estimated_input_tokens: u64,
    /// Upper bound on output tokens (max_tokens or the default per job).
    pub max_output_tokens: u64,
    /// Upper-bound cost: estimated input plus the maximum output, priced
    /// per job's model (jobs on an unpriced model are not included).
    pub estimated_max_cost_usd: f64,
    /// Jobs whose model has no price.
    pub unpriced_jobs: u64,
    /// The plugin's SHA-256.
    pub plugin_sha256: String,
}

impl DryRunReport {
    /// A short human summary.
    pub fn human(&self) -> String {
        format!(
            "dry run: {} jobs valid, plugin {} loads; estimated input tokens {}, output tokens at most {}, cost at most ${:.4}{}; nothing was sent",
            self.jobs,
            self.plugin_sha256.get(..16).unwrap_or(&self.plugin_sha256),
            self.estimated_input_tokens,
            self.max_output_tokens,
            self.estimated_max_cost_usd,
            if self.unpriced_jobs > 0 {
                format!(" ({} jobs on a model without a price)", self.unpriced_jobs)
            } else {
                String::new()
            }
        )
    }
}

/// Runs the checks and estimates of `--dry-run`. The pass over the input
/// runs on a blocking thread and a `stop` ends it (stdin may never end).
pub async fn dry_run(config: &RunConfig, stop: &StopHandle) -> Result<DryRunReport, RunError> {
    let sandbox_err = |source| RunError::Sandbox { plugin: config.plugin.name.clone(), source };
    let plugin =
        sandbox::load(&config.plugin, &config.cache, &config.sandbox, 2, &config.plugin_config, config.egress.clone())
            .map_err(sandbox_err)?;
    PluginInstance::new(&plugin.pre, plugin.shared).await.map_err(sandbox_err)?;

    let mut report = DryRunReport {
        jobs: 0,
        estimated_input_tokens: 0,
        max_output_tokens: 0,
        estimated_max_cost_usd: 0.0,
        unpriced_jobs: 0,
        plugin_sha256: config.plugin.digest.clone(),
    };
    let default_model = super::default_model(config);
    let default_output = config.item.default_max_output_tokens;
    let (input, prices, pass_stop) = (config.jobs.clone(), config.prices.clone(), stop.clone());
    let spool_dir = std::env::temp_dir();
    let spool = SpoolWriter::create_temp(&spool_dir)
        .map_err(|source| RunError::Input(vec![InputError::Spool { path: spool_dir.clone(), source }]))?;
    let spool_file = spool.path().to_path_buf();
    let pass = tokio::task::spawn_blocking(move || {
        let keep_going = || !pass_stop.is_stopping();
        let (summary, _spool) = read_once(&input, 20, spool, &keep_going, |job| {
            let prompt = prompt_tokens(job);
            let output = estimate_tokens(job, default_output).saturating_sub(prompt);
            report.estimated_input_tokens = report.estimated_input_tokens.saturating_add(prompt);
            report.max_output_tokens = report.max_output_tokens.saturating_add(output);
            let model = job.params.model().or(default_model.as_deref());
            let usage = TokenUsage { input_tokens: prompt, output_tokens: output, ..TokenUsage::default() };
            match model.and_then(|m| prices.cost(m, &usage)) {
                Some(cost) => report.estimated_max_cost_usd += cost,
                None => report.unpriced_jobs += 1,
            }
            Decision::Keep
        })
        .map_err(RunError::Input)?;
        report.jobs = summary.jobs as u64;
        Ok(report)
    });
    tokio::select! {
        joined = pass => joined.unwrap_or_else(|e| {
            let source = std::io::Error::other(format!("the input reader failed: {e}"));
            Err(RunError::Input(vec![InputError::Io { input: config.jobs.clone(), source }]))
        }),
        () = stop.until_stopping() => {
            // The pass may stay blocked on stdin until the process exits.
            let _ = std::fs::remove_file(&spool_file);
            Err(RunError::Input(vec![InputError::Stopped { input: config.jobs.clone() }]))
        }
    }
}
