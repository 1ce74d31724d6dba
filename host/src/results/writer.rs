//! Appending records to the results file.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::model::ResultRecord;

/// Errors writing results.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("cannot write results to {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Options for a file only its owner may read and write (0600 on Unix; the
/// umask can only narrow it): the results file, the in-flight journal and
/// the events file hold prompts, outputs and item ids. An existing file
/// keeps its mode.
pub fn private_file() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Appends records; each line is flushed to the OS (and with `fsync`, to
/// the disk) before the item counts as done. A `.gz` results file gets one
/// gzip member per write (see [`super::lines`]).
#[derive(Debug)]
pub struct ResultWriter {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    fsync: bool,
    gzip: bool,
}

impl ResultWriter {
    /// Opens `path` for appending, creating it (and its folder) if needed;
    /// with `truncate`, existing content is discarded.
    pub fn open(path: &Path, truncate: bool, fsync: bool) -> Result<Self, ResultsError> {
        let io = |source| ResultsError::Io { path: path.into(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file =
            private_file().create(true).append(!truncate).write(true).truncate(truncate).open(path).map_err(io)?;
        Ok(ResultWriter { path: path.into(), out: std::io::BufWriter::new(file), fsync, gzip: super::is_gzip(path) })
    }

    /// Writes one record as a line and flushes it.
    pub fn write(&mut self, record: &ResultRecord) -> Result<(), ResultsError> {
        self.write_all(std::slice::from_ref(record))
    }

    /// Writes records as lines with a single write and flushes them: each
    /// counts as written only when this returns `Ok`. One write per batch,
    /// so a crash tears at most the batch's last line (or, compressed, the
    /// batch's member), which a resume repairs.
    pub fn write_all(&mut self, records: &[ResultRecord]) -> Result<(), ResultsError> {
        let io = |source| ResultsError::Io { path: self.path.clone(), source };
        let mut lines = Vec::with_capacity(records.len() * 1024);
        for record in records {
            serde_json::to_writer(&mut lines, record).map_err(|e| io(std::io::Error::other(e)))?;
            lines.push(b'\n');
        }
        if self.gzip && !lines.is_empty() {
            lines = super::lines::gzip_member(&lines).map_err(io)?;
        }
        self.out.write_all(&lines).map_err(io)?;
        self.out.flush().map_err(io)?;
        if self.fsync {
            let file = self.out.get_ref();
            // fsync can take milliseconds on a slow disk: on a runtime
            // worker, let the other tasks move to another thread meanwhile.
            let sync = || file.sync_data();
            let synced = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(sync),
                _ => sync(),
            };
            synced.map_err(io)?;
        }
        Ok(())
    }
}
