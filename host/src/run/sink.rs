//! The end of the pipeline: records become lines of the results file.
//!
//! One task owns the writer, so lines never interleave; a record counts
//! (in the report and the progress display) only once it is written. With
//! `--preserve-order` records wait here until every earlier line is written.

use tokio::sync::mpsc;

use super::order::Reorder;
use super::progress::{Live, Progress, ProgressMode};
use super::{RunContext, RunReport};
use crate::model::ResultRecord;
use crate::results::{ResultWriter, ResultsError};

/// Most records written with one write and one flush.
const BATCH: usize = 256;

/// A record on its way to the file, with the worker's acknowledgement.
#[derive(Debug)]
pub struct Finished {
    pub record: ResultRecord,
    /// Signalled once the record is written (or held by `--preserve-order`).
    pub written: tokio::sync::oneshot::Sender<()>,
}

/// Writes records, keeps the report and the progress display.
pub struct Sink {
    writer: ResultWriter,
    report: RunReport,
    error: Option<ResultsError>,
    reorder: Option<Reorder>,
    /// Lines the reader handed out, for `--preserve-order`.
    sent_lines: mpsc::UnboundedReceiver<usize>,
    progress: Progress,
}

impl Sink {
    /// A sink for `to_run` records; `report` carries what a resume kept.
    pub fn new(
        writer: ResultWriter,
        report: RunReport,
        preserve_order: bool,
        sent_lines: mpsc::UnboundedReceiver<usize>,
        progress: ProgressMode,
        to_run: u64,
    ) -> Self {
        Sink {
            writer,
            report,
            error: None,
            reorder: preserve_order.then(Reorder::default),
            sent_lines,
            progress: Progress::new(progress, to_run),
        }
    }

    /// Takes the records of the run until every worker is done.
    ///
    /// Records that arrive together are written together: one write and one
    /// flush per batch, then every worker of the batch is released. Each
    /// record still counts only once it is flushed.
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
                    self.accept(ready, ctx);
                    for written in acks {
                        let _ = written.send(());
                    }
                }
                _ = tick.tick() => self.refresh(ctx),
            }
        }
        self.progress.finish();
        let held = self.reorder.as_mut().map(Reorder::drain).unwrap_or_default();
        self.write(held, ctx);
    }

    fn accept(&mut self, records: Vec<ResultRecord>, ctx: &RunContext) {
        let ready = match self.reorder.as_mut() {
            Some(reorder) => {
                while let Ok(line) = self.sent_lines.try_recv() {
                    reorder.sent(line);
                }
                records.into_iter().flat_map(|record| reorder.push(record)).collect()
            }
            None => records,
        };
        self.write(ready, ctx);
        self.refresh(ctx);
    }

    fn refresh(&mut self, ctx: &RunContext) {
        if self.progress.due() {
            self.progress.update(&self.report, live(ctx));
        }
    }

    /// Writes records; they count only once written.
    fn write(&mut self, records: Vec<ResultRecord>, ctx: &RunContext) {
        if self.error.is_some() || records.is_empty() {
            return;
        }
        match self.writer.write_all(&records) {
            Ok(()) => {
                for record in &records {
                    self.report.record(record);
                    ctx.metrics.record(record);
                }
            }
            Err(e) => {
                // Without a results file nothing may count: stop taking items.
                ctx.control.interrupt();
                self.error = Some(e);
            }
        }
    }

    /// The report, or the write error that made it meaningless.
    pub fn finish(self) -> Result<RunReport, ResultsError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.report),
        }
    }
}

fn live(ctx: &RunContext) -> Live {
    Live {
        cooldown: ctx.coordinator.longest_cooldown(),
        rate_limits: ctx.coordinator.stats().rate_limits,
        retrying: ctx.retrying.load(std::sync::atomic::Ordering::Relaxed),
        rpm: ctx.admission_limits.rpm,
        tpm: ctx.admission_limits.tpm,
    }
}
