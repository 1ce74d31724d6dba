//! The end of the pipeline: records become lines of the results file.
//!
//! One task owns the writer, so lines never interleave; a record counts (in
//! the report, the metrics and the progress display) only once it is
//! written, and its worker is released only then. A write that fails stops
//! the run: nothing more may be sent when answers can no longer be kept.

use tokio::sync::mpsc;

use super::context::RunContext;
use crate::model::ResultRecord;
use crate::results::{ResultWriter, ResultsError};
use crate::run::observe::{Live, Progress, ProgressMode, RunReport};

/// Most records written with one write and one flush.
const BATCH: usize = 256;

/// Where records go: the results file, or a vector in tests.
pub trait RecordSink: Send {
    /// Writes and flushes `records`; they count only once this returns Ok.
    fn write_all(&mut self, records: &[ResultRecord]) -> Result<(), ResultsError>;
}

impl RecordSink for ResultWriter {
    fn write_all(&mut self, records: &[ResultRecord]) -> Result<(), ResultsError> {
        ResultWriter::write_all(self, records)
    }
}

impl RecordSink for Vec<ResultRecord> {
    fn write_all(&mut self, records: &[ResultRecord]) -> Result<(), ResultsError> {
        self.extend_from_slice(records);
        Ok(())
    }
}

/// A record on its way to the file, with the worker's acknowledgement.
#[derive(Debug)]
pub struct Finished {
    pub record: ResultRecord,
    /// Signalled once the record is written.
    pub written: tokio::sync::oneshot::Sender<()>,
}

/// Writes records, keeps the report and the progress display.
pub struct Sink<W: RecordSink> {
    writer: W,
    report: RunReport,
    error: Option<ResultsError>,
    progress: Progress,
}

impl<W: RecordSink> Sink<W> {
    /// A sink for `to_run` records; `report` carries what a resume kept.
    pub fn new(writer: W, report: RunReport, progress: ProgressMode, to_run: u64) -> Self {
        Sink { writer, report, error: None, progress: Progress::new(progress, to_run) }
    }

    /// Takes the records of the run until every worker is done.
    ///
    /// Records that arrive together are written together: one write and one
    /// flush per batch, then every worker of the batch is released.
    pub async fn drain(&mut self, records: &mut mpsc::Receiver<Finished>, ctx: &RunContext) {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                received = records.recv_many(&mut batch, BATCH) => {
                    if received == 0 {
                        break;
                    }
                    let (ready, acks): (Vec<_>, Vec<_>) = batch.drain(..).map(|f| (f.record, f.written)).unzip();
                    self.write(&ready, ctx);
                    self.refresh(ctx);
                    for written in acks {
                        let _ = written.send(());
                    }
                }
                _ = tick.tick() => self.refresh(ctx),
            }
        }
        self.progress.finish();
    }

    fn refresh(&mut self, ctx: &RunContext) {
        if self.progress.due() {
            self.progress.update(&self.report, live(ctx));
        }
    }

    /// Writes records; they count only once written.
    fn write(&mut self, records: &[ResultRecord], ctx: &RunContext) {
        if self.error.is_some() || records.is_empty() {
            return;
        }
        match self.writer.write_all(records) {
            Ok(()) => {
                for record in records {
                    self.report.record(record);
                    ctx.observe.metrics.record(record);
                }
            }
            Err(e) => {
                ctx.control.fail(format!("writing results failed: {e}"));
                self.error = Some(e);
            }
        }
    }

    /// The report, and the write error that stopped the run, if any.
    pub fn finish(self) -> (RunReport, Option<ResultsError>, W) {
        (self.report, self.error, self.writer)
    }
}

fn live(ctx: &RunContext) -> Live {
    let now = tokio::time::Instant::now();
    let limits = ctx.gates.settings().admission;
    Live {
        learned: ctx.gates.estimates().into_iter().next().map(|(_, e)| e),
        cooldown: ctx.gates.longest_cooldown(now),
        rate_limits: ctx.gates.stats().rate_limits,
        retrying: ctx.observe.retrying.load(std::sync::atomic::Ordering::Relaxed),
        rpm: limits.rpm,
        tpm: limits.tpm,
    }
}
