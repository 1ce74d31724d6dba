//! What tokens cost: a price table per model, in US dollars per million
//! tokens.
//!
//! A default table ships inside the binary (`prices.toml`, dated by its
//! `as_of`); `--prices FILE` replaces the models it lists. Costs are
//! computed from the normalised usage, so cached reads and cache writes are
//! priced as such whatever the provider's own usage shape.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::model::TokenUsage;

const DEFAULT_PRICES: &str = include_str!("prices.toml");

/// Prices of one model, per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub input: f64,
    pub output: f64,
    /// Cache reads; the input price when absent.
    pub cached_input: Option<f64>,
    /// Cache writes; the input price when absent.
    pub cache_write: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    as_of: Option<String>,
    #[serde(default)]
    models: BTreeMap<String, ModelPrice>,
}

/// A price table that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("cannot read prices {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("prices {path} are not a valid price table")]
    Toml {
        path: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("prices {path}: {message}")]
    Parse { path: String, message: String },
}

/// The price table of a run.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    models: BTreeMap<String, ModelPrice>,
    /// The default table's date.
    pub as_of: Option<String>,
}

impl PriceTable {
    /// The shipped table, with `overrides` (a user's file) on top.
    pub fn load(overrides: Option<&Path>) -> Result<Self, PriceError> {
        let base = parse(DEFAULT_PRICES, "built-in prices.toml")?;
        let mut table = PriceTable { models: base.models, as_of: base.as_of };
        if let Some(path) = overrides {
            let name = path.display().to_string();
            let text =
                std::fs::read_to_string(path).map_err(|source| PriceError::Read { path: name.clone(), source })?;
            table.models.extend(parse(&text, &name)?.models);
        }
        Ok(table)
    }

    /// The price of `model`: an exact entry, else the longest listed prefix.
    pub fn price(&self, model: &str) -> Option<&ModelPrice> {
        if let Some(p) = self.models.get(model) {
            return Some(p);
        }
        self.models
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| p)
    }

    /// The cost of `usage` on `model`, if the model has a price.
    pub fn cost(&self, model: &str, usage: &TokenUsage) -> Option<f64> {
        self.price(model).map(|p| p.cost(usage))
    }
}

impl ModelPrice {
    /// Dollars for `usage`.
    pub fn cost(&self, usage: &TokenUsage) -> f64 {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let written = usage.cache_write_tokens.min(usage.input_tokens - cached);
        let plain = usage.input_tokens - cached - written;
        let per_token = |per_million: f64| per_million / 1e6;
        plain as f64 * per_token(self.input)
            + cached as f64 * per_token(self.cached_input.unwrap_or(self.input))
            + written as f64 * per_token(self.cache_write.unwrap_or(self.input))
            + usage.output_tokens as f64 * per_token(self.output)
    }
}

fn parse(text: &str, name: &str) -> Result<PriceFile, PriceError> {
    let file: PriceFile =
        toml::from_str(text).map_err(|e| PriceError::Toml { path: name.to_string(), source: Box::new(e) })?;
    for (model, p) in &file.models {
        let prices = [Some(p.input), Some(p.output), p.cached_input, p.cache_write];
        if prices.into_iter().flatten().any(|v| !(v.is_finite() && v >= 0.0)) {
            return Err(PriceError::Parse {
                path: name.to_string(),
                message: format!("model `{model}`: prices must be >= 0"),
            });
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_is_dated() {
        let t = PriceTable::load(None).expect("built-in table");
        assert!(t.as_of.is_some());
        assert!(t.price("gpt-4o-mini").is_some());
    }

    #[test]
    fn longest_prefix_wins() {
        let t = PriceTable::load(None).expect("table");
        let mini = t.price("gpt-4o-mini-2024-07-18").expect("priced");
        assert_eq!(mini.input, 0.15, "gpt-4o-mini, not gpt-4o");
        assert!(t.price("unknown-model").is_none());
    }

    #[test]
    fn cached_and_written_tokens_are_priced_separately() {
        let p = ModelPrice { input: 2.0, output: 10.0, cached_input: Some(1.0), cache_write: Some(3.0) };
        let u = TokenUsage {
            input_tokens: 1_000_000,
            cached_input_tokens: 500_000,
            cache_write_tokens: 100_000,
            output_tokens: 100_000,
            ..TokenUsage::default()
        };
        // 400k plain * 2 + 500k cached * 1 + 100k written * 3 + 100k out * 10
        let expected = 0.8 + 0.5 + 0.3 + 1.0;
        assert!((p.cost(&u) - expected).abs() < 1e-9, "{}", p.cost(&u));
    }

    #[test]
    fn a_user_file_overrides_models() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[models.\"gpt-4o-mini\"]\ninput = 1.0\noutput = 2.0\n").expect("write");
        let t = PriceTable::load(Some(&path)).expect("table");
        assert_eq!(t.price("gpt-4o-mini").expect("priced").input, 1.0);
        assert!(t.price("gpt-4o").is_some(), "the rest stay");
        std::fs::write(&path, "[models.x]\ninput = -1.0\noutput = 2.0\n").expect("write");
        assert!(PriceTable::load(Some(&path)).is_err());
        std::fs::write(&path, "[models.x]\ninput = 1.0\nouput = 2.0\n").expect("write");
        assert!(PriceTable::load(Some(&path)).is_err(), "typos are errors");
    }
}
