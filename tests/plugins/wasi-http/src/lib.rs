//! A strategy that sends its requests through `wasi:http/outgoing-handler`
//! (the path JS `fetch` and Python take) instead of the host's `http.send`.
//! Never shipped.
//!
//! The prompt `post` sends `POST http://{params.authority}{params.path}` with
//! a body of `params.body_bytes` bytes, written *after* the request was
//! handed to the host (streamed, as `fetch` does). The answer is
//! `{"status": N}`, or a failure whose message starts with `caught`: the
//! error code the host returned, or the stream error the guest hit.
//!
//! Two more prompts attack what `wasi:http` allows beyond one request at a
//! time:
//! - `flood`: start `params.count` GETs of `http://{authority}{path}` at once
//!   without waiting for any, then wait for all of them, keeping every
//!   response (and its unread body) alive to the end. Answers
//!   `{"ok": N, "errors": {code: N}}`;
//! - `leak`: start `params.count` GETs and return at once, keeping the
//!   pending responses in a global so they outlive the call.

#[allow(clippy::all, missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        path: ["../../../wit/v0.1", "wit"],
        world: "hostile:wasi-http/hostile-wasi-http",
        generate_all,
    });
}

use bindings::batchllm::strategy::types::{Attempt, ErrorClass, Item, StateChange, StateEntry, StrategyError, Success};
use bindings::exports::batchllm::strategy::llm_strategy::Guest;
use std::cell::RefCell;
use std::collections::BTreeMap;

use bindings::wasi::http::outgoing_handler;
use bindings::wasi::http::types::{
    Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use serde_json::{Value, json};

thread_local! {
    /// Requests started by `leak`, kept past the call that made them.
    static LEAKED: RefCell<Vec<FutureIncomingResponse>> = const { RefCell::new(Vec::new()) };
}

struct HostileWasiHttp;

impl Guest for HostileWasiHttp {
    fn prepare(_config: String) -> Result<(), StrategyError> {
        Ok(())
    }

    fn execute(item: Item, _: Attempt, _: Vec<StateEntry>) -> Result<Success, StrategyError> {
        let params: Value = serde_json::from_str(&item.params).unwrap_or(Value::Null);
        let authority = params["authority"].as_str().unwrap_or("127.0.0.1:1");
        let path = params["path"].as_str().unwrap_or("/");
        let size = params["body_bytes"].as_u64().unwrap_or(0);
        let count = params["count"].as_u64().unwrap_or(1);
        match item.prompt.trim() {
            "flood" => return flood(authority, path, count).map(success).map_err(caught),
            "leak" => {
                let started = start_gets(authority, path, count).map_err(caught)?;
                LEAKED.with(|l| l.borrow_mut().extend(started));
                return Ok(success(format!("{{\"leaked\":{count}}}")));
            }
            _ => {}
        }
        match post(authority, path, size) {
            Ok(status) => Ok(success(format!("{{\"status\":{status}}}"))),
            Err(message) => Err(StrategyError {
                class: ErrorClass::ClientError,
                message: format!("caught {message}"),
                http_status: None,
                retry_after_ms: None,
                usage: None,
                response_body: None,
            }),
        }
    }

    fn on_error(_: Item, _: StrategyError, _: Attempt, _: Vec<StateEntry>) -> Vec<StateChange> {
        Vec::new()
    }

    fn cleanup() -> Result<(), String> {
        Ok(())
    }
}

fn caught(message: String) -> StrategyError {
    StrategyError {
        class: ErrorClass::ClientError,
        message: format!("caught {message}"),
        http_status: None,
        retry_after_ms: None,
        usage: None,
        response_body: None,
    }
}

/// Starts `count` GETs without waiting for any.
fn start_gets(authority: &str, path: &str, count: u64) -> Result<Vec<FutureIncomingResponse>, String> {
    let mut started = Vec::new();
    for _ in 0..count {
        let request = OutgoingRequest::new(Fields::new());
        request.set_scheme(Some(&Scheme::Http)).map_err(|()| "bad scheme")?;
        request.set_authority(Some(authority)).map_err(|()| "bad authority")?;
        request.set_path_with_query(Some(path)).map_err(|()| "bad path")?;
        match outgoing_handler::handle(request, None) {
            Ok(future) => started.push(future),
            Err(e) => return Err(format!("handle: {e:?}")),
        }
    }
    Ok(started)
}

/// Starts `count` GETs at once, waits for all, keeps every response.
fn flood(authority: &str, path: &str, count: u64) -> Result<String, String> {
    let started = start_gets(authority, path, count)?;
    let mut kept: Vec<IncomingResponse> = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for future in &started {
        future.subscribe().block();
        match future.get() {
            Some(Ok(Ok(response))) => kept.push(response),
            Some(Ok(Err(code))) => {
                let name = format!("{code:?}");
                let name = name.split(['(', ' ']).next().unwrap_or_default().to_string();
                *errors.entry(name).or_default() += 1;
            }
            _ => *errors.entry("other".into()).or_default() += 1,
        }
    }
    let ok = kept.iter().filter(|r| r.status() == 200).count();
    Ok(json!({"ok": ok, "errors": errors}).to_string())
}

fn success(output: String) -> Success {
    Success { output, usage: None, response_body: None, metadata: None }
}

fn post(authority: &str, path: &str, size: u64) -> Result<u16, String> {
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Post).map_err(|()| "bad method")?;
    request.set_scheme(Some(&Scheme::Http)).map_err(|()| "bad scheme")?;
    request.set_authority(Some(authority)).map_err(|()| "bad authority")?;
    request.set_path_with_query(Some(path)).map_err(|()| "bad path")?;
    let body = request.body().map_err(|()| "no body")?;
    let response = outgoing_handler::handle(request, None).map_err(|e| format!("handle: {e:?}"))?;
    {
        let stream = body.write().map_err(|()| "no body stream")?;
        let chunk = [b'b'; 4096];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            stream.blocking_write_and_flush(&chunk[..n]).map_err(|e| format!("body write: {e:?}"))?;
            left -= n as u64;
        }
    }
    OutgoingBody::finish(body, None).map_err(|e| format!("body finish: {e:?}"))?;
    response.subscribe().block();
    match response.get() {
        Some(Ok(Ok(r))) => Ok(r.status()),
        Some(Ok(Err(code))) => Err(format!("{code:?}")),
        Some(Err(())) => Err("response taken twice".into()),
        None => Err("response not ready".into()),
    }
}

bindings::export!(HostileWasiHttp with_types_in bindings);
