//! The spool: the validated jobs, as the run reads them back.
//!
//! The input is read once. The pass that validates every line (before
//! anything is sent) also writes each valid job here, already parsed, so
//! the run neither needs the input a second time (a pipe or stdin can only
//! be read once; a file may change meanwhile) nor parses it again. Jobs a
//! resume keeps are written as their line and id only: the duplicate-id
//! check reads those back too.
//!
//! The format is private to one run: a tag byte, then fields, each number
//! and length an unsigned LEB128 varint (a line number or a short text's
//! length takes one to three bytes).
//! Measured on 1,000,000 simple jobs, writing it costs less than the second
//! parse of the input it replaces (see the README's "Input and output").
//! The file sits next to the results (`<results>.spool`), is readable only
//! by its owner (it holds prompts), and is removed when the run ends.

use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::value::RawValue;

use crate::model::{Job, Params};

/// The spool file of a results file.
pub fn spool_path(results: &Path) -> PathBuf {
    let mut name = results.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".spool");
    results.with_file_name(name)
}

/// Entry tags.
const KEPT: u8 = 0;
const RUN: u8 = 1;

/// Writes the spool during the validation pass.
pub struct SpoolWriter {
    path: PathBuf,
    out: BufWriter<std::fs::File>,
    /// Entries written with a job to run.
    to_run: u64,
    buf: Vec<u8>,
    /// Handed over as a [`Spool`]: not removed when the writer is dropped.
    finished: bool,
}

/// Options that create the spool readable by its owner only: it holds the
/// prompts. (The same rule as the results file's; kept here so the input
/// layer needs nothing above the vocabulary.)
fn private_file() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

impl Drop for SpoolWriter {
    /// A pass that ended early (an error, a stop) leaves no spool behind.
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl SpoolWriter {
    /// Creates (or truncates) the spool at `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = private_file().read(true).write(true).create(true).truncate(true).open(path)?;
        Ok(SpoolWriter {
            path: path.into(),
            out: BufWriter::with_capacity(1 << 16, file),
            to_run: 0,
            buf: Vec::new(),
            finished: false,
        })
    }

    /// A spool under `dir` with a fresh random name, created exclusively
    /// (a shared temporary folder may hold a planted file or link).
    pub fn create_temp(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join(format!("batchllm-host-{}-{:016x}.spool", std::process::id(), rand::random::<u64>()));
        let file = private_file().read(true).write(true).create_new(true).open(&path)?;
        Ok(SpoolWriter {
            path,
            out: BufWriter::with_capacity(1 << 16, file),
            to_run: 0,
            buf: Vec::new(),
            finished: false,
        })
    }

    /// A job the run will send.
    pub fn run(&mut self, job: &Job) -> std::io::Result<()> {
        let b = &mut self.buf;
        b.clear();
        b.push(RUN);
        put_varint(b, job.line as u64);
        put_str(b, &job.id);
        put_str(b, &job.prompt);
        put_str(b, job.params.text());
        put_opt_str(b, job.params.model());
        match job.params.max_output_tokens() {
            Some(n) => {
                b.push(1);
                put_varint(b, n);
            }
            None => b.push(0),
        }
        put_opt_str(b, job.context.as_deref().map(RawValue::get));
        put_opt_str(b, job.endpoint.as_deref());
        put_str(b, &job.fingerprint);
        self.to_run += 1;
        self.out.write_all(&self.buf)
    }

    /// A job a resume keeps: only its line and id.
    pub fn kept(&mut self, line: usize, id: &str) -> std::io::Result<()> {
        let b = &mut self.buf;
        b.clear();
        b.push(KEPT);
        put_varint(b, line as u64);
        put_str(b, id);
        self.out.write_all(&self.buf)
    }

    /// How many jobs to run were written.
    pub fn to_run(&self) -> u64 {
        self.to_run
    }

    /// Flushes the spool and hands it over for reading.
    pub fn finish(mut self) -> std::io::Result<Spool> {
        self.out.flush()?;
        let file = self.out.get_ref().try_clone()?;
        self.finished = true;
        Ok(Spool { path: self.path.clone(), file, to_run: self.to_run })
    }

    /// Where the spool is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Unsigned LEB128: seven bits a byte, the high bit set on all but the last.
fn put_varint(b: &mut Vec<u8>, mut n: u64) {
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            b.push(low);
            return;
        }
        b.push(low | 0x80);
    }
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    put_varint(b, s.len() as u64);
    b.extend_from_slice(s.as_bytes());
}

fn put_opt_str(b: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            b.push(1);
            put_str(b, s);
        }
        None => b.push(0),
    }
}

/// A written spool. Removed from disk when dropped.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    file: std::fs::File,
    to_run: u64,
}

impl Spool {
    /// Reads the entries from the start.
    pub fn entries(&self) -> std::io::Result<Entries> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        Ok(Entries { reader: BufReader::with_capacity(1 << 16, file) })
    }

    /// How many jobs the run will send.
    pub fn to_run(&self) -> u64 {
        self.to_run
    }

    /// Where the spool is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One entry: a job to run, or the line and id of a job kept from an
/// earlier run.
#[derive(Debug)]
pub enum SpoolEntry {
    Run(Job),
    Kept { line: usize, id: String },
}

impl SpoolEntry {
    /// The input line and id of the entry.
    pub fn line_and_id(&self) -> (usize, &str) {
        match self {
            SpoolEntry::Run(job) => (job.line, &job.id),
            SpoolEntry::Kept { line, id } => (*line, id),
        }
    }
}

/// The spool's entries, in input order.
pub struct Entries {
    reader: BufReader<std::fs::File>,
}

