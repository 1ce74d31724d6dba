//! A strategy plugin that attacks the sandbox, for the host's containment
//! tests (`tests/e2e/hostile.rs`). Never shipped.
//!
//! The item's prompt names the attack, so one run can mix hostile items with
//! well-behaved ones and show that the others still succeed:
//!
//! - `ok`: behave (answer `ok <id>`);
//! - `loop`: spin on the CPU forever;
//! - `membomb`: allocate (and touch) memory until the allocator fails;
//! - `panic`: panic;
//! - `big-output`: return a 100 MiB output;
//! - `snoop`: read the environment, files, directories, sockets (TCP to
//!   `params.connect`) and name lookups; answer what it found as JSON;
//! - `print`: write 4 MiB to stdout and stderr, then answer;
//! - `big-request`: POST `params.bytes` bytes to `params.url` (answers like
//!   `fetch`, with `params.catch`);
//! - `fetch`: send the request described by the item's `params`
//!   (`{"url", "method"?, "headers"?: [[k, v]], "body"?, "timeout_ms"?,
//!   "follow"?: bool, "repeat_until_trap"?: bool}`) and answer what came back
//!   as JSON `{"status", "headers", "body"}`; an HTTP error is returned as a
//!   failure whose message starts with `caught`, proving it was catchable
//!   (with `"catch": true`, as a successful answer `{"caught", "message"}`);
//!   with `"gunzip": true` a gzip-encoded body is decompressed first (the
//!   way to carry a secret past a scrubber that only sees raw bytes);
//!   `"times": N` sends the request N times in the one call;
//! - `run-state`: store `params.keys` values of `params.value_bytes` bytes
//!   each in the run-wide state (keys `params.prefix-N`);
//! - `retry-state`: fail as `invalid-response` on every attempt, with the
//!   size of the retry state it was given in the message; its `on-error`
//!   adds `params.keys_per_call` keys of `params.value_bytes` bytes each;
//! - `log-forge`: log, print and write lines carrying newlines, carriage
//!   returns and terminal escapes that would forge host log lines.
//!
//! `prepare` panics when the configuration has `"panic_in_prepare": true`.

use std::io::Write as _;

use std::io::Read as _;

use batchllm_plugin_sdk::http::{self, HttpError, Request, Response};
use batchllm_plugin_sdk::serde_json::{self, Value, json};
use batchllm_plugin_sdk::{
    Attempt, ErrorClass, Guest, Item, StateChange, StateEntry, StrategyError, Success, log, run_state,
};

struct Hostile;

impl Guest for Hostile {
    fn prepare(config: String) -> Result<(), StrategyError> {
        let config: Value = serde_json::from_str(&config).unwrap_or(Value::Null);
        if config["panic_in_prepare"] == true {
            panic!("hostile plugin panics in prepare");
        }
        Ok(())
    }

    fn execute(item: Item, _: Attempt, state: Vec<StateEntry>) -> Result<Success, StrategyError> {
        let params: Value = serde_json::from_str(&item.params).unwrap_or(Value::Null);
        match item.prompt.trim() {
            "ok" => Ok(Success::new(format!("ok {}", item.id))),
            "loop" => spin(),
            "membomb" => membomb(),
            "panic" => panic!("hostile plugin panics on purpose in {}", item.id),
            "big-output" => Ok(Success::new("x".repeat(100 << 20))),
            "snoop" => Ok(Success::new(snoop(&params).to_string())),
            "print" => print(&item.id),
            "fetch" => recover(&params, fetch(&params)),
            "big-request" => recover(&params, big_request(&params)),
            "run-state" => run_state_bomb(&params),
            "retry-state" => {
                let bytes: usize = state.iter().map(|(k, v)| k.len() + v.len()).sum();
                let message = format!("retry state given: {} keys, {bytes} bytes", state.len());
                Err(StrategyError::new(ErrorClass::InvalidResponse, message))
            }
            "log-forge" => forge_logs(&item.id),
            // Not an attack: what the host handed over, byte for byte.
            "echo" => Ok(Success::new(format!("{}\n{}", item.params, item.context.unwrap_or_default()))),
            other => Err(StrategyError::new(ErrorClass::ClientError, format!("unknown attack `{other}`"))),
        }
    }

