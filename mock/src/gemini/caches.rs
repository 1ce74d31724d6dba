//! Explicit context caches (`cachedContents`): create, get, list, update the
//! expiry, delete. A cache past its `expireTime` is gone, as on Gemini:
//! reading, updating or using it answers "not found".

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::content::{self, Turn};
use super::error::GoogleError;
use crate::clock::{format_rfc3339, parse_duration, parse_rfc3339};
use crate::state::lock;

/// The lifetime of a cache created without `ttl` or `expireTime`.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// One cached content.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    name: String,
    model: String,
    display_name: String,
    created: SystemTime,
    updated: SystemTime,
    expires: SystemTime,
    tokens: u64,
}

impl Entry {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "model": self.model,
            "displayName": self.display_name,
            "createTime": format_rfc3339(self.created),
            "updateTime": format_rfc3339(self.updated),
            "expireTime": format_rfc3339(self.expires),
            "usageMetadata": {"totalTokenCount": self.tokens},
        })
    }
}

/// What a `generateContent` request referencing a live cache needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheRef {
    /// `models/<id>`.
    pub model: String,
    /// Tokens of the cached content.
    pub tokens: u64,
}

/// Every cache of the server.
#[derive(Debug, Default)]
pub(crate) struct CacheStore {
    entries: Mutex<HashMap<String, Entry>>,
    next: AtomicU64,
}

impl CacheStore {
    /// `POST cachedContents`: validates `body` and stores a new cache.
    pub(crate) fn create(&self, body: &Value, now: SystemTime) -> Result<Value, GoogleError> {
        let body = body
            .as_object()
            .ok_or_else(|| GoogleError::invalid_argument("The body must be a CachedContent object."))?;
        let model = match body.get("model").and_then(Value::as_str) {
            Some(model) if !model.is_empty() => full_model(model),
            _ => return Err(GoogleError::invalid_argument("* CachedContent.model: model is required")),
        };
        let turns = content::turns(body.get("contents"), "cachedContent.contents", false)?;
        let system = match body.get("systemInstruction") {
            None | Some(Value::Null) => None,
            Some(system) => Some(content::turn(system, "cachedContent.systemInstruction")?),
        };
        if turns.is_empty() && system.is_none() {
            return Err(GoogleError::invalid_argument("Cached content must have contents or a system instruction."));
        }
        let expires = expiry(body, now)?.unwrap_or(now + DEFAULT_TTL);
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Entry {
            name: format!("cachedContents/mock-{id}"),
            model,
            display_name: body.get("displayName").and_then(Value::as_str).unwrap_or_default().to_owned(),
            created: now,
            updated: now,
            expires,
            tokens: cache_tokens(&turns, system.as_ref()),
        };
        let answer = entry.to_json();
        lock(&self.entries).insert(entry.name.clone(), entry);
        Ok(answer)
    }

    /// `GET cachedContents/<id>`.
    pub(crate) fn get(&self, name: &str, now: SystemTime) -> Result<Value, GoogleError> {
        let mut entries = lock(&self.entries);
        purge(&mut entries, now);
        entries.get(name).map(Entry::to_json).ok_or_else(GoogleError::cache_not_found)
    }

    /// `GET cachedContents`: the live caches, by name.
    pub(crate) fn list(&self, now: SystemTime) -> Value {
        let mut entries = lock(&self.entries);
        purge(&mut entries, now);
        let mut live: Vec<&Entry> = entries.values().collect();
        live.sort_by(|a, b| a.name.cmp(&b.name));
        json!({"cachedContents": live.iter().map(|e| e.to_json()).collect::<Vec<_>>()})
    }

    /// `PATCH cachedContents/<id>`: only the expiry (`ttl` or `expireTime`)
    /// can change.
    pub(crate) fn update(&self, name: &str, body: &Value, now: SystemTime) -> Result<Value, GoogleError> {
        let body = body
            .as_object()
            .ok_or_else(|| GoogleError::invalid_argument("The body must be a CachedContent object."))?;
        let expires =
            expiry(body, now)?.ok_or_else(|| GoogleError::invalid_argument("ttl or expireTime is required"))?;
        let mut entries = lock(&self.entries);
        purge(&mut entries, now);
        let entry = entries.get_mut(name).ok_or_else(GoogleError::cache_not_found)?;
        entry.expires = expires;
        entry.updated = now;
        Ok(entry.to_json())
    }

    /// `DELETE cachedContents/<id>`.
    pub(crate) fn delete(&self, name: &str, now: SystemTime) -> Result<Value, GoogleError> {
        let mut entries = lock(&self.entries);
        purge(&mut entries, now);
        entries.remove(name).map(|_| json!({})).ok_or_else(GoogleError::cache_not_found)
    }

