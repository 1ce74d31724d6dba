//! An adaptive strategy, and the worked example of the retry-state contract.
//!
//! It speaks to OpenAI-compatible chat APIs exactly like the `openai` plugin
//! (whose request and response code it reuses), and adds two things from
//! the Python library's README:
//! - **validation**: the answer must be JSON (code fences allowed); anything
//!   else is an `invalid-response`, which the host retries without backoff;
//! - **adaptation** in `on-error`, kept in the host-owned retry state of that
//!   item only: each validation failure raises the temperature by a step
//!   (*progressive temperature*), and after `escalate_after` failures the
//!   next attempts use the bigger `escalate_to` model (*smart model
//!   escalation*). The plugin itself never retries or sleeps: the host
//!   decides whether there is a next attempt; this plugin only shapes it.
//!
//! - **partial recovery**: with `required_fields`, an answer missing some of
//!   them fails, and the next attempt asks only for the missing fields and
//!   merges them into what was already answered.
//!
//! Configuration: every key of the `openai` plugin, plus
//! `temperature_start` (0.0), `temperature_step` (0.3), `temperature_max`
//! (1.0), `escalate_after` (2), `escalate_to` (no escalation if absent) and
//! `required_fields` (a list of top-level fields the JSON answer must have).

use batchllm_plugin_openai_core::config::Config;
use batchllm_plugin_sdk::serde_json::{Map, Value};
use batchllm_plugin_sdk::{
    Attempt, ConfigCell, ErrorClass, Guest, Item, StateChange, StateEntry, StrategyError, Success, log, state,
};

/// Retry-state key counting this item's validation failures.
const FAILURES: &str = "smart.failures";

/// Retry-state key holding why the last answer was rejected (the plugin's
/// own check or the host's `--schema`), shown to the model next time.
const FEEDBACK: &str = "smart.feedback";

/// Longest feedback kept in the retry state.
const MAX_FEEDBACK: usize = 600;

/// How failures change the next attempt.
#[derive(Debug, Clone, PartialEq)]
struct Policy {
    temperature_start: f64,
    temperature_step: f64,
    temperature_max: f64,
    escalate_after: u64,
    escalate_to: Option<String>,
    required_fields: Vec<String>,
}

const POLICY_KEYS: [&str; 6] =
    ["temperature_start", "temperature_step", "temperature_max", "escalate_after", "escalate_to", "required_fields"];

/// Retry-state keys of partial recovery: the fields answered so far (a JSON
/// object) and the ones still missing (comma-separated).
const PARTIAL: &str = "smart.partial";
const MISSING: &str = "smart.missing";

/// How a missing-fields failure message starts; `on-error` reads it back.
const MISSING_PREFIX: &str = "missing fields: ";
const PARTIAL_MARK: &str = "; partial answer: ";

fn invalid(message: impl std::fmt::Display) -> StrategyError {
    StrategyError::client_error(format!("smart-retry config: {message}"))
}

fn number(obj: &Map<String, Value>, key: &str, default: f64) -> Result<f64, StrategyError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .ok_or_else(|| invalid(format!("`{key}` must be a number >= 0"))),
    }
}

/// Splits the configuration into this strategy's policy and the `openai`
/// plugin's own settings.
fn parse(config: &Value) -> Result<(Config, Policy), StrategyError> {
    let mut obj = match config {
        Value::Object(o) => o.clone(),
        Value::Null => Map::new(),
        _ => return Err(invalid("must be a JSON object")),
    };
    let policy = Policy {
        temperature_start: number(&obj, "temperature_start", 0.0)?,
        temperature_step: number(&obj, "temperature_step", 0.3)?,
        temperature_max: number(&obj, "temperature_max", 1.0)?,
        escalate_after: number(&obj, "escalate_after", 2.0)? as u64,
        escalate_to: match obj.get("escalate_to") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) if !m.is_empty() => Some(m.clone()),
            Some(_) => return Err(invalid("`escalate_to` must be a model name")),
        },
        required_fields: match obj.get("required_fields") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|f| f.as_str().map(str::to_string).ok_or_else(|| invalid("`required_fields` must be strings")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid("`required_fields` must be a list of field names")),
        },
    };
    for key in POLICY_KEYS {
        obj.remove(key);
    }
    Ok((Config::from_value(&Value::Object(obj))?, policy))
}

static SETTINGS: ConfigCell<(Config, Policy)> = ConfigCell::new();

fn settings() -> Result<&'static (Config, Policy), StrategyError> {
    SETTINGS.get_or_parse(parse)
}

