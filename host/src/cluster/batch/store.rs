//! The batch's state in Redis: the chunk queue (a stream with one consumer
//! group), each chunk's lease epoch, its in-flight journal and the set of
//! committed chunks, each changed by one script so that the epoch check and
//! the write it guards are one step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::cluster::tick::{Request, TickError, Ticker};

/// A chunk of the jobs file: whole lines, by byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Range {
    pub start: u64,
    pub end: u64,
    /// Line number of the first line (from 1).
    pub first_line: usize,
}

/// A chunk this host now holds.
#[derive(Debug, Clone)]
pub(super) struct Claim {
    pub chunk: u32,
    pub epoch: u64,
    /// The stream entry (for the heartbeat and the final XACK).
    pub entry: String,
    pub range: Range,
    /// Ids an owner of this chunk sent and may not have recorded (id -> epoch).
    pub journal: HashMap<String, u64>,
}

/// What a claim found.
#[derive(Debug)]
pub(super) enum Claimed {
    Chunk(Claim),
    /// Nothing to claim now: `done` of `chunks` are committed.
    Nothing {
        done: u64,
        chunks: u64,
    },
    /// A stale entry was cleared: ask again.
    Again,
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum StoreError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis: {0}")]
    Tick(#[from] TickError),
    #[error("unexpected reply from the batch script: {0:?}")]
    Reply(Vec<String>),
    #[error(
        "this batch already exists in Redis with chunks of {theirs} lines, and this host was started with --cluster-chunk {ours}; start every host with the same options"
    )]
    ChunkSize { ours: u64, theirs: u64 },
}

#[derive(Clone)]
struct Scripts {
    init: Arc<redis::Script>,
    claim: Arc<redis::Script>,
    renew: Arc<redis::Script>,
    commit: Arc<redis::Script>,
}

/// One batch's keys in Redis.
#[derive(Clone)]
pub(super) struct BatchStore {
    conn: ConnectionManager,
    /// The batch's key prefix (its journal's too).
    prefix: Arc<str>,
    /// This host's name in the consumer group.
    consumer: String,
    scripts: Scripts,
    /// The journal's writes go with the limiter's, one round trip a tick.
    ticker: Arc<Ticker>,
}

impl std::fmt::Debug for BatchStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchStore").field("prefix", &self.prefix).field("consumer", &self.consumer).finish()
    }
}

fn reply_err(reply: Vec<String>) -> StoreError {
    StoreError::Reply(reply)
}

impl BatchStore {
    pub(super) fn new(conn: ConnectionManager, ticker: Arc<Ticker>, batch: &str, consumer: String) -> Self {
        let script = |body: &str| Arc::new(redis::Script::new(body));
        BatchStore {
            conn,
            prefix: format!("batchllm:batch:{batch}").into(),
            consumer,
            ticker,
            scripts: Scripts {
                init: script(include_str!("batch_init.lua")),
                claim: script(include_str!("batch_claim.lua")),
                renew: script(include_str!("batch_renew.lua")),
                commit: script(include_str!("batch_commit.lua")),
            },
        }
    }

