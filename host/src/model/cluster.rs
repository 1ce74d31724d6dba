//! The values of a `--cluster` run: where the hosts meet and how they
//! split the batch. They live in the vocabulary (not in `cluster`) because
//! a run's configuration carries them and the engine must not reach up
//! into the front end that acts on them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// `--cluster URL`: where the hosts of a cluster meet.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterUrl(String);

impl ClusterUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The URL without its password.
impl fmt::Debug for ClusterUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match redis::parse_redis_url(&self.0) {
            Some(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                write!(f, "{url}")
            }
            _ => f.write_str(&self.0),
        }
    }
}

impl FromStr for ClusterUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let fix = "write redis://HOST[:PORT][/DB], e.g. redis://10.0.0.5:6379/0";
        let Some(url) = redis::parse_redis_url(s) else {
            return Err(format!("`{s}` is not a Redis URL; {fix}"));
        };
        if url.scheme() != "redis" {
            return Err(format!("`{s}`: only redis:// is supported (no TLS in this build); {fix}"));
        }
        redis::Client::open(s).map_err(|e| format!("`{s}`: {e}; {fix}"))?;
        Ok(ClusterUrl(s.to_string()))
    }
}

impl<'de> serde::Deserialize<'de> for ClusterUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// How this host takes part in a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub url: ClusterUrl,
    /// A claim not renewed for this long is taken over.
    pub lease: Duration,
    /// Input lines per chunk.
    pub chunk_lines: u64,
}
