//! The options as a user meets them: flags, a config file, both, and
//! hostile values for every number through both paths.

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::cli::Args;
use crate::model::FailureClass;
use crate::run::gate::{GateSettings, Gates, LimitKind, Verdict};

const YEAR: Duration = Duration::from_secs(365 * 86_400);

fn no_env(_: &str) -> Option<String> {
    None
}

/// Parses `flags` after `jobs.jsonl` (and `--config FILE` when `file` is
/// given, written to a temporary directory).
fn given(flags: &[&str], file: Option<&str>) -> (Given, Option<tempfile::TempDir>) {
    let dir = file.map(|text| {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("run.toml"), text).expect("write");
        dir
    });
    let mut argv = vec!["batchllm-host".to_string(), "jobs.jsonl".into(), "--no-cache".into()];
    if let Some(dir) = &dir {
        argv.extend(["--config".into(), dir.path().join("run.toml").display().to_string()]);
    }
    argv.extend(flags.iter().map(|s| s.to_string()));
    let args = Args::try_parse_args(argv).unwrap_or_else(|e| panic!("{flags:?} parse: {e}"));
    (Given { jobs: args.jobs, config: args.config, flags: args.run, once: args.once }, dir)
}

fn build_env(flags: &[&str], file: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<RunConfig, String> {
    let (given, _dir) = given(flags, file);
    build_with_env(given, Extras::default(), env).map_err(|e| e.to_string())
}

fn build(flags: &[&str], file: Option<&str>) -> Result<RunConfig, String> {
    build_env(flags, file, &no_env)
}

#[test]
fn flags_win_over_the_file_and_the_file_over_defaults() {
    let run = build(
        &["--concurrency", "9", "--plugin-config", "k=2", "--allow-host", "b.example.com"],
        Some("plugin = \"mock\"\nconcurrency = 5\nmax-attempts = 7\nrpm = 60\nallow-host = [\"a.example.com\"]\n[plugin-config]\nk = 1\nj = 1\n"),
    )
    .expect("config");
    assert_eq!(run.concurrency, 9, "flag wins");
    assert_eq!(run.item.retry.max_attempts, 7, "file wins over default");
    assert_eq!(run.admission.rpm, Some(60.0));
    assert_eq!((run.plugin_config["k"].clone(), run.plugin_config["j"].clone()), (2.into(), 1.into()));
    let grants: Vec<String> = run.egress.policy().grants().iter().map(ToString::to_string).collect();
    assert_eq!(grants, ["a.example.com", "b.example.com"], "lists add up, the file's first");
    assert_eq!(run.item.retry.max_rate_limit_retries, 20);
    assert_eq!(run.fail_fast, vec![FailureClass::Auth, FailureClass::QuotaExhausted]);
    assert_eq!(run.output, Path::new("results.jsonl"));
    assert!(!run.preserve_order);
}

#[test]
fn the_defaults_pass_their_own_checks() {
    RunOptions::defaults().validate(&Origin::Default).expect("valid defaults");
    let shown: std::collections::HashMap<_, _> = RunOptions::shown_defaults().into_iter().collect();
    assert_eq!(shown["concurrency"], "8");
    assert_eq!(shown["fail_fast"], "auth,quota_exhausted");
    assert_eq!(shown["slow_start_spacing"], "0.1");
    assert!(!shown.contains_key("preserve_order"), "a switch shows no default");
}

#[test]
fn a_plugin_is_required_and_the_error_lists_the_built_ins() {
    let (mut given, _) = given(&[], None);
    given.flags.plugin = None;
    let e = build_with_env(given, Extras::default(), &no_env).expect_err("no plugin").to_string();
    assert!(e.contains("no plugin given") && e.contains("openai, anthropic"), "{e}");
}

/// Values a config file used to let through (or panic on later), refused
/// from the file as from the flag, naming the key, the source and the range.
#[test]
fn out_of_range_values_are_refused_from_flags_and_from_the_file_alike() {
    let cases = [
        ("attempt-timeout", "0", "seconds from 0.001 to 31536000"),
        ("concurrency", "0", "an integer from 1 to 16384"),
        ("concurrency", "20000", "an integer from 1 to 16384"),
        ("max-cpu-per-call", "0", "seconds from 0.001"),
        ("rpm", "0", "a rate per minute from 0.000002 (about one a year) to 1e12"),
        ("rpm", "1e-300", "about one a year"),
        ("tpm", "inf", "to 1e12"),
        ("cooldown", "nan", "seconds from 0"),
        ("batch-timeout", "1e30", "(a year)"),
        ("max-memory-mb", "8", "from 16 to 65536"),
        ("max-cost", "0", "US dollars above 0"),
        ("cooldown-multiplier", "0.5", "a factor from 1 to 100"),
        ("default-max-output-tokens", "-1", "an integer from 0 to 10000000"),
    ];
    for (key, value, range) in cases {
        let e = build(&["--plugin", "mock", &format!("--{key}"), value], None).expect_err(key);
        assert!(e.starts_with(&format!("--{key} ")), "{e}");
        assert!(e.contains("is out of range: expected") && e.contains(range), "{e}");
        let e = build(&[], Some(&format!("plugin = \"mock\"\n{key} = {value}\n"))).expect_err(key);
        assert!(e.starts_with(&format!("{key} = ")) && e.contains("run.toml is out of range"), "{e}");
        assert!(e.contains(range), "{e}");
    }
}

#[test]
fn a_cooldown_above_a_maximum_you_set_is_refused() {
    let e = build(&["--plugin", "mock", "--cooldown", "120", "--cooldown-max", "60"], None).expect_err("conflict");
    assert_eq!(e, "--cooldown 120 is above --cooldown-max 60: set --cooldown-max to at least 120, or lower --cooldown");
    let e = build(&["--cooldown", "120"], Some("plugin = \"mock\"\ncooldown-max = 60\n")).expect_err("conflict");
    assert!(e.contains("--cooldown 120 is above cooldown-max = 60 in ") && e.contains("run.toml"), "{e}");
    let e = build(&["--plugin", "mock", "--backoff-initial", "9", "--backoff-max", "2"], None).expect_err("conflict");
    assert!(e.contains("set --backoff-max to at least 9,"), "{e}");
}

#[test]
fn a_default_bound_gives_way_to_the_value_you_set() {
    let run = build(&["--plugin", "mock", "--cooldown", "120"], None).expect("config");
    assert_eq!((run.cooldown.base, run.cooldown.max), (Duration::from_secs(120), Duration::from_secs(120)));
    let run = build(&["--plugin", "mock", "--cooldown-max", "0.5"], None).expect("config");
    assert_eq!((run.cooldown.base, run.cooldown.max), (Duration::from_millis(500), Duration::from_millis(500)));
    let run = build(&["--plugin", "mock", "--backoff-initial", "100"], None).expect("config");
    assert_eq!(run.item.retry.max_backoff, Duration::from_secs(100));
    let run = build(&["--plugin", "mock", "--cooldown", "0", "--cooldown-max", "0"], None).expect("zero is off");
    assert_eq!(run.cooldown.max, Duration::ZERO);
}

#[test]
fn a_secret_nobody_configured_stops_the_run_with_the_flag_to_add() {
    let e = build(&["--plugin", "openai"], None).expect_err("no key");
    assert!(
        e.starts_with("the openai plugin sends secret `api-key`, and none is configured: OPENAI_API_KEY is not set"),
        "{e}"
    );
    assert!(e.contains("--api-key-env VAR") && e.contains("api_key_secret=null"), "{e}");
    let e = build(&["--plugin", "gemini"], None).expect_err("no key");
    assert!(e.contains("GOOGLE_API_KEY and GEMINI_API_KEY are not set"), "{e}");
    let e = build(&["--plugin", "openai", "--plugin-config", "api_key_secret=org"], None).expect_err("named");
    assert!(e.contains("add --secret org=env:VAR"), "{e}");
    let headers = r#"extra_headers={"x-org": "{{secret:org}}"}"#;
    let e = build(&["--plugin", "mock", "--plugin-config", headers], None).expect_err("header secret");
    assert!(e.contains("the mock plugin sends secret `org`"), "{e}");
    // Configured, or not needed: fine.
    // (The host's own environment: PATH is set wherever tests run.)
    build(&["--plugin", "openai", "--api-key-env", "PATH"], None).expect("flag");
    build(&[], Some("plugin = \"openai\"\napi-key-env = \"PATH\"\n")).expect("file key");
    build(&["--plugin", "openai", "--secret", "api-key=env:PATH"], None).expect("secret");
    build(&["--plugin", "openai", "--plugin-config", "api_key_secret=null"], None).expect("no key needed");
    build(&["--plugin", "mock"], None).expect("the mock sends no key");
}

#[test]
fn the_providers_key_variable_is_read_for_its_own_host_only() {
    let env = |v: &str| (v == "OPENAI_API_KEY").then(|| "sk-conventional".to_string());
    let run = build_env(&["--plugin", "openai"], None, &env).expect("read from OPENAI_API_KEY");
    let secrets = run.egress.secrets();
    let sub = |url: &str| secrets.substitute("Bearer {{secret:api-key}}", &url.parse().expect("url"));
    assert_eq!(sub("https://api.openai.com/v1/chat/completions").as_deref(), Ok("Bearer sk-conventional"));
    let grants: Vec<String> = run.egress.policy().grants().iter().map(ToString::to_string).collect();
    assert_eq!(grants, ["api.openai.com"]);
    // Granted another host by hand: the conventional key still may not go there.
    let run = build_env(&["--plugin", "openai", "--allow-host", "log.example.com"], None, &env).expect("config");
    let url = "https://log.example.com/".parse().expect("url");
    assert!(run.egress.secrets().substitute("{{secret:api-key}}", &url).is_err());
    // A base_url of the user's choice needs the key named.
    let e = build_env(&["--plugin", "openai", "--plugin-config", "base_url=https://gw.example.com/v1"], None, &env)
        .expect_err("not sent to a third party on its own");
    assert!(e.contains("e.g. --api-key-env OPENAI_API_KEY"), "{e}");
    // A file plugin never gets it.
    let gemini = |v: &str| (v == "GEMINI_API_KEY" || v == "GOOGLE_API_KEY").then(|| format!("k-{v}"));
    let run = build_env(&["--plugin", "gemini"], None, &gemini).expect("gemini");
    let url = "https://generativelanguage.googleapis.com/v1beta".parse().expect("url");
    assert_eq!(run.egress.secrets().substitute("{{secret:api-key}}", &url).as_deref(), Ok("k-GOOGLE_API_KEY"));
}

#[test]
fn the_providers_base_url_variable_is_read_and_granted() {
    let env = |v: &str| match v {
        "OPENAI_BASE_URL" => Some("https://gateway.example.com/openai/v1".to_string()),
        "OPENAI_API_KEY" => Some("sk-gw".to_string()),
        _ => None,
    };
    let run = build_env(&["--plugin", "openai"], None, &env).expect("config");
    assert_eq!(run.plugin_config["base_url"], "https://gateway.example.com/openai/v1");
    assert_eq!(run.identity_config["base_url"], "https://gateway.example.com/openai/v1", "it identifies the answers");
    let grants: Vec<String> = run.egress.policy().grants().iter().map(ToString::to_string).collect();
    assert_eq!(grants, ["gateway.example.com"], "the provider's own host is not needed");
    let url = "https://gateway.example.com/openai/v1/chat/completions".parse().expect("url");
    assert_eq!(run.egress.secrets().substitute("{{secret:api-key}}", &url).as_deref(), Ok("sk-gw"));
    // The plugin configuration wins over the variable.
    let run = build_env(
        &["--plugin", "openai", "--plugin-config", "base_url=http://127.0.0.1:9/v1", "--api-key-env", "PATH"],
        None,
        &env,
    )
    .expect("config");
    assert_eq!(run.plugin_config["base_url"], "http://127.0.0.1:9/v1");
    assert!(run.egress.policy().grants().is_empty(), "a configured base_url is granted by the user");
    // Plain http to another machine is refused; to loopback it is fine.
    let lan = |v: &str| (v == "ANTHROPIC_BASE_URL").then(|| "http://10.1.2.3:8000".to_string());
    let e = build_env(&["--plugin", "anthropic"], None, &lan).expect_err("plain http");
    assert!(e.starts_with("ANTHROPIC_BASE_URL=http://10.1.2.3:8000: plain http"), "{e}");
    let local = |v: &str| match v {
        "ANTHROPIC_BASE_URL" => Some("http://127.0.0.1:8000".to_string()),
        "ANTHROPIC_API_KEY" => Some("k".to_string()),
        _ => None,
    };
    let run = build_env(&["--plugin", "anthropic"], None, &local).expect("loopback");
    let grants: Vec<String> = run.egress.policy().grants().iter().map(ToString::to_string).collect();
    assert_eq!(grants, ["127.0.0.1:8000"]);
}

#[test]
fn the_bundled_mock_wins_over_the_environment() {
    let env = |v: &str| match v {
        "OPENAI_BASE_URL" => Some("https://gateway.example.com/v1".to_string()),
        "OPENAI_API_KEY" => Some("sk-real".to_string()),
        _ => None,
    };
    let (given, _) = given(&["--plugin", "openai"], None);
    let extras = Extras {
        grants: vec![crate::egress::HostGrant::exact("127.0.0.1", 9)],
        plugin_config: vec![("base_url".into(), "http://127.0.0.1:9/v1".into())],
        secrets: vec![("api-key".into(), "sk-mock".into())],
    };
    let run = build_with_env(given, extras, &env).expect("config");
    assert_eq!(run.plugin_config["base_url"], "http://127.0.0.1:9/v1");
    assert!(!run.identity_config.contains_key("base_url"));
    let url = "http://127.0.0.1:9/v1/chat/completions".parse().expect("url");
    assert_eq!(run.egress.secrets().substitute("{{secret:api-key}}", &url).as_deref(), Ok("sk-mock"));
}

/// What every configuration that builds must satisfy, whatever went in:
/// finite, in-range durations and rates, and engine arithmetic on them
/// (admission waits, cooldowns, backoff) that does not panic.
fn assert_sane(run: &RunConfig) {
    assert!((1..=16_384).contains(&run.concurrency));
    let item = &run.item;
    assert!(item.attempt_timeout >= Duration::from_millis(1) && item.attempt_timeout <= YEAR);
    assert!(item.item_timeout.is_none_or(|t| t <= YEAR && !t.is_zero()));
    assert!(run.batch_timeout.is_none_or(|t| t <= YEAR && !t.is_zero()));
    for d in [item.retry.initial_backoff, item.retry.max_backoff, item.retry.max_server_wait] {
        assert!(d <= YEAR);
    }
    assert!(item.retry.initial_backoff <= item.retry.max_backoff);
    assert!((1..=1000).contains(&item.retry.max_attempts));
    let c = &run.cooldown;
    assert!(c.base <= c.max && c.max <= YEAR && c.slow_start_spacing <= YEAR);
    assert!(c.multiplier.is_finite() && (1.0..=100.0).contains(&c.multiplier));
    let a = run.admission;
    for rate in [a.rpm, a.tpm].into_iter().flatten() {
        assert!(rate.is_finite() && (2e-6..=1e12).contains(&rate), "{rate}");
    }
    assert!(a.burst_secs.is_finite() && a.burst_secs > 0.0 && a.burst_secs <= YEAR.as_secs_f64());
    assert!(run.max_cost.is_none_or(|c| c.is_finite() && c > 0.0));
    assert!(!run.sandbox.max_cpu_per_call.is_zero() && run.sandbox.max_cpu_per_call <= YEAR);

    // A slow rate with a large charge may ask for a long wait (the user's
    // own arithmetic); it must still be a number the engine can sleep on.
    let now = tokio::time::Instant::now();
    let settings = GateSettings {
        cooldown: run.cooldown.clone(),
        admission: a,
        learn_from_headers: true,
        adaptive: true,
        max_server_wait: item.retry.max_server_wait,
        startup_ramp: None,
    };
    let gates = Gates::new(settings, now);
    for i in 0..4 {
        let at = now + Duration::from_secs(i);
        if let Ok(ticket) = gates.try_admit(Some("scope"), item.default_max_output_tokens, at) {
            let hint = Some(item.retry.max_server_wait);
            ticket.answered(Some("scope"), Verdict::RateLimited { hint, kind: LimitKind::Unknown }, &[], 0, at);
        }
    }
    let _ = gates.try_admit(Some("scope"), item.default_max_output_tokens, now);
    for failures in [1, 2, 64, u32::MAX] {
        assert!(item.retry.backoff(failures, 0.999) <= item.retry.max_backoff);
    }
}

/// A value as TOML writes it (Rust writes `NaN`, TOML `nan`).
fn toml_literal(text: &str) -> String {
    match text {
        "NaN" => "nan".into(),
        "-NaN" => "-nan".into(),
        other => other.into(),
    }
}

fn hostile_number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|v| format!("{v:?}")),
        any::<i64>().prop_map(|v| v.to_string()),
        (-10.0f64..1e6).prop_map(|v| format!("{v:?}")),
        (0i64..100_000).prop_map(|v| v.to_string()),
        prop::sample::select(vec![
            "0",
            "-0",
            "-0.0",
            "1",
            "1e-300",
            "5e-324",
            "1e300",
            "1.7976931348623157e308",
            "NaN",
            "inf",
            "-inf",
            "0.0005",
            "0.001",
            "31536000",
            "31536000.5",
            "9223372036854775807",
            "18446744073709551616",
            "16384",
            "16385",
            "1.9e-6",
            "2e-6",
            "1.91e-6",
        ])
        .prop_map(str::to_string),
    ]
}

