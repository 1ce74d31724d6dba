//! The built-in providers, in one table.
//!
//! What the host knows about each plugin it ships was spread over the build
//! script (which crates to build), the plugin loader (which names exist), the
//! CLI (which host a plugin is granted by default) and the engine (which
//! rate-limit headers to read). Adding a provider meant finding all four. Now
//! each built-in plugin is one [`Provider`] row, and every one of those places
//! reads [`BUILTINS`]:
//!
//! - `host/build.rs` includes this file (it depends on nothing else of the
//!   crate for that reason) and builds and embeds each row's `package`;
//! - [`crate::plugin`] resolves built-in names against it;
//! - the options layer grants `api_host` by default, reads the API key and
//!   base URL from the provider's conventional environment variables, and
//!   checks before anything is sent that the secret the plugin will ask for
//!   is configured;
//! - the engine may look up a plugin's [`RateLimitDialect`] to know which
//!   response headers carry its limits.
//!
//! The key and base-URL variables are the ones each provider's own SDK
//! reads, so a shell set up for the SDK works here unchanged.

/// How a provider reports its rate limits in response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitDialect {
    /// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (OpenAI, and
    /// most OpenAI-compatible servers).
    OpenAi,
    /// `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`.
    Anthropic,
    /// No rate-limit headers: limits show only as 429 answers (Gemini's
    /// `RetryInfo`), which every plugin classifies anyway.
    None,
}

impl RateLimitDialect {
    /// A stable lower-case name, for logs and events.
    pub const fn name(self) -> &'static str {
        match self {
            RateLimitDialect::OpenAi => "openai",
            RateLimitDialect::Anthropic => "anthropic",
            RateLimitDialect::None => "none",
        }
    }
}

/// The API key a provider's plugin sends, and where its SDK finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiKey {
    /// The secret the plugin names in its key header by default (its
    /// `api_key_secret` setting): `{{secret:api-key}}`.
    pub secret: &'static str,
    /// The environment variables the provider's SDK reads, in the SDK's
    /// order of precedence.
    pub env: &'static [&'static str],
}

/// One built-in provider plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    /// The name given to `--plugin`.
    pub name: &'static str,
    /// The cargo package in `plugins/` that builds the component.
    pub package: &'static str,
    /// Its directory under `plugins/` (the build script watches it).
    pub dir: &'static str,
    /// What it talks to, for `--help`.
    pub summary: &'static str,
    /// The provider's API host, reached over https: granted by default when
    /// the plugin's base URL is its own default one.
    pub api_host: Option<&'static str>,
    /// The key its requests carry, if any.
    pub api_key: Option<ApiKey>,
    /// The variable the provider's SDK reads a base URL from.
    pub base_url_env: Option<&'static str>,
    /// Which response headers carry its rate limits.
    pub rate_limit_dialect: RateLimitDialect,
    /// The model the plugin uses when neither the job nor `--plugin-config
    /// model=` names one: what `--dry-run` prices. (A run prices each
    /// record by the model the answer names, which for these plugins is
    /// this one unless the server says otherwise.) It must equal the
    /// plugin's own default (a test reads the plugin's source).
    pub default_model: Option<&'static str>,
}

const OPENAI_KEY: ApiKey = ApiKey { secret: "api-key", env: &["OPENAI_API_KEY"] };

