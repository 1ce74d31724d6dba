//! What this host holds: the chunks it claimed, the items of each it still
//! owes a record, and where each record goes.
//!
//! One table, shared by the claimer (which registers a claim and queues its
//! items), the workers (through the fenced journal: an item is sent only
//! while its chunk is held at the current epoch), the sink (which writes
//! each record to its claim's part file and, when a claim owes nothing
//! more, hands it to the committer) and the heartbeat (which learns of
//! takeovers). A chunk this host lost is never committed by it; records
//! that still arrive for it go to that claim's own part file, which the new
//! owner's salvage may use and the merge never does.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::store::{BatchStore, Claim};
use crate::model::ResultRecord;
use crate::results::ResultsError;
use crate::run::engine::{JournalError, RecordSink, SharedJournal};

/// How long a journal write waits for an unreachable Redis before the item
/// is given up here (its chunk is then left to be taken over).
const JOURNAL_PATIENCE: Duration = Duration::from_secs(30);

/// Appends records to one claim's part file.
#[derive(Debug)]
pub(super) struct PartWriter {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    fsync: bool,
}

impl PartWriter {
    /// Opens a part file (already started by `parts::start_part`) for appending.
    pub(super) fn open(path: PathBuf, fsync: bool) -> std::io::Result<Self> {
        let file = crate::results::private_file().append(true).open(&path)?;
        Ok(PartWriter { path, out: std::io::BufWriter::new(file), fsync })
    }