    fn on_error(item: Item, _: StrategyError, attempt: Attempt, _: Vec<StateEntry>) -> Vec<StateChange> {
        if item.prompt.trim() != "retry-state" {
            return Vec::new();
        }
        let params: Value = serde_json::from_str(&item.params).unwrap_or(Value::Null);
        let size = params["value_bytes"].as_u64().unwrap_or(1 << 20) as usize;
        let keys = params["keys_per_call"].as_u64().unwrap_or(1);
        let value = "r".repeat(size);
        (0..keys).map(|j| (format!("grow-{}-{j}", attempt.number), Some(value.clone()))).collect()
    }

    fn cleanup() -> Result<(), String> {
        Ok(())
    }
}

fn spin() -> ! {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn membomb() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // `vec![1; n]` writes every byte, so the pages are really used.
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

fn print(id: &str) -> Result<Success, StrategyError> {
    let line = format!("hostile-stdout {id} {}\n", "y".repeat(100));
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let mut written = 0;
    while written < 4 << 20 {
        // A closed or full stream must not make the plugin trap.
        let _ = out.write_all(line.as_bytes());
        let _ = err.write_all(line.replace("stdout", "stderr").as_bytes());
        written += line.len();
    }
    let _ = out.flush();
    Ok(Success::new(format!("printed {written} bytes")))
}

fn snoop(params: &Value) -> Value {
    let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    let args: Vec<String> = std::env::args().collect();
    let mut files = serde_json::Map::new();
    for path in ["/etc/passwd", "/etc/hostname", "/proc/self/environ", "Cargo.toml", "."] {
        let outcome = match std::fs::read(path) {
            Ok(bytes) => format!("READ {} bytes", bytes.len()),
            Err(e) => format!("error: {e}"),
        };
        files.insert(path.to_string(), Value::from(outcome));
    }
    let dirs: Vec<String> = ["/", ".", "/tmp"]
        .iter()
        .map(|d| match std::fs::read_dir(d) {
            Ok(entries) => format!("LISTED {d}: {} entries", entries.count()),
            Err(e) => format!("{d}: error: {e}"),
        })
        .collect();
    let write = match std::fs::write("/tmp/hostile-was-here", b"x") {
        Ok(()) => "WROTE".to_string(),
        Err(e) => format!("error: {e}"),
    };
    let target = params["connect"].as_str().unwrap_or("127.0.0.1:1");
    let tcp = match std::net::TcpStream::connect(target) {
        Ok(_) => "CONNECTED".to_string(),
        Err(e) => format!("error: {e}"),
    };
    let udp = match std::net::UdpSocket::bind("0.0.0.0:0") {
        Ok(_) => "BOUND".to_string(),
        Err(e) => format!("error: {e}"),
    };
    let lookup = match std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80)) {
        Ok(addrs) => format!("RESOLVED {} addrs", addrs.count()),
        Err(e) => format!("error: {e}"),
    };
    json!({"env": env, "args": args, "files": files, "dirs": dirs, "write": write,
           "tcp": tcp, "udp": udp, "lookup": lookup})
}

/// Fills the run-wide state, one value after another.
fn run_state_bomb(params: &Value) -> Result<Success, StrategyError> {
    let size = params["value_bytes"].as_u64().unwrap_or(1 << 20) as usize;
    let keys = params["keys"].as_u64().unwrap_or(1);
    let prefix = params["prefix"].as_str().unwrap_or("k");
    let value = "s".repeat(size);
    for i in 0..keys {
        run_state::set(&format!("{prefix}-{i}"), &value);
    }
    Ok(Success::new(format!("stored {keys} values of {size} bytes")))
}

/// Tries to make the host print lines the host never wrote.
fn forge_logs(id: &str) -> Result<Success, StrategyError> {
    let forged = "2099-01-01T00:00:00.000000Z ERROR batchllm: FORGED-LINE plugin=openai item=other";
    log::warn(format!("hostile-forge {id}\n{forged}\r\u{1b}[2J\u{1b}]0;title\u{7}\u{202e}desrever"));
    println!("hostile-forge-stdout {id}\r{forged}\u{1b}[31m");
    eprintln!("hostile-forge-stderr {id}\u{2028}{forged}");
    Ok(Success::new(format!("ok {id}")))
}

