//! Where the jobs come from: a file, a pipe, or stdin (`-`), plain or
//! gzip-compressed.
//!
//! The jobs are read exactly once, so anything that can be read once will
//! do: `gsutil cat gs://bucket/jobs.jsonl.gz | batchllm-host ... -`, a named
//! pipe, `<(zcat ...)`. Compression is recognised by the gzip magic bytes
//! rather than the name, which also covers a compressed stream on stdin (a
//! JSONL line cannot start with byte 0x1f). Concatenated gzip members (what
//! `cat a.gz b.gz` or a parallel compressor writes) are read as one stream.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::InputError;

/// The jobs input: a path, or stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobsSource {
    /// `-`: standard input.
    Stdin,
    /// A file, a named pipe or a device.
    Path(PathBuf),
}

impl fmt::Display for JobsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobsSource::Stdin => f.write_str("<stdin>"),
            JobsSource::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

impl From<&Path> for JobsSource {
    /// `-` is stdin, as for most command-line tools.
    fn from(path: &Path) -> Self {
        if path == Path::new("-") { JobsSource::Stdin } else { JobsSource::Path(path.to_path_buf()) }
    }
}

impl From<PathBuf> for JobsSource {
    fn from(path: PathBuf) -> Self {
        JobsSource::from(path.as_path())
    }
}

/// The two bytes every gzip member starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Read buffer: large enough that a big file costs few system calls.
const BUFFER: usize = 1 << 16;

impl JobsSource {
    /// Opens the input for one pass.
    pub fn open(&self) -> Result<Lines, InputError> {
        let io = |source| InputError::Io { input: self.clone(), source };
        let mut raw: Box<dyn Read + Send> = match self {
            JobsSource::Stdin => Box::new(std::io::stdin()),
            JobsSource::Path(path) => {
                let file = std::fs::File::open(path).map_err(io)?;
                if file.metadata().map_err(io)?.is_dir() {
                    return Err(io(std::io::Error::other("it is a directory; give the jobs file")));
                }
                Box::new(file)
            }
        };
        // The first two bytes tell gzip from text; they are read (a pipe
        // cannot be rewound) and put back in front of the rest.
        let head = read_head(&mut raw).map_err(io)?;
        let gzip = head == GZIP_MAGIC;
        let buffered = BufReader::with_capacity(BUFFER, std::io::Cursor::new(head).chain(raw));
        let reader: Box<dyn BufRead + Send> = if gzip {
            Box::new(BufReader::with_capacity(BUFFER, flate2::bufread::MultiGzDecoder::new(buffered)))
        } else {
            Box::new(buffered)
        };
        Ok(Lines { input: self.clone(), reader, line: 0, buf: Vec::new(), done: false })
    }
}

/// Up to the first two bytes of `reader` (fewer only at its end).
fn read_head(reader: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut head = [0u8; 2];
    let mut n = 0;
    while n < head.len() {
        match reader.read(head.get_mut(n..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(head.get(..n).unwrap_or_default().to_vec())
}

/// The lines of one pass over the input: `(line number, text)`, the line
/// ending (`\n` or `\r\n`) removed. A line that is not UTF-8 is an error
/// about that line; reading goes on.
pub struct Lines {
    input: JobsSource,
    reader: Box<dyn BufRead + Send>,
    line: usize,
    buf: Vec<u8>,
    done: bool,
}

impl Iterator for Lines {
    type Item = Result<(usize, String), InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.buf.clear();
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => {
                self.done = true;
                None
            }
            Ok(_) => {
                self.line += 1;
                let mut bytes = std::mem::take(&mut self.buf);
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                    if bytes.last() == Some(&b'\r') {
                        bytes.pop();
                    }
                }
                Some(String::from_utf8(bytes).map(|text| (self.line, text)).map_err(|e| {
                    let at = e.utf8_error().valid_up_to();
                    self.buf = e.into_bytes();
                    let problem = format!("not UTF-8 text (an invalid byte at column {})", at.saturating_add(1));
                    InputError::Line {
                        input: self.input.clone(),
                        line: self.line,
                        problem,
                        fix: "save the jobs as UTF-8",
                    }
                }))
            }
            Err(source) => {
                self.done = true;
                let source = if source.kind() == std::io::ErrorKind::UnexpectedEof {
                    std::io::Error::new(
                        source.kind(),
                        format!("the gzip stream ends early, after line {} (a truncated file?)", self.line),
                    )
                } else {
                    source
                };
                Some(Err(InputError::Io { input: self.input.clone(), source }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dash_is_stdin_and_errors_name_the_input() {
        assert_eq!(JobsSource::from(Path::new("-")), JobsSource::Stdin);
        assert_eq!(JobsSource::Stdin.to_string(), "<stdin>");
        assert_eq!(JobsSource::from(PathBuf::from("a/jobs.jsonl")).to_string(), "a/jobs.jsonl");
        let dir = tempfile::tempdir().expect("tempdir");
        let Err(e) = JobsSource::from(dir.path()).open() else { panic!("a directory opened") };
        assert!(e.to_string().contains("it is a directory"), "{e}");
        let Err(e) = JobsSource::from(dir.path().join("missing.jsonl")).open() else { panic!("opened") };
        assert!(e.to_string().contains("missing.jsonl"), "{e}");
    }

    #[test]
    fn one_byte_or_empty_inputs_are_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        for text in ["", "x", "\n", "\u{1f}"] {
            let path = dir.path().join("j");
            std::fs::write(&path, text).expect("write");
            let lines: Vec<String> =
                JobsSource::from(path.as_path()).open().expect("open").map(|l| l.expect("line").1).collect();
            let expected: Vec<String> = text.lines().map(str::to_string).collect();
            assert_eq!(lines, expected, "{text:?}");
        }
    }
}