/// The JSON document in `output`, accepting a Markdown code fence around it.
fn validate_json(output: &str) -> Result<Value, String> {
    let trimmed = output.trim();
    let inner = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .unwrap_or(trimmed);
    batchllm_plugin_sdk::serde_json::from_str(inner.trim()).map_err(|e| e.to_string())
}

/// The retry-state changes after a failure: none unless it was a
/// validation failure.
fn adapt(policy: &Policy, class: ErrorClass, message: &str, state_now: &[StateEntry]) -> Vec<StateChange> {
    if class != ErrorClass::InvalidResponse {
        return Vec::new();
    }
    let feedback: String = message.chars().take(MAX_FEEDBACK).collect();
    let failures = state::get_u64(state_now, FAILURES).unwrap_or(0) + 1;
    let temperature =
        (policy.temperature_start + policy.temperature_step * failures as f64).min(policy.temperature_max);
    let mut changes = vec![
        state::set(FAILURES, failures.to_string()),
        state::set("param.temperature", format!("{temperature:.2}")),
        state::set(FEEDBACK, feedback),
    ];
    if let Some(model) = policy.escalate_to.as_ref().filter(|_| failures >= policy.escalate_after) {
        changes.push(state::set("param.model", Value::String(model.clone()).to_string()));
    }
    if let Some((missing, partial)) = parse_missing(message) {
        changes.push(state::set(MISSING, missing));
        changes.push(state::set(PARTIAL, partial));
    }
    changes
}

/// `(missing, partial)` from a missing-fields failure message.
fn parse_missing(message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix(MISSING_PREFIX)?;
    let (missing, partial) = rest.split_once(PARTIAL_MARK)?;
    Some((missing.to_string(), partial.to_string()))
}

/// Merges this answer into what earlier attempts answered; returns the merged
/// object, or the failure naming what is still missing.
fn recover(policy: &Policy, answer: Value, state_now: &[StateEntry]) -> Result<Value, String> {
    if policy.required_fields.is_empty() {
        return Ok(answer);
    }
    let mut merged = state::get(state_now, PARTIAL)
        .and_then(|p| batchllm_plugin_sdk::serde_json::from_str::<Map<String, Value>>(p).ok())
        .unwrap_or_default();
    match answer {
        Value::Object(fields) => merged.extend(fields),
        other => return Err(format!("the answer is {other}, not a JSON object")),
    }
    let missing: Vec<&str> =
        policy.required_fields.iter().map(String::as_str).filter(|f| !merged.contains_key(*f)).collect();
    if missing.is_empty() {
        Ok(Value::Object(merged))
    } else {
        Err(format!("{MISSING_PREFIX}{}{PARTIAL_MARK}{}", missing.join(", "), Value::Object(merged)))
    }
}

/// The prompt of a retry: the original one (if any) plus the reason the
/// last answer was rejected.
fn with_feedback(prompt: &str, feedback: &str) -> String {
    let note = format!("Your previous answer was rejected: {feedback}. Answer again with valid JSON only.");
    if prompt.is_empty() { note } else { format!("{prompt}\n\n{note}") }
}

struct SmartRetry;

impl Guest for SmartRetry {
    fn prepare(config: String) -> Result<(), StrategyError> {
        let parsed = parse(&batchllm_plugin_sdk::parse_config(&config)?)?;
        log::info(format!("smart-retry strategy: {:?}", parsed.1));
        SETTINGS.set(parsed);
        Ok(())
    }

    fn execute(mut item: Item, attempt: Attempt, mut state: Vec<StateEntry>) -> Result<Success, StrategyError> {
        let (config, policy) = settings()?;
        if let Some(missing) = state::get(&state, MISSING) {
            // Partial recovery: ask only for what is still missing.
            let note = format!("Return only these missing fields as a JSON object: {missing}.");
            item.prompt = if item.prompt.is_empty() { note } else { format!("{}\n\n{note}", item.prompt) };
        } else if let Some(feedback) = state::get(&state, FEEDBACK) {
            // Show the model why its last answer was rejected.
            item.prompt = with_feedback(&item.prompt, feedback);
        }
        if state::get(&state, "param.temperature").is_none() {
            state.push(("param.temperature".into(), format!("{:.2}", policy.temperature_start)));
        }
        let mut success = batchllm_plugin_openai_core::execute_with(config, &item, &attempt, &state)?;
        let checked = validate_json(&success.output)
            .map_err(|e| format!("the answer is not valid JSON: {e}"))
            .and_then(|answer| recover(policy, answer, &state));
        match checked {
            Ok(answer) => {
                if !policy.required_fields.is_empty() {
                    success.output = answer.to_string();
                }
                Ok(success)
            }
            Err(message) => {
                let mut err = StrategyError::invalid_response(message);
                err.usage = success.usage;
                Err(err)
            }
        }
    }