fn fetch(params: &Value) -> Result<Success, StrategyError> {
    let mut request = request_from(params)?;
    // `times`: the same request again and again in one call.
    for _ in 1..params["times"].as_u64().unwrap_or(1) {
        send(&request, params)?;
    }
    let mut response = send(&request, params)?;
    if params["follow"] == true && (300..400).contains(&response.status) {
        // Follow the redirect by hand, secret header and all: the host must
        // check the new destination like any other.
        let location = response.header("location").unwrap_or_default().to_string();
        request.url = location;
        response = send(&request, params)?;
    }
    let headers: Vec<Value> = response.headers.iter().map(|(k, v)| json!([k, v])).collect();
    let gzipped = response.header("content-encoding").is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
    let body = if params["gunzip"] == true && gzipped {
        let mut text = String::new();
        flate2::read::GzDecoder::new(response.body.as_slice())
            .read_to_string(&mut text)
            .map_err(|e| StrategyError::new(ErrorClass::InvalidResponse, format!("gunzip: {e}")))?;
        text
    } else {
        response.text()
    };
    Ok(Success::new(
        json!({"status": response.status, "headers": headers, "body": body, "gunzipped": gzipped}).to_string(),
    ))
}

/// POSTs a body of `params.bytes` bytes to `params.url` through `http.send`.
fn big_request(params: &Value) -> Result<Success, StrategyError> {
    let size = params["bytes"].as_u64().unwrap_or(0) as usize;
    let request = Request {
        method: "POST".into(),
        url: params["url"].as_str().unwrap_or_default().to_string(),
        headers: Vec::new(),
        body: vec![b'r'; size],
        timeout_ms: None,
    };
    let response = send(&request, params)?;
    Ok(Success::new(json!({"status": response.status}).to_string()))
}

fn send(request: &Request, params: &Value) -> Result<Response, StrategyError> {
    loop {
        match http::send(request) {
            Ok(r) => return Ok(r),
            // Hammer the host after every failure until it stops the call.
            Err(_) if params["repeat_until_trap"] == true => continue,
            Err(e) => return Err(caught(e)),
        }
    }
}

/// With `params.catch`, an HTTP error becomes a successful answer
/// `{"caught": kind, "message": ...}`: proof that the plugin got a clean
/// error value and carried on.
fn recover(params: &Value, result: Result<Success, StrategyError>) -> Result<Success, StrategyError> {
    match result {
        Err(e) if params["catch"] == true => Ok(Success::new(
            json!({"caught": e.message.split(':').next().unwrap_or_default(), "message": e.message}).to_string(),
        )),
        other => other,
    }
}

fn request_from(params: &Value) -> Result<Request, StrategyError> {
    let url =
        params["url"].as_str().ok_or_else(|| StrategyError::new(ErrorClass::ClientError, "fetch needs params.url"))?;
    let headers = params["headers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|pair| Some((pair[0].as_str()?.to_string(), pair[1].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Request {
        method: params["method"].as_str().unwrap_or("GET").to_string(),
        url: url.to_string(),
        headers,
        body: params["body"].as_str().unwrap_or_default().as_bytes().to_vec(),
        timeout_ms: params["timeout_ms"].as_u64(),
    })
}

fn caught(e: HttpError) -> StrategyError {
    let kind = match &e {
        HttpError::Denied(_) => "denied",
        HttpError::Timeout(_) => "timeout",
        HttpError::Network(_) => "network",
        HttpError::InvalidRequest(_) => "invalid-request",
        HttpError::TooLarge(_) => "too-large",
    };
    let class = match &e {
        HttpError::Timeout(_) => ErrorClass::Timeout,
        HttpError::Network(_) => ErrorClass::Network,
        _ => ErrorClass::ClientError,
    };
    StrategyError::new(class, format!("caught {kind}: {}", e.message()))
}

batchllm_plugin_sdk::export_strategy!(Hostile);