    fn write(&mut self, records: &[&ResultRecord]) -> Result<(), ResultsError> {
        let io = |source| ResultsError::Io { path: self.path.clone(), source };
        let mut lines = Vec::with_capacity(records.len() * 1024);
        for record in records {
            serde_json::to_writer(&mut lines, record).map_err(|e| io(std::io::Error::other(e)))?;
            lines.push(b'\n');
        }
        self.out.write_all(&lines).map_err(io)?;
        self.out.flush().map_err(io)?;
        if self.fsync {
            self.out.get_ref().sync_data().map_err(io)?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), ResultsError> {
        let io = |source| ResultsError::Io { path: self.path.clone(), source };
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_all().map_err(io)
    }
}

/// A chunk whose records are all durable, for the committer.
#[derive(Debug, Clone)]
pub(super) struct Commit {
    pub chunk: u32,
    pub epoch: u64,
    pub entry: String,
}

/// One claim held by this host.
#[derive(Debug)]
struct Held {
    epoch: u64,
    entry: String,
    writer: PartWriter,
    /// Ids whose record this claim still owes.
    expected: HashSet<String>,
    /// Taken over (or given up): never committed by this host.
    lost: bool,
}

#[derive(Debug, Default)]
struct Table {
    /// The current claim of each chunk this host holds.
    current: HashMap<u32, Held>,
    /// Part files of claims this host lost, for records still on their way.
    stale: HashMap<(u32, u64), PartWriter>,
    /// Items queued or running here: their chunk and the epoch they were
    /// last journaled under.
    owner: HashMap<String, (u32, u64)>,
}

/// The table and the ways out of it.
#[derive(Debug)]
pub(super) struct Chunks {
    table: Mutex<Table>,
    pub store: BatchStore,
    commits: mpsc::UnboundedSender<Commit>,
    /// Items this host recorded `outcome_unknown` when it took a chunk over.
    pub unknown: std::sync::atomic::AtomicU64,
    /// Commits handed to the committer and not yet done.
    pub pending: std::sync::atomic::AtomicU64,
}

impl Chunks {
    pub(super) fn new(store: BatchStore) -> (Arc<Self>, mpsc::UnboundedReceiver<Commit>) {
        let (commits, rx) = mpsc::unbounded_channel();
        let unknown = std::sync::atomic::AtomicU64::new(0);
        let pending = std::sync::atomic::AtomicU64::new(0);
        (Arc::new(Chunks { table: Mutex::new(Table::default()), store, commits, unknown, pending }), rx)
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a claim owing records for `expected`; returns the ids to
    /// queue (an id still queued here from an earlier claim of the chunk is
    /// not queued twice: it runs under this claim).
    pub(super) fn hold(&self, claim: &Claim, writer: PartWriter, expected: Vec<String>) -> Vec<String> {
        let mut table = self.lock();
        let to_queue: Vec<String> = expected.iter().filter(|id| !table.owner.contains_key(*id)).cloned().collect();
        for id in &to_queue {
            table.owner.insert(id.clone(), (claim.chunk, claim.epoch));
        }
        let held = Held {
            epoch: claim.epoch,
            entry: claim.entry.clone(),
            writer,
            expected: expected.into_iter().collect(),
            lost: false,
        };
        let done = held.expected.is_empty();
        if let Some(old) = table.current.insert(claim.chunk, held) {
            table.stale.insert((claim.chunk, old.epoch), old.writer);
        }
        if done {
            self.complete(&mut table, claim.chunk);
        }
        to_queue
    }

    /// The claims to keep alive.
    pub(super) fn held(&self) -> Vec<(u32, u64, String)> {
        self.lock().current.iter().filter(|(_, h)| !h.lost).map(|(c, h)| (*c, h.epoch, h.entry.clone())).collect()
    }

    /// Marks a chunk as no longer this host's (taken over, or given up).
    pub(super) fn lose(&self, chunk: u32) {
        if let Some(held) = self.lock().current.get_mut(&chunk)
            && !held.lost
        {
            held.lost = true;
            tracing::warn!(chunk, "this host no longer holds the chunk: its items are not sent here");
        }
    }

    /// The claim under which `id` may be sent now, if any.
    fn sendable(&self, id: &str) -> Option<(u32, u64)> {
        let table = self.lock();
        let (chunk, _) = *table.owner.get(id)?;
        let held = table.current.get(&chunk)?;
        (!held.lost && held.expected.contains(id)).then_some((chunk, held.epoch))
    }

    fn journaled(&self, id: &str, chunk: u32, epoch: u64) {
        if let Some(owner) = self.lock().owner.get_mut(id) {
            *owner = (chunk, epoch);
        }
    }

    fn forget(&self, id: &str) {
        self.lock().owner.remove(id);
    }

    /// Syncs a claim that owes nothing more and hands it to the committer.
    fn complete(&self, table: &mut Table, chunk: u32) {
        let Some(mut held) = table.current.remove(&chunk) else { return };
        if held.lost {
            table.current.insert(chunk, held);
            return;
        }
        match held.writer.sync() {
            Ok(()) => {
                self.pending.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if self.commits.send(Commit { chunk, epoch: held.epoch, entry: held.entry }).is_err() {
                    self.pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
            Err(e) => tracing::error!(chunk, error = %e, "cannot sync the chunk's part file; it will be taken over"),
        }
    }

    /// Writes records to their claims' part files.
    fn write(&self, records: &[ResultRecord]) -> Result<(), ResultsError> {
        let mut table = self.lock();
        let mut by_claim: HashMap<(u32, u64), Vec<&ResultRecord>> = HashMap::new();
        for record in records {
            match table.owner.remove(&record.custom_id) {
                Some(claim) => by_claim.entry(claim).or_default().push(record),
                None => tracing::warn!(item = %record.custom_id, "a record for an item this host does not hold"),
            }
        }
        for ((chunk, epoch), records) in by_claim {
            let table = &mut *table;
            let current = table.current.get_mut(&chunk).filter(|h| h.epoch == epoch);
            match current {
                Some(held) => {
                    held.writer.write(&records)?;
                    for r in &records {
                        held.expected.remove(&r.custom_id);
                    }
                    if held.expected.is_empty() && !held.lost {
                        self.complete(table, chunk);
                    }
                }
                None => match table.stale.get_mut(&(chunk, epoch)) {
                    Some(writer) => writer.write(&records)?,
                    // A claim lost and already replaced here: its queued
                    // items ran under the new claim; nothing else can land.
                    None => tracing::warn!(chunk, epoch, "records for a claim this host no longer has"),
                },
            }
        }
        Ok(())
    }
}

/// The sink's end: records into part files.
#[derive(Debug)]
pub(super) struct ChunkSink(pub Arc<Chunks>);

impl RecordSink for ChunkSink {
    fn write_all(&mut self, records: &[ResultRecord]) -> Result<(), ResultsError> {
        self.0.write(records)
    }
}

/// The in-flight journal of a chunk, in Redis, fenced by the claim's epoch.
#[derive(Debug)]
pub(super) struct ClusterJournal(pub Arc<Chunks>);

impl ClusterJournal {
    async fn note(&self, start: bool, id: &str) -> Result<(), JournalError> {
        let chunks = &self.0;
        let Some((chunk, epoch)) = chunks.sendable(id) else {
            chunks.forget(id);
            return Err(JournalError::Refused("its chunk is no longer held by this host".into()));
        };
        let started = tokio::time::Instant::now();
        loop {
            match chunks.store.journal(start, chunk, epoch, id).await {
                Ok(true) => {
                    chunks.journaled(id, chunk, epoch);
                    return Ok(());
                }
                Ok(false) => {
                    chunks.lose(chunk);
                    chunks.forget(id);
                    return Err(JournalError::Refused("its chunk was taken over by another host".into()));
                }
                Err(e) if started.elapsed() < JOURNAL_PATIENCE => {
                    tracing::warn!(error = %e, "waiting for Redis to journal an item (nothing is sent before)");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => {
                    // Given up here; the chunk is left to be taken over.
                    chunks.lose(chunk);
                    chunks.forget(id);
                    return Err(JournalError::Refused(format!("Redis did not answer: {e}")));
                }
            }
        }
    }
}

impl SharedJournal for ClusterJournal {
    fn started<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(self.note(true, id))
    }

    fn settled<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            // Best effort: an item whose settle is lost ends outcome_unknown
            // if its host dies while it waits, never sent twice.
            let _ = self.note(false, id).await;
            Ok(())
        })
    }
}
