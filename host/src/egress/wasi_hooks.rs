//! `wasi:http` routed through [`Egress`].
//!
//! Guests whose language speaks `wasi:http` natively (JS `fetch`, Python,
//! Rust `wstd`) get the same policy, pooling, limits and accounting as the
//! `http.send` import: the request body is read (bounded), handed to the
//! shared client, and the complete response comes back as one body.
//!
//! Unlike `http.send`, `wasi:http` lets a guest start requests without
//! waiting for any. Each request therefore takes its place in the call's
//! budget the moment the guest hands it over ([`CallScope::admit`]), waits
//! for one of the instance's in-flight slots, and ends with its call: a
//! request still running when the call returns is cancelled. The response
//! body keeps its bytes counted against the instance's buffer budget until
//! the guest has read it to the end or dropped it. A request takes its
//! in-flight slot before its body is read, so requests waiting their turn
//! hold no body.
//!
//! A guest streams its request body *after* handing the request over, so a
//! denial must not cut the stream under it (the guest would see a broken
//! pipe, not a clean `HTTP-request-denied`). A denied request's body is
//! therefore drained and discarded, up to the request-size limit, before the
//! denial is returned; nothing of it is buffered.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::client::{Egress, EgressError, OutboundRequest};
use super::scope::{CallScope, Ticket};

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture = Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

/// The hooks object stored in each plugin store.
pub struct EgressHooks {
    egress: Egress,
    scope: CallScope,
}

impl EgressHooks {
    /// Hooks sending through `egress`, within and recording into `scope`.
    pub fn new(egress: Egress, scope: CallScope) -> Self {
        EgressHooks { egress, scope }
    }
}

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        // Admitted now, while the call that made it is still the current one.
        let ticket = self.scope.admit();
        let egress = self.egress.clone();
        let scope = self.scope.clone();
        Box::new(async move {
            let ended = ticket.clone();
            tokio::select! {
                biased;
                _ = ended.call_ended() => Err(to_wasi_error(EgressError::CallEnded)),
                result = forward(egress, scope, ticket, request, options) => result,
            }
        })
    }
}

async fn forward(
    egress: Egress,
    scope: CallScope,
    mut ticket: Ticket,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
    let (parts, mut body) = request.into_parts();
    let limit = egress.limits().max_request_bytes;
    let denied = ticket.refused().is_some()
        || match parts.uri.to_string().parse::<reqwest::Url>() {
            Ok(url) => egress.policy().check(&url).is_err(),
            Err(_) => false,
        };
    if !denied {
        // Seated before the body is read: requests waiting their turn hold
        // no body, so at most `max_requests_in_flight` bodies are buffered.
        scope.seat(&mut ticket).await;
    }
    let body = if denied {
        // Drain (bounded, discarding); `send_admitted` below then records,
        // counts and logs the denial.
        let mut drained = 0usize;
        while drained <= limit {
            match body.frame().await {
                Some(Ok(frame)) => drained += frame.data_ref().map_or(0, Bytes::len),
                _ => break,
            }
        }
        Vec::new()
    } else {
        match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes().to_vec(),
            Err(_) => return Err(HttpError::HttpRequestBodySize(None)),
        }
    };
    let outbound = OutboundRequest {
        method: parts.method.as_str().to_string(),
        url: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body,
        timeout: options.and_then(request_timeout),
    };
    let response = egress.send_admitted(&scope, &ticket, outbound).await.map_err(to_wasi_error)?;
    let mut builder = http::Response::builder().status(response.status);
    for (k, v) in &response.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let hold = response.hold;
    let body = Full::new(Bytes::from(response.body))
        .map_err(|never| match never {})
        // The body's bytes stay counted until wasmtime drops the body: when
        // the guest has read it to the end, or dropped it.
        .map_frame(move |frame| {
            let _ = &hold;
            frame
        })
        .boxed_unsync();
    let response = builder.body(body).map_err(|e| HttpError::InternalError(Some(e.to_string())))?;
    Ok((response, Box::new(async { Ok(()) }) as IoFuture))
}

/// The guest's timeouts collapse into one bound on the whole exchange.
fn request_timeout(options: RequestOptions) -> Option<Duration> {
    [options.connect_timeout, options.first_byte_timeout, options.between_bytes_timeout].into_iter().flatten().max()
}

fn to_wasi_error(e: EgressError) -> HttpError {
    match e {
        EgressError::Denied(_) => HttpError::HttpRequestDenied,
        EgressError::Timeout(_) | EgressError::Transport { timed_out: true, .. } => HttpError::HttpResponseTimeout,
        EgressError::Transport { timed_out: false, .. } | EgressError::CallEnded => {
            HttpError::InternalError(Some(e.plugin_message()))
        }
        EgressError::InvalidRequest(_) => HttpError::HttpRequestUriInvalid,
        EgressError::TooLarge(_) | EgressError::OverBudget(_) => HttpError::HttpResponseBodySize(None),
    }
}
