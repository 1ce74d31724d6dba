//! `--preserve-order`: the results file put in input order at the end.
//!
//! Records are always written as items finish, so a crash loses nothing and
//! workers never wait on a slow item ahead of them. When a run with
//! `--preserve-order` ends, the file is rewritten in input-line order: an
//! index of (line, offset, length) per record, 24 bytes each, then a copy in
//! that order to a temporary file that replaces the results atomically. A
//! crash during the rewrite leaves the completion-ordered file in place.

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::Deserialize;

use super::{ResultsError, create_private};

#[derive(Deserialize)]
struct LineOnly {
    batchllm: BlockLine,
}

#[derive(Deserialize)]
struct BlockLine {
    line: usize,
}

/// Rewrites the results file at `path` in input-line order.
pub fn sort_by_line(path: &Path) -> Result<(), ResultsError> {
    let io = |source| ResultsError::Io { path: path.into(), source };
    let mut index = Vec::new();
    let mut reader = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
    let mut offset = 0u64;
    let mut text = Vec::new();
    loop {
        text.clear();
        let n = reader.read_until(b'\n', &mut text).map_err(io)?;
        if n == 0 {
            break;
        }
        // Records this host wrote; anything else (even bytes that are not
        // UTF-8) keeps its place at the end.
        let line = serde_json::from_slice::<LineOnly>(text.trim_ascii_end()).map_or(usize::MAX, |l| l.batchllm.line);
        index.push((line, offset, n));
        offset += n as u64;
    }
    if index.windows(2).all(|w| w[0].0 <= w[1].0) {
        return Ok(());
    }
    index.sort_by_key(|&(line, offset, _)| (line, offset));
    let tmp = path.with_extension(format!("order-tmp{}", std::process::id()));
    let result = (|| {
        let mut source = reader.into_inner();
        let mut out = std::io::BufWriter::new(create_private(&tmp)?);
        let mut buf = Vec::new();
        for (_, offset, len) in index {
            buf.resize(len, 0);
            source.seek(SeekFrom::Start(offset))?;
            source.read_exact(&mut buf)?;
            if !buf.ends_with(b"\n") {
                buf.push(b'\n');
            }
            out.write_all(&buf)?;
        }
        let file = out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_records_by_input_line_and_keeps_every_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("results.jsonl");
        let lines = [
            r#"{"custom_id":"c","batchllm":{"line":3,"output":"three"}}"#,
            r#"{"custom_id":"a","batchllm":{"line":1,"output":"one"}}"#,
            r#"{"custom_id":"b","batchllm":{"line":2,"output":"two, with ünïcode"}}"#,
        ];
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        sort_by_line(&path).expect("sorted");
        let text = std::fs::read_to_string(&path).expect("read");
        let expected = [lines[1], lines[2], lines[0]].join("\n") + "\n";
        assert_eq!(text, expected);
        sort_by_line(&path).expect("already sorted: untouched");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), expected);
    }

    /// Bytes that are not UTF-8 used to stop the sort with "stream did not
    /// contain valid UTF-8"; they are a line like any line that is not a
    /// record: kept, at the end.
    #[test]
    fn a_line_that_is_not_utf8_keeps_its_bytes_at_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("results.jsonl");
        let mut bytes = b"{\"batchllm\":{\"line\":2}}\n\xff\xfe\n".to_vec();
        bytes.extend_from_slice(b"{\"batchllm\":{\"line\":1}}\n");
        std::fs::write(&path, &bytes).expect("write");
        sort_by_line(&path).expect("sorted");
        let expected = b"{\"batchllm\":{\"line\":1}}\n{\"batchllm\":{\"line\":2}}\n\xff\xfe\n".to_vec();
        assert_eq!(std::fs::read(&path).expect("read"), expected);
    }
}