    pub(super) fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Creates the batch unless another host did; returns the number of chunks.
    pub(super) async fn init(&self, chunk_lines: u64, jobs: usize, ranges: &[Range]) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let mut call = self.scripts.init.key(&*self.prefix);
        call.arg(chunk_lines).arg(jobs).arg(ranges.len());
        for r in ranges {
            call.arg(r.start).arg(r.end).arg(r.first_line);
        }
        let reply: Vec<String> = call.invoke_async(&mut conn).await?;
        let number = |i: usize| reply.get(i).and_then(|t| t.parse::<u64>().ok());
        match (reply.first().map(String::as_str), number(1), number(2)) {
            (Some("created" | "exists"), Some(chunks), Some(theirs)) => {
                if theirs != chunk_lines {
                    return Err(StoreError::ChunkSize { ours: chunk_lines, theirs });
                }
                Ok(chunks)
            }
            _ => Err(reply_err(reply)),
        }
    }

    /// Claims the next chunk (new, or taken over after `lease`).
    pub(super) async fn claim(&self, lease: Duration) -> Result<Claimed, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .scripts
            .claim
            .key(&*self.prefix)
            .arg(&self.consumer)
            .arg(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut conn)
            .await?;
        let number = |i: usize| reply.get(i).and_then(|t| t.parse::<u64>().ok());
        match reply.first().map(String::as_str) {
            Some("none") => match (number(1), number(2)) {
                (Some(done), Some(chunks)) => Ok(Claimed::Nothing { done, chunks }),
                _ => Err(reply_err(reply)),
            },
            Some("again") => Ok(Claimed::Again),
            Some("claimed") => {
                let chunk = number(1).and_then(|c| u32::try_from(c).ok());
                let epoch = number(2);
                let entry = reply.get(3).cloned();
                let range = reply.get(4).and_then(|r| parse_range(r));
                let (Some(chunk), Some(epoch), Some(entry), Some(range)) = (chunk, epoch, entry, range) else {
                    return Err(reply_err(reply));
                };
                let journal = reply
                    .get(5..)
                    .unwrap_or_default()
                    .chunks(2)
                    .filter_map(|kv| match kv {
                        [id, e] => Some((id.clone(), e.parse().unwrap_or(0))),
                        _ => None,
                    })
                    .collect();
                Ok(Claimed::Chunk(Claim { chunk, epoch, entry, range, journal }))
            }
            _ => Err(reply_err(reply)),
        }
    }

    /// Restarts the leases of `held` (chunk, epoch, entry); returns the
    /// chunks taken over meanwhile.
    pub(super) async fn renew(&self, held: &[(u32, u64, String)]) -> Result<Vec<u32>, StoreError> {
        let mut conn = self.conn.clone();
        let mut call = self.scripts.renew.key(&*self.prefix);
        call.arg(&self.consumer);
        for (chunk, epoch, entry) in held {
            call.arg(*chunk).arg(*epoch).arg(entry);
        }
        let lost: Vec<String> = call.invoke_async(&mut conn).await?;
        Ok(lost.iter().filter_map(|c| c.parse().ok()).collect())
    }

    /// Notes `id` as sent (`start`) or answered (`settle`) under `epoch`;
    /// `Ok(false)` when the chunk was taken over. Sent with the next tick
    /// (with the other entries of the claim): the answer comes once the
    /// entry is durable.
    pub(super) async fn journal(&self, start: bool, chunk: u32, epoch: u64, id: &str) -> Result<bool, StoreError> {
        let request = Request::Journal { prefix: self.prefix.clone(), start, chunk, epoch, id: id.into() };
        let reply = self.ticker.call(request).await?;
        match reply.as_str() {
            "ok" => Ok(true),
            "fenced" => Ok(false),
            _ => Err(reply_err(vec![reply])),
        }
    }

    /// Commits a chunk whose records are durable; `Ok(None)` when it was
    /// taken over (the commit is refused), else `(done, chunks)`.
    pub(super) async fn commit(&self, chunk: u32, epoch: u64, entry: &str) -> Result<Option<(u64, u64)>, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> =
            self.scripts.commit.key(&*self.prefix).arg(chunk).arg(epoch).arg(entry).invoke_async(&mut conn).await?;
        let number = |i: usize| reply.get(i).and_then(|t| t.parse::<u64>().ok());
        match (reply.first().map(String::as_str), number(1), number(2)) {
            (Some("fenced"), _, _) => Ok(None),
            (Some("ok"), Some(done), Some(chunks)) => Ok(Some((done, chunks))),
            _ => Err(reply_err(reply)),
        }
    }

    /// The committed epoch of every chunk (for the merge).
    pub(super) async fn committed(&self) -> Result<HashMap<u32, u64>, StoreError> {
        let mut conn = self.conn.clone();
        let map: HashMap<String, String> =
            redis::cmd("HGETALL").arg(format!("{}:committed", self.prefix)).query_async(&mut conn).await?;
        Ok(map.into_iter().filter_map(|(c, e)| Some((c.parse().ok()?, e.parse().ok()?))).collect())
    }
}

fn parse_range(text: &str) -> Option<Range> {
    let mut parts = text.split(':');
    let start = parts.next()?.parse().ok()?;
    let end = parts.next()?.parse().ok()?;
    let first_line = parts.next()?.parse().ok()?;
    Some(Range { start, end, first_line })
}
