//! Files a user points the host at: `--prices` (TOML) and `--schema` (a
//! JSON Schema), and model outputs checked against that schema.
//!
//! Input format: the file, then optionally a line `---` and an output to
//! check. The same text is tried as a price table and as a schema.

use batchllm_host::cost::PriceTable;
use batchllm_host::model::TokenUsage;
use batchllm_host::schema::OutputSchema;

/// Input: see the module docs.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (file, output) = super::split_at_marker(&text, "---");
    let dir = super::fresh_dir("tables");

    let prices = dir.join("prices.toml");
    std::fs::write(&prices, file).expect("write prices");
    match PriceTable::load(Some(&prices)) {
        Ok(table) => {
            let usage = TokenUsage {
                input_tokens: u64::MAX,
                output_tokens: u64::MAX,
                cached_input_tokens: u64::MAX,
                cache_write_tokens: 7,
                reasoning_tokens: 0,
            };
            for model in [output.unwrap_or("gpt-4o-mini"), "", "claude-sonnet-4-5"] {
                if let Some(cost) = table.cost(model, &usage) {
                    assert!(cost >= 0.0 && !cost.is_nan(), "{model}: {cost}");
                }
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("prices.toml"), "{message}");
        }
    }

    let schema = dir.join("schema.json");
    std::fs::write(&schema, file).expect("write schema");
    match OutputSchema::load(&schema) {
        Ok(schema) => {
            for candidate in [output.unwrap_or("{}"), file, "```json\n{\"a\": [1, \"x\", null]}\n```", "\"\""] {
                if let Err(e) = schema.check(candidate) {
                    assert!(!e.is_empty());
                }
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("schema.json"), "{message}");
        }
    }
}
