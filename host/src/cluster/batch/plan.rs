//! Splitting the jobs file into chunks every host agrees on.
//!
//! One pass over the file gives its SHA-256 (the batch's name: a host with
//! another version of the file joins another batch, never this one) and a
//! byte range every `chunk_lines` lines. Ranges cut only at line ends, so a
//! host reads its chunk with one seek and parses whole lines.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::store::Range;

/// The jobs file as the cluster sees it.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// Hex SHA-256 of the whole file.
    pub digest: String,
    pub ranges: Vec<Range>,
}

/// Reads `path` once: its digest and its chunks of `chunk_lines` lines.
pub(super) fn plan(path: &Path, chunk_lines: u64) -> std::io::Result<Plan> {
    let file = std::fs::File::open(path)?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut hasher = Sha256::new();
    let mut ranges = Vec::new();
    let (mut offset, mut line, mut start, mut first_line, mut in_chunk) = (0u64, 0usize, 0u64, 1usize, 0u64);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf);
        offset += n as u64;
        line += 1;
        in_chunk += 1;
        if in_chunk >= chunk_lines.max(1) {
            ranges.push(Range { start, end: offset, first_line });
            start = offset;
            first_line = line + 1;
            in_chunk = 0;
        }
    }
    if in_chunk > 0 {
        ranges.push(Range { start, end: offset, first_line });
    }
    Ok(Plan { digest: hex::encode(hasher.finalize()), ranges })
}

/// The lines of one chunk: `(line number, text)`, blank lines included.
pub(super) fn read_range(path: &Path, range: Range) -> std::io::Result<Vec<(usize, String)>> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(range.start))?;
    let mut bytes = Vec::new();
    file.take(range.end.saturating_sub(range.start)).read_to_end(&mut bytes)?;
    let text = String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(text
        .split_inclusive('\n')
        .enumerate()
        .map(|(i, l)| (range.first_line + i, l.trim_end_matches(['\n', '\r']).to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_line_once_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jobs.jsonl");
        let text: String = (1..=10).map(|i| format!("line {i}\n")).collect::<String>() + "last without newline";
        std::fs::write(&path, &text).expect("write");
        let p = plan(&path, 4).expect("plan");
        assert_eq!(p.ranges.len(), 3);
        assert_eq!(p.digest, hex::encode(Sha256::digest(text.as_bytes())));
        let lines: Vec<(usize, String)> = p.ranges.iter().flat_map(|r| read_range(&path, *r).expect("read")).collect();
        assert_eq!(lines.len(), 11);
        assert_eq!(lines[0], (1, "line 1".into()));
        assert_eq!(lines[4], (5, "line 5".into()));
        assert_eq!(lines[10], (11, "last without newline".into()));
    }
}
