//! The results file's lines, plain or gzip-compressed.
//!
//! A results file whose name ends in `.gz` is written as a series of gzip
//! members, one per write (a batch of records), which is a valid gzip file:
//! `zcat`, `gzip -d`, Python's `gzip` and every `MultiGzDecoder` read the
//! members as one stream. Appending a member never touches the bytes
//! before it, so a `.gz` results file is a checkpoint like a plain one. A
//! crash can only tear the member being written; the decoder then meets the
//! end of the file inside that member, the complete lines before the tear
//! are kept (as for a plain file, where only the torn last line is lost)
//! and the file is rewritten whole. Damage anywhere else (a bad checksum,
//! bytes that are not gzip) is an error, never a silent cut.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Whether records at `path` are gzip-compressed: by the `.gz` extension.
pub fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// Raw text per gzip member when a file is written in one go (a rewrite):
/// large enough to compress well, small enough to keep members cheap to
/// read back.
const MEMBER: usize = 1 << 20;

/// A complete line that is not UTF-8 text, as the source of the
/// `io::Error` (kind `InvalidData`) [`for_each_line`] reports: a reader
/// that can name the line finds it with [`NotText::in_error`].
#[derive(Debug, thiserror::Error)]
#[error("line {line} is not UTF-8 text ({source})")]
pub struct NotText {
    pub line: usize,
    #[source]
    source: std::str::Utf8Error,
}

impl NotText {
    /// The line an `io::Error` from [`for_each_line`] is about, if any.
    pub fn in_error(error: &std::io::Error) -> Option<&NotText> {
        error.get_ref()?.downcast_ref::<NotText>()
    }
}

/// Calls `each(line number, text)` for every complete, non-blank line of
/// the results file at `path` (decompressed when it is `.gz`); returns
/// whether its end was torn (a last line without its newline, or a gzip
/// member cut short).
pub fn for_each_line<E>(
    path: &Path,
    io: impl Fn(std::io::Error) -> E,
    mut each: impl FnMut(usize, &str) -> Result<(), E>,
) -> Result<bool, E> {
    let file = std::fs::File::open(path).map_err(&io)?;
    // An empty file has no gzip header either: no lines, nothing torn.
    if file.metadata().map_err(&io)?.len() == 0 {
        return Ok(false);
    }
    let mut reader: Box<dyn BufRead> = if is_gzip(path) {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, file))
    };
    let mut line = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            // A gzip member cut short: a crash while it was written.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(true),
            Err(e) => return Err(io(e)),
        }
        line += 1;
        if !buf.ends_with(b"\n") {
            // The last line of a killed run: never counted, so cut it (as
            // bytes: the cut may have split a character).
            return Ok(true);
        }
        let text = std::str::from_utf8(&buf)
            .map_err(|source| io(std::io::Error::new(std::io::ErrorKind::InvalidData, NotText { line, source })))?;
        let text = text.trim_end_matches(['\n', '\r']);
        if !text.trim().is_empty() {
            each(line, text)?;
        }
    }
}

/// One gzip member holding `text`.
pub(super) fn gzip_member(text: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(text.len() / 4 + 64), flate2::Compression::default());
    gz.write_all(text)?;
    gz.finish()
}

/// A results file written in one go to a temporary file, then put in place
/// atomically (a rewrite after a resume dropped records, the input-order
/// sort). Compressed like the file it replaces.
pub(super) struct Replacement {
    target: PathBuf,
    tmp: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    gzip: bool,
    pending: Vec<u8>,
}

impl Replacement {
    /// Starts the replacement of `target`; `tag` names the temporary file.
    pub(super) fn create(target: &Path, tag: &str) -> std::io::Result<Self> {
        let tmp = target.with_extension(format!("{tag}-tmp{}", std::process::id()));
        let file = super::private_file().write(true).create(true).truncate(true).open(&tmp)?;
        Ok(Replacement {
            target: target.into(),
            tmp,
            out: std::io::BufWriter::new(file),
            gzip: is_gzip(target),
            pending: Vec::new(),
        })
    }

    /// Appends one line (`text` without its newline).
    pub(super) fn line(&mut self, text: &[u8]) -> std::io::Result<()> {
        if !self.gzip {
            self.out.write_all(text)?;
            return self.out.write_all(b"\n");
        }
        self.pending.extend_from_slice(text);
        self.pending.push(b'\n');
        if self.pending.len() >= MEMBER { self.flush_member() } else { Ok(()) }
    }

