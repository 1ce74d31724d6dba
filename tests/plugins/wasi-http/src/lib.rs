//! A strategy that sends its requests through `wasi:http/outgoing-handler`
//! (the path JS `fetch` and Python take) instead of the host's `http.send`.
//! Never shipped.
//!
//! The prompt `post` sends `POST http://{params.authority}{params.path}` with
//! a body of `params.body_bytes` bytes, written *after* the request was
//! handed to the host (streamed, as `fetch` does). The answer is
//! `{"status": N}`, or a failure whose message starts with `caught`: the
//! error code the host returned, or the stream error the guest hit.

#[allow(clippy::all, missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        path: ["../../../wit", "wit"],
        world: "hostile:wasi-http/hostile-wasi-http",
        generate_all,
    });
}

use bindings::batchllm::strategy::types::{Attempt, ErrorClass, Item, StateChange, StateEntry, StrategyError, Success};
use bindings::exports::batchllm::strategy::llm_strategy::Guest;
use bindings::wasi::http::outgoing_handler;
use bindings::wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use serde_json::Value;

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
