//! The in-flight journal: which items have been sent, so a crash never
//! sends a paid request twice.
//!
//! Before an item's first request the host appends its id to
//! `<results>.inflight`. An item with a journal entry but no record when a
//! run resumes was in flight when the process died: the provider may have
//! answered (and billed) it. Such items end as `outcome_unknown` records
//! instead of being sent again (at-most-once); `--retry-failed` sends them
//! again when the user decides a second charge is acceptable. An item whose
//! attempt got a definite answer and that waits to be tried again is noted
//! as *settled* (`{"settled": id}`), so a crash while it waits does not
//! make it `outcome_unknown`: the next `"id"` line puts it back on the wire.
//! A run that finishes (or stops cleanly) leaves no journal behind.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::ResultsError;

/// The journal file of a results file.
pub fn journal_path(results: &Path) -> PathBuf {
    let mut name = results.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".inflight");
    results.with_file_name(name)
}

/// A settle marker: the item is off the wire with a definite answer.
#[derive(serde::Serialize, serde::Deserialize)]
struct Settled<'a> {
    #[serde(borrow)]
    settled: std::borrow::Cow<'a, str>,
}

/// Ids on the wire per the journal at `path`: started and not settled since
/// (a torn last line is ignored).
pub fn read_journal(path: &Path) -> std::io::Result<HashSet<String>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(e),
    };
    let mut ids = HashSet::new();
    // Bytes per line: a torn last line may end inside a character.
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line?;
        if let Ok(id) = serde_json::from_slice::<String>(&line) {
            ids.insert(id);
        } else if let Ok(s) = serde_json::from_slice::<Settled<'_>>(&line) {
            ids.remove(s.settled.as_ref());
        }
    }
    Ok(ids)
}

/// Appends ids of items about to be sent.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    out: Mutex<std::io::BufWriter<std::fs::File>>,
    fsync: bool,
}

impl Journal {
    /// Starts an empty journal for `results`.
    pub fn create(results: &Path, fsync: bool) -> Result<Self, ResultsError> {
        let path = journal_path(results);
        let io = |source| ResultsError::Io { path: path.clone(), source };
        let file = super::create_private(&path).map_err(io)?;
        Ok(Journal { path: path.clone(), out: Mutex::new(std::io::BufWriter::new(file)), fsync })
    }

    /// Records that `id` is about to be sent; returns once it is written.
    pub fn started(&self, id: &str) -> Result<(), ResultsError> {
        self.append(&id)
    }

    /// Records that `id` got a definite answer and is off the wire.
    pub fn settled(&self, id: &str) -> Result<(), ResultsError> {
        self.append(&Settled { settled: id.into() })
    }

    fn append(&self, entry: &impl serde::Serialize) -> Result<(), ResultsError> {
        let io = |source| ResultsError::Io { path: self.path.clone(), source };
        let mut line = serde_json::to_vec(entry).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        out.write_all(&line).map_err(io)?;
        out.flush().map_err(io)?;
        if self.fsync {
            out.get_ref().sync_data().map_err(io)?;
        }
        Ok(())
    }

    /// Removes the journal: every started item has its record.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_started_ids_and_reads_them_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let results = dir.path().join("results.jsonl");
        assert_eq!(journal_path(&results), dir.path().join("results.jsonl.inflight"));
        let j = Journal::create(&results, false).expect("create");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(journal_path(&results)).expect("meta").permissions().mode() & 0o077;
            assert_eq!(mode, 0, "the journal holds item ids: owner only");
        }
        j.started("a").expect("write");
        j.started("b \"quoted\"").expect("write");
        let ids = read_journal(&journal_path(&results)).expect("read");
        assert!(ids.contains("a") && ids.contains("b \"quoted\""));
        // A torn last line from a crash is ignored.
        std::fs::OpenOptions::new()
            .append(true)
            .open(journal_path(&results))
            .expect("open")
            .write_all(b"\"c")
            .expect("write");
        assert_eq!(read_journal(&journal_path(&results)).expect("read").len(), 2);
        j.remove();
        assert!(read_journal(&journal_path(&results)).expect("read").is_empty());
    }

    /// A crash can tear the last entry inside a multi-byte character of
    /// an id: that entry is ignored like any torn one, and the journal
    /// still reads (it used to fail the whole resume as "not UTF-8").
    #[test]
    fn a_torn_entry_cut_inside_a_character_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let results = dir.path().join("results.jsonl");
        let j = Journal::create(&results, false).expect("create");
        j.started("a").expect("write");
        let mut file = std::fs::OpenOptions::new().append(true).open(journal_path(&results)).expect("open");
        file.write_all(&"\"\u{e9}t\u{e9}\"".as_bytes()[..2]).expect("write");
        let ids = read_journal(&journal_path(&results)).expect("read");
        assert_eq!(ids, HashSet::from(["a".to_string()]));
    }

    #[test]
    fn a_settled_item_is_off_the_wire_until_it_starts_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let results = dir.path().join("results.jsonl");
        let j = Journal::create(&results, false).expect("create");
        j.started("a").expect("write");
        j.started("b").expect("write");
        j.settled("a").expect("write");
        j.settled("b").expect("write");
        j.started("b").expect("write");
        let ids = read_journal(&journal_path(&results)).expect("read");
        assert_eq!(ids, HashSet::from(["b".to_string()]));
    }
}
