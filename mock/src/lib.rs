//! A mock LLM provider: an HTTP server speaking the OpenAI, Anthropic
//! Messages and Gemini `generateContent` APIs with deterministic answers and
//! fault injection, for end-to-end tests, benchmarks and demos.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use batchllm_mock::{MockConfig, MockServer};
//!
//! let server = MockServer::start(MockConfig { rpm: Some(100), ..Default::default() }).await?;
//! let base_url = server.base_url(); // "http://127.0.0.1:PORT/v1"
//! // ... point the code under test at `base_url` ...
//! assert!(server.requests().iter().all(|r| r.status == 200));
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Endpoints
//!
//! * `POST /v1/chat/completions`: answers `"echo: " + <last user message>`
//!   as a `chat.completion` with `id: chatcmpl-mock-<seq>`, the request's
//!   `model` (or `mock-model`) and a deterministic `usage`.
//! * `POST /v1/embeddings`: 8-dimensional unit vectors derived from a hash
//!   of each input.
//! * `POST /v1/messages` (Anthropic Messages): the same echo in Anthropic's
//!   shapes, with `usage.cache_read_input_tokens` /
//!   `cache_creation_input_tokens` for `cache_control` prefixes, `request-id`
//!   and `anthropic-ratelimit-*` headers (see the `anthropic` module).
//! * `POST /v1beta/models/{model}:generateContent` (also under `/v1`): the
//!   echo in Gemini's shapes; `cachedContents` create / get / list / update
//!   (`PATCH`) / delete with real expiry, and `cachedContentTokenCount` when a
//!   request references a live cache (see the `gemini` module).
//!   [`MockServer::origin`] is the base URL for these two.
//! * `GET /health`: `ok`. `GET /_mock/requests`: the request log as JSON.
//!   `GET /_mock/stats`: answers per status and the pace of successes
//!   ([`Pace`]). `POST /_mock/reset`: clears the log, rate windows and fault
//!   state, and restarts the capacity schedule.
//! * Anything else: 404 with an OpenAI error body.
//!
//! Every answer to an OpenAI request carries `x-request-id: req_mock_<seq>`
//! (Anthropic: `request-id`), and every provider request, whatever its
//! outcome, is in the log
//! ([`LoggedRequest`]); `/health` and `/_mock/*` are not.
//!
//! # Token estimates
//!
//! With `T(s) = ceil(chars(s) / 4)` (Unicode characters):
//! prompt `P = Σ_messages (T(text) + 4)`, completion `C = max(1, T(answer))`,
//! cached `K = 0` if `P < 1024`, else `floor(P * cached_ratio)` rounded down
//! to a multiple of 64; the rate-limit charge is `P + max_tokens` (16 when
//! unset). See [`tokens`] for the details and the functions themselves.
//!
//! # Faults
//!
//! Configured in [`MockConfig`]: an API key (401), request and token limits
//! per window (429 with `retry-after` and `x-ratelimit-*` headers), latency
//! and jitter, and seeded random 5xx, malformed and hanging answers. How a
//! provider signals its limits varies, so that does too: sliding or fixed
//! calendar windows ([`WindowKind`]), limit headers or none
//! (`limit_headers`), a truthful, constant or absent `retry-after`
//! ([`RetryAfter`]), a capacity that shrinks for a while
//! ([`CapacityChange`]), a persistent 429 (`always_429`), and arbitrary
//! extra headers on every answer (`extra_headers`). [`RateProfile`] names
//! the combinations of the benchmark's provider matrix (rows A-G), also
//! served by the binary's `--profile`.
//!
//! A test can also target one request with markers in its last user
//! message: `[[mock:status=CODE]]`, `[[mock:insufficient_quota]]` (alias
//! `[[mock:quota-per-day]]`), `[[mock:malformed]]`, `[[mock:hang]]`,
//! `[[mock:fail-first=N]]`, `[[mock:latency=MS]]`,
//! `[[mock:header=NAME:VALUE]]` (any header on that answer, absurd values
//! included) and `[[mock:answer=empty|null|no-choices|filtered|blocked]]`
//! (degenerate successes: an empty answer stopped for length with its
//! budget billed, no content, no choices, a content filter or refusal).
//! Each provider answers them in its own shapes (e.g. `status=429` is an
//! OpenAI `rate_limit_exceeded`, an Anthropic `rate_limit_error` with
//! `retry-after`, a Gemini per-minute `RESOURCE_EXHAUSTED` with
//! `RetryInfo`).
//!
//! Front-door refusals (401, 400, 413, rate-limit 429) are answered at once;
//! admitted requests (successes and injected faults) wait for the latency.
//!
//! # Adding providers
//!
//! Provider modules (`openai`, `anthropic`, `gemini`) only parse requests and
//! render bodies; the request lifecycle (`exchange`), the front-door/fault
//! pipeline (`pipeline`), rate windows (`limits`), fault decisions
//! (`faults`) and the log are shared, so another provider is one more
//! sibling module implementing `pipeline::Provider`.

mod anthropic;
mod clock;
mod config;
mod control;
mod duration;
mod exchange;
mod faults;
mod gemini;
mod limits;
mod log;
mod openai;
mod pipeline;
pub mod profiles;
mod server;
mod state;
pub mod tokens;

pub use config::{
    CapacityChange, DEFAULT_CACHED_RATIO, DEFAULT_HANG_MS, DEFAULT_WINDOW_MS, MockConfig, RetryAfter, WindowKind,
};
pub use limits::{IdealClient, calendar_phase, earliest_finish};
pub use log::{LoggedRequest, Pace};
pub use profiles::RateProfile;
pub use server::MockServer;