fn damaged(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("the spool is damaged ({what})"))
}

impl Entries {
    fn u8(&mut self) -> std::io::Result<u8> {
        let mut b = [0u8; 1];
        self.reader.read_exact(&mut b)?;
        Ok(b[0])
    }

    fn varint(&mut self) -> std::io::Result<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(damaged("a number longer than 64 bits"))
    }

    fn string(&mut self) -> std::io::Result<String> {
        let len = self.varint()?;
        // Grown as the bytes arrive: a damaged length cannot make it
        // allocate 4 GiB up front.
        let mut bytes = Vec::new();
        if (&mut self.reader).take(len).read_to_end(&mut bytes)? as u64 != len {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        String::from_utf8(bytes).map_err(|_| damaged("text that is not UTF-8"))
    }

    fn opt_string(&mut self) -> std::io::Result<Option<String>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            _ => Err(damaged("an unknown flag")),
        }
    }

    fn entry(&mut self, tag: u8) -> std::io::Result<SpoolEntry> {
        let line = usize::try_from(self.varint()?).map_err(|_| damaged("a line number out of range"))?;
        let id = self.string()?;
        if tag == KEPT {
            return Ok(SpoolEntry::Kept { line, id });
        }
        if tag != RUN {
            return Err(damaged("an unknown entry"));
        }
        let prompt = self.string()?;
        let params = self.string()?;
        let model = self.opt_string()?;
        let max_output_tokens = match self.u8()? {
            0 => None,
            1 => Some(self.varint()?),
            _ => return Err(damaged("an unknown flag")),
        };
        let context = match self.opt_string()? {
            Some(text) => Some(RawValue::from_string(text).map_err(|_| damaged("a context that is not JSON"))?),
            None => None,
        };
        let endpoint = self.opt_string()?;
        let fingerprint = self.string()?;
        let params = Params::from_parts(params, model, max_output_tokens);
        Ok(SpoolEntry::Run(Job { line, id, prompt, params, context, endpoint, fingerprint }))
    }
}

impl Iterator for Entries {
    type Item = std::io::Result<SpoolEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut tag = [0u8; 1];
        match self.reader.read(&mut tag) {
            Ok(0) => None,
            Ok(_) => Some(self.entry(tag[0]).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof { damaged("it ends inside an entry") } else { e }
            })),
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_come_back_as_they_went_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = spool_path(&dir.path().join("out/results.jsonl"));
        assert_eq!(path, dir.path().join("out/results.jsonl.spool"));
        let job = crate::input::parse_line(
            r#"{"custom_id":"r1","url":"/v1/chat/completions","body":{"model":"m","max_tokens":5, "x": 1.10},"metadata":{"id": 123456789012345678901234567890}}"#,
            7,
        )
        .expect("job");
        let simple = crate::input::parse_line(r#"{"id":"ü","prompt":"hé"}"#, 9).expect("job");
        let mut w = SpoolWriter::create(&path).expect("create");
        w.run(&job).expect("write");
        w.kept(8, "kept").expect("write");
        w.run(&simple).expect("write");
        assert_eq!(w.to_run(), 2);
        let spool = w.finish().expect("finish");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "the spool holds prompts: owner only ({mode:o})");
        }
        for _ in 0..2 {
            let entries: Vec<SpoolEntry> = spool.entries().expect("read").map(|e| e.expect("entry")).collect();
            assert_eq!(entries.len(), 3);
            match &entries[0] {
                SpoolEntry::Run(back) => assert_eq!(back, &job),
                other => panic!("{other:?}"),
            }
            assert_eq!(entries[1].line_and_id(), (8, "kept"));
            assert!(matches!(&entries[2], SpoolEntry::Run(back) if back == &simple));
        }
        drop(spool);
        assert!(!path.exists(), "removed when dropped");
        let w = SpoolWriter::create(&path).expect("create");
        drop(w);
        assert!(!path.exists(), "an unfinished spool is removed too");
        let w = SpoolWriter::create_temp(dir.path()).expect("temp");
        let temp = w.path().to_path_buf();
        assert!(temp.starts_with(dir.path()) && temp.exists());
        drop(w.finish().expect("finish"));
        assert!(!temp.exists());
    }

    #[test]
    fn a_damaged_spool_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        let job = crate::input::parse_line(r#"{"id":"a","prompt":"x"}"#, 1).expect("job");
        let mut w = SpoolWriter::create(&path).expect("create");
        w.run(&job).expect("write");
        let spool = w.finish().expect("finish");
        let full = std::fs::read(&path).expect("read");
        for cut in 1..full.len() {
            std::fs::write(&path, &full[..cut]).expect("write");
            let result: Result<Vec<_>, _> = spool.entries().expect("open").collect();
            let e = result.expect_err("cut short");
            assert!(e.to_string().contains("damaged"), "{e}");
        }
        std::fs::write(&path, [9u8, 0, 0]).expect("write");
        assert!(spool.entries().expect("open").next().expect("one").is_err());
        std::fs::write(&path, [0u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).expect("write");
        assert!(spool.entries().expect("open").next().expect("one").is_err(), "an endless varint");
    }

    #[test]
    fn varints_round_trip_at_their_edges() {
        for n in [0, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, n);
            b.push(0); // an empty id after it
            let file = tempfile::tempfile().expect("file");
            std::io::Write::write_all(&mut &file, &b).expect("write");
            let mut file = file;
            file.seek(SeekFrom::Start(0)).expect("seek");
            let mut entries = Entries { reader: BufReader::new(file) };
            assert_eq!(entries.varint().expect("read"), n);
        }
        let mut b = Vec::new();
        put_varint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
    }
}
