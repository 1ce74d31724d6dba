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

use super::lines::Replacement;
use super::{ResultsError, create_private};

#[derive(Deserialize)]
struct LineOnly {
    batchllm: BlockLine,
}

#[derive(Deserialize)]
struct BlockLine {
    line: usize,
}

/// Rewrites the results file at `path` in input-line order. A `.gz` file
/// is first decompressed next to itself (the index needs offsets into plain
/// text), then written back compressed.
pub fn sort_by_line(path: &Path) -> Result<(), ResultsError> {
    let io = |source| ResultsError::Io { path: path.into(), source };
    if !super::is_gzip(path) {
        return sort_into(path, path).map_err(io);
    }
    let plain = path.with_extension(format!("order-plain{}", std::process::id()));
    let result = (|| {
        let mut out = std::io::BufWriter::new(create_private(&plain)?);
        super::for_each_line(
            path,
            |e| e,
            |_, text| {
                out.write_all(text.as_bytes())?;
                out.write_all(b"\n")
            },
        )?;
        out.flush()?;
        drop(out);
        sort_into(&plain, path)
    })();
    let _ = std::fs::remove_file(&plain);
    result.map_err(io)
}

/// Writes the records of the plain file `source` to `target` (compressed
/// when its name says so) in input-line order; nothing when already sorted.
fn sort_into(source: &Path, target: &Path) -> std::io::Result<()> {
    let mut index = Vec::new();
    let mut reader = std::io::BufReader::new(std::fs::File::open(source)?);
    let mut offset = 0u64;
    let mut text = String::new();
    loop {
        text.clear();
        let n = reader.read_line(&mut text)?;
        if n == 0 {
            break;
        }
        // Records this host wrote; anything else keeps its place at the end.
        let line = serde_json::from_str::<LineOnly>(text.trim_end()).map_or(usize::MAX, |l| l.batchllm.line);
        index.push((line, offset, n));
        offset += n as u64;
    }
    if index.windows(2).all(|w| w[0].0 <= w[1].0) {
        return Ok(());
    }
    index.sort_by_key(|&(line, offset, _)| (line, offset));
    let mut source = reader.into_inner();
    let mut out = Replacement::create(target, "order")?;
    let mut buf = Vec::new();
    let copied = (|| {
        for (_, offset, len) in index {
            buf.resize(len, 0);
            source.seek(SeekFrom::Start(offset))?;
            source.read_exact(&mut buf)?;
            while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                buf.pop();
            }
            out.line(&buf)?;
        }
        Ok(())
    })();
    match copied {
        Ok(()) => out.commit(),
        Err(e) => {
            out.abandon();
            Err(e)
        }
    }
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

    #[test]
    fn a_gzip_file_is_sorted_and_stays_compressed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("results.jsonl.gz");
        let mut bytes = Vec::new();
        for n in [3, 1, 2] {
            let line = format!("{{\"custom_id\":\"{n}\",\"batchllm\":{{\"line\":{n}}}}}\n");
            bytes.extend(super::super::lines::gzip_member(line.as_bytes()).expect("gzip"));
        }
        std::fs::write(&path, &bytes).expect("write");
        sort_by_line(&path).expect("sorted");
        let mut lines = Vec::new();
        crate::results::for_each_line(
            &path,
            |e| e,
            |_, t| {
                lines.push(t.to_string());
                Ok(())
            },
        )
        .expect("read");
        let ids: Vec<String> = lines
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["custom_id"].to_string())
            .collect();
        assert_eq!(ids, ["\"1\"", "\"2\"", "\"3\""]);
        assert_eq!(std::fs::read(&path).expect("read")[..2], [0x1f, 0x8b]);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1, "no temporary file left");
    }
}
