//! `--preserve-order`: results in input order instead of completion order.
//!
//! The reader reports every line it hands out; a finished record is held
//! until every earlier line handed out has been written. The cost is memory:
//! records finished behind a slow item wait in memory (and are redone after a
//! crash, since only written records count).

use std::collections::{BTreeMap, VecDeque};

use crate::model::ResultRecord;

/// Reorders records by input line.
#[derive(Debug, Default)]
pub struct Reorder {
    /// Lines handed out and not yet written, in input order.
    expected: VecDeque<usize>,
    pending: BTreeMap<usize, ResultRecord>,
}

impl Reorder {
    /// Notes that `line` was handed to a worker.
    pub fn sent(&mut self, line: usize) {
        self.expected.push_back(line);
    }

    /// Takes a finished record; returns the records now writable, in order.
    pub fn push(&mut self, record: ResultRecord) -> Vec<ResultRecord> {
        self.pending.insert(record.batchllm.line, record);
        let mut ready = Vec::new();
        while let Some(front) = self.expected.front() {
            match self.pending.remove(front) {
                Some(r) => {
                    ready.push(r);
                    self.expected.pop_front();
                }
                None => break,
            }
        }
        ready
    }

    /// Everything still held, in order (at the end of a run, when some
    /// items will never finish, e.g. after a hard stop).
    pub fn drain(&mut self) -> Vec<ResultRecord> {
        self.expected.clear();
        std::mem::take(&mut self.pending).into_values().collect()
    }

    /// Records held back right now.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TokenUsage;
    use crate::model::{Fingerprint, HostBlock, ItemStatus};

    fn record(line: usize) -> ResultRecord {
        ResultRecord {
            id: String::new(),
            custom_id: format!("l{line}"),
            response: None,
            error: None,
            batchllm: HostBlock {
                status: ItemStatus::Succeeded,
                output: None,
                attempts: 1,
                rate_limit_retries: 0,
                usage: TokenUsage::default(),
                latency_ms: 0.0,
                error_class: None,
                http_status: None,
                metadata: None,
                context: None,
                line,
                fingerprint: Fingerprint { input: String::new(), plugin: String::new(), config: String::new() },
                cost_usd: None,
            },
        }
    }

    fn lines(records: Vec<ResultRecord>) -> Vec<usize> {
        records.into_iter().map(|r| r.batchllm.line).collect()
    }

    #[test]
    fn holds_records_until_earlier_lines_are_written() {
        let mut r = Reorder::default();
        for line in [1, 3, 4, 7] {
            r.sent(line);
        }
        assert!(r.push(record(4)).is_empty());
        assert!(r.push(record(3)).is_empty());
        assert_eq!(r.held(), 2);
        assert_eq!(lines(r.push(record(1))), [1, 3, 4]);
        assert_eq!(lines(r.push(record(7))), [7]);
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn drain_flushes_what_is_left_in_order() {
        let mut r = Reorder::default();
        r.sent(1);
        r.sent(2);
        r.sent(3);
        assert!(r.push(record(3)).is_empty());
        assert!(r.push(record(2)).is_empty());
        assert_eq!(lines(r.drain()), [2, 3]);
    }
}