/// The run option keys that take a number, plus the flag-only one.
fn numeric_keys() -> Vec<String> {
    RunOptions::CHECKED.iter().map(|f| f.replace('_', "-")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any value of any numeric option, as a flag and as a config key:
    /// either an error naming the key (and the file), or a sane run.
    #[test]
    fn any_number_through_a_flag_or_the_file_is_refused_by_name_or_sane(
        key in prop::sample::select(numeric_keys()),
        value in hostile_number(),
    ) {
        let flag = format!("--{key}");
        let argv = ["batchllm-host", "jobs.jsonl", "--no-cache", "--plugin", "mock", &flag, &value];
        match Args::try_parse_args(argv) {
            Err(e) => prop_assert!(e.to_string().contains(&flag), "{}", e),
            Ok(args) => match args.into_config(Extras::default()) {
                Err(e) => prop_assert!(e.to_string().contains(&flag), "{}", e),
                Ok(run) => assert_sane(&run),
            },
        }
        let text = format!("plugin = \"mock\"\n{key} = {}\n", toml_literal(&value));
        match build(&[], Some(&text)) {
            Err(e) => prop_assert!(e.contains(&key) && e.contains("run.toml"), "{}", e),
            Ok(run) => assert_sane(&run),
        }
    }

    /// Several at once, some as flags and some in the file (so the bounds
    /// that depend on two options meet every combination of sources).
    #[test]
    fn any_mix_of_flags_and_keys_is_refused_by_name_or_sane(
        picks in prop::collection::vec((prop::sample::select(numeric_keys()), hostile_number(), any::<bool>()), 1..6),
    ) {
        let mut flags = vec!["--plugin".to_string(), "mock".into()];
        let mut text = String::new();
        let mut in_file = std::collections::HashSet::new();
        for (key, value, as_flag) in &picks {
            if *as_flag {
                flags.extend([format!("--{key}"), value.clone()]);
            } else if in_file.insert(key.clone()) {
                text.push_str(&format!("{key} = {}\n", toml_literal(value)));
            }
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut argv = vec!["batchllm-host", "jobs.jsonl", "--no-cache"];
        argv.extend(&flags);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run.toml");
        std::fs::write(&path, &text).expect("write");
        let path_text = path.display().to_string();
        argv.extend(["--config", &path_text]);
        let named = |e: &str| picks.iter().any(|(k, _, _)| e.contains(k.as_str()));
        match Args::try_parse_args(argv) {
            Err(e) => prop_assert!(named(&e.to_string()), "{}", e),
            Ok(args) => match args.into_config(Extras::default()) {
                Err(e) => prop_assert!(named(&e.to_string()), "{}", e),
                Ok(run) => assert_sane(&run),
            },
        }
    }
}
