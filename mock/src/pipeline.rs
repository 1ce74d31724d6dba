//! The request pipeline the Anthropic and Gemini endpoints share: front door
//! (credentials, body, rate window), then the fault injector, then the
//! provider's own rendering. A provider implements [`Provider`]; numbering,
//! logging and delays stay in [`crate::exchange`].
//!
//! 1. **front door**, answered at once: [`Provider::authorize`], then
//!    [`Provider::parse`], then the rate window ([`Provider::rate_limited`]
//!    for a rejection);
//! 2. **admitted**: [`crate::faults::Faults::plan`] picks a fault and a
//!    delay from the prompt's markers or at random; the answer (success,
//!    injected error, malformed body, or timeout after a hang) is sent after
//!    the delay.
//!
//! [`Provider::finish`] decorates every answer (request id, rate-limit
//! headers) with the budgets as they stood.

use std::time::Duration;

use axum::response::Response;

use crate::exchange::{self, Incoming, Reply};
use crate::faults::Fault;
use crate::limits::{Rejection, Snapshot};
use crate::state::Shared;

/// One provider endpoint: how to check, read and answer its requests.
pub(crate) trait Provider {
    /// The validated request.
    type Request;

    /// Checks credentials and required headers; a refusal is the reply
    /// (boxed: it is the rare path, and keeps the `Result` small).
    fn authorize(app: &Shared, incoming: &Incoming) -> Result<(), Box<Reply>>;

    /// Validates the request (body, path); a refusal is the reply.
    fn parse(app: &Shared, incoming: &Incoming) -> Result<Self::Request, Box<Reply>>;

    /// The text markers are read from and faults are keyed on.
    fn prompt(request: &Self::Request) -> Option<String>;

    /// Tokens charged against the rate window.
    fn charge(request: &Self::Request) -> u64;

    /// The answer to a request over the rate window.
    fn rate_limited(rejection: &Rejection, incoming: &Incoming) -> Reply;

    /// The answer for an injected fault other than `Malformed`; `delay` is
    /// how long a hang lasted.
    fn fault(fault: Fault, delay: Duration, incoming: &Incoming) -> Reply;

    /// The success reply, with `usage` set for the log.
    fn success(app: &Shared, incoming: &Incoming, request: &Self::Request) -> Reply;

    /// Adds what every answer carries (request id, rate-limit headers).
    fn finish(reply: Reply, snapshot: &Snapshot, incoming: &Incoming) -> Reply;
}

/// Decides, logs and sends the answer to `incoming` for provider `P`.
pub(crate) async fn handle<P: Provider>(app: &Shared, incoming: Incoming) -> Response {
    let reply = decide::<P>(app, &incoming);
    exchange::respond(app, incoming, reply).await
}

/// The whole decision for one request, without waiting.
pub(crate) fn decide<P: Provider>(app: &Shared, incoming: &Incoming) -> Reply {
    let now = incoming.arrived;
    if let Err(reply) = P::authorize(app, incoming) {
        return P::finish(*reply, &app.limits.peek(now), incoming);
    }
    let request = match P::parse(app, incoming) {
        Ok(request) => request,
        Err(reply) => return P::finish(*reply, &app.limits.peek(now), incoming),
    };
    let prompt = P::prompt(&request);
    let snapshot = match app.limits.admit(now, P::charge(&request)) {
        Ok(snapshot) => snapshot,
        Err(rejection) => {
            let reply = Reply { prompt, ..P::rate_limited(&rejection, incoming) };
            return P::finish(reply, &rejection.snapshot, incoming);
        }
    };
    let plan = app.faults.plan(prompt.as_deref());
    let reply = match plan.fault {
        None => P::success(app, incoming, &request),
        Some(Fault::Malformed) => P::success(app, incoming, &request).malformed(),
        Some(fault) => P::fault(fault, plan.delay, incoming),
    };
    P::finish(Reply { delay: plan.delay, prompt, ..reply }, &snapshot, incoming)
}