/// Every built-in plugin, in the order `--help` and error messages list them.
pub const BUILTINS: &[Provider] = &[
    Provider {
        name: "openai",
        package: "batchllm-plugin-openai",
        dir: "openai",
        summary: "OpenAI chat completions and embeddings, or any OpenAI-compatible server",
        api_host: Some("api.openai.com"),
        api_key: Some(OPENAI_KEY),
        base_url_env: Some("OPENAI_BASE_URL"),
        rate_limit_dialect: RateLimitDialect::OpenAi,
        default_model: Some("gpt-4o-mini"),
    },
    Provider {
        name: "anthropic",
        package: "batchllm-plugin-anthropic",
        dir: "anthropic",
        summary: "the Anthropic Messages API",
        api_host: Some("api.anthropic.com"),
        api_key: Some(ApiKey { secret: "api-key", env: &["ANTHROPIC_API_KEY"] }),
        base_url_env: Some("ANTHROPIC_BASE_URL"),
        rate_limit_dialect: RateLimitDialect::Anthropic,
        default_model: Some("claude-sonnet-4-5"),
    },
    Provider {
        name: "gemini",
        package: "batchllm-plugin-gemini",
        dir: "gemini",
        summary: "Gemini generateContent, with explicit context caching",
        api_host: Some("generativelanguage.googleapis.com"),
        // The google-genai SDK's order: GOOGLE_API_KEY wins when both are set.
        api_key: Some(ApiKey { secret: "api-key", env: &["GOOGLE_API_KEY", "GEMINI_API_KEY"] }),
        base_url_env: None,
        rate_limit_dialect: RateLimitDialect::None,
        default_model: Some("gemini-2.5-flash"),
    },
    Provider {
        name: "mock",
        package: "batchllm-plugin-mock",
        dir: "mock",
        summary: "deterministic and network-free, for demos, --dry-run and tests",
        api_host: None,
        api_key: None,
        base_url_env: None,
        rate_limit_dialect: RateLimitDialect::None,
        default_model: None,
    },
    Provider {
        name: "smart-retry",
        package: "batchllm-plugin-smart-retry",
        dir: "smart-retry",
        summary: "the openai plugin plus JSON validation and adaptive retries",
        api_host: Some("api.openai.com"),
        api_key: Some(OPENAI_KEY),
        base_url_env: Some("OPENAI_BASE_URL"),
        rate_limit_dialect: RateLimitDialect::OpenAi,
        default_model: Some("gpt-4o-mini"),
    },
];

/// The built-in provider called `name`.
pub fn find(name: &str) -> Option<&'static Provider> {
    BUILTINS.iter().find(|p| p.name == name)
}

/// The built-in names, comma-separated, for messages.
pub fn names() -> String {
    BUILTINS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_packages_match_their_directories() {
        for (i, p) in BUILTINS.iter().enumerate() {
            assert!(BUILTINS[..i].iter().all(|q| q.name != p.name), "{} twice", p.name);
            assert_eq!(p.package, format!("batchllm-plugin-{}", p.dir));
            assert_eq!(find(p.name), Some(p));
        }
        assert_eq!(names(), "openai, anthropic, gemini, mock, smart-retry");
        assert_eq!(find("nope"), None);
    }

    #[test]
    fn keyed_providers_have_a_host_and_a_variable() {
        for p in BUILTINS {
            if let Some(key) = p.api_key {
                assert!(p.api_host.is_some(), "{}", p.name);
                assert!(!key.env.is_empty() && key.env.iter().all(|v| v.ends_with("_API_KEY")), "{}", p.name);
            }
            assert!(p.api_host.is_none_or(|h| !h.contains([':', '/'])), "{}: a bare host", p.name);
        }
        assert_eq!(find("anthropic").map(|p| p.rate_limit_dialect.name()), Some("anthropic"));
    }

    /// The registry's default model is the one the plugin really uses: the
    /// plugin's source names it as its default.
    #[test]
    fn default_models_are_the_plugins_own() {
        let sources = [
            ("openai", include_str!("../../plugins/openai-core/src/config.rs")),
            ("smart-retry", include_str!("../../plugins/openai-core/src/config.rs")),
            ("anthropic", include_str!("../../plugins/anthropic/src/config.rs")),
            ("gemini", include_str!("../../plugins/gemini/src/config.rs")),
        ];
        for (name, source) in sources {
            let model = find(name).and_then(|p| p.default_model).expect("a default model");
            let defaults = source.lines().filter(|l| l.contains("DEFAULT_MODEL") || l.contains("model:"));
            assert!(
                defaults.clone().any(|l| l.contains(&format!("\"{model}\""))),
                "{name}: the plugin's default is not {model}: {:?}",
                defaults.collect::<Vec<_>>()
            );
        }
        assert!(BUILTINS.iter().filter(|p| p.default_model.is_some()).count() == sources.len());
    }
}
