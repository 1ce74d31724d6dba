//! Scrubbing a secret's value from answers before a plugin reads them: a
//! body without the value is untouched, and a JSON body stays valid JSON
//! (or is withheld whole).
//!
//! Input format: the secret's value on the first line, the body after it.

use batchllm_host::egress::{EgressPolicy, Secrets};

const WITHHELD: &[u8] = b"[response withheld";

/// Input: see the module docs.
pub fn run(data: &[u8]) {
    let (value, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(value) = std::str::from_utf8(value) else { return };
    if value.is_empty() {
        return;
    }
    let secrets = Secrets::from_values(vec![("api-key".into(), value.into())], EgressPolicy::new(vec![]));
    let out = secrets.scrub_bytes(body.to_vec());

    let has_value = body.windows(value.len()).any(|w| w == value.as_bytes());
    if !has_value {
        assert_eq!(out, body, "a body without the secret was changed");
    }
    let json_in = matches!(body.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['))
        && std::str::from_utf8(body).is_ok_and(super::is_strict_json);
    if json_in && !out.starts_with(WITHHELD) {
        let text = std::str::from_utf8(&out).expect("scrubbed JSON is UTF-8");
        assert!(super::is_strict_json(text), "scrubbing broke a JSON body: {text:?}");
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let scrubbed = secrets.scrub(text);
        if !text.contains(value) {
            assert_eq!(scrubbed, text);
        }
    }
}