    fn on_error(_item: Item, error: StrategyError, _attempt: Attempt, state: Vec<StateEntry>) -> Vec<StateChange> {
        match settings() {
            Ok((_, policy)) => adapt(policy, error.class, &error.message, &state),
            Err(_) => Vec::new(),
        }
    }

    fn cleanup() -> Result<(), String> {
        Ok(())
    }
}

batchllm_plugin_sdk::export_strategy!(SmartRetry);

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            temperature_start: 0.0,
            temperature_step: 0.3,
            temperature_max: 1.0,
            escalate_after: 2,
            escalate_to: Some("big".into()),
            required_fields: Vec::new(),
        }
    }

    fn step(state: &mut Vec<StateEntry>) {
        let changes = adapt(&policy(), ErrorClass::InvalidResponse, "bad", state);
        for (k, v) in changes {
            state.retain(|(key, _)| *key != k);
            if let Some(v) = v {
                state.push((k, v));
            }
        }
    }

    #[test]
    fn validation_failures_raise_the_temperature_then_escalate() {
        let mut s = Vec::new();
        step(&mut s);
        assert_eq!(state::get(&s, "param.temperature"), Some("0.30"));
        assert_eq!(state::get(&s, "param.model"), None);
        step(&mut s);
        assert_eq!(state::get(&s, "param.temperature"), Some("0.60"));
        assert_eq!(state::get(&s, "param.model"), Some("\"big\""));
        for _ in 0..5 {
            step(&mut s);
        }
        assert_eq!(state::get(&s, "param.temperature"), Some("1.00"), "capped");
    }

    #[test]
    fn other_failures_change_nothing() {
        assert!(adapt(&policy(), ErrorClass::Overloaded, "x", &[]).is_empty());
    }

    #[test]
    fn the_rejection_reason_is_kept_and_shown_next_time() {
        let changes = adapt(&policy(), ErrorClass::InvalidResponse, "at /n: \"x\" is not of type \"integer\"", &[]);
        let feedback = changes.iter().find(|(k, _)| k == FEEDBACK).and_then(|(_, v)| v.clone()).expect("kept");
        assert!(feedback.contains("is not of type"));
        assert!(
            with_feedback("list colours", &feedback)
                .starts_with("list colours\n\nYour previous answer was rejected: at /n")
        );
        assert!(with_feedback("", "bad").starts_with("Your previous answer"));
    }

    #[test]
    fn partial_answers_are_merged_and_the_rest_requested() {
        let p = Policy { required_fields: vec!["a".into(), "b".into(), "c".into()], ..policy() };
        let first: Value = batchllm_plugin_sdk::serde_json::from_str(r#"{"a": 1}"#).expect("json");
        let message = recover(&p, first, &[]).expect_err("b and c missing");
        assert!(message.starts_with("missing fields: b, c; partial answer: {\"a\":1}"), "{message}");
        let changes = adapt(&p, ErrorClass::InvalidResponse, &message, &[]);
        let state: Vec<StateEntry> = changes.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
        assert_eq!(state::get(&state, MISSING), Some("b, c"));
        let second: Value = batchllm_plugin_sdk::serde_json::from_str(r#"{"b": 2, "c": 3}"#).expect("json");
        let merged = recover(&p, second, &state).expect("complete");
        assert_eq!(merged.to_string(), r#"{"a":1,"b":2,"c":3}"#);
    }

    #[test]
    fn json_validation_accepts_code_fences() {
        assert!(validate_json("{\"a\": 1}").is_ok());
        assert!(validate_json("```json\n{\"a\": 1}\n```").is_ok());
        assert!(validate_json("echo: not json").is_err());
    }

    #[test]
    fn config_splits_policy_from_openai_settings() {
        let v: Value = batchllm_plugin_sdk::serde_json::from_str(
            r#"{"escalate_to": "gpt-4o", "temperature_step": 0.5, "model": "gpt-4o-mini"}"#,
        )
        .expect("json");
        let (config, policy) = parse(&v).expect("valid");
        assert_eq!(config.model, "gpt-4o-mini");
        assert_eq!(policy.escalate_to.as_deref(), Some("gpt-4o"));
        assert_eq!(policy.temperature_step, 0.5);
        let bad: Value = batchllm_plugin_sdk::serde_json::from_str(r#"{"tempreature_step": 1}"#).expect("json");
        assert!(parse(&bad).is_err(), "unknown keys still fail in the openai config");
    }
}