    fn flush_member(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            let member = gzip_member(&self.pending)?;
            self.out.write_all(&member)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Syncs the new file and renames it over the target.
    pub(super) fn commit(mut self) -> std::io::Result<()> {
        let flushed = self.flush_member();
        let Replacement { target, tmp, out, .. } = self;
        let result = flushed.and_then(|()| {
            let file = out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &target)
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Gives up: the target stays as it was.
    pub(super) fn abandon(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> (Vec<String>, bool) {
        let mut seen = Vec::new();
        let torn = for_each_line(
            path,
            |e| e,
            |_, t| {
                seen.push(t.to_string());
                Ok(())
            },
        )
        .expect("readable");
        (seen, torn)
    }

    #[test]
    fn plain_files_cut_only_a_torn_last_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "a\n\nb\r\nc").expect("write");
        assert_eq!(lines(&path), (vec!["a".to_string(), "b".into()], true));
        std::fs::write(&path, "a\n").expect("write");
        assert_eq!(lines(&path), (vec!["a".to_string()], false));
    }

    /// A kill can cut the last record inside a multi-byte character (an
    /// output in any language but English): a torn line like any other, not
    /// "stream did not contain valid UTF-8" for the whole resume.
    #[test]
    fn a_line_torn_inside_a_character_is_cut_and_a_whole_line_that_is_not_text_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.jsonl");
        let mut bytes = "a\n\u{e9}t\u{e9}".as_bytes().to_vec();
        bytes.pop();
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(lines(&path), (vec!["a".to_string()], true));
        std::fs::write(&path, b"a\n\xff\n").expect("write");
        let err = for_each_line(&path, |e| e, |_, _| Ok(())).expect_err("not text");
        assert!(err.to_string().contains("line 2 is not UTF-8 text"), "{err}");
    }

    #[test]
    fn gzip_members_read_as_one_stream_and_a_torn_member_keeps_its_complete_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.jsonl.gz");
        let mut bytes = gzip_member(b"a\nb\n").expect("gzip");
        bytes.extend(gzip_member(b"c\n").expect("gzip"));
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(lines(&path), (vec!["a".to_string(), "b".into(), "c".into()], false));
        // A third member cut at every possible byte: never an error, never a
        // partial line, the first two members always whole.
        let third = gzip_member(&b"d\n".repeat(2000)).expect("gzip");
        for cut in 1..third.len() {
            let mut torn = bytes.clone();
            torn.extend_from_slice(&third[..cut]);
            std::fs::write(&path, &torn).expect("write");
            let (seen, is_torn) = lines(&path);
            assert!(is_torn, "cut at {cut}");
            assert_eq!(&seen[..3], ["a", "b", "c"], "cut at {cut}");
            assert!(seen[3..].iter().all(|l| l == "d"), "cut at {cut}");
        }
        // An empty file has no lines.
        std::fs::write(&path, b"").expect("write");
        assert_eq!(lines(&path), (vec![], false));
    }

    #[test]
    fn damaged_gzip_is_an_error_not_a_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.jsonl.gz");
        let mut bytes = gzip_member(b"a\n").expect("gzip");
        bytes.extend_from_slice(b"not gzip at all\n");
        std::fs::write(&path, &bytes).expect("write");
        assert!(for_each_line(&path, |e| e, |_, _| Ok(())).is_err());
        let mut bad_crc = gzip_member(b"a\n").expect("gzip");
        let n = bad_crc.len();
        bad_crc[n - 6] ^= 0xff;
        std::fs::write(&path, &bad_crc).expect("write");
        assert!(for_each_line(&path, |e| e, |_, _| Ok(())).is_err());
    }

    #[test]
    fn replacements_are_compressed_like_their_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["r.jsonl", "r.jsonl.gz"] {
            let path = dir.path().join(name);
            std::fs::write(&path, "old\n").expect("write");
            let mut r = Replacement::create(&path, "test").expect("create");
            for i in 0..50_000 {
                r.line(format!("line {i}").as_bytes()).expect("line");
            }
            r.commit().expect("commit");
            let (seen, torn) = lines(&path);
            assert_eq!((seen.len(), torn), (50_000, false));
            assert_eq!(seen[49_999], "line 49999");
            let raw = std::fs::read(&path).expect("read");
            assert_eq!(raw.starts_with(&[0x1f, 0x8b]), name.ends_with(".gz"));
            let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
            assert_eq!(leftovers.len(), 1, "no temporary file left");
            std::fs::remove_file(&path).expect("rm");
        }
    }
}
