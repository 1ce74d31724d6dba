//! Part files: each claim of a chunk writes its records to its own file,
//! `<results>.parts/c<chunk>.e<epoch>.jsonl`, so a paused owner that wakes
//! up after a takeover writes only to a file nobody will use.
//!
//! A new owner *salvages* the earlier epochs' files: the complete records
//! there are kept (the newest epoch's record of an id wins: it was written
//! before anything of an older owner that woke up late), and every id in
//! the chunk's journal without a record becomes `outcome_unknown` (its
//! request may have been answered and billed; it is not sent again). Both
//! go first into the new epoch's file, which therefore holds every record
//! of the chunk once it is complete. The results file is the committed
//! epoch's file of every chunk, concatenated in chunk order.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::{ItemStatus, ResultRecord};

/// The folder of part files of `results`.
pub fn parts_dir(results: &Path) -> PathBuf {
    let mut name = results.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".parts");
    results.with_file_name(name)
}

/// The part file of one claim.
pub(super) fn part_file(dir: &Path, chunk: u32, epoch: u64) -> PathBuf {
    dir.join(format!("c{chunk:07}.e{epoch}.jsonl"))
}

#[derive(Deserialize)]
struct Head {
    custom_id: String,
}

/// The complete lines of `path` (a torn last line is left out).
fn complete_lines(path: &Path) -> std::io::Result<Vec<String>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut reader = std::io::BufReader::new(file);
    let mut lines = Vec::new();
    let mut buf = String::new();
    loop {
        buf.clear();
        if reader.read_line(&mut buf)? == 0 || !buf.ends_with('\n') {
            return Ok(lines);
        }
        lines.push(buf.trim_end_matches(['\n', '\r']).to_string());
    }
}

/// The records kept from earlier claims of a chunk: id -> line text.
pub(super) fn salvage(
    dir: &Path,
    chunk: u32,
    before: u64,
    ids: &HashSet<String>,
) -> std::io::Result<HashMap<String, String>> {
    let mut kept = HashMap::new();
    for epoch in (1..before).rev() {
        for line in complete_lines(&part_file(dir, chunk, epoch))? {
            let Ok(head) = serde_json::from_str::<Head>(&line) else { continue };
            if ids.contains(&head.custom_id) && !kept.contains_key(&head.custom_id) {
                kept.insert(head.custom_id, line);
            }
        }
    }
    Ok(kept)
}

/// Starts the part file of a claim with the salvaged lines and the
/// `outcome_unknown` records, synced before anything new is sent.
pub(super) fn start_part(path: &Path, kept: &[String], unknown: &[ResultRecord]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = crate::results::private_file().write(true).create(true).truncate(true).open(path)?;
    let mut out = std::io::BufWriter::new(file);
    for line in kept {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    for record in unknown {
        serde_json::to_writer(&mut out, record)?;
        out.write_all(b"\n")?;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// Why an item a host sent and did not record before it stopped ends
/// `outcome_unknown`.
pub(super) const IN_FLIGHT_ON_A_STOPPED_HOST: &str = "the host running this item stopped (or lost its claim) while the item's request was in flight; \
                      the provider may have answered (and billed) it, so it was not sent again";

/// What the merged results file holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Merged {
    pub records: u64,
    pub failed: u64,
}

#[derive(Deserialize)]
struct Status {
    batchllm: StatusBlock,
}

#[derive(Deserialize)]
struct StatusBlock {
    status: ItemStatus,
}

/// Writes `results` from the committed part file of every chunk, in chunk
/// order, atomically (temporary file, then rename). Every host may do it:
/// the committed epochs decide the content, so they all write the same.
pub(super) fn merge(results: &Path, chunks: u64, committed: &HashMap<u32, u64>) -> std::io::Result<Merged> {
    let dir = parts_dir(results);
    let tmp = results.with_extension(format!("merge-{}.tmp", std::process::id()));
    let file = crate::results::private_file().write(true).create(true).truncate(true).open(&tmp)?;
    let mut out = std::io::BufWriter::new(file);
    let mut merged = Merged::default();
    for chunk in 0..chunks {
        let chunk = u32::try_from(chunk).unwrap_or(u32::MAX);
        let epoch = committed
            .get(&chunk)
            .copied()
            .ok_or_else(|| std::io::Error::other(format!("chunk {chunk} has no committed part file")))?;
        for line in complete_lines(&part_file(&dir, chunk, epoch))? {
            if serde_json::from_str::<Status>(&line).is_ok_and(|s| s.batchllm.status == ItemStatus::Failed) {
                merged.failed += 1;
            }
            merged.records += 1;
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&tmp, results)?;
    Ok(merged)
}
