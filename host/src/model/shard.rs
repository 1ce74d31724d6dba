//! `--shard I/N`: the zero-infrastructure way to spread one batch over N
//! machines.
//!
//! Every host reads the whole jobs file from the shared location, validates
//! all of it (so a bad line stops every shard, not just one), and runs only
//! the lines whose id falls in its shard; each writes its own results file,
//! which is its checkpoint exactly as in a single-host run. No host talks to
//! another, so nothing can be shared either: a provider limit has to be
//! divided by hand (`--rpm LIMIT/N` on each), and a dead host's shard waits
//! until that host is run again. That is what `--cluster` adds.
//!
//! The split is by id, not by line number: the shard of an id is the first
//! 8 bytes of SHA-256(id), read as a big-endian integer, modulo N. Adding,
//! removing or reordering lines never moves an id to another shard, so a
//! host resumes its own results file after the input grew. `auto/N` takes
//! the index from `JOB_COMPLETION_INDEX`, the variable a Kubernetes Indexed
//! Job sets in each of its pods (see `examples/k8s-indexed-job.yaml`).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The variable a Kubernetes Indexed Job sets to the pod's index.
pub const INDEX_VAR: &str = "JOB_COMPLETION_INDEX";

/// Most shards: far more hosts than any provider limit makes useful.
pub const MAX_SHARDS: u32 = 100_000;

/// `--shard` as given: the index may still have to come from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    /// `None`: `auto`, read from [`INDEX_VAR`].
    pub index: Option<u32>,
    pub count: u32,
}

/// One shard of a batch: the ids whose hash is `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Why a `--shard` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error(
        "`{0}` is not I/N: write the shard's index and the number of shards, e.g. 0/4 (indexes start at 0), or auto/4 to read the index from {INDEX_VAR}"
    )]
    Syntax(String),
    #[error("`{given}`: the number of shards must be from 1 to {MAX_SHARDS}")]
    Count { given: String },
    #[error("`{given}`: the index must be below the number of shards (0 to {last})")]
    Index { given: String, last: u32 },
    #[error(
        "--shard auto/{count}: {INDEX_VAR} is not set; set it (a Kubernetes Indexed Job does) or give the index, e.g. --shard 0/{count}"
    )]
    NoIndex { count: u32 },
    #[error("--shard auto/{count}: {INDEX_VAR}={value} is not an index from 0 to {last}")]
    BadIndex { count: u32, value: String, last: u32 },
}

impl FromStr for ShardSpec {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, ShardError> {
        let given = s.trim();
        let (index, count) = given.split_once('/').ok_or_else(|| ShardError::Syntax(s.to_string()))?;
        let count: u32 = count.trim().parse().map_err(|_| ShardError::Syntax(s.to_string()))?;
        if !(1..=MAX_SHARDS).contains(&count) {
            return Err(ShardError::Count { given: s.to_string() });
        }
        let index = match index.trim() {
            "auto" => None,
            text => {
                let index: u32 = text.parse().map_err(|_| ShardError::Syntax(s.to_string()))?;
                if index >= count {
                    return Err(ShardError::Index { given: s.to_string(), last: count - 1 });
                }
                Some(index)
            }
        };
        Ok(ShardSpec { index, count })
    }
}

impl<'de> serde::Deserialize<'de> for ShardSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{i}/{}", self.count),
            None => write!(f, "auto/{}", self.count),
        }
    }
}

impl ShardSpec {
    /// The shard, reading an `auto` index through `env`.
    pub fn resolve(self, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
        let count = self.count;
        let index = match self.index {
            Some(i) => i,
            None => {
                let value = env(INDEX_VAR).ok_or(ShardError::NoIndex { count })?;
                match value.trim().parse::<u32>() {
                    Ok(i) if i < count => i,
                    _ => return Err(ShardError::BadIndex { count, value, last: count - 1 }),
                }
            }
        };
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether the item `id` belongs to this shard.
    pub fn contains(&self, id: &str) -> bool {
        self.count <= 1 || shard_of(id, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard of `id` among `count`: SHA-256(id)'s first 8 bytes, big-endian,
/// modulo `count` (stable across versions and machines: it is documented).
pub fn shard_of(id: &str, count: u32) -> u32 {
    let digest = Sha256::digest(id.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    let value = u64::from_be_bytes(head) % u64::from(count.max(1));
    u32::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_or_say_what_is_wrong() {
        assert_eq!("1/4".parse(), Ok(ShardSpec { index: Some(1), count: 4 }));
        assert_eq!(" auto/3 ".parse(), Ok(ShardSpec { index: None, count: 3 }));
        for bad in ["4", "a/4", "1/b", "-1/4", "1/-4", "", "/"] {
            let e = bad.parse::<ShardSpec>().expect_err(bad);
            assert!(matches!(e, ShardError::Syntax(_)), "{bad}: {e}");
            assert!(e.to_string().contains("e.g. 0/4"), "{e}");
        }
        assert!(matches!("0/0".parse::<ShardSpec>(), Err(ShardError::Count { .. })));
        assert!(matches!("0/100001".parse::<ShardSpec>(), Err(ShardError::Count { .. })));
        let e = "4/4".parse::<ShardSpec>().expect_err("index too big");
        assert!(e.to_string().contains("0 to 3"), "{e}");
        assert_eq!("auto/2".parse::<ShardSpec>().map(|s| s.to_string()), Ok("auto/2".into()));
    }

    #[test]
    fn auto_reads_the_kubernetes_index() {
        let spec: ShardSpec = "auto/3".parse().expect("spec");
        let env = |v: &'static str| move |name: &str| (name == INDEX_VAR).then(|| v.to_string());
        assert_eq!(spec.resolve(&env("2")), Ok(Shard { index: 2, count: 3 }));
        assert!(matches!(spec.resolve(&env("3")), Err(ShardError::BadIndex { .. })));
        assert!(matches!(spec.resolve(&env("x")), Err(ShardError::BadIndex { .. })));
        let e = spec.resolve(&|_| None).expect_err("unset");
        assert!(e.to_string().contains("JOB_COMPLETION_INDEX is not set"), "{e}");
    }

    #[test]
    fn every_id_is_in_exactly_one_shard_and_shards_are_balanced() {
        let count = 4;
        let shards: Vec<Shard> = (0..count).map(|index| Shard { index, count }).collect();
        let mut sizes = [0usize; 4];
        for i in 0..40_000 {
            let id = format!("item-{i}");
            let owners: Vec<_> = shards.iter().filter(|s| s.contains(&id)).collect();
            assert_eq!(owners.len(), 1, "{id}");
            sizes[owners[0].index as usize] += 1;
        }
        assert!(sizes.iter().all(|&n| (9_500..10_500).contains(&n)), "{sizes:?}");
        // The documented function, pinned: another version must agree.
        assert_eq!(u64::from(shard_of("a", 1_000_000)), 0xca97_8112_ca1b_bdca_u64 % 1_000_000);
        assert!(Shard { index: 0, count: 1 }.contains("anything"));
    }
}