    /// The live cache `name`, for a `generateContent` request.
    pub(crate) fn lookup(&self, name: &str, now: SystemTime) -> Option<CacheRef> {
        let mut entries = lock(&self.entries);
        purge(&mut entries, now);
        entries.get(name).map(|e| CacheRef { model: e.model.clone(), tokens: e.tokens })
    }

    /// Forgets every cache (numbering continues).
    pub(crate) fn clear(&self) {
        lock(&self.entries).clear();
    }
}

/// `models/<id>` for `<id>` or `models/<id>`.
pub(crate) fn full_model(model: &str) -> String {
    if model.starts_with("models/") { model.to_owned() } else { format!("models/{model}") }
}

/// Tokens of a cache's contents and system instruction.
fn cache_tokens(turns: &[Turn], system: Option<&Turn>) -> u64 {
    content::prompt_tokens(turns, system)
}

/// The expiry a body asks for: `now + ttl`, or `expireTime`; `None` when it
/// names neither.
fn expiry(body: &Map<String, Value>, now: SystemTime) -> Result<Option<SystemTime>, GoogleError> {
    if let Some(ttl) = body.get("ttl").filter(|v| !v.is_null()) {
        let ttl = ttl.as_str().and_then(parse_duration);
        let ttl =
            ttl.ok_or_else(|| GoogleError::invalid_argument("Invalid value at 'cached_content.ttl' (Duration)"))?;
        return Ok(Some(now + ttl));
    }
    if let Some(at) = body.get("expireTime").filter(|v| !v.is_null()) {
        let at = at.as_str().and_then(parse_rfc3339);
        let at = at.ok_or_else(|| {
            GoogleError::invalid_argument("Invalid value at 'cached_content.expire_time' (Timestamp)")
        })?;
        return Ok(Some(at));
    }
    Ok(None)
}

fn purge(entries: &mut HashMap<String, Entry>, now: SystemTime) {
    entries.retain(|_, entry| entry.expires > now);
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn create(store: &CacheStore, ttl: &str) -> String {
        let body = json!({"model": "gemini-x", "contents": [{"role": "user", "parts": [{"text": "abcdefgh"}]}],
            "systemInstruction": {"parts": [{"text": "abcd"}]}, "ttl": ttl});
        let answer = store.create(&body, at(1000)).expect("created");
        assert_eq!(answer["model"], "models/gemini-x");
        assert_eq!(answer["usageMetadata"]["totalTokenCount"], (2 + 4) + (1 + 4));
        answer["name"].as_str().expect("name").to_owned()
    }

    #[test]
    fn lifecycle() {
        let store = CacheStore::default();
        let name = create(&store, "10s");
        assert_eq!(name, "cachedContents/mock-1");
        assert_eq!(store.get(&name, at(1005)).expect("live")["expireTime"], format_rfc3339(at(1010)));
        assert_eq!(store.lookup(&name, at(1009)), Some(CacheRef { model: "models/gemini-x".into(), tokens: 11 }));
        let updated = store.update(&name, &json!({"ttl": "20s"}), at(1009)).expect("updated");
        assert_eq!(updated["expireTime"], format_rfc3339(at(1029)));
        assert!(store.lookup(&name, at(1020)).is_some());
        assert_eq!(store.list(at(1020))["cachedContents"].as_array().map(Vec::len), Some(1));
        assert_eq!(store.delete(&name, at(1021)).expect("deleted"), json!({}));
        assert!(store.delete(&name, at(1021)).is_err());
    }

    #[test]
    fn expired_caches_are_gone() {
        let store = CacheStore::default();
        let name = create(&store, "1.5s");
        assert!(store.lookup(&name, at(1001)).is_some());
        assert!(store.lookup(&name, at(1002)).is_none());
        assert_eq!(store.update(&name, &json!({"ttl": "5s"}), at(1002)).map_err(|e| e.code.as_u16()), Err(403));
        assert_eq!(store.list(at(1002))["cachedContents"], json!([]));
    }

    #[test]
    fn validation() {
        let store = CacheStore::default();
        for bad in [
            json!([]),
            json!({"contents": [{"parts": [{"text": "x"}]}]}),
            json!({"model": "m"}),
            json!({"model": "m", "contents": [{"parts": [{"text": "x"}]}], "ttl": "soon"}),
            json!({"model": "m", "contents": [{"parts": [{"text": "x"}]}], "expireTime": "tomorrow"}),
        ] {
            assert!(store.create(&bad, at(0)).is_err(), "{bad}");
        }
        let body = json!({"model": "models/m", "contents": [{"parts": [{"text": "x"}]}],
            "expireTime": "1970-01-01T01:00:00Z"});
        assert_eq!(store.create(&body, at(0)).expect("created")["expireTime"], "1970-01-01T01:00:00.000Z");
        let name = "cachedContents/mock-1";
        assert!(store.update(name, &json!({}), at(0)).is_err());
        store.clear();
        assert!(store.lookup(name, at(0)).is_none());
    }
}
